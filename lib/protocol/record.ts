/**
 * The record layer: both directions of an established session. It chunks data into records under
 * the peer's size limit, gives records their authenticated content types, updates keys within
 * AES-GCM's usage limits and on the peer's request, and handles alerts and close_notify.
 *
 * It turns plaintext into frames and frames into plaintext; it never touches sockets. Methods of
 * one direction must not overlap: the caller keeps one send path and one receive path. Each
 * direction's key, IV, nonce and sequence number are a `RecordProtection`
 * (lib/protocol/record_protection.ts); AES-256-GCM itself is lib/crypto/aead.ts.
 *
 * Mirrors: docs/PROTOCOL.md section 8 (8.1 content types, 8.3 size limits, 8.4 key update, 8.5
 * closing and the receipt, 8.6 keepalive) and the alert hints of section 9.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { MAX_RECORD_PLAINTEXT, RecordLayer } from "./record.ts";
 * const c = new Uint8Array(32).fill(1);
 * const s = new Uint8Array(32).fill(2);
 * const limits = { peerMaxPlaintext: MAX_RECORD_PLAINTEXT, ownMaxPlaintext: MAX_RECORD_PLAINTEXT };
 * const suite = "chacha20-poly1305";
 * const client = await RecordLayer.create({ sendSecret: c, receiveSecret: s, suite, ...limits });
 * const server = await RecordLayer.create({ sendSecret: s, receiveSecret: c, suite, ...limits });
 * const [frame] = await client.sealData(new TextEncoder().encode("hi"));
 * const event = await server.open(frame!.subarray(0, 5), frame!.subarray(5));
 * deepStrictEqual(event, { kind: "data", data: new TextEncoder().encode("hi") });
 * ```
 *
 * @module
 */

import { AEAD_TAG_LENGTH } from "../crypto/aead.ts";
import { concat, u8 } from "../core/bytes.ts";
import { alertName, PeerAlertError, ProtocolError } from "../core/errors.ts";
import { RecordProtection } from "./record_protection.ts";
import type { RecordSuiteName } from "../crypto/record_suites.ts";

/** Section 8.1 content types. */
export const CONTENT_TYPE = {
  alert: 0x15,
  handshake: 0x16,
  applicationData: 0x17,
  keyUpdate: 0x18,
  keepalive: 0x19,
  receipt: 0x1a,
} as const;

/** Section 8.5: a receipt's content is `bytes_received u64`. */
export const RECEIPT_CONTENT_LENGTH = 8;
/** Section 8.5: a receipt's record body length, one of two allowed after close_notify. */
export const RECEIPT_CIPHERTEXT_LENGTH = 1 + RECEIPT_CONTENT_LENGTH + AEAD_TAG_LENGTH;
/** Sections 8.5 and 8.6: a keepalive's record body length, the other one allowed after close_notify. */
export const KEEPALIVE_CIPHERTEXT_LENGTH = 1 + 1 + AEAD_TAG_LENGTH;

/** AES-GCM tag length. */
export const TAG_LENGTH = AEAD_TAG_LENGTH;
/** Section 8.3: record content cap for chat sessions and for every non-data content type. */
export const MAX_RECORD_PLAINTEXT = 2 ** 14;
/** Section 8.3: the largest max_record_plaintext a hello may announce (pipe mode uses it). */
export const MAX_RECORD_PLAINTEXT_LIMIT = 2 ** 20;
/** Section 8.3: the record size pipe mode sends. */
export const PIPE_RECORD_PLAINTEXT = 2 ** 18;
/** Section 8.4: records per key before the sender updates it. */
export const KEY_UPDATE_RECORDS = 2 ** 24;
/** Section 8.4: bytes per key before the sender updates it. */
export const KEY_UPDATE_BYTES = 2 ** 36;
/** Section 8.4: slack a receiver allows past KEY_UPDATE_RECORDS. */
export const KEY_UPDATE_SLACK = 1024;

/** Largest record frame body a receiver accepts when it announced `maxPlaintext`. */
export function maxCiphertextLength(maxPlaintext: number): number {
  return maxPlaintext + 1 + TAG_LENGTH;
}

/** What the receive side of a record layer produced. */
export type RecordEvent =
  | { kind: "data"; data: Uint8Array }
  | { kind: "close" }
  | { kind: "keyUpdate"; updateRequested: boolean }
  | { kind: "keepalive"; ping: boolean }
  | { kind: "receipt"; bytesReceived: bigint };

