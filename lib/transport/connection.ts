/**
 * The async driver: runs the handshake machines (`handshake_initiator.ts`,
 * `handshake_responder.ts`) over a `Deno.Conn` under a deadline, asks the caller to
 * decide trust between steps, and turns the finished handshake into a `SecureConnection`
 * (lib/transport/secure_connection.ts) that sends and receives application data through `record.ts`.
 *
 * It never prints; errors carry the message for the user and the alert for the peer.
 *
 * Mirrors: docs/PROTOCOL.md sections 3.1 (magic) and 6 (driving the machines).
 *
 * @module
 */

import { concat, constantTimeEqual } from "../core/bytes.ts";
import { ConnectionError, ProtocolError } from "../core/errors.ts";
import { FrameReader, MAGIC, NOT_SECURECHAT_REPLY } from "../protocol/frame.ts";
import { writeAll } from "../core/io.ts";
import type { HandshakeOptions, VerifiedPeer } from "../protocol/handshake_state.ts";
import { InitiatorHandshake } from "../protocol/handshake_initiator.ts";
import { ResponderHandshake } from "../protocol/handshake_responder.ts";
import { SecureConnection, type SecureConnectionOptions } from "./secure_connection.ts";

/** Section 6.3: default handshake deadline. */
export const HANDSHAKE_DEADLINE_MS = 10_000;

/**
 * Section 6.3: the responder's deadline for the first flight (magic and ClientHello). An honest
 * initiator sends it at once; a connection that only holds a slot is cut after this.
 */
export const FIRST_FLIGHT_DEADLINE_MS = 3_000;

/** Options of both drivers. */
export interface ConnectionOptions extends HandshakeOptions, SecureConnectionOptions {
  /** Handshake deadline in milliseconds. */
  timeoutMs?: number;
}

/** Initiator options: `checkPeer` throws (a TrustError) to refuse the responder. */
export interface InitiatorOptions extends ConnectionOptions {
  checkPeer(peer: VerifiedPeer): Promise<void>;
}

/** Responder options: `authorize` throws (a TrustError) to refuse the initiator. */
export interface ResponderOptions extends ConnectionOptions {
  authorize(peer: VerifiedPeer): Promise<void>;
  /** Deadline for the first flight (default `FIRST_FLIGHT_DEADLINE_MS`); ignored unless shorter than `timeoutMs`. */
  firstFlightTimeoutMs?: number;
  /** Called once the ClientHello has arrived, before any key agreement. */
  onFirstFlight?: () => void;
}

/** Runs `body` under a deadline; on expiry closes `conn` so pending reads end, and throws. */
async function withDeadline<T>(
  conn: Deno.Conn,
  timeoutMs: number,
  body: () => Promise<T>,
  what = "handshake did not finish",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new ConnectionError(
          "handshake_timeout",
          `${what} within ${timeoutMs / 1000} s`,
          { hints: ["the peer is slow, stalled, or not a securechat peer"] },
        ),
      );
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }, timeoutMs);
  });
  const work = body();
  work.catch(() => {}); // its rejection after a timeout is expected and already reported
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Turns off Nagle's algorithm: every write is a whole record or a batch of them, so holding a
 * small one back for the peer's delayed ACK only adds latency (about 40 ms per exchange on
 * loopback, measured by bench/room_fanout.ts).
 */
function sendImmediately(conn: Deno.Conn): void {
  try {
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  } catch {
    // Not a TCP socket (or already closed): nothing to tune.
  }
}

function peerClosed(during: string): ConnectionError {
  return new ConnectionError("peer_closed", `peer closed the connection ${during}`, {
    hints: ["the peer may have refused us: see its messages, or check --suites and keys"],
  });
}

async function readHandshakeFrame(
  reader: FrameReader,
  machine: InitiatorHandshake | ResponderHandshake,
) {
  const frame = await reader.readFrame((type) => machine.capOf(type));
  if (frame === null) throw peerClosed("during the handshake");
  return frame;
}

/** Best effort: tell the peer why we stop, then close. Never throws. */
async function abortHandshake(
  conn: Deno.Conn,
  machine: InitiatorHandshake | ResponderHandshake,
  error: unknown,
  prefix?: Uint8Array,
): Promise<void> {
  let frame: Uint8Array | undefined;
  try {
    frame = await machine.alertFrame(error);
  } catch {
    // Nothing to tell the peer.
  }
  machine.fail();
  try {
    if (frame) await writeAll(conn, prefix ? concat(prefix, frame) : frame);
  } catch {
    // The socket may be gone already.
  }
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

function normalize(error: unknown): unknown {
  if (error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe) {
    return peerClosed("during the handshake");
  }
  if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
    return new ConnectionError("connection_closed", "connection closed during the handshake");
  }
  return error;
}

