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
 * Mirrors: docs/PROTOCOL.md sections 15.2 (Meet, Room), 15.3 (tokens) and 15.5 (rooms).
 *
 * @module
 */

import { ConnectionError, TrustError, UsageError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import { enterRoomAt, meetAt } from "../rendezvous/rendezvous_client.ts";
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
 * Meets the listener of `meeting` at the relay and runs the initiator handshake with it.
 *
 * @param session our side of the end-to-end handshake
 * @throws {ConnectionError} `no_listener` when nobody waits under that fingerprint
 * @throws {TrustError} when the relay's key is refused, or the listener's is not the one asked for
 */
export async function meetThroughRelay(
  relay: RelayKeyCheck,
  meeting: Meeting,
  session: SessionOptions & { knownHosts: string },
): Promise<SecureConnection> {
  const { knownHosts, ...options } = session;
  const token = await rendezvousToken(meeting.fingerprint);
  const socket = await meetAt(await relay.open({ timeoutMs: options.timeoutMs }), token);
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
 * Joins the room of `token` (`roomToken()` of its name) on the relay: a connection with our own
 * key (the room routes by it, 15.1), its Room request, and the relay's Joined.
 *
 * @returns the connection, for `joinRoom()`
 * @throws {ConnectionError} when the relay refuses us or cannot be reached
 */
export async function enterRelayRoom(
  relay: RelayKeyCheck,
  token: Uint8Array,
  options: { identity: Identity; timeoutMs: number },
): Promise<SecureConnection> {
  return await enterRoomAt(await relay.open(options), token);
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
