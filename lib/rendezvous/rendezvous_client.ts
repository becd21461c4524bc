/**
 * A client's side of a rendezvous relay: `connectToRelay()` dials the relay and runs the
 * handshake as initiator (by default with a fresh Ed25519 key, so the relay learns nothing of who
 * we are, 15.1); then one request on that connection. `registerAt()` waits there as a listener
 * until a dialer is paired with us, `meetAt()` asks for the listener of a token, and both return
 * the same TCP connection as a raw socket (a `SplicedSocket`) on which the end-to-end handshake
 * runs next: the listener as responder, the dialer as initiator. `enterRoomAt()` joins the room of
 * a token and returns the connection itself, for `joinRoom()` (lib/room/member.ts).
 *
 * What it does not do: check the relay's key (the caller's `checkRelay` does, against known_hosts
 * or a pin), or run the end-to-end handshake (lib/transport/connection.ts does, over the socket).
 * Nothing the relay sends is trusted beyond the one answer: the session's security comes from the
 * end-to-end handshake (15.4).
 *
 * Mirrors: docs/PROTOCOL.md sections 15.1 (the throwaway key), 15.2 (the exchange), 15.4 (the
 * client's half of splicing) and 15.5 (rooms).
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  ProtocolError,
  type SecurechatError,
  TrustError,
} from "../core/errors.ts";
import { replaceUnsafe } from "../core/text.ts";
import type { SuiteName } from "../crypto/kex.ts";
import { generateIdentity, type Identity } from "../keys/identity.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../protocol/record.ts";
import { runInitiator } from "../transport/connection.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { SplicedSocket } from "../transport/spliced_socket.ts";
import {
  decodeRendezvousAnswer,
  encodeRendezvousRequest,
  REFUSAL,
  type RendezvousAnswer,
  type RendezvousRequest,
} from "./rendezvous_messages.ts";

/** How long the relay has to answer a request (and to follow Paired with close_notify). */
export const RELAY_ANSWER_DEADLINE_MS = 10_000;

/** Section 8.6: our keepalive interval while a registration waits (default 30 s). */
export const DEFAULT_REGISTRATION_KEEPALIVE_MS = 30_000;

/** Suites offered to the relay unless told otherwise. */
export const DEFAULT_RELAY_DIAL_SUITES: readonly SuiteName[] = ["x25519-mlkem768", "x25519"];

/** Options of {@linkcode connectToRelay}. */
export interface RelayDialOptions {
  host: string;
  port: number;
  /** Our key for the relay: a fresh Ed25519 one by default (15.1); a room member passes its own. */
  identity?: Identity;
  /** Throws (a TrustError) to refuse the relay's key: known_hosts or a pin, as `dial` does. */
  checkRelay(peer: VerifiedPeer): Promise<void>;
  /** Handshake deadline (default that of lib/transport/connection.ts). */
  timeoutMs?: number;
  /** Suites to offer (default {@linkcode DEFAULT_RELAY_DIAL_SUITES}). */
  suites?: readonly SuiteName[];
}

/** Options of the requests. */
export interface RequestOptions {
  /** How long the relay has to answer (default {@linkcode RELAY_ANSWER_DEADLINE_MS}). */
  timeoutMs?: number;
}

/** Options of {@linkcode meetAt}. */
export interface MeetOptions extends RequestOptions {
  /**
   * How to dial the relay a Redirect names (16.5): handshake deadline and suites; our key there is
   * a fresh throwaway one, as at the first relay. Its key must be the first relay's.
   */
  redirect?: { timeoutMs?: number; suites?: readonly SuiteName[] };
  /** Told the `host:port` a Redirect named, before we dial it (for what the user is shown). */
  onRedirect?: (address: string) => void;
}

/** Options of {@linkcode registerAt}. */
export interface RegisterOptions extends RequestOptions {
  /** Keepalive interval while we wait (default 30 s; 0: none). */
  keepaliveMs?: number;
}

/** A registration the relay accepted. */
export interface Registered {
  /** Seconds until the relay drops the registration (Waiting's `expires_in`). */
  expiresIn: number;
  /**
   * Resolves with the socket, spliced to a dialer, on which to run the end-to-end handshake as
   * responder. Rejects with a SecurechatError when the relay refuses us (the registration
   * expired, the relay shuts down), goes away, or misbehaves. Closing the connection to the relay
   * ends the wait (it then rejects).
   */
  paired: Promise<SplicedSocket>;
}

