/**
 * `securechat dial HOST[:PORT]`: connects, runs the initiator handshake, checks the listener's key
 * against a pinned fingerprint (`--expect`) or known_hosts (recording it on first contact), then
 * pipes stdin/stdout with it, joins its room, or sends a file (`--send`).
 *
 * Two more ways to a session go through a rendezvous relay (docs/PROTOCOL.md 15):
 * `dial FINGERPRINT --via RELAY` meets the listener registered there under that fingerprint and
 * runs the same handshake over the joined stream, with the fingerprint as the pin (or, for
 * `dial NAME --via RELAY`, the key known_hosts lists for NAME); `dial RELAY --room NAME` joins the
 * room NAME that the relay hosts (lib/cli/dial_via.ts does the relay's part of both).
 *
 * @module
 */

import { TrustError, UsageError } from "../core/errors.ts";
import { runInitiator } from "../transport/connection.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import type { SuiteName } from "../crypto/kex.ts";
import { addKnownHost, canonicalHostPort, checkKnownHost } from "../trust/known_hosts.ts";
import { joinPath, securechatHome } from "../core/paths.ts";
import { runPipe } from "../transport/pipe.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../protocol/record.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import type { ResumedConnection } from "../room/member.ts";
import { parseFingerprint } from "../trust/trust_file.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { DEFAULT_PORT, DIAL_FLAGS } from "./flags.ts";
import { print, status, warning } from "./output.ts";
import { followTransfer } from "./transfer_cli.ts";
import {
  connectTcp,
  enterRelayRoom,
  listenerFingerprint,
  meetThroughRelay,
  resumeAtRelays,
  type SessionOptions,
} from "./dial_via.ts";
import { roomToken } from "../rendezvous/tokens.ts";
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
  recordSuitesFlag,
  rosterReady,
  runChatUi,
  standardPipeEnds,
  suitesFlag,
} from "./listen_dial.ts";
import { parseRelayList, RelayKeyCheck, relayKeyFlag, relayKeyWithoutRelay } from "./relay_link.ts";
import { parseTarget } from "./target.ts";
import { USAGE } from "./usage.ts";

/** Suites a dialer offers by default: hybrid first, classical X25519 as fallback. */
export const DEFAULT_DIAL_SUITES: SuiteName[] = ["x25519-mlkem768", "x25519"];

/** Which way to the session the command line asks for. */
type Route =
  | { kind: "direct"; host: string; port: number; hostPort: string; expected?: string }
  | { kind: "via"; relays: RelayKeyCheck[]; target: string }
  | { kind: "room"; relays: RelayKeyCheck[]; room: string };

/**
 * The route from the target and `--via`, `--room`, `--relay-key`, `--expect`.
 *
 * @throws {UsageError} for a missing target or flags that do not go together
 */
function routeOf(target: string | undefined, parsed: ReturnType<typeof parseFlags>): Route {
  const via = stringFlag(parsed, "via");
  const room = stringFlag(parsed, "room");
  const relayKey = relayKeyFlag(parsed);
  const expectText = stringFlag(parsed, "expect");
  if (via !== undefined && room !== undefined) {
    throw new UsageError(
      'flags "--via" and "--room" exclude each other: a room on a relay is "securechat dial RELAY[:PORT] --room NAME"',
    );
  }
  if (via === undefined && room === undefined && relayKey !== undefined) {
    throw relayKeyWithoutRelay();
  }
  if ((via !== undefined || room !== undefined) && expectText !== undefined) {
    throw new UsageError(
      via !== undefined
        ? 'flag "--expect" is not for --via: the fingerprint you dial is the pin'
        : 'flag "--expect" is not for --room: pin the relay\'s key with --relay-key',
    );
  }
  if (target === undefined) {
    const [missing, form] = via !== undefined
      ? ["the listener's fingerprint", "securechat dial FINGERPRINT --via RELAY[:PORT]"]
      : room !== undefined
      ? ["the relay", "securechat dial RELAY[:PORT] --room NAME"]
      : ["the listener to dial", "securechat dial HOST[:PORT]"];
    throw new UsageError(`missing ${missing}: ${form}`, {
      hints: ['run "securechat dial --help" for examples'],
    });
  }
  const checks = (list: string, where: string) =>
    parseRelayList(list, where).map((relay) => new RelayKeyCheck(relay, relayKey));
  if (via !== undefined) return { kind: "via", relays: checks(via, "--via"), target };
  if (room !== undefined) return { kind: "room", relays: checks(target, "the relay list"), room };
  const { host, port } = parseTarget(target, DEFAULT_PORT);
  return {
    kind: "direct",
    host,
    port,
    hostPort: canonicalHostPort(host, port),
    ...(expectText === undefined ? {} : { expected: parseFingerprint(expectText) }),
  };
}