/**
 * Dials side: runs the initiator handshake over `conn`.
 *
 * @throws {SecurechatError} every failure, after alerting the peer and closing `conn`
 */
export async function runInitiator(
  conn: Deno.Conn,
  options: InitiatorOptions,
): Promise<SecureConnection> {
  sendImmediately(conn);
  const machine = new InitiatorHandshake(options);
  const reader = new FrameReader(conn);
  try {
    const result = await withDeadline(
      conn,
      options.timeoutMs ?? HANDSHAKE_DEADLINE_MS,
      async () => {
        await writeAll(conn, await machine.writeClientHello());
        const magic = await reader.readExactly(MAGIC.length);
        if (magic === null) throw peerClosed("before answering");
        if (!constantTimeEqual(magic, MAGIC)) {
          throw new ProtocolError("not_securechat", "the peer does not speak securechat", {
            alert: "protocol_version",
            hints: ["check the host and port: something else is listening there"],
          });
        }
        await machine.readServerHello(await readHandshakeFrame(reader, machine));
        await machine.readServerIdentity(await readHandshakeFrame(reader, machine));
        await machine.readServerIdentityVerify(await readHandshakeFrame(reader, machine));
        const peer = await machine.readServerFinished(await readHandshakeFrame(reader, machine));
        await options.checkPeer(peer);
        await writeAll(conn, await machine.writeClientFlight());
        return machine.finish();
      },
    );
    return await SecureConnection.create(conn, reader, result, options);
  } catch (error) {
    await abortHandshake(conn, machine, error);
    throw normalize(error);
  }
}

/**
 * Listen side: runs the responder handshake over an accepted `conn`. A peer that does not start
 * with the magic is told so in plain text and dropped.
 *
 * @throws {SecurechatError} every failure, after alerting the peer and closing `conn`
 */
export async function runResponder(
  conn: Deno.Conn,
  options: ResponderOptions,
): Promise<SecureConnection> {
  sendImmediately(conn);
  const machine = new ResponderHandshake(options);
  const reader = new FrameReader(conn);
  let notSecurechat = false;
  let magicSent = false;
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_DEADLINE_MS;
  const firstFlightMs = options.firstFlightTimeoutMs ?? FIRST_FLIGHT_DEADLINE_MS;
  try {
    const result = await withDeadline(
      conn,
      timeoutMs,
      async () => {
        const readFirstFlight = async () => {
          const magic = await reader.readExactly(MAGIC.length);
          if (magic === null) throw peerClosed("before saying anything");
          if (!constantTimeEqual(magic, MAGIC)) {
            notSecurechat = true;
            throw new ProtocolError(
              "not_securechat",
              "peer does not speak securechat (it sent something else, perhaps HTTP)",
            );
          }
          return await readHandshakeFrame(reader, machine);
        };
        // 6.3: the first flight has a shorter deadline of its own, when it is shorter.
        const hello = firstFlightMs < timeoutMs
          ? await withDeadline(
            conn,
            firstFlightMs,
            readFirstFlight,
            "the ClientHello did not arrive",
          )
          : await readFirstFlight();
        options.onFirstFlight?.();
        await machine.readClientHello(hello);
        const flight = await machine.writeServerFlight();
        magicSent = true;
        await writeAll(conn, flight);
        await machine.readClientIdentity(await readHandshakeFrame(reader, machine));
        await machine.readClientIdentityVerify(await readHandshakeFrame(reader, machine));
        await machine.readClientFinished(await readHandshakeFrame(reader, machine));
        return machine.finish();
      },
    );
    const secure = await SecureConnection.create(conn, reader, result, options);
    try {
      await options.authorize(result.peer);
    } catch (error) {
      await secure.abort(error);
      throw error;
    }
    return secure;
  } catch (error) {
    if (notSecurechat) {
      machine.fail();
      await writeAll(conn, NOT_SECURECHAT_REPLY).catch(() => {});
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    } else {
      // The initiator reads our magic before any frame, so an early alert must follow it (3.1).
      await abortHandshake(conn, machine, error, magicSent ? undefined : MAGIC);
    }
    throw normalize(error);
  }
}