/**
 * Dials a rendezvous relay and runs the handshake as initiator, with records of up to 2^20 bytes.
 *
 * @throws {ConnectionError} `relay_unreachable` when the TCP connection fails
 * @throws {SecurechatError} whatever the handshake or `checkRelay` throws
 */
export async function connectToRelay(options: RelayDialOptions): Promise<SecureConnection> {
  const identity = options.identity ??
    (await generateIdentity({ type: "ed25519", comment: "" })).identity;
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: options.host, port: options.port, transport: "tcp" });
  } catch (error) {
    const where = `${options.host}:${options.port}`;
    const message = error instanceof Error ? error.message : String(error);
    throw new ConnectionError(
      "relay_unreachable",
      `cannot connect to the relay at ${where}: ${message}`,
      {
        hints: ["check the relay's address and port, and that `securechat relay` runs there"],
        cause: error,
      },
    );
  }
  return await runInitiator(conn, {
    identity,
    suites: options.suites ?? DEFAULT_RELAY_DIAL_SUITES,
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    checkPeer: options.checkRelay,
  });
}

/**
 * Registers as the listener of `token` (15.2 Register) and waits for a dialer.
 *
 * @param relay a connection from `connectToRelay()` on which nothing was sent yet
 * @param token the listener's rendezvous token (`rendezvousToken()` of its own fingerprint)
 * @returns once the relay answered Waiting: its `expiresIn`, and `paired`
 * @throws {ConnectionError} when the relay refuses the registration or goes away
 * @throws {ProtocolError} when it answers anything but Waiting or Refused
 */
export async function registerAt(
  relay: SecureConnection,
  token: Uint8Array,
  options: RegisterOptions = {},
): Promise<Registered> {
  const answer = await request(relay, { type: "register", token }, options);
  if (answer.type !== "waiting") throw await unexpected(relay, "Register", answer);
  relay.startKeepalive(options.keepaliveMs ?? DEFAULT_REGISTRATION_KEEPALIVE_MS);
  const paired = (async () => {
    const next = await answerOf(relay, undefined, "pairing us");
    if (next.type === "refused") {
      relay.close();
      throw refusal(next.reason);
    }
    if (next.type !== "paired") throw await unexpected(relay, "Register", next);
    return await spliceAfterPaired(relay, options);
  })();
  paired.catch(() => {}); // the caller may await it much later: not an unhandled rejection
  return { expiresIn: answer.expiresIn, paired };
}

/**
 * Asks for the listener of `token` (15.2 Meet).
 *
 * @param relay a connection from `connectToRelay()` on which nothing was sent yet
 * @param token the listener's rendezvous token (`rendezvousToken()` of the fingerprint we dial)
 * @returns the socket, spliced to that listener, on which to run the end-to-end handshake as
 *   initiator (and check the listener's key as for a direct dial)
 * @throws {ConnectionError} `no_listener` when nobody waits for that token, or other refusals
 */
export async function meetAt(
  relay: SecureConnection,
  token: Uint8Array,
  options: MeetOptions = {},
): Promise<SplicedSocket> {
  const answer = await request(relay, { type: "meet", token }, options);
  if (answer.type === "paired") return await spliceAfterPaired(relay, options);
  if (answer.type !== "redirect") throw await unexpected(relay, "Meet", answer);
  // Section 16.5: the relay's last record after Redirect is close_notify, as after Refused.
  relay.close();
  const { host, port } = parseRelayHostPort(answer.address);
  options.onRedirect?.(replaceUnsafe(answer.address));
  const key = relay.peer.identity.fingerprint;
  const next = await connectToRelay({
    host,
    port,
    ...options.redirect,
    checkRelay: (peer) => {
      if (peer.identity.fingerprint === key) return Promise.resolve();
      return Promise.reject(
        new TrustError(
          "relay_key_mismatch",
          `relay ${answer.address}, where the relay sent us, has key ${peer.identity.fingerprint}, not the first relay's ${key}`,
          {
            hints: [
              "the relays of a cluster share one key: this redirect leads elsewhere, or the relay is dishonest",
            ],
          },
        ),
      );
    },
  });
  const second = await request(next, { type: "meet", token }, options);
  if (second.type === "paired") return await spliceAfterPaired(next, options);
  if (second.type === "redirect") {
    const problem = new ProtocolError(
      "redirect_loop",
      `relay ${answer.address} redirected us again (to ${
        replaceUnsafe(second.address)
      }): a dialer follows one Redirect`,
    );
    await next.abort(problem);
    throw problem;
  }
  throw await unexpected(next, "Meet", second);
}

