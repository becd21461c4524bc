/**
 * `securechat listen`: accepts dialers, runs the responder handshake with each concurrently, and
 * admits those in authorized_keys (or anyone, when no file is given). In pipe mode it pipes
 * stdin/stdout with one peer at a time; in chat mode it runs a room (lib/room/relay.ts) that the person
 * at the terminal takes part in, or that relays headless with --relay-only. Failed or refused
 * connections are reported and the listener keeps serving.
 *
 * Dialers come from a port of its own, or with `--via RELAY` from a rendezvous relay that pairs
 * them with it (lib/cli/listen_via.ts, docs/PROTOCOL.md 15): either way each one's socket goes
 * through the same handshake, admission and session.
 *
 * @module
 */

import { SecurechatError, UsageError } from "../core/errors.ts";
import { readAuthorizedKeys } from "../trust/authorized_keys.ts";
import { type SuiteName, warmUpResponderKex } from "../crypto/kex.ts";
import {
  acceptLoop,
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_PENDING_PER_ADDRESS,
  DEFAULT_MAX_WAITING,
  type Source,
  WaitingLine,
} from "../transport/listener.ts";
import { runPipe } from "../transport/pipe.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../protocol/record.ts";
import { Relay } from "../room/relay.ts";
import type { RoomParticipant } from "../room/participant.ts";
import { DEFAULT_MAX_MEMBERS } from "../room/limits.ts";
import { useSynchronousCipherForSmallInputs } from "../crypto/aead.ts";
import { loadSynchronousChaCha20Poly1305 } from "../crypto/chacha20_poly1305.ts";
import { booleanFlag, integerFlag, parseFlags, stringFlag } from "./args.ts";
import { DEFAULT_PORT, LISTEN_FLAGS } from "./flags.ts";
import { type AdmitterOptions, makeAdmitter } from "./listen_admission.ts";
import { RelayRegistrations, type Serve } from "./listen_via.ts";
import { parseRelayList, RelayKeyCheck, relayKeyFlag, relayKeyWithoutRelay } from "./relay_link.ts";
import { followTransfer, type ProgressLine } from "./transfer_cli.ts";
import type { ReceivePolicy } from "../transfer/receive_policy.ts";
import { print, reportError, status, warning } from "./output.ts";
import {
  announcePeer,
  chooseMode,
  handshakeTimeoutMs,
  keepaliveMs,
  listenError,
  loadOwnIdentity,
  nameFlag,
  progressLine,
  receivePolicyFlags,
  recordSuitesFlag,
  runChatUi,
  type SessionMode,
  standardPipeEnds,
  suitesFlag,
} from "./listen_dial.ts";
import { USAGE } from "./usage.ts";

/**
 * Suites a listener accepts unless `--suites` says otherwise. ffdhe3072 is opt-in: checking a
 * peer's value costs ~50 ms of CPU, which lets anyone who can reach the port buy a listener's
 * time for 384 bytes a hello (docs/PROTOCOL.md section 4.3).
 */
export const DEFAULT_LISTEN_SUITES: SuiteName[] = ["x25519-mlkem768", "x25519"];

/**
 * Where dialers come from: it calls `serve` for each one's socket, and `report` for what goes
 * wrong on the way, until the listener stops.
 */
type Acceptor = (serve: Serve, report: (line: string) => void) => void;