/** Options of a record layer (application traffic). */
export interface RecordLayerOptions {
  sendSecret: Uint8Array;
  receiveSecret: Uint8Array;
  /** The peer's announced max_record_plaintext: our records never exceed it. */
  peerMaxPlaintext: number;
  /** Our announced max_record_plaintext: we accept records up to it. */
  ownMaxPlaintext: number;
  /** The record suite the hellos chose (section 4.5). */
  suite: RecordSuiteName;
  /** Records per key before a sender update; tests lower it to exercise key updates. */
  keyUpdateRecords?: number;
}

/**
 * Both directions of an established session: chunks data into records, updates keys, handles
 * key_update, alerts and close_notify from the peer.
 */
export class RecordLayer {
  #send: RecordProtection;
  #receive: RecordProtection;
  #sendLimit: number;
  readonly peerMaxPlaintext: number;
  readonly ownMaxPlaintext: number;
  #keyUpdateRecords: number;
  #pendingKeyUpdate = false;
  /** Set while the send key is being replaced: seals wait for it. */
  #sendSwitch: Promise<void> | undefined;
  #sentClose = false;
  /** Set by a fatal alert: unlike close_notify, nothing at all follows it. */
  #sentFatal = false;
  #receivedClose = false;
  /** Section 8.5: one receipt may follow our close_notify (not an alert), and one the peer's. */
  #mayReceipt = false;
  #receivedReceipt = false;

  private constructor(send: RecordProtection, receive: RecordProtection, o: RecordLayerOptions) {
    this.#send = send;
    this.#receive = receive;
    this.peerMaxPlaintext = o.peerMaxPlaintext;
    this.ownMaxPlaintext = o.ownMaxPlaintext;
    this.#sendLimit = o.peerMaxPlaintext;
    this.#keyUpdateRecords = o.keyUpdateRecords ?? KEY_UPDATE_RECORDS;
  }

  /** Builds a record layer from the two application traffic secrets. */
  static async create(options: RecordLayerOptions): Promise<RecordLayer> {
    return new RecordLayer(
      await RecordProtection.create(options.sendSecret, options.suite),
      await RecordProtection.create(options.receiveSecret, options.suite),
      options,
    );
  }

  /** Largest content this side may put in one record. */
  get maxSendPlaintext(): number {
    return this.#sendLimit;
  }

  /** True once we sent close_notify. */
  get sentClose(): boolean {
    return this.#sentClose;
  }

  /** True once the peer's close_notify arrived. */
  get receivedClose(): boolean {
    return this.#receivedClose;
  }

  /** Records and bytes sent under the current key (for tests and diagnostics). */
  get sendCounters(): { records: bigint; bytes: number } {
    return { records: this.#send.sequence, bytes: this.#send.bytes };
  }

  #updateDue(): boolean {
    return this.#pendingKeyUpdate ||
      this.#send.sequence >= BigInt(this.#keyUpdateRecords) ||
      this.#send.bytes >= KEY_UPDATE_BYTES;
  }

