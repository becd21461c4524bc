/**
 * An established session over a `Deno.Conn`: a `SecureConnection` sends and receives application
 * data through a `RecordLayer` (lib/protocol/record.ts). Sends keep call order while a few seal at once,
 * keepalives detect a dead peer, key updates the peer asks for are answered, and the session ends
 * with close_notify (`closeWrite()`; in pipe mode `closeNotify()`, `sendReceipt()`,
 * `receiveReceipt()`) or an alert (`abort()`).
 *
 * It does not run the handshake: lib/transport/connection.ts does, and builds one of these from the result.
 * It never prints; errors carry the message for the user and the alert for the peer.
 *
 * Mirrors: docs/PROTOCOL.md sections 6.1 (an alert under handshake keys), 8.2 (write order
 * follows sequence numbers), 8.5 (closing, the receipt) and 8.6 (keepalive).
 *
 * @module
 */

import {
  ALERT,
  alertName,
  AuthenticationError,
  ConnectionError,
  PeerAlertError,
  SecurechatError,
} from "../core/errors.ts";
import { FRAME_TYPE, type FrameReader } from "../protocol/frame.ts";
import { writeAll } from "../core/io.ts";
import type { HandshakeResult, VerifiedPeer } from "../protocol/handshake_state.ts";
import type { SuiteName } from "../crypto/kex.ts";
import type { RecordSuiteName } from "../crypto/record_suites.ts";
import {
  alertHints,
  CONTENT_TYPE,
  joinFrames,
  maxCiphertextLength,
  RecordLayer,
} from "../protocol/record.ts";
import type { RecordProtection } from "../protocol/record_protection.ts";

/** Queued sends that seal at once; behind more, sealing waits its turn (see #writeInOrder). */
const EAGER_SEALS = 8;

/**
 * Section 8.5: how long a pipe that has both receipts waits for the peer's FIN before it closes
 * anyway (success is decided by then; the wait only spares a receipt in flight from a reset).
 */
export const FIN_WAIT_MS = 2000;

/** Options of a secure connection (the drivers' options carry them). */
export interface SecureConnectionOptions {
  /** Lowers the key update threshold, for tests. */
  keyUpdateRecords?: number;
}

/**
 * An established, mutually authenticated session. One send path and one receive path may run at
 * the same time; calls on the same path are serialized internally.
 */
export class SecureConnection {
  readonly peer: VerifiedPeer;
  readonly verificationCode: string;
  readonly suite: SuiteName;
  /** The record suite the hellos chose (section 4.5). */
  readonly recordSuite: RecordSuiteName;
  #conn: Deno.Conn;
  #reader: FrameReader;
  #records: RecordLayer;
  #sendChain: Promise<void> = Promise.resolve();
  /** Writes queued and not finished, and how many of them are not sealed yet. */
  #queued = 0;
  #waitingToSeal = 0;
  #closing: Promise<void> | undefined;
  #closed = false;
  /** Set once abort() or close() ended the session: later sends fail as "connection is gone". */
  #ended = false;
  #handshakeReceive: RecordProtection | undefined;
  #lastSent = Date.now();
  #lastReceived = Date.now();
  /** When the read now pending began; undefined while nothing reads (our output is slow). */
  #waitingSince: number | undefined;
  /** Pipe mode (section 8.5): the session ends with receipts, keepalives go on until both. */
  #receipts = false;
  #peerReceipt = false;
  /** Set once our TCP write direction is shut (or about to be): nothing more is queued. */
  #writeShut = false;
  #keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  #silentError: ConnectionError | undefined;

  private constructor(
    conn: Deno.Conn,
    reader: FrameReader,
    records: RecordLayer,
    result: HandshakeResult,
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.#records = records;
    this.peer = result.peer;
    this.verificationCode = result.verificationCode;
    this.suite = result.suite;
    this.recordSuite = result.recordSuite;
    this.#handshakeReceive = result.handshakeReceive;
  }

