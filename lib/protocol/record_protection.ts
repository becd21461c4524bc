/**
 * Record protection for one direction under one traffic secret: the record suite's AEAD
 * (AES-256-GCM or ChaCha20-Poly1305) with nonce = IV XOR sequence number, the header as additional
 * data, and a sequence number that advances per record.
 * After a failed open it probes neighbouring sequence numbers, so the user learns whether a record
 * was altered, replayed or dropped.
 *
 * It seals and opens single records and derives the next key on request; it does not know what
 * content types mean, when a key must be updated, or close_notify: that is lib/protocol/record.ts, which
 * holds one of these per direction. The handshake keys (lib/protocol/handshake.ts) use it directly.
 * The AEADs themselves are lib/crypto/aead.ts and lib/crypto/chacha20_poly1305.ts, where the public
 * vectors test them (lib/crypto/record_suites.ts picks one). Bulk transfers make them faster: a
 * ChaCha20-Poly1305 key switches to the synchronous implementation once a direction has carried
 * `SYNCHRONOUS_AFTER_BYTES`, and on machines with spare cores the pipe moves either suite to a
 * worker thread (lib/crypto/aead_offload.ts).
 *
 * Mirrors: docs/PROTOCOL.md sections 4.5 (record suites), 7.3 (key and IV), 8.1 (record
 * protection), 8.2 (sequence numbers) and 8.4 (the next traffic secret).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { RecordProtection } from "./record_protection.ts";
 * import { CONTENT_TYPE } from "./record.ts";
 * const secret = new Uint8Array(32).fill(7);
 * const sender = await RecordProtection.create(secret, "chacha20-poly1305");
 * const receiver = await RecordProtection.create(secret, "chacha20-poly1305");
 * const frame = await sender.seal(CONTENT_TYPE.applicationData, new TextEncoder().encode("hi"));
 * const opened = await receiver.open(frame.subarray(0, 5), frame.subarray(5));
 * deepStrictEqual(new TextDecoder().decode(opened.content), "hi");
 * ```
 *
 * @module
 */

import { AEAD_TAG_LENGTH } from "../crypto/aead.ts";
import { OffloadedAead } from "../crypto/aead_offload.ts";
import {
  loadSynchronousChaCha20Poly1305,
  synchronousChaCha20Poly1305Loaded,
} from "../crypto/chacha20_poly1305.ts";
import {
  createRecordAead,
  type RecordAead,
  type RecordSuiteName,
} from "../crypto/record_suites.ts";
import { own, wipe } from "../core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../core/errors.ts";
import { FRAME_HEADER_LENGTH, FRAME_TYPE, frameHeader } from "./frame.ts";
import { nextTrafficSecret, trafficKeys } from "../crypto/key_schedule.ts";

/**
 * Records at least this large are assembled in a reused buffer (bulk transfers, where fresh
 * buffers cost page faults); smaller ones in a fresh one, so idle room members hold nothing.
 */
const SCRATCH_MIN = 64 * 1024;

/**
 * ...and at most this large: the pipe's records. A larger one (a room's Welcome or commit, up to
 * 1 MiB, rare) gets a fresh buffer, so a relay does not keep a 1 MiB buffer per member it ever
 * sent a Welcome to (measured with 1,000 members: 726-906 KiB of relay RSS per idle member).
 */
const SCRATCH_MAX = 256 * 1024; // PIPE_RECORD_PLAINTEXT (record.ts imports this module)

/**
 * After this many content bytes under one key, a ChaCha20-Poly1305 direction loads `node:crypto`
 * and moves to its synchronous implementation (lib/crypto/chacha20_poly1305.ts): about twice the
 * throughput of WebCrypto for bulk records, while a chat, a handshake or a short pipe never pays the
 * 20-35 ms the load costs. 1 MiB is four pipe records.
 */
export const SYNCHRONOUS_AFTER_BYTES = 2 ** 20;

/** How far either side of the expected sequence number a failed record is probed (8.2). */
const SEQUENCE_PROBE = 8;

/** One decrypted record. */
export interface OpenedRecord {
  type: number;
  content: Uint8Array;
}