/** Runs `securechat listen`. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("listen", LISTEN_FLAGS, args);
  if (parsed.values.help) {
    print(USAGE.listen!);
    return 0;
  }
  const mode = chooseMode(parsed);
  const hostFlag = stringFlag(parsed, "host");
  const viaText = stringFlag(parsed, "via");
  const relayKey = relayKeyFlag(parsed);
  if (
    viaText !== undefined && (hostFlag !== undefined || stringFlag(parsed, "port") !== undefined)
  ) {
    throw new UsageError(
      'flags "--host" and "--port" are for a listener with a port of its own: with --via it opens none',
    );
  }
  if (viaText === undefined && relayKey !== undefined) throw relayKeyWithoutRelay();
  const via = viaText === undefined ? undefined : parseRelayList(viaText, "--via");
  const host = hostFlag ?? "127.0.0.1";
  const port = integerFlag(parsed, "port", { min: 0, max: 65535, fallback: DEFAULT_PORT });
  const keepOpen = booleanFlag(parsed, "keep-open");
  const maxMembers = integerFlag(parsed, "max-members", {
    min: 1,
    max: 100_000,
    fallback: DEFAULT_MAX_MEMBERS,
  });
  const name = nameFlag(parsed);
  const suites = suitesFlag(parsed, DEFAULT_LISTEN_SUITES);
  const recordSuites = recordSuitesFlag(parsed);
  const timeoutMs = handshakeTimeoutMs(parsed);
  const keepalive = keepaliveMs(parsed);
  const maxPending = integerFlag(parsed, "max-pending-handshakes", {
    min: 1,
    max: 100_000,
    fallback: DEFAULT_MAX_PENDING_HANDSHAKES,
  });
  const maxPendingPerAddress = integerFlag(parsed, "max-pending-per-address", {
    min: 1,
    max: 100_000,
    fallback: DEFAULT_MAX_PENDING_PER_ADDRESS,
  });
  const maxWaiting = integerFlag(parsed, "max-waiting", {
    min: 1,
    max: 100_000,
    fallback: DEFAULT_MAX_WAITING,
  });
  const authorizedFile = stringFlag(parsed, "authorized-keys");
  const receive = await receivePolicyFlags(parsed, ["receive", "accept-files"]);
  if (host === "") throw new UsageError('flag "--host" needs an address');
  if (keepOpen && mode !== "pipe") {
    throw new UsageError('flag "--keep-open" is for pipe mode: a chat room stays open anyway');
  }
  if (stringFlag(parsed, "max-waiting") !== undefined && !keepOpen) {
    throw new UsageError('flag "--max-waiting" is for pipe mode with --keep-open');
  }

  const authorized = authorizedFile === undefined
    ? undefined
    : await readAuthorizedKeys(authorizedFile);
  const identity = await loadOwnIdentity(parsed);
  // In the background: the first dialer need not wait for the runtime's ML-KEM set-up.
  void warmUpResponderKex(suites);
  // A listener waits anyway, so it pays node:crypto's load now (20-35 ms): every record of every
  // handshake it answers is then sealed and opened synchronously (ChaCha20-Poly1305, PROTOCOL.md
  // 4.5), not through a WebCrypto call each.
  await loadSynchronousChaCha20Poly1305();

  let accept: Acceptor;
  let stop: () => void;
  let failed: Promise<never> | undefined;
  if (via === undefined) {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname: host, port, transport: "tcp" });
    } catch (error) {
      throw listenError(error, `${host}:${port}`);
    }
    const address = listener.addr as Deno.NetAddr;
    status(`listening on ${address.hostname}:${address.port} as ${identity.fingerprint}`);
    accept = (serve, report) => void acceptLoop(listener, serve, report);
    stop = () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    };
  } else {
    const registrations = await RelayRegistrations.start({
      relays: via.map((relay) => new RelayKeyCheck(relay, relayKey)),
      fingerprint: identity.fingerprint,
      timeoutMs,
      keepaliveMs: keepalive,
    });
    status(
      `waiting for dialers at relay ${registrations.relayHostPort} as ${identity.fingerprint} (no port of our own)`,
    );
    accept = (serve, report) => registrations.run(serve, report);
    stop = () => registrations.stop();
    failed = registrations.failed;
  }
  if (authorized === undefined) {
    status("admitting any dialer (no --authorized-keys): check the fingerprint each one shows");
  } else {
    status(`admitting the ${authorized.length} key(s) in "${authorizedFile}"`);
  }
  const settings = {
    identity,
    name,
    suites,
    recordSuites,
    timeoutMs,
    keepaliveMs: keepalive,
    maxPending,
    maxPendingPerAddress,
    authorized,
    authorizedFile,
  };
  try {
    const serving = mode === "pipe"
      ? servePipe(accept, settings, { keepOpen, maxWaiting }, progressLine(parsed))
      : serveRoom(accept, settings, mode, { maxMembers, receive });
    // Registering at a relay can fail for good (its key changed): that ends the listener.
    return await (failed === undefined ? serving : Promise.race([serving, failed]));
  } finally {
    stop();
  }
}

type Settings = Omit<AdmitterOptions, "maxRecordPlaintext" | "report">;

/**
 * Pipe mode: one peer at a time on stdin/stdout; with --keep-open, one after another, at most
 * `maxWaiting` waiting their turn (half of them from one address); the rest are refused as busy.
 */
