/**
 * `securechat dial HOST[:PORT]`: connects, runs the initiator handshake, checks the listener's key
 * against a pinned fingerprint (`--expect`) or known_hosts (recording it on first contact), then
 * pipes stdin/stdout with it.
 *
 * @module
 */

import { ConnectionError, TrustError, UsageError } from "../core/errors.ts";
import { runInitiator } from "../transport/connection.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import type { SuiteName } from "../crypto/kex.ts";
import { addKnownHost, canonicalHostPort, checkKnownHost } from "../trust/known_hosts.ts";
import { joinPath, securechatHome } from "../core/paths.ts";
import { runPipe } from "../transport/pipe.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../protocol/record.ts";
import { parseFingerprint } from "../trust/trust_file.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { DEFAULT_PORT, DIAL_FLAGS } from "./flags.ts";
import { print, status, warning } from "./output.ts";
import { followTransfer } from "./transfer_cli.ts";
import {
  admitListFlag,
  announcePeer,
  chooseMode,
  handshakeTimeoutMs,
  keepaliveMs,
  loadOwnIdentity,
  nameFlag,
  progressLine,
  receivePolicyFlags,
  rosterReady,
  runChatUi,
  standardPipeEnds,
  suitesFlag,
} from "./listen_dial.ts";
import { USAGE } from "./usage.ts";

/** Suites a dialer offers by default: hybrid first, classical X25519 as fallback. */
export const DEFAULT_DIAL_SUITES: SuiteName[] = ["x25519-mlkem768", "x25519"];

/** Parses `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address. @throws {UsageError} */
export function parseTarget(text: string): { host: string; port: number } {
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(":") as [string, string];
  }
  if (host === "") throw new UsageError(`cannot parse "${text}": the host is empty`);
  if (portText === undefined) return { host, port: DEFAULT_PORT };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new UsageError(`cannot parse "${text}": port must be a number from 1 to 65535`);
  }
  return { host, port };
}

async function connect(host: string, port: number, where: string): Promise<Deno.TcpConn> {
  try {
    return await Deno.connect({ hostname: host, port, transport: "tcp" });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new ConnectionError("connection_refused", `cannot connect to ${where}: refused`, {
        hints: ['is "securechat listen" running there, on that port?'],
      });
    }
    const message = error instanceof Error ? error.message : String(error);
    throw new ConnectionError("connect_failed", `cannot connect to ${where}: ${message}`);
  }
}

/** Runs `securechat dial`. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("dial", DIAL_FLAGS, args, { maxPositionals: 1 });
  if (parsed.values.help) {
    print(USAGE.dial!);
    return 0;
  }
  const targetText = parsed.positionals[0];
  if (targetText === undefined) {
    throw new UsageError("missing the listener to dial: securechat dial HOST[:PORT]", {
      hints: ['run "securechat dial --help" for examples'],
    });
  }
  const { host, port } = parseTarget(targetText);
  const hostPort = canonicalHostPort(host, port);
  const expectText = stringFlag(parsed, "expect");
  const expected = expectText === undefined ? undefined : parseFingerprint(expectText);
  const mode = chooseMode(parsed);
  if (mode === "relay") throw new UsageError('flag "--relay-only" is for "securechat listen"');
  const name = nameFlag(parsed);
  const sendPath = stringFlag(parsed, "send");
  // Check the path before dialing: a typo should not cost a handshake.
  if (sendPath !== undefined) {
    await (await import("../transfer/transfer_outgoing.ts")).collectFiles(sendPath);
  }
  const receive = await receivePolicyFlags(parsed, ["accept-files"]);
  const admitList = await admitListFlag(parsed);
  const suites = suitesFlag(parsed, DEFAULT_DIAL_SUITES);
  const timeoutMs = handshakeTimeoutMs(parsed);
  const keepalive = keepaliveMs(parsed);
  const identity = await loadOwnIdentity(parsed);
  const knownHosts = joinPath(securechatHome(), "known_hosts");

  let firstContact = false;
  async function checkPeer(peer: VerifiedPeer): Promise<void> {
    const fingerprint = peer.identity.fingerprint;
    if (expected !== undefined) {
      if (fingerprint !== expected) {
        throw new TrustError(
          "fingerprint_mismatch",
          `listener ${hostPort} has key ${fingerprint}, not the expected ${expected}`,
          {
            hints: [
              "someone may be intercepting this connection (a man-in-the-middle attack), or the pin is wrong",
              'ask the listener\'s owner to run "securechat fingerprint" and compare',
            ],
          },
        );
      }
      return;
    }
    const check = await checkKnownHost(knownHosts, hostPort, fingerprint);
    firstContact = check.status === "unknown";
  }

  const conn = await connect(host, port, hostPort);
  const secure = await runInitiator(conn, {
    identity,
    ...(name === undefined ? {} : { name }),
    suites,
    // A room's commits and Welcomes travel in one record each and grow with the room (13).
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    timeoutMs,
    checkPeer,
  });
  secure.startKeepalive(keepalive);
  announcePeer(`connected to ${hostPort}`, secure.peer, {
    suite: secure.suite,
    verificationCode: secure.verificationCode,
  });
  if (firstContact) {
    await addKnownHost(knownHosts, hostPort, secure.peer.identity.fingerprint, secure.peer.name);
    warning(
      `first contact with ${hostPort}: trusting its key ${secure.peer.identity.fingerprint} from now on (recorded in "${knownHosts}")`,
    );
    warning(
      "to be sure nobody sits in between, compare the verification code above with the listener's, over the phone or in person",
    );
  }
  if (mode === "pipe") {
    const progress = progressLine(parsed);
    const stats = await runPipe(
      secure,
      standardPipeEnds(progress === undefined ? {} : { progress }),
    );
    progress?.clear();
    status(`session ended: sent ${stats.sent} bytes, received ${stats.received}`);
    return 0;
  }
  // Loaded here, not at start-up: pipe mode needs none of the room and its transfers.
  const { joinRoom } = await import("../room/member.ts");
  const session = await joinRoom(secure, {
    identity,
    name,
    ...receive,
    ...(admitList === undefined ? {} : { admitsAtOnce: admitList }),
  });
  if (mode !== "oneshot") return await runChatUi(session, mode);
  await rosterReady(session);
  // One shot: the file goes to the listener's person (the host), or the only other member.
  const recipient = session.members().find((member) => member.host);
  return await followTransfer(
    session,
    "send",
    () => session.sendFile!(sendPath!, recipient?.fingerprint),
  );
}