/** Protection of one direction under one traffic secret: key, IV and sequence number. */
export class RecordProtection {
  #aead: RecordAead | OffloadedAead;
  readonly #suite: RecordSuiteName;
  #offloaded = false;
  #switching = false;
  #iv: Uint8Array;
  #sequence = 0n;
  #bytes = 0;
  /** The traffic secret, kept only to derive the next one on key update. */
  #secret: Uint8Array;
  #destroyed = false;
  /** Type byte and content of the record being sealed; reused, as allocating costs page faults. */
  #scratch = new Uint8Array(0);

  private constructor(
    suite: RecordSuiteName,
    aead: RecordAead,
    iv: Uint8Array,
    secret: Uint8Array,
  ) {
    this.#suite = suite;
    this.#aead = aead;
    this.#iv = iv;
    this.#secret = secret;
  }

  /** Derives key and IV from a traffic secret (section 7.3) for the record suite's AEAD (4.5). */
  static async create(secret: Uint8Array, suite: RecordSuiteName): Promise<RecordProtection> {
    const { key, iv } = await trafficKeys(secret);
    try {
      const aead = await createRecordAead(suite, key);
      return new RecordProtection(suite, aead, iv, secret.slice());
    } finally {
      wipe(key);
    }
  }

  /** The record suite (section 4.5). */
  get suite(): RecordSuiteName {
    return this.#suite;
  }

  /** Records processed under this key. */
  get sequence(): bigint {
    return this.#sequence;
  }