/** Runs `securechat dial`. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("dial", DIAL_FLAGS, args, { maxPositionals: 1 });
  if (parsed.values.help) {
    print(USAGE.dial!);
    return 0;
  }
  const route = routeOf(parsed.positionals[0], parsed);
  const mode = chooseMode(parsed);
  if (mode === "relay") throw new UsageError('flag "--relay-only" is for "securechat listen"');
  if (route.kind === "room" && mode === "pipe") {
    throw new UsageError(
      'a room is a chat, not a pipe: run "--room" on a terminal, or with --json',
    );
  }
  const name = nameFlag(parsed);
  const sendPath = stringFlag(parsed, "send");
  // Check the path before dialing: a typo should not cost a handshake. Its files are hashed
  // while we dial (the Offer needs their SHA-256).
  if (sendPath !== undefined) {
    const files = await (await import("../transfer/transfer_outgoing.ts")).collectFiles(sendPath);
    (await import("../transfer/file_hash.ts")).startHashing(files.map((file) => file.local));
  }
  const receive = await receivePolicyFlags(parsed, ["accept-files"]);
  const admitList = await admitListFlag(parsed);
  const suites = suitesFlag(parsed, DEFAULT_DIAL_SUITES);
  const recordSuites = recordSuitesFlag(parsed);
  const timeoutMs = handshakeTimeoutMs(parsed);
  const keepalive = keepaliveMs(parsed);
  const knownHosts = joinPath(securechatHome(), "known_hosts");
  // Before the key, so a bad name or fingerprint costs no passphrase prompt.
  const meeting = route.kind === "via"
    ? await listenerFingerprint(route.target, knownHosts)
    : undefined;
  const roomOnRelay = route.kind === "room" ? await roomToken(route.room) : undefined;
  const identity = await loadOwnIdentity(parsed);
  const session: SessionOptions = {
    identity,
    ...(name === undefined ? {} : { name }),
    suites,
    recordSuites,
    // A room's commits and Welcomes travel in one record each and grow with the room (13).
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    timeoutMs,
  };

  let secure: SecureConnection;
  let reconnect: ((position: bigint) => Promise<ResumedConnection>) | undefined;
  if (route.kind === "via") {
    const met = await meetThroughRelay(route.relays, meeting!, { ...session, knownHosts });
    secure = met.secure;
    const through = met.redirectedTo === undefined
      ? met.relay.address.hostPort
      : `${met.redirectedTo} (sent there by ${met.relay.address.hostPort})`;
    announcePeer(`met through relay ${through}`, secure.peer, {
      suite: `${secure.suite}, records ${secure.recordSuite}`,
      verificationCode: secure.verificationCode,
    });
  } else if (route.kind === "room") {
    const entered = await enterRelayRoom(route.relays, roomOnRelay!, { identity, timeoutMs });
    secure = entered.secure;
    announcePeer(
      `connected to relay ${route.relays[entered.index]!.address.hostPort}`,
      secure.peer,
      {
        suite: `${secure.suite}, records ${secure.recordSuite}`,
        verificationCode: secure.verificationCode,
      },
    );
    status(`in room "${route.room}": its members' keys are checked inside the room (MLS)`);
    // Section 16.4: on a cluster, a lost relay is replaced by the next of the list (wrapping).
    let current = entered.index;
    reconnect = async (position) => {
      const resumed = await resumeAtRelays(
        route.relays,
        current,
        { token: roomOnRelay!, position },
        { identity, timeoutMs },
      );
      current = resumed.index;
      resumed.secure.startKeepalive(keepalive);
      return { connection: resumed.secure, at: route.relays[current]!.address.hostPort };
    };
  } else {
    secure = await dialDirect(route, session, knownHosts);
  }
  secure.startKeepalive(keepalive);

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
  const participant = await joinRoom(secure, {
    identity,
    name,
    ...receive,
    ...(admitList === undefined ? {} : { admitsAtOnce: admitList }),
    ...(reconnect === undefined ? {} : { reconnect }),
  });
  if (mode !== "oneshot") return await runChatUi(participant, mode);
  await rosterReady(participant);
  // One shot: the file goes to the listener's person (the host), or the only other member.
  const recipient = participant.members().find((member) => member.host);
  return await followTransfer(
    participant,
    "send",
    () => participant.sendFile!(sendPath!, recipient?.fingerprint),
  );
}

/**
 * A listener on its own port: the handshake, the key checked against `--expect` or known_hosts,
 * and a first contact recorded, loudly.
 */
async function dialDirect(
  route: Route & { kind: "direct" },
  session: SessionOptions,
  knownHosts: string,
): Promise<SecureConnection> {
  const { hostPort, expected } = route;
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

  const conn = await connectTcp(route.host, route.port, hostPort);
  const secure = await runInitiator(conn, { ...session, checkPeer });
  announcePeer(`connected to ${hostPort}`, secure.peer, {
    suite: `${secure.suite}, records ${secure.recordSuite}`,
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
  return secure;
}
