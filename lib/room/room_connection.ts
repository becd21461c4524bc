/**
 * What the relay and a member need of a connection (`RoomConnection`), and an in-memory pair of
 * them (`connectedPair()`) for the person at the listener, who takes part in the room as an
 * ordinary member whose link to the relay is in-process instead of a socket (docs/PROTOCOL.md 13).
 * A SecureConnection (lib/transport/secure_connection.ts) satisfies the interface as it is.
 *
 * The pair behaves like a secure connection as far as the room can tell: whole messages, in
 * order, each way; the end of a direction is either close_notify (`closeWrite()`: the other side's
 * `receive()` returns null once it has read everything sent before) or a failure (`close()`
 * without `closeWrite()` first: the other side's `receive()` throws `AuthenticationError`
 * `truncated`; `abort(error)`: it throws `PeerAlertError` naming the alert, as the record layer
 * would). Either way what was sent before arrives first. A send waits, as a socket's would, while
 * the other side has more than `PAIR_BUFFER_BYTES` unread, so a host that does not read fills the
 * relay's queue for it and is dropped like any slow member, instead of growing memory without
 * bound. Messages are copied: a sender may reuse its buffer once its send resolved.
 *
 * What it does not do: encrypt (nothing leaves the process) or frame records (a message is one
 * array, as a record's content is).
 *
 * Mirrors: docs/PROTOCOL.md sections 8.5 (closing) and 13 (the host's link).
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  PeerAlertError,
  SecurechatError,
} from "../core/errors.ts";
import type { PublicIdentity } from "../keys/identity.ts";

/** Who is at the other end, as the handshake established it. */
export interface RoomPeer {
  name: string;
  identity: PublicIdentity;
}

/** What the relay and a member need of a connection; SecureConnection satisfies it. */
export interface RoomConnection {
  /** The authenticated peer. */
  readonly peer: RoomPeer;
  /** The session's verification code (section 7.4). */
  readonly verificationCode: string;
  /** Sends one message (one record). Writes keep call order. */
  send(data: Uint8Array): Promise<void>;
  /** Sends each message as its own record, in one write. */
  sendBatch(messages: Uint8Array[]): Promise<void>;
  /** The next message, or null once the peer closed (close_notify). */
  receive(): Promise<Uint8Array | null>;
  /** Sends close_notify: we send nothing more. */
  closeWrite(): Promise<void>;
  /** Ends the connection at once (no close_notify). */
  close(): void;
  /** Tells the peer why we stop (an alert) and closes. Never throws. */
  abort(error: unknown): Promise<void>;
}

/** Unread bytes one direction of a pair holds before sends wait (about a socket's buffers). */
export const PAIR_BUFFER_BYTES = 1024 * 1024;

/** One direction of a pair: messages not read yet, and how the writer ended it. */
class Direction {
  queue: Uint8Array[] = [];
  buffered = 0;
  /** The writer's last word: close_notify (`error` undefined) or a failure to throw. */
  end: { error?: unknown } | undefined;
  /** The reader closed: nothing will be read any more. */
  readerGone = false;
  #waiters: (() => void)[] = [];

  /** Wakes everyone waiting for a change (a message, a read, an end). */
  notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

function sendFailed(): ConnectionError {
  return new ConnectionError("send_failed", "cannot send to the peer: the connection is gone");
}

/** One end of an in-memory pair. */
class InMemoryConnection implements RoomConnection {
  readonly peer: RoomPeer;
  readonly verificationCode: string;
  #in: Direction;
  #out: Direction;
  /** Set by close() or abort(): nothing more is sent or received here. */
  #closed = false;

  constructor(peer: RoomPeer, verificationCode: string, incoming: Direction, outgoing: Direction) {
    this.peer = peer;
    this.verificationCode = verificationCode;
    this.#in = incoming;
    this.#out = outgoing;
  }

  send(data: Uint8Array): Promise<void> {
    return this.#push([data]);
  }

  sendBatch(messages: Uint8Array[]): Promise<void> {
    return this.#push(messages);
  }

  async #push(messages: Uint8Array[]): Promise<void> {
    const out = this.#out;
    if (this.#closed || out.readerGone) throw sendFailed();
    if (out.end) throw new RangeError("cannot send after close_notify");
    for (const message of messages) {
      out.queue.push(message.slice());
      out.buffered += message.length;
    }
    out.notify();
    while (out.buffered > PAIR_BUFFER_BYTES) {
      await out.changed();
      if (this.#closed || out.readerGone) throw sendFailed();
    }
  }

  async receive(): Promise<Uint8Array | null> {
    const incoming = this.#in;
    while (true) {
      if (this.#closed) throw new ConnectionError("connection_closed", "connection closed");
      const next = incoming.queue.shift();
      if (next !== undefined) {
        incoming.buffered -= next.length;
        incoming.notify();
        return next;
      }
      if (incoming.end) {
        if (incoming.end.error !== undefined) throw incoming.end.error;
        return null;
      }
      await incoming.changed();
    }
  }

  closeWrite(): Promise<void> {
    if (!this.#closed && !this.#out.end) {
      this.#out.end = {};
      this.#out.notify();
    }
    return Promise.resolve();
  }

  close(): void {
    this.#endWith(
      new AuthenticationError(
        "truncated",
        "connection ended without close_notify: the data may be truncated",
        { alert: "decode_error" },
      ),
    );
  }

  abort(error: unknown): Promise<void> {
    const name = error instanceof SecurechatError && error.alert ? error.alert : "internal_error";
    this.#endWith(new PeerAlertError(name, `peer ended the session with alert "${name}"`));
    return Promise.resolve();
  }

  /** Ends both directions here; `failure` is what the peer reads unless we said goodbye. */
  #endWith(failure: SecurechatError): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#out.end) this.#out.end = { error: failure };
    this.#out.notify();
    // What we have not read is lost, and the peer's pending sends fail, as on a closed socket.
    this.#in.readerGone = true;
    this.#in.queue.length = 0;
    this.#in.buffered = 0;
    this.#in.notify();
  }
}

/**
 * Two connected in-memory ends, for the host at the listener.
 *
 * @param a who the first end is (the second end's peer)
 * @param b who the second end is (the first end's peer)
 * @param verificationCode the code both ends report (the in-process link has no handshake: the
 *   caller chooses it, for example the host's own fingerprint)
 * @returns `[end of a, end of b]`: the first end's `peer` is `b`, the second's is `a`
 */
export function connectedPair(
  a: RoomPeer,
  b: RoomPeer,
  verificationCode: string,
): [RoomConnection, RoomConnection] {
  const aToB = new Direction();
  const bToA = new Direction();
  return [
    new InMemoryConnection(b, verificationCode, bToA, aToB),
    new InMemoryConnection(a, verificationCode, aToB, bToA),
  ];
}