  /** Builds the record layer from a finished handshake. */
  static async create(
    conn: Deno.Conn,
    reader: FrameReader,
    result: HandshakeResult,
    options: SecureConnectionOptions,
  ): Promise<SecureConnection> {
    const records = await RecordLayer.create({
      sendSecret: result.sendSecret,
      receiveSecret: result.receiveSecret,
      suite: result.recordSuite,
      peerMaxPlaintext: result.peerMaxPlaintext,
      ownMaxPlaintext: result.ownMaxPlaintext,
      ...(options.keyUpdateRecords === undefined
        ? {}
        : { keyUpdateRecords: options.keyUpdateRecords }),
    });
    return new SecureConnection(conn, reader, records, result);
  }

  /** Largest record content we may send to this peer. */
  get maxSendPlaintext(): number {
    return this.#records.maxSendPlaintext;
  }

  /** True once the peer's close_notify arrived. */
  get peerClosed(): boolean {
    return this.#records.receivedClose;
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.#sendChain.then(task);
    this.#sendChain = next.catch(() => {});
    return next;
  }

  async #write(frames: Uint8Array[]): Promise<void> {
    this.#lastSent = Date.now();
    try {
      await writeAll(this.#conn, joinFrames(frames));
    } catch (error) {
      throw connectionGone(error);
    }
  }

  /**
   * Seals through `seal`, but once the session was ended (a failed receive aborts it) a send
   * fails like a write to a dead socket would, not as a misuse of the record layer: callers
   * report the receive side's reason, whichever of the two noticed first.
   */
  #sealUnlessEnded(seal: () => Promise<Uint8Array[]>): Promise<Uint8Array[]> {
    if (this.#ended) return Promise.reject(connectionGone(undefined));
    return seal().catch((error) => {
      throw this.#ended ? connectionGone(error) : error;
    });
  }

  /**
   * Sends application data, split into records as large as `recordSize` allows. Writes keep
   * call order; a few sends may encrypt at once while earlier ones are written. `data` must stay
   * unchanged until the returned promise settles (it may be sealed only when its turn comes).
   */
  send(data: Uint8Array, recordSize?: number): Promise<void> {
    return this.#writeInOrder(() => this.#records.sealData(data, recordSize));
  }

  /**
   * Sends each message as its own record(s) and writes them all at once: a relay's queue for
   * one member leaves in one write instead of one per message. Same contract as `send()`.
   */
  sendBatch(messages: Uint8Array[]): Promise<void> {
    return this.#writeInOrder(() =>
      Promise.all(messages.map((message) => this.#records.sealData(message))).then((frames) =>
        frames.flat()
      )
    );
  }

