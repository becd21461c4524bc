/**
 * A dialer's ways to a session: a TCP connection to a listener's own port, and the two through a
 * rendezvous relay (docs/PROTOCOL.md 15). `meetThroughRelay()` asks the relay for the listener
 * registered under a fingerprint's token (15.3) and runs the end-to-end handshake over the joined
 * stream with that fingerprint as the only key accepted (as `--expect` does); `enterRelayRoom()`
 * joins a room the relay hosts by name (15.5), over a connection authenticated with our own key.
 *
 * What it does not do: trust the relay with anything but pairing (the end-to-end handshake decides
 * who the listener is), or run the session (lib/cli/dial.ts does).
 *
 * A list of relays is tried in order (`atFirstRelay()`); a room member that loses its relay
 * resumes at the next one (`resumeAtRelays()`, 16.4).
 *
 * Mirrors: docs/PROTOCOL.md sections 15.2 (Meet, Room), 15.3 (tokens), 15.5 (rooms), 16.4
 * (resuming) and 16.5 (redirects).
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  PeerAlertError,
  ProtocolError,
  TrustError,
  UsageError,
} from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import { enterRoomAt, meetAt, resumeRoomOn } from "../rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../rendezvous/tokens.ts";
import { type ConnectionOptions, runInitiator } from "../transport/connection.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { canonicalHostPort, checkKnownHost, knownHostKeys } from "../trust/known_hosts.ts";
import { FINGERPRINT_PREFIX, parseFingerprint } from "../trust/trust_file.ts";
import { DEFAULT_PORT } from "./flags.ts";
import type { RelayKeyCheck } from "./relay_link.ts";
import { parseTarget } from "./target.ts";

/** Our side of the end-to-end handshake: everything but the check of the listener's key. */
export type SessionOptions = ConnectionOptions & { timeoutMs: number };

/** The listener a dialer asks the relay for: its fingerprint, and its known_hosts name if any. */
export interface Meeting {
  fingerprint: string;
  /** `HOST:PORT` when the fingerprint came from known_hosts (`dial NAME --via`). */
  knownAs?: string;
}

/**
 * The fingerprint to meet: `target` itself (`SHA256:...`), or the one key known_hosts lists for
 * `target` as `HOST[:PORT]` (default port 65432, as a direct dial records it).
 *
 * @throws {SecurechatError} `bad_fingerprint` (exit 2) for a malformed fingerprint
 * @throws {UsageError} when known_hosts lists no key, or several, for the name
 */
export async function listenerFingerprint(target: string, knownHosts: string): Promise<Meeting> {
  if (target.startsWith(FINGERPRINT_PREFIX)) return { fingerprint: parseFingerprint(target) };
  const { host, port } = parseTarget(target, DEFAULT_PORT);
  const hostPort = canonicalHostPort(host, port);
  const keys = await knownHostKeys(knownHosts, hostPort);
  if (keys.length === 0) {
    throw new UsageError(
      `"${hostPort}" is not in "${knownHosts}": --via needs the listener's fingerprint`,
      {
        hints: [
          'dial "SHA256:..." --via RELAY, with the fingerprint the listener\'s owner reads out',
        ],
      },
    );
  }
  if (keys.length > 1) {
    throw new UsageError(
      `"${knownHosts}" lists ${keys.length} keys for "${hostPort}": dial the fingerprint you mean`,
    );
  }
  return { fingerprint: keys[0]!, knownAs: hostPort };
}

/**
 * Tries `attempt` at each relay in turn until one works: a relay that is gone, refuses us or
 * misbehaves makes way for the next; a refused key (TrustError) or a local failure stops at once.
 *
 * @returns what the first relay that worked gave, and that relay
 * @throws the last relay's error when none worked
 */
export async function atFirstRelay<T>(
  relays: readonly RelayKeyCheck[],
  attempt: (relay: RelayKeyCheck) => Promise<T>,
): Promise<{ value: T; relay: RelayKeyCheck }> {
  let last: unknown = new RangeError("no relay to try");
  for (const relay of relays) {
    try {
      return { value: await attempt(relay), relay };
    } catch (error) {
      if (!relayMayDiffer(error)) throw error;
      last = error;
    }
  }
  throw last;
}

/**
 * Whether another relay of a list may do better after `error`: this one went away, refused us,
 * timed out or misbehaved. A TrustError (a key refused) or a local failure would recur.
 */