  /**
   * Seals one record under the current send key. The sequence number is taken when this is
   * called, not when the promise settles, so seals may overlap (several records encrypting at
   * once, on several cores) and still come out numbered in call order. While a key switch is
   * under way, later calls wait for the new key, in call order.
   */
  #sealRecord(type: number, content: Uint8Array): Promise<Uint8Array[]> {
    if (this.#sendSwitch !== undefined) {
      const copy = content.slice(); // the caller may reuse its buffer once we return
      return this.#sendSwitch.then(() => this.#sealRecord(type, copy));
    }
    if (type === CONTENT_TYPE.keyUpdate) return this.#switchSendKey(content[0] === 1);
    if (type === CONTENT_TYPE.applicationData && this.#updateDue()) {
      const update = this.#switchSendKey(false);
      const data = this.#sealRecord(type, content);
      return Promise.all([update, data]).then(([a, b]) => [...a, ...b]);
    }
    return this.#send.seal(type, content).then((frame) => [frame]);
  }

  /** Seals key_update under the old key now, then switches to the next key (section 8.4). */
  #switchSendKey(updateRequested: boolean): Promise<Uint8Array[]> {
    const old = this.#send;
    const frame = old.seal(CONTENT_TYPE.keyUpdate, u8(updateRequested ? 1 : 0));
    this.#pendingKeyUpdate = false;
    this.#sendSwitch = old.next().then((next) => {
      this.#send = next;
      this.#sendSwitch = undefined;
      // Seals of the old key still running keep their own copy of what they need.
      frame.finally(() => old.destroy()).catch(() => {});
    });
    return Promise.all([frame, this.#sendSwitch]).then(([sealed]) => [sealed]);
  }

  #checkOpen(): void {
    if (this.#sentClose) throw new RangeError("cannot send after close_notify");
  }

  /**
   * Seals application data into as many records as the peer's limit requires. Sequence numbers
   * are assigned at the call, so calls may overlap; frames must be written in call order.
   *
   * @returns record frames, to be written in order
   */
  sealData(data: Uint8Array, recordSize = this.#sendLimit): Promise<Uint8Array[]> {
    try {
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const size = Math.min(recordSize, this.#sendLimit);
    const records: Promise<Uint8Array[]>[] = [];
    let offset = 0;
    do {
      const chunk = data.subarray(offset, offset + size);
      records.push(this.#sealRecord(CONTENT_TYPE.applicationData, chunk));
      offset += chunk.length;
    } while (offset < data.length);
    return Promise.all(records).then((sealed) => sealed.flat());
  }

  /**
   * Seals a key_update now (section 8.4), optionally asking the peer to update too.
   *
   * @returns the record frame to write
   */
  async sealKeyUpdate(updateRequested: boolean): Promise<Uint8Array> {
    this.#checkOpen();
    const [frame] = await this.#sealRecord(CONTENT_TYPE.keyUpdate, u8(updateRequested ? 1 : 0));
    return frame!;
  }

  /**
   * Seals a keepalive ping or pong (section 8.6). Unlike data, keepalives may follow our
   * close_notify and our receipt (pipe mode keeps asking until the end, section 8.5); nothing
   * follows a fatal alert.
   */
  async sealKeepalive(ping: boolean): Promise<Uint8Array> {
    if (this.#sentFatal) throw new RangeError("cannot send after a fatal alert");
    const [frame] = await this.#sealRecord(CONTENT_TYPE.keepalive, u8(ping ? 0 : 1));
    return frame!;
  }

  /** Seals close_notify (section 8.5); nothing may be sent after it. */
  async sealCloseNotify(): Promise<Uint8Array> {
    this.#checkOpen();
    this.#sentClose = true;
    this.#mayReceipt = true;
    const [frame] = await this.#sealRecord(CONTENT_TYPE.alert, u8(0));
    return frame!;
  }

  /**
   * Seals our receipt (section 8.5): the one record allowed after our close_notify, saying how
   * many application data bytes we accepted from the peer after its SessionHello.
   */
  async sealReceipt(bytesReceived: number): Promise<Uint8Array> {
    if (!this.#mayReceipt) throw new RangeError("a receipt follows our close_notify, once");
    this.#mayReceipt = false;
    const content = new Uint8Array(RECEIPT_CONTENT_LENGTH);
    new DataView(content.buffer).setBigUint64(0, BigInt(bytesReceived));
    const [frame] = await this.#sealRecord(CONTENT_TYPE.receipt, content);
    return frame!;
  }

  /** Seals a fatal alert; nothing may be sent after it. */
  async sealAlert(code: number): Promise<Uint8Array> {
    this.#checkOpen();
    this.#sentClose = true;
    this.#sentFatal = true;
    const [frame] = await this.#sealRecord(CONTENT_TYPE.alert, u8(code));
    return frame!;
  }

  /**
   * Opens one record frame from the peer.
   *
   * @throws {AuthenticationError} when authentication fails (see RecordProtection.open)
   * @throws {ProtocolError} for content types not allowed here, bad lengths, records after
   *   close_notify, or a peer that ignores key usage limits
   * @throws {PeerAlertError} when the peer sent a fatal alert
   */
  async open(header: Uint8Array, ciphertext: Uint8Array): Promise<RecordEvent> {
    // Also after close_notify: keepalives may follow it for as long as the peer likes.
    if (this.#receive.sequence >= BigInt(this.#keyUpdateRecords + KEY_UPDATE_SLACK)) {
      throw new ProtocolError(
        "key_usage_exceeded",
        "peer kept using one key past the usage limit instead of updating it",
        { alert: "unexpected_message" },
      );
    }
    if (this.#receivedClose) return await this.#openAfterClose(header, ciphertext);
    const { type, content } = await this.#receive.open(header, ciphertext);
    switch (type) {
      case CONTENT_TYPE.applicationData:
        return { kind: "data", data: content };
      case CONTENT_TYPE.keyUpdate: {
        if (content.length !== 1 || content[0]! > 1) throw malformed("key_update");
        const old = this.#receive;
        this.#receive = await old.next();
        old.destroy();
        const updateRequested = content[0] === 1;
        if (updateRequested) this.#pendingKeyUpdate = true;
        return { kind: "keyUpdate", updateRequested };
      }
      case CONTENT_TYPE.keepalive:
        return keepaliveEvent(content);
      case CONTENT_TYPE.alert: {
        if (content.length !== 1) throw malformed("alert");
        if (content[0] === 0) {
          this.#receivedClose = true;
          return { kind: "close" };
        }
        const name = alertName(content[0]!) ?? `unknown alert ${content[0]}`;
        throw new PeerAlertError(name, `peer ended the session with alert "${name}"`, {
          hints: alertHints(name),
        });
      }
      default:
        throw new ProtocolError(
          "unexpected_message",
          `peer sent a record of unexpected content type 0x${type.toString(16)}`,
          { alert: "unexpected_message" },
        );
    }
  }

  /**
   * Sections 8.5 and 8.6: after the peer's close_notify only its receipt (once) and keepalives
   * may come. A record of any other length is refused unopened (the receipt's length once the
   * receipt came); one that opens as another type than its length says is refused too.
   */
  async #openAfterClose(header: Uint8Array, ciphertext: Uint8Array): Promise<RecordEvent> {
    const expected = ciphertext.length === KEEPALIVE_CIPHERTEXT_LENGTH
      ? CONTENT_TYPE.keepalive
      : ciphertext.length === RECEIPT_CIPHERTEXT_LENGTH && !this.#receivedReceipt
      ? CONTENT_TYPE.receipt
      : undefined;
    if (expected === undefined) throw recordAfterClose();
    const { type, content } = await this.#receive.open(header, ciphertext);
    if (type !== expected) throw recordAfterClose();
    if (type === CONTENT_TYPE.keepalive) return keepaliveEvent(content);
    this.#receivedReceipt = true;
    const view = new DataView(content.buffer, content.byteOffset, content.length);
    return { kind: "receipt", bytesReceived: view.getBigUint64(0) };
  }

  /** True when a key update is due before the next data record (peer asked for one). */
  get keyUpdatePending(): boolean {
    return this.#pendingKeyUpdate;
  }

  /**
   * Moves both directions' AES-GCM to the crypto worker (see RecordProtection.offload), and keys
   * that follow updates with them.
   *
   * @returns false when the worker could not start
   */
  async offload(): Promise<boolean> {
    const [send, receive] = await Promise.all([this.#send.offload(), this.#receive.offload()]);
    return send && receive;
  }

  /** Erases key material held in JavaScript memory. */
  destroy(): void {
    this.#send.destroy();
    this.#receive.destroy();
  }
}

function recordAfterClose(): ProtocolError {
  return new ProtocolError(
    "record_after_close",
    "peer sent data after its close_notify: the stream may have been tampered with",
    { alert: "unexpected_message" },
  );
}

/** Section 8.1: a keepalive's content is one byte, 0 for a ping and 1 for a pong. */
function keepaliveEvent(content: Uint8Array): RecordEvent {
  if (content.length !== 1 || content[0]! > 1) throw malformed("keepalive");
  return { kind: "keepalive", ping: content[0] === 0 };
}

function malformed(what: string): ProtocolError {
  return new ProtocolError("decode_error", `peer sent a malformed ${what} record`, {
    alert: "decode_error",
  });
}

/** Hints for an alert received from the peer. */
export function alertHints(name: string): string[] {
  switch (name) {
    case "access_denied":
      return [
        "the listener does not admit your key: send it your fingerprint (securechat fingerprint)",
      ];
    case "bad_certificate":
      return ["the peer does not trust your identity key; ask its owner what it expected"];
    case "bad_record_mac":
    case "decrypt_error":
      return ["the peer saw altered data: someone on the network may be tampering"];
    case "handshake_failure":
      return [
        "no common suite: compare --suites and --record-suites on both sides (or the peer was busy)",
      ];
    case "protocol_version":
      return ["the peers speak different protocol versions: update securechat on both sides"];
    case "no_application_protocol":
      return [
        "one side wants a pipe, the other a chat: use --pipe on both, or a terminal or --json on both",
      ];
    case "user_canceled":
      return [
        "the peer ended the session on purpose, or is busy with another peer: try again later",
      ];
    default:
      return [];
  }
}

/** Joins record frames into one buffer, so they go out in one write. */
export function joinFrames(frames: Uint8Array[]): Uint8Array {
  return frames.length === 1 ? frames[0]! : concat(...frames);
}