  /**
   * Queues records for writing, behind everything queued before. Records are numbered when
   * `seal` runs, so the sequence numbers on the wire follow write order (section 8.2) as long as
   * no record is sealed ahead of one still waiting: the first few queued records seal at once
   * (they encrypt while earlier ones are written); behind a longer queue, and behind any record
   * not sealed yet, sealing waits for its turn, so a burst to a slow peer holds plaintext
   * shared with other members rather than millions of sealed copies.
   */
  #writeInOrder(seal: () => Promise<Uint8Array[]>, after?: () => Promise<void>): Promise<void> {
    this.#queued++;
    let sealing: Promise<Uint8Array[]> | undefined;
    if (this.#waitingToSeal === 0 && this.#queued <= EAGER_SEALS) {
      sealing = this.#sealUnlessEnded(seal);
      sealing.catch(() => {}); // reported through the returned promise
    } else {
      this.#waitingToSeal++;
    }
    return this.#enqueue(async () => {
      try {
        if (sealing === undefined) {
          this.#waitingToSeal--;
          sealing = this.#sealUnlessEnded(seal);
        }
        await this.#write(await sealing);
        await after?.();
      } finally {
        this.#queued--;
      }
    });
  }

  /**
   * Sends a control record unless we already said goodbye; failures only matter to receive().
   * In pipe mode keepalives go on after our close_notify, until our FIN (sections 8.5, 8.6).
   */
  #sendControl(seal: () => Promise<Uint8Array>, keepalive = false): void {
    if (this.#closed || this.#ended || this.#writeShut) return;
    const closing = this.#records.sentClose || this.#closing !== undefined;
    if (closing && !(keepalive && this.#receipts)) return;
    this.#writeInOrder(() => seal().then((frame) => [frame])).catch(() => {});
  }

  /**
   * Pipe mode (sections 8.5, 8.6, 11): this session ends with receipts. Keepalives then go on
   * after our close_notify, the peer is timed out until its receipt arrives, and TCP is shut
   * only by `finish()`, once both receipts are exchanged.
   */
  useReceipts(): void {
    this.#receipts = true;
  }

  /**
   * Sends a ping now, whatever the keepalive interval (section 8.6): a pipe whose output is slow
   * reads nothing, so it cannot answer the peer's pings, and says it is alive this way instead.
   */
  ping(): void {
    this.#sendControl(() => this.#records.sealKeepalive(true), true);
  }

  /** Sends a key_update now (section 8.4), asking the peer to update too if `requestPeer`. */
  updateKeys(requestPeer: boolean): Promise<void> {
    return this.#writeInOrder(() =>
      this.#records.sealKeyUpdate(requestPeer).then((frame) => [frame])
    );
  }

  /**
   * Section 8.6: pings after `intervalMs` without sending, and after `intervalMs` without
   * receiving (asking: the peer answers a ping at once, whatever its own interval), at most once
   * an interval; presumes the peer dead after waiting three intervals for a record from it (a
   * pending `receive()` or `receiveReceipt()` then throws `peer_silent`). Time when nothing
   * reads (our own output is slow) is not the peer's silence. In chat mode, once we sent
   * close_notify we can no longer ask, so the peer is no longer timed out, nor after its
   * close_notify; in pipe mode (`useReceipts()`) we keep asking after our close_notify, so the
   * peer is timed out until its receipt arrives. The timer needs someone calling `receive()` or
   * `receiveReceipt()`, which answer pings and note arrivals.
   */
  startKeepalive(intervalMs: number): void {
    if (intervalMs <= 0 || this.#keepaliveTimer !== undefined) return;
    const tick = Math.max(50, Math.floor(intervalMs / 4));
    let lastPing = 0;
    this.#keepaliveTimer = setInterval(() => {
      const now = Date.now();
      if (this.#closed || this.#writeShut) return;
      const closing = this.#records.sentClose || this.#closing !== undefined;
      if (!this.#receipts && (closing || this.#records.receivedClose)) return;
      const waiting = this.#waitingSince;
      if (!this.#peerReceipt && waiting !== undefined && now - waiting > 3 * intervalMs) {
        const seconds = Math.round((now - waiting) / 1000);
        this.#silentError = new ConnectionError(
          "peer_silent",
          `peer silent for ${seconds} s: the connection is presumed dead`,
          { hints: ["the peer stopped, crashed, or the network between you failed"] },
        );
        this.close();
        return;
      }
      const quietOut = now - this.#lastSent >= intervalMs;
      const quietIn = now - this.#lastReceived >= intervalMs && now - lastPing >= intervalMs;
      if (quietOut || quietIn) {
        lastPing = now;
        this.#sendControl(() => this.#records.sealKeepalive(true), true);
      }
    }, tick);
    Deno.unrefTimer(this.#keepaliveTimer);
  }

  /**
   * Moves record encryption to a worker thread, so a bulk transfer encrypts while it reads and
   * writes. Same records on the wire; best effort (false when the worker cannot start).
   */
  offloadCrypto(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return this.#records.offload();
  }

  /**
   * Sends close_notify and half-closes TCP: we will send nothing more (section 8.5). Chat mode
   * ends this way; pipe mode uses `closeNotify()` and `sendReceipt()` instead.
   */
  closeWrite(): Promise<void> {
    return this.#sendCloseNotify(() => this.#conn.closeWrite().catch(() => {}));
  }

  /**
   * Sends close_notify but keeps TCP open for our receipt (pipe mode, sections 8.5 and 11): we
   * will send no more data.
   */
  closeNotify(): Promise<void> {
    return this.#sendCloseNotify();
  }

  #sendCloseNotify(after?: () => Promise<void>): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#records.sentClose) return this.#sendChain;
    this.#closing = this.#writeInOrder(
      () => this.#records.sealCloseNotify().then((frame) => [frame]),
      after,
    );
    return this.#closing;
  }

  /**
   * Sends our receipt (section 8.5), the last record of our direction but keepalives. Only
   * after `closeNotify()` and once the peer's close_notify arrived and its data was taken. TCP
   * stays open: `finish()` shuts it once the peer's receipt is in too.
   *
   * @param bytesReceived application data bytes accepted from the peer after its SessionHello
   */
  sendReceipt(bytesReceived: number): Promise<void> {
    return this.#writeInOrder(
      () => this.#records.sealReceipt(bytesReceived).then((frame) => [frame]),
    );
  }

  /**
   * Section 8.5: after the peer's close_notify, reads its receipt, the one record besides
   * keepalives that may follow (pings are answered, section 8.6). Anything else ending the
   * connection first (a FIN, a reset, a partial frame, which anyone on the path can forge)
   * means the peer never confirmed what it received.
   *
   * @returns the peer's `bytes_received`
   * @throws {AuthenticationError} `no_receipt` when the connection ends before the receipt
   * @throws {ConnectionError} `peer_silent` when the keepalive timer presumed the peer dead
   * @throws {ProtocolError} `record_after_close` for any other record
   */
  async receiveReceipt(): Promise<bigint> {
    if (!this.#records.receivedClose) throw new RangeError("the peer has not closed yet");
    const cap = maxCiphertextLength(this.#records.ownMaxPlaintext);
    while (true) {
      let frame;
      this.#waitingSince = Date.now();
      try {
        frame = await this.#reader.readFrame((type) =>
          type === FRAME_TYPE.record ? cap : undefined
        );
      } catch (error) {
        if (this.#silentError) throw this.#silentError;
        if (error instanceof SecurechatError && error.code !== "truncated_frame") throw error;
        if (this.#closed) throw new ConnectionError("connection_closed", "connection closed");
        throw noReceipt(error);
      } finally {
        this.#waitingSince = undefined;
      }
      if (frame === null) throw this.#silentError ?? noReceipt(undefined);
      this.#lastReceived = Date.now();
      const event = await this.#records.open(frame.header, frame.body);
      if (event.kind === "keepalive") {
        if (event.ping) this.#sendControl(() => this.#records.sealKeepalive(false), true);
        continue;
      }
      if (event.kind !== "receipt") {
        throw new RangeError("the record layer let a non-receipt through");
      }
      this.#peerReceipt = true;
      return event.bytesReceived;
    }
  }

  /**
   * Ends a pipe whose receipts were both exchanged (section 8.5): shuts our TCP write direction
   * after anything still queued, then reads until the peer's FIN, discarding what comes (only
   * its keepalives may), for at most `FIN_WAIT_MS`, and closes. Closing with unread data would
   * make TCP send a reset, which may destroy our receipt before the peer has read it.
   */
  async finish(): Promise<void> {
    this.#writeShut = true;
    await this.#enqueue(() => this.#conn.closeWrite().catch(() => {})).catch(() => {});
    const timer = setTimeout(() => this.close(), FIN_WAIT_MS);
    try {
      const buffer = new Uint8Array(4096);
      while (!this.#closed && await this.#conn.read(buffer) !== null) {
        // Discarded: success was decided by the receipts.
      }
    } catch {
      // Reset or closed by the timer: either way we are done.
    } finally {
      clearTimeout(timer);
      this.close();
    }
  }

  /**
   * Receives the next application data.
   *
   * @returns the data, or null after the peer's close_notify
   * @throws {AuthenticationError} `truncated` when the connection ends without close_notify, or a
   *   record fails authentication
   * @throws {ProtocolError} / {PeerAlertError} for protocol violations and peer alerts
   */
  async receive(): Promise<Uint8Array | null> {
    if (this.#records.receivedClose) return null;
    const cap = maxCiphertextLength(this.#records.ownMaxPlaintext);
    while (true) {
      let frame;
      this.#waitingSince = Date.now();
      try {
        // Borrowed: this call opens (or rejects) the record before anything reads again.
        frame = await this.#reader.readFrame(
          (type) => type === FRAME_TYPE.record ? cap : undefined,
          true,
        );
      } catch (error) {
        if (this.#silentError) throw this.#silentError;
        if (error instanceof SecurechatError) throw error;
        if (this.#closed) throw new ConnectionError("connection_closed", "connection closed");
        throw truncated(error);
      } finally {
        this.#waitingSince = undefined;
      }
      if (frame === null) throw this.#silentError ?? truncated(undefined);
      this.#lastReceived = Date.now();
      const event = await this.#openFirstAware(frame.header, frame.body);
      switch (event.kind) {
        case "data":
          return event.data;
        case "close":
          return null;
        case "keyUpdate":
          if (event.updateRequested) {
            this.#sendControl(() => this.#records.sealKeyUpdate(false));
          }
          continue;
        case "keepalive":
          if (event.ping) this.#sendControl(() => this.#records.sealKeepalive(false), true);
          continue;
        case "receipt":
          throw new RangeError("the record layer opened a receipt before close_notify");
      }
    }
  }

  /**
   * Opens a record. The very first record an initiator receives may instead be an alert the
   * responder sealed under its handshake keys while rejecting our flight (PROTOCOL.md 6.1).
   */
  async #openFirstAware(header: Uint8Array, body: Uint8Array) {
    const fallback = this.#handshakeReceive;
    this.#handshakeReceive = undefined;
    if (fallback === undefined) return await this.#records.open(header, body);
    try {
      return await this.#records.open(header, body);
    } catch (error) {
      const record = await fallback.open(header, body).catch(() => undefined);
      if (record?.type === CONTENT_TYPE.alert && record.content.length === 1) {
        const name = alertName(record.content[0]!) ?? `unknown alert ${record.content[0]}`;
        throw new PeerAlertError(name, `peer rejected the handshake with alert "${name}"`, {
          hints: alertHints(name),
        });
      }
      throw error;
    } finally {
      fallback.destroy();
    }
  }

  /**
   * Gives the socket up after the last record, for another stream to run on it (docs/PROTOCOL.md
   * 15.4: a rendezvous relay's splice). Stops keepalives, waits until every queued record is
   * written, and erases the keys; nothing more of this connection is read or written. The socket
   * stays open.
   *
   * @returns the socket, and the bytes already read past the last record (the next stream's start)
   */
  async detach(): Promise<{ conn: Deno.Conn; leftover: Uint8Array }> {
    clearInterval(this.#keepaliveTimer);
    this.#keepaliveTimer = undefined;
    await this.#sendChain;
    this.#closed = true;
    this.#ended = true;
    this.#records.destroy();
    return { conn: this.#conn, leftover: this.#reader.takeBuffered() };
  }

  /** Tells the peer why we stop (an alert) and closes. Never throws. */
  async abort(error: unknown): Promise<void> {
    const name = error instanceof SecurechatError && error.alert ? error.alert : "internal_error";
    this.#ended = true;
    if (!this.#records.sentClose) {
      try {
        await this.#write([await this.#records.sealAlert(ALERT[name])]);
      } catch {
        // Best effort.
      }
    }
    this.close();
  }

  /** Closes the socket and erases keys. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    clearInterval(this.#keepaliveTimer);
    this.#records.destroy();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

function connectionGone(cause: unknown): ConnectionError {
  return new ConnectionError(
    "send_failed",
    "cannot send to the peer: the connection is gone",
    cause === undefined ? {} : { cause },
  );
}

function noReceipt(cause: unknown): AuthenticationError {
  return new AuthenticationError(
    "no_receipt",
    "the peer did not confirm receipt: the connection ended before its receipt arrived",
    {
      hints: [
        "the peer may have rejected our data or failed (see its messages), or someone cut the connection",
        "do not assume the peer has the data",
      ],
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function truncated(cause: unknown): AuthenticationError {
  return new AuthenticationError(
    "truncated",
    "connection ended without close_notify: the data may be truncated",
    {
      alert: "decode_error",
      hints: ["the peer crashed, the network failed, or someone cut the connection on purpose"],
      ...(cause === undefined ? {} : { cause }),
    },
  );
}