/**
 * Parses the `host:port` of a Redirect (16.5): `HOST:PORT` or `[IPv6]:PORT`.
 *
 * @throws {ProtocolError} `bad_redirect` when it is not an address
 */
export function parseRelayHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:\[\]\s]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new ProtocolError(
      "bad_redirect",
      `the relay redirected us to "${replaceUnsafe(address)}", which is not HOST:PORT`,
    );
  }
  return { host: match[1] ?? match[2]!, port };
}

/**
 * Joins the room of `token` (15.5 Room). The connection should have been made with the member's
 * own identity: the room routes by it.
 *
 * @param relay a connection from `connectToRelay()` on which nothing was sent yet
 * @param token the room's token (`roomToken()` of its name)
 * @returns the same connection, once the relay answered Joined: ready for `joinRoom()`, which
 *   starts with the SessionHello
 * @throws {ConnectionError} when the relay refuses us or goes away
 */
export async function enterRoomAt(
  relay: SecureConnection,
  token: Uint8Array,
  options: RequestOptions = {},
): Promise<SecureConnection> {
  const answer = await request(relay, { type: "room", token }, options);
  if (answer.type !== "joined") throw await unexpected(relay, "Room", answer);
  return relay;
}

/**
 * Dials a relay of the cluster and continues in the room of `token` after `position`, the last
 * Position the relay we lost sent us (16.4 ResumeRoom).
 *
 * @param dial the relay, the check of its key, and our own identity (the room routes by it)
 * @returns the connection once the relay answered Joined: the SessionHello exchange comes next,
 *   then Start "resume"
 * @throws {ConnectionError} `nothing_to_resume` when the relay has no log to resume from (a single
 *   relay) or it is too late, `relay_unreachable` or other refusals
 */
export async function resumeRoomAt(
  dial: RelayDialOptions,
  token: Uint8Array,
  position: bigint,
  options: RequestOptions = {},
): Promise<SecureConnection> {
  return await resumeRoomOn(await connectToRelay(dial), token, position, options);
}

/**
 * {@linkcode resumeRoomAt} on a connection already made (by a caller that dials relays its own
 * way): sends ResumeRoom and reads Joined.
 *
 * @param relay a connection from `connectToRelay()` with the member's own key, nothing sent yet
 */
export async function resumeRoomOn(
  relay: SecureConnection,
  token: Uint8Array,
  position: bigint,
  options: RequestOptions = {},
): Promise<SecureConnection> {
  const answer = await request(relay, { type: "resume_room", token, position }, options);
  if (answer.type !== "joined") throw await unexpected(relay, "ResumeRoom", answer);
  return relay;
}

/** Sends a request and reads the answer; a Refused is thrown as its error. */
async function request(
  relay: SecureConnection,
  message: Exclude<RendezvousRequest, { type: "spliced" }>,
  options: RequestOptions,
): Promise<Exclude<RendezvousAnswer, { type: "refused" }>> {
  const type = message.type;
  const sending = relay.send(encodeRendezvousRequest(message));
  sending.catch(() => {}); // a failed send also fails the receive below
  const answer = await answerOf(relay, options.timeoutMs ?? RELAY_ANSWER_DEADLINE_MS, "answering");
  if (answer.type === "refused") {
    relay.close();
    throw refusal(answer.reason, type);
  }
  return answer;
}

/**
 * Reads the relay's next answer, within `timeoutMs` if given.
 *
 * @param during what the relay was to do, for the error when it closes instead
 */