export function relayMayDiffer(error: unknown): boolean {
  return error instanceof ConnectionError || error instanceof ProtocolError ||
    error instanceof AuthenticationError || error instanceof PeerAlertError;
}

/**
 * Meets the listener of `meeting` at the first relay of the list that has it (following one
 * Redirect of a clustered relay, 16.5) and runs the initiator handshake with it.
 *
 * @param session our side of the end-to-end handshake
 * @returns the session, the relay we asked, and the relay it sent us to if it redirected us
 * @throws {ConnectionError} `no_listener` when nobody waits under that fingerprint
 * @throws {TrustError} when a relay's key is refused, or the listener's is not the one asked for
 */
export async function meetThroughRelay(
  relays: readonly RelayKeyCheck[],
  meeting: Meeting,
  session: SessionOptions & { knownHosts: string },
): Promise<{ secure: SecureConnection; relay: RelayKeyCheck; redirectedTo?: string }> {
  const token = await rendezvousToken(meeting.fingerprint);
  const timeoutMs = session.timeoutMs;
  let redirectedTo: string | undefined;
  const { value: socket, relay } = await atFirstRelay(
    relays,
    async (relay) =>
      await meetAt(await relay.open({ timeoutMs }), token, {
        redirect: { timeoutMs },
        onRedirect: (address) => redirectedTo = address,
      }),
  );
  const secure = await shakeHands(socket, relay, meeting, session);
  return redirectedTo === undefined ? { secure, relay } : { secure, relay, redirectedTo };
}

/** The end-to-end handshake with the listener a relay paired us with. */
async function shakeHands(
  socket: Deno.Conn,
  relay: RelayKeyCheck,
  meeting: Meeting,
  session: SessionOptions & { knownHosts: string },
): Promise<SecureConnection> {
  const { knownHosts, ...options } = session;
  const checkPeer = async (peer: VerifiedPeer): Promise<void> => {
    const fingerprint = peer.identity.fingerprint;
    // A name's key is the one its known_hosts line holds: the same check as a direct dial.
    if (meeting.knownAs !== undefined) {
      await checkKnownHost(knownHosts, meeting.knownAs, fingerprint);
      return;
    }
    if (fingerprint === meeting.fingerprint) return;
    throw new TrustError(
      "fingerprint_mismatch",
      `the listener met through relay ${relay.address.hostPort} has key ${fingerprint}, not the expected ${meeting.fingerprint}`,
      {
        hints: [
          "the relay paired us with someone else (an impostor registered under that fingerprint, or a dishonest relay)",
        ],
      },
    );
  };
  return await runInitiator(socket, { ...options, checkPeer });
}

/**
 * Joins the room of `token` (`roomToken()` of its name) at the first relay of the list that takes
 * us: a connection with our own key (the room routes by it, 15.1), its Room request, and the
 * relay's Joined.
 *
 * @returns the connection, for `joinRoom()`, and the index of its relay in the list
 * @throws {ConnectionError} when every relay refuses us or cannot be reached
 */
export async function enterRelayRoom(
  relays: readonly RelayKeyCheck[],
  token: Uint8Array,
  options: { identity: Identity; timeoutMs: number },
): Promise<{ secure: SecureConnection; index: number }> {
  const { value, relay } = await atFirstRelay(
    relays,
    async (relay) => await enterRoomAt(await relay.open(options), token),
  );
  return { secure: value, index: relays.indexOf(relay) };
}

/**
 * Section 16.4: resumes the room of `token` after `position` at the relays of the list, starting
 * with the one after `lost` and wrapping round to `lost` itself last.
 *
 * @returns the connection once a relay answered Joined, the relay's index and its address
 * @throws the last relay's error when none takes us back
 */
export async function resumeAtRelays(
  relays: readonly RelayKeyCheck[],
  lost: number,
  room: { token: Uint8Array; position: bigint },
  options: { identity: Identity; timeoutMs: number },
): Promise<{ secure: SecureConnection; index: number }> {
  const order = relays.map((_, step) => relays[(lost + 1 + step) % relays.length]!);
  const { value, relay } = await atFirstRelay(
    order,
    async (relay) => await resumeRoomOn(await relay.open(options), room.token, room.position),
  );
  return { secure: value, index: relays.indexOf(relay) };
}

/** Opens a TCP connection to a listener's own port. */
export async function connectTcp(host: string, port: number, where: string): Promise<Deno.TcpConn> {
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