async function servePipe(
  accept: Acceptor,
  settings: Settings,
  options: { keepOpen: boolean; maxWaiting: number },
  progress: ProgressLine | undefined,
): Promise<number> {
  const { keepOpen, maxWaiting } = options;
  const admit = makeAdmitter({
    ...settings,
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    report: warning,
  });
  // One pipe at a time: stdin and stdout are shared. With --keep-open later peers wait their turn,
  // in a line of bounded length: an admitted peer has left the pending handshakes and would
  // otherwise hold its connection for as long as it likes.
  const line = new WaitingLine({ max: maxWaiting, maxPerAddress: Math.ceil(maxWaiting / 2) });
  let busy = false;
  let sessionEnded: Promise<void> = Promise.resolve();
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => finish = resolve);

  async function serve(conn: Deno.Conn, source: Source): Promise<void> {
    const admitted = await admit(conn, source);
    if (!admitted) return;
    const { secure, from } = admitted;
    const leave = busy && keepOpen ? line.enter(source.address) : undefined;
    if (leave !== undefined) {
      try {
        while (busy) await sessionEnded;
      } finally {
        leave();
      }
    }
    if (busy) {
      await secure.abort(new SecurechatError("busy", "busy", 1, { alert: "user_canceled" }));
      warning(`connection from ${from} refused: already serving a peer (${line.size} waiting)`);
      return;
    }
    busy = true;
    let endSession = () => {};
    sessionEnded = new Promise((resolve) => endSession = resolve);
    announcePeer(`connection from ${from}`, secure.peer, {
      suite: `${secure.suite}, records ${secure.recordSuite}`,
      verificationCode: secure.verificationCode,
      name: admitted.name,
    });
    let code = 0;
    try {
      const stats = await runPipe(
        secure,
        standardPipeEnds({ keepOutputOpen: keepOpen, ...(progress ? { progress } : {}) }),
      );
      progress?.clear();
      status(`session with ${from} ended: sent ${stats.sent} bytes, received ${stats.received}`);
    } catch (error) {
      code = reportError(error);
    }
    busy = false;
    endSession();
    if (!keepOpen) finish(code);
  }

  accept(serve, warning);
  return await finished;
}

/** Chat mode: a room, with the person at the terminal taking part unless --relay-only. */
async function serveRoom(
  accept: Acceptor,
  settings: Settings,
  mode: Exclude<SessionMode, "pipe">,
  options: { maxMembers: number; receive: ReceivePolicy },
): Promise<number> {
  const { maxMembers, receive } = options;
  // A room seals one small record per member for every message: worth node:crypto's start-up.
  await useSynchronousCipherForSmallInputs();
  const chatUi = mode === "terminal" || mode === "json";
  const refusals = new RefusalNotices();
  const room = new Relay({
    maxMembers,
    // The terminal belongs to the chat UI, which shows joins and knocks itself: of the relay's
    // log it gets only the refusals, which it would otherwise never hear of.
    log: mode === "terminal" ? refusals.fromLog : mode === "json" ? refusals.alsoFromLog : status,
  });
  const report = chatUi ? refusals.tell : status;
  const admit = makeAdmitter({
    ...settings,
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    report,
  });
  // The accept loop survives every connection's failure; it ends only with the listener.
  accept(async (conn, source) => {
    const admitted = await admit(conn, source);
    if (admitted) await room.join(admitted.secure);
  }, report);

  if (mode === "relay") {
    status(`relaying a room of up to ${maxMembers} members; stop with Ctrl-C`);
    const stop = new Promise<number>((resolve) => {
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const signal of signals) Deno.addSignalListener(signal, () => resolve(0));
    });
    const code = await stop;
    await room.close();
    return code;
  }
  // The person at the listener is the room's first member, through an in-process link.
  const { hostRoom } = await import("../room/host.ts");
  const host = await hostRoom(room, {
    identity: settings.identity,
    name: settings.name,
    ...receive,
  });
  if (chatUi) refusals.showTo(host);
  if (mode === "oneshot") {
    status(
      `receiving into "${receive.receiveDir}": the first file or folder sent ends the session`,
    );
    const code = await followTransfer(host, "receive", () => Promise.resolve());
    await room.close();
    return code;
  }
  const code = await runChatUi(host, mode);
  await room.close("the host closed the room");
  return code;
}

/**
 * Connections refused by the listener (authorized_keys) or by the relay (a mode mismatch, a key
 * already in the room, a full room), told to the person at the listener as notices in the chat
 * UI: in the terminal chat there is no other place they would show. Those refused before the host
 * is in its room wait for it.
 */
class RefusalNotices {
  #host: RoomParticipant | undefined;
  #early: string[] = [];

  /** Shows `line` to the host (or keeps it until the host is there). */
  readonly tell = (line: string): void => {
    if (this.#host === undefined) this.#early.push(line);
    else this.#host.emit({ type: "notice", time: Date.now(), text: line });
  };

  /** A relay log line: only refusals are shown; joins and knocks are room events already. */
  readonly fromLog = (line: string): void => {
    if (/ refused: /.test(line)) this.tell(line);
  };

  /** A relay log line for `--json`: all of them on stderr, refusals also as notices. */
  readonly alsoFromLog = (line: string): void => {
    status(line);
    this.fromLog(line);
  };

  showTo(host: RoomParticipant): void {
    this.#host = host;
    for (const line of this.#early.splice(0)) this.tell(line);
  }
}