async function answerOf(
  relay: SecureConnection,
  timeoutMs: number | undefined,
  during: string,
): Promise<RendezvousAnswer> {
  const data = await receiveWithin(relay, timeoutMs, during);
  if (data === null) {
    relay.close();
    throw relayGone(during, undefined);
  }
  try {
    return decodeRendezvousAnswer(data);
  } catch (error) {
    // A listener answers a request with its SessionHello (one byte), then an alert.
    const notRelay = data.length === 1;
    const problem = notRelay
      ? new ProtocolError(
        "not_a_relay",
        "the peer is a securechat listener, not a rendezvous relay",
        {
          hints: ["check the relay's address: it should be where `securechat relay` runs"],
          cause: error,
        },
      )
      : error;
    await relay.abort(problem);
    throw problem;
  }
}

/** `relay.receive()`, under a deadline when `timeoutMs` is given; failures are "relay gone". */
async function receiveWithin(
  relay: SecureConnection,
  timeoutMs: number | undefined,
  during: string,
): Promise<Uint8Array | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let late = false;
  if (timeoutMs !== undefined) {
    timer = setTimeout(() => {
      late = true;
      relay.close();
    }, timeoutMs);
  }
  try {
    return await relay.receive();
  } catch (error) {
    relay.close();
    if (late) {
      throw new ConnectionError(
        "relay_timeout",
        `the relay did not answer within ${timeoutMs! / 1000} s`,
        { hints: ["the relay is overloaded or not a rendezvous relay"] },
      );
    }
    // The connection ended (a FIN or reset without close_notify, or we closed it): the relay is
    // gone. Anything else (an alert, a silent relay, a bad record) says more by itself.
    const ended = (error instanceof AuthenticationError && error.code === "truncated") ||
      (error instanceof ConnectionError && error.code === "connection_closed");
    if (!ended) throw error;
    throw relayGone(during, error);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Section 15.4, the client's half: after Paired the relay's next record is close_notify (its
 * last); we send Spliced, our last record, and hand the socket over with whatever followed.
 */
async function spliceAfterPaired(
  relay: SecureConnection,
  options: RequestOptions,
): Promise<SplicedSocket> {
  const after = await receiveWithin(
    relay,
    options.timeoutMs ?? RELAY_ANSWER_DEADLINE_MS,
    "splicing us",
  );
  if (after !== null) {
    const problem = new ProtocolError(
      "record_after_paired",
      "the relay sent a record after Paired",
    );
    await relay.abort(problem);
    throw problem;
  }
  // Called together, so no keepalive of ours can slip in after Spliced: detach() stops them first.
  const sending = relay.send(encodeRendezvousRequest({ type: "spliced" }));
  const detaching = relay.detach();
  const [sent, { conn, leftover }] = await Promise.all([
    sending.then(() => true, () => false),
    detaching,
  ]);
  if (!sent) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    throw relayGone("splicing us", undefined);
  }
  return new SplicedSocket(conn, leftover);
}

/** The error of a Refused: known reasons get their own code and words. */
function refusal(
  reason: string,
  request?: "register" | "meet" | "room" | "resume_room",
): SecurechatError {
  if (reason === REFUSAL.nothingToResume || reason === REFUSAL.tooLateToResume) {
    return new ConnectionError("nothing_to_resume", `the relay cannot resume the room: ${reason}`);
  }
  if (reason === REFUSAL.noListener && request === "meet") {
    return new ConnectionError(
      "no_listener",
      "no listener is waiting for that fingerprint at the relay",
      {
        hints: [
          "the listener must be running with --via and this relay (its registration may have expired)",
        ],
      },
    );
  }
  if (reason === REFUSAL.expired) {
    return new ConnectionError("registration_expired", "our registration at the relay expired");
  }
  if (reason === REFUSAL.shuttingDown) {
    return new ConnectionError("relay_closing", "the relay is shutting down");
  }
  return new ConnectionError("refused_by_relay", `the relay refused us: ${replaceUnsafe(reason)}`);
}

function relayGone(during: string, cause: unknown): ConnectionError {
  return new ConnectionError("relay_gone", `the relay closed before ${during}`, {
    hints: ["the relay stopped, or the network between us failed"],
    ...(cause === undefined ? {} : { cause }),
  });
}

async function unexpected(
  relay: SecureConnection,
  request: string,
  answer: RendezvousAnswer,
): Promise<ProtocolError> {
  const problem = new ProtocolError(
    "unexpected_answer",
    `the relay answered a ${request} with ${answer.type[0]!.toUpperCase()}${answer.type.slice(1)}`,
  );
  await relay.abort(problem);
  return problem;
}