  /** Content bytes processed under this key. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The protection that follows a key update (section 8.4). */
  async next(): Promise<RecordProtection> {
    const secret = await nextTrafficSecret(this.#secret);
    const next = await RecordProtection.create(secret, this.#suite);
    wipe(secret, this.#secret);
    if (this.#offloaded) await next.offload();
    return next;
  }

  /**
   * Moves the AEAD for this key to the crypto worker (lib/crypto/aead_offload.ts), for bulk
   * transfers. Records sealed before and after are identical; the key is re-derived from the
   * traffic secret.
   *
   * @returns false when the worker could not start: the main thread keeps the work
   */
  async offload(): Promise<boolean> {
    if (this.#offloaded) return true;
    this.#offloaded = true;
    const { key, iv } = await trafficKeys(this.#secret);
    try {
      const aead = await OffloadedAead.create(this.#suite, key);
      if (this.#destroyed) {
        aead.destroy();
        return false;
      }
      this.#aead = aead;
      return true;
    } catch {
      this.#offloaded = false;
      return false;
    } finally {
      wipe(key, iv);
    }
  }

  /** Erases the key material this object holds in JavaScript memory. */
  destroy(): void {
    this.#destroyed = true;
    wipe(this.#secret, this.#iv, this.#scratch);
    if (this.#aead instanceof OffloadedAead) this.#aead.destroy();
  }

  /**
   * Counts content bytes, and once a ChaCha20-Poly1305 direction carries bulk data, starts its
   * switch to the synchronous implementation: the same key re-derived from the traffic secret, so
   * the records are the same bytes; calls already made finish on the old object.
   */
  #count(bytes: number): void {
    this.#bytes += bytes;
    if (
      this.#switching || this.#offloaded || this.#suite !== "chacha20-poly1305" ||
      this.#bytes < SYNCHRONOUS_AFTER_BYTES
    ) {
      return;
    }
    this.#switching = true;
    this.#useSynchronousCipher().catch(() => {
      // Keeps the WebCrypto key: slower, never wrong.
    });
  }

  async #useSynchronousCipher(): Promise<void> {
    if (!synchronousChaCha20Poly1305Loaded()) await loadSynchronousChaCha20Poly1305();
    if (this.#destroyed || this.#offloaded) return;
    const { key, iv } = await trafficKeys(this.#secret);
    try {
      const aead = await createRecordAead(this.#suite, key);
      if (!this.#destroyed && !this.#offloaded) this.#aead = aead;
    } finally {
      wipe(key, iv);
    }
  }

  #nonce(sequence: bigint): Uint8Array<ArrayBuffer> {
    const nonce = own(this.#iv);
    for (let i = 0; i < 8; i++) {
      nonce[11 - i]! ^= Number((sequence >> BigInt(8 * i)) & 0xffn);
    }
    return nonce;
  }

  /**
   * Seals one record and advances the sequence number.
   *
   * @returns the whole record frame (header and ciphertext)
   */
  async seal(type: number, content: Uint8Array): Promise<Uint8Array> {
    const sequence = this.#sequence++;
    this.#count(content.length);
    const length = 1 + content.length + AEAD_TAG_LENGTH;
    const header = frameHeader(FRAME_TYPE.record, length);
    const aead = this.#aead;
    if (!(aead instanceof OffloadedAead) && aead.sealRecord) {
      const frame = aead.sealRecord(this.#nonce(sequence), header, type, content);
      if (frame !== undefined) return frame;
    }
    const reuse = content.length >= SCRATCH_MIN && content.length <= SCRATCH_MAX;
    if (reuse && this.#scratch.length < 1 + content.length) {
      this.#scratch = new Uint8Array(1 + content.length);
    }
    const plaintext = reuse
      ? this.#scratch.subarray(0, 1 + content.length)
      : new Uint8Array(1 + content.length);
    plaintext[0] = type;
    plaintext.set(content, 1);
    // Reusing one buffer is safe: WebCrypto copies its input before encrypt() returns (aead.ts).
    const sealing = aead.seal(this.#nonce(sequence), plaintext, header);
    plaintext.fill(0);
    const ciphertext = await sealing;
    const frame = new Uint8Array(FRAME_HEADER_LENGTH + ciphertext.length);
    frame.set(header);
    frame.set(ciphertext, FRAME_HEADER_LENGTH);
    return frame;
  }

  async #tryOpen(
    sequence: bigint,
    header: Uint8Array,
    ciphertext: Uint8Array,
  ): Promise<Uint8Array | undefined> {
    try {
      return await this.#aead.open(this.#nonce(sequence), ciphertext, header);
    } catch (error) {
      if (error instanceof AuthenticationError) return undefined;
      throw error;
    }
  }

  /**
   * Opens one record and advances the sequence number.
   *
   * @throws {AuthenticationError} `bad_record_mac` (bit flip), `record_replayed` (an earlier
   *   sequence number: replayed, or reordered after its successor) or `record_dropped` (a later
   *   one: dropped, or reordered ahead), told apart by probing neighbouring sequence numbers after
   *   the failure; the record is rejected either way
   * @throws {ProtocolError} `decode_error` for a record with no content type
   */
  async open(header: Uint8Array, ciphertext: Uint8Array): Promise<OpenedRecord> {
    const sequence = this.#sequence;
    const plaintext = await this.#tryOpen(sequence, header, ciphertext);
    if (plaintext === undefined) throw await this.#diagnose(sequence, header, ciphertext);
    this.#sequence++;
    if (plaintext.length === 0) {
      throw new ProtocolError("decode_error", "peer sent a record with no content type", {
        alert: "decode_error",
      });
    }
    this.#count(plaintext.length - 1);
    return { type: plaintext[0]!, content: plaintext.subarray(1) };
  }

  async #diagnose(
    expected: bigint,
    header: Uint8Array,
    ciphertext: Uint8Array,
  ): Promise<AuthenticationError> {
    const options = { alert: "bad_record_mac" as const };
    for (let delta = 1n; delta <= BigInt(SEQUENCE_PROBE); delta++) {
      if (expected - delta >= 0n && await this.#tryOpen(expected - delta, header, ciphertext)) {
        return new AuthenticationError(
          "record_replayed",
          `record authentication failed: got record #${
            expected - delta
          } again where #${expected} was due: a record was replayed or reordered`,
          { ...options, hints: REPLAY_HINTS },
        );
      }
      if (await this.#tryOpen(expected + delta, header, ciphertext)) {
        const missing = delta === 1n
          ? `record #${expected} is missing`
          : `records #${expected} to #${expected + delta - 1n} are missing`;
        return new AuthenticationError(
          "record_dropped",
          `record authentication failed: got record #${
            expected + delta
          } where #${expected} was due: ${missing} (dropped or reordered on the way)`,
          { ...options, hints: REPLAY_HINTS },
        );
      }
    }
    return new AuthenticationError(
      "bad_record_mac",
      `record authentication failed at record #${expected}: the data was altered on the way`,
      { ...options, hints: TAMPER_HINTS },
    );
  }
}

const TAMPER_HINTS = [
  "someone on the network may be tampering with the connection; nothing of the altered record was used",
];
const REPLAY_HINTS = [
  "someone on the network may be replaying, reordering or dropping data; the session was ended",
];
