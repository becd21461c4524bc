/**
 * The seal of a transfer's data channel (PROTOCOL.md 14.4). Data and its Acks do not go through
 * MLS: each travels as a Direct relay message (13.4) to the other party alone, and these bytes are
 * the Direct's payload:
 *
 * ```
 * kind u8 (1 = data, 2 = ack) || transfer_id (16) || sequence u64 || ciphertext
 * ciphertext = ChaCha20-Poly1305(data_key, nonce, aad, plaintext)
 * nonce      = direction u32 (0 = data, 1 = ack) || sequence u64
 * aad        = "securechat/2 file data" || 0x00 || kind || sender (32) || recipient (32)
 *              || transfer_id || sequence
 * plaintext  = file_index u32 || offset u64 || bytes   (Data: transfer sender -> recipient)
 *            | received u64                           (Ack: transfer recipient -> sender)
 * ```
 *
 * `data_key` is the random key the sender chose for this one transfer and sent inside its Offer,
 * which only the recipient could read (a Sealed message, 13.5). `sender` and `recipient` are those
 * of the message itself, so an Ack names the transfer's recipient first. Each direction counts its
 * own sequence numbers 0, 1, 2, ...: the sealing side ({@linkcode DirectSealer}; for Data
 * {@linkcode DataSealer}, for Acks `AckSealer` in `lib/transfer/ack_seal.ts`) takes the next one,
 * the opening side ({@linkcode DirectOpener}; {@linkcode DataOpener}, `AckOpener`) requires it
 * and its own transfer id in the clear header, so a relay that drops, replays or reorders a
 * Direct is caught, as is one that alters a byte, moves a Direct to another transfer, party or
 * direction, or makes one up. Data and Acks share this one sealer and opener: they differ only in
 * the plaintext they carry, their {@linkcode DirectPayload}.
 *
 * Why ChaCha20-Poly1305 (AES-256-GCM before issue 16): `node:crypto`'s synchronous ChaCha20-Poly1305
 * seals a Direct in one pass, with no thread hop and no await, and is about 2x WebCrypto's
 * AES-GCM on the bench machine (lib/crypto/chacha20_poly1305.ts).
 *
 * Why the direction is in the nonce: both parties seal under the same key, and both count from 0.
 * With the sequence alone as the nonce, Data 5 and Ack 5 would share a nonce under one key, and
 * AES-GCM gives that up completely: the two ciphertexts XOR to the two plaintexts XORed, and the
 * two tags reveal the GHASH key, with which anyone who saw them (the relay) forges messages that
 * open (ChaCha20-Poly1305 fails the same way: the keystream and the Poly1305 key repeat). The
 * direction word makes the two nonce spaces disjoint ({@linkcode directNonce}); one key per
 * transfer and one sequence number per message in each direction: a nonce is never used twice
 * under a key.
 *
 * What it does not do: decide what a failure means (the transfer is cancelled:
 * `lib/transfer/transfer.ts`), look transfers up, or send anything.
 *
 * Mirrors: docs/PROTOCOL.md section 14.4 (Data, flow control and resume).
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { DataOpener, DataSealer } from "./data_seal.ts";
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const parties = {
 *   sender: new Uint8Array(32).fill(1),
 *   recipient: new Uint8Array(32).fill(2),
 *   transferId: new Uint8Array(16).fill(3),
 * };
 * const sealer = await DataSealer.create(key, parties);
 * const opener = await DataOpener.create(key, parties);
 * const slice = { fileIndex: 0, offset: 0, bytes: Uint8Array.of(1, 2, 3) };
 * deepStrictEqual(await opener.open(await sealer.seal(slice)), slice);
 * ```
 *
 * @module
 */

import { concat, constantTimeEqual, u64, u8, utf8 } from "../core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../core/errors.ts";
import { AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH } from "../crypto/aead.ts";
import { ChaCha20Poly1305, loadSynchronousChaCha20Poly1305 } from "../crypto/chacha20_poly1305.ts";
import {
  DATA_KEY_LENGTH,
  type DataSlice,
  decodeDataSlice,
  encodeDataSliceHeader,
  MAX_DATA_SLICE,
  PARTY_LENGTH,
  TRANSFER_ID_LENGTH,
} from "./transfer_messages.ts";

/** Section 14.4: the label that starts the additional data of Data and Acks. */
export const DATA_SEAL_LABEL = "securechat/2 file data";
/** Section 14.4: the kind byte that starts a Direct's payload. */
export const DIRECT_KIND = { data: 1, ack: 2 } as const;
/** Section 14.4: the direction word that starts the nonce; never the same for two kinds. */
export const DIRECTION = { data: 0, ack: 1 } as const;
/** Section 14.4: the clear header of a sealed Direct, `kind || transfer_id || sequence`. */
export const DIRECT_HEADER_LENGTH = 1 + TRANSFER_ID_LENGTH + 8;
/** The reason a transfer ends when a Data Direct does not open. */
export const DATA_FAILED_AUTHENTICATION = "file data failed authentication";
/** The reason a transfer ends when a Data Direct opens but is not the next one. */
export const DATA_OUT_OF_SEQUENCE = "file data was dropped or replayed on the way";
/** The reason a transfer ends when a Data Direct names another transfer in its clear header. */
export const DATA_OTHER_TRANSFER = "file data for another transfer arrived";
/** The reason a transfer ends when an Ack Direct does not open. */
export const ACK_FAILED_AUTHENTICATION = "file acks failed authentication";
/** The reason a transfer ends when an Ack Direct opens but is not the next one. */
export const ACK_OUT_OF_SEQUENCE = "file acks were dropped or replayed on the way";
/** The reason a transfer ends when an Ack Direct names another transfer in its clear header. */
export const ACK_OTHER_TRANSFER = "file acks for another transfer arrived";

/** Which way a sealed Direct goes: Data from the transfer's sender, an Ack from its recipient. */
export type DirectKind = keyof typeof DIRECT_KIND;

const MAX_SEQUENCE = 2n ** 64n - 1n;

/**
 * What an opener throws, per kind: [code, message] for a bad seal, a bad sequence, and a clear
 * transfer id that is not the opener's.
 */
const FAILURES = {
  data: {
    authentication: ["bad_file_data", DATA_FAILED_AUTHENTICATION],
    sequence: ["file_data_sequence", DATA_OUT_OF_SEQUENCE],
    transfer: ["file_data_transfer", DATA_OTHER_TRANSFER],
  },
  ack: {
    authentication: ["bad_file_ack", ACK_FAILED_AUTHENTICATION],
    sequence: ["file_ack_sequence", ACK_OUT_OF_SEQUENCE],
    transfer: ["file_ack_transfer", ACK_OTHER_TRANSFER],
  },
} as const;

/**
 * The error codes of a Direct that did not arrive intact and in order, which the relay can cause
 * (14.4): what is already written was authenticated, so the part file is kept for a resume.
 */
export const LOST_ON_THE_WAY_CODES: ReadonlySet<string> = new Set(
  Object.values(FAILURES).flatMap((f) => [f.authentication[0], f.sequence[0]]),
);

/** Who a transfer's data goes between (its sender and recipient, by raw author id), and which. */
export interface DataParties {
  sender: Uint8Array;
  recipient: Uint8Array;
  transferId: Uint8Array;
}

/**
 * The clear header of a sealed Direct: its kind and the transfer id it names, or undefined when it
 * is too short to name one or of an unknown kind. Unauthenticated: only good for finding the
 * transfer whose key opens it.
 */
export function readDirectHeader(
  bytes: Uint8Array,
): { kind: DirectKind; transferId: Uint8Array } | undefined {
  if (bytes.length < 1 + TRANSFER_ID_LENGTH) return undefined;
  const kind = bytes[0] === DIRECT_KIND.data
    ? "data"
    : bytes[0] === DIRECT_KIND.ack
    ? "ack"
    : undefined;
  return kind && { kind, transferId: bytes.slice(1, 1 + TRANSFER_ID_LENGTH) };
}

/**
 * Section 14.4: the nonce of the Direct of `kind` with this sequence number,
 * `direction u32 || sequence u64`. Data and Ack nonces never meet, whatever their sequences.
 */
export function directNonce(kind: DirectKind, sequence: bigint): Uint8Array {
  const nonce = new Uint8Array(AEAD_NONCE_LENGTH);
  const view = new DataView(nonce.buffer);
  view.setUint32(0, DIRECTION[kind]);
  view.setBigUint64(4, sequence);
  return nonce;
}

/**
 * Section 14.4: the additional data of the Direct of `kind` with this sequence number. `parties`
 * are the transfer's; an Ack goes from its recipient to its sender, and names them in that order.
 */
export function directAad(kind: DirectKind, parties: DataParties, sequence: bigint): Uint8Array {
  const [from, to] = kind === "data"
    ? [parties.sender, parties.recipient]
    : [parties.recipient, parties.sender];
  return concat(
    utf8(DATA_SEAL_LABEL),
    Uint8Array.of(0),
    u8(DIRECT_KIND[kind]),
    from,
    to,
    parties.transferId,
    u64(sequence),
  );
}

/**
 * Imports a transfer's data key for ChaCha20-Poly1305, after checking it and the parties' lengths.
 * The key seals and opens on `node:crypto`'s synchronous path (lib/crypto/chacha20_poly1305.ts),
 * loaded here once per process: a 64 KiB Direct then costs no thread hop and no await. A loopback
 * `dial --send` of 128 MiB to `listen --receive` took 2.43 s of CPU, both ends, against 2.9 s with
 * WebCrypto AES-256-GCM (median wall clock 1.88 s against 2.2 s; 4 interleaved runs, 2-core bench
 * machine, Deno 2.9.6).
 *
 * @throws {RangeError} for a key, author id or transfer id of the wrong length
 */
export async function importDataKey(
  dataKey: Uint8Array,
  parties: DataParties,
): Promise<ChaCha20Poly1305> {
  if (dataKey.length !== DATA_KEY_LENGTH) {
    throw new RangeError(`data key must be ${DATA_KEY_LENGTH} bytes, got ${dataKey.length}`);
  }
  if (parties.sender.length !== PARTY_LENGTH || parties.recipient.length !== PARTY_LENGTH) {
    throw new RangeError(`sender and recipient must be ${PARTY_LENGTH}-byte author ids`);
  }
  if (parties.transferId.length !== TRANSFER_ID_LENGTH) {
    throw new RangeError(`transfer id must be ${TRANSFER_ID_LENGTH} bytes`);
  }
  await loadSynchronousChaCha20Poly1305();
  return await ChaCha20Poly1305.create(dataKey);
}

/**
 * What one kind of Direct carries: how its plaintext is written, refusing what the kind cannot
 * carry, and read, refusing a malformed one. Data's is here, the Ack's in `lib/transfer/ack_seal.ts`.
 */
export interface DirectPayload<T> {
  kind: DirectKind;
  /**
   * The plaintext, in parts that are sealed as their concatenation (Data's bytes are not copied
   * into a plaintext first).
   *
   * @throws {RangeError} for a message this kind cannot carry
   */
  encode(message: T): Uint8Array[];
  /** @throws {ProtocolError} code "bad_transfer_message" for a malformed plaintext */
  decode(plaintext: Uint8Array): T;
}

/**
 * One direction's sealing side: seals each message under the next sequence number. Built only by
 * its kinds, {@linkcode DataSealer} and `AckSealer` (`lib/transfer/ack_seal.ts`).
 */
export class DirectSealer<T> {
  #aead: ChaCha20Poly1305;
  #payload: DirectPayload<T>;
  #parties: DataParties;
  #next = 0n;

  protected constructor(aead: ChaCha20Poly1305, payload: DirectPayload<T>, parties: DataParties) {
    this.#aead = aead;
    this.#payload = payload;
    this.#parties = { ...parties };
  }

  /** How many messages were sealed: the next sequence number (for Data, Done's `data_count`). */
  get count(): number {
    return Number(this.#next);
  }

  /**
   * Seals the next message. Sequence numbers are taken in call order, so Directs must be sent in
   * the order their `seal()` calls were made.
   *
   * @param message a Data slice, or an Ack's `received` count; its bytes are copied before
   *   `seal()` returns, so the caller may reuse them at once
   * @returns the Direct's bytes: `kind || transfer_id || sequence || ciphertext`, at most 262144
   * @throws {RangeError} for a message its kind cannot carry (a slice of 0 or more than
   *   {@linkcode MAX_DATA_SLICE} bytes, a count that is not a non-negative safe integer), or when
   *   the sequence numbers are used up (2^64 messages; never in practice)
   */
  async seal(message: T): Promise<Uint8Array> {
    const kind = this.#payload.kind;
    const parts = this.#payload.encode(message);
    if (this.#next > MAX_SEQUENCE) throw new RangeError(`file ${kind} sequence used up`);
    const sequence = this.#next++;
    const header = concat(u8(DIRECT_KIND[kind]), this.#parties.transferId, u64(sequence));
    const nonce = directNonce(kind, sequence);
    const aad = directAad(kind, this.#parties, sequence);
    // One pass into the Direct's own buffer on the synchronous path (the usual one: importDataKey
    // loads it); the parts are copied into one plaintext before any await otherwise.
    return this.#aead.sealAfter(nonce, aad, header, parts) ??
      concat(header, await this.#aead.seal(nonce, concat(...parts), aad));
  }
}

/**
 * One direction's opening side: opens each Direct and requires sequence numbers 0, 1, 2, ... with
 * none missing or repeated. Fails closed: after one failure it refuses every later call with the
 * same error. Built only by its kinds, {@linkcode DataOpener} and `AckOpener`
 * (`lib/transfer/ack_seal.ts`); the error codes and messages are its kind's (`FAILURES`).
 */
export class DirectOpener<T> {
  #aead: ChaCha20Poly1305;
  #payload: DirectPayload<T>;
  #parties: DataParties;
  #next = 0n;
  #failed: Error | undefined;
  /** The first failure among the calls made so far, once the last of them has its outcome. */
  #lastOutcome: Promise<Error | undefined> = Promise.resolve(undefined);

  protected constructor(aead: ChaCha20Poly1305, payload: DirectPayload<T>, parties: DataParties) {
    this.#aead = aead;
    this.#payload = payload;
    this.#parties = { ...parties };
  }

  /** How many Directs took their place in the sequence (opened, or still being opened). */
  get count(): number {
    return Number(this.#next);
  }

  #fail(error: Error): never {
    this.#failed = error;
    throw error;
  }

  /**
   * Checks the other side's count (for Data, the sender's Done): it sealed `count` Directs, and
   * every one of them was opened. Fewer means the relay dropped the last ones, which no later
   * sequence number could show.
   *
   * @throws {ProtocolError} code "file_data_sequence" ({@linkcode DATA_OUT_OF_SEQUENCE}; for Acks
   *   "file_ack_sequence") otherwise, and any earlier failure again
   */
  end(count: number): void {
    if (this.#failed) throw this.#failed;
    if (BigInt(count) !== this.#next) {
      const [code, message] = FAILURES[this.#payload.kind].sequence;
      this.#fail(new ProtocolError(code, message, { alert: "unexpected_message" }));
    }
  }

  /**
   * Opens the next Direct. Call it in the order the Directs arrived; calls may overlap (on the
   * WebCrypto path the work of several Directs then runs at once): each takes its place in the sequence when
   * it is made, and they settle in call order, every call after a failed one failing with the
   * same error. The codes below are Data's; an Ack's say `ack` for `data` ("bad_file_ack", ...).
   *
   * @param bytes a Direct's payload, `kind || transfer_id || sequence || ciphertext`
   * @returns its message, authenticated and in sequence
   * @throws {AuthenticationError} code "bad_file_data" ({@linkcode DATA_FAILED_AUTHENTICATION})
   *   when it does not open as this kind under this transfer's key, sender, recipient and id
   * @throws {ProtocolError} code "file_data_transfer" ({@linkcode DATA_OTHER_TRANSFER}) when its
   *   clear transfer id is not this transfer's
   * @throws {ProtocolError} code "file_data_sequence" ({@linkcode DATA_OUT_OF_SEQUENCE}) when it
   *   opens but is not the next one: a Direct was dropped, replayed or reordered on the way
   * @throws {ProtocolError} code "bad_transfer_message" when the other side sealed a malformed
   *   message
   */
  async open(bytes: Uint8Array): Promise<T> {
    if (this.#failed) throw this.#failed;
    // This call's place in the sequence, taken now so that overlapping calls each expect the one
    // their order gives them; its AEAD work starts now too, and its outcome is given only
    // after those of the calls before it, failing when one of them failed.
    const expected = this.#next++;
    const attempt = this.#attempt(bytes, expected).then(
      (message) => ({ message }),
      (error: Error) => ({ error }),
    );
    const before = this.#lastOutcome;
    const outcome = before.then(async (earlier) => earlier ? { error: earlier } : await attempt);
    this.#lastOutcome = outcome.then((result) => "error" in result ? result.error : undefined);
    const result = await outcome;
    if ("error" in result) this.#fail(result.error);
    return result.message;
  }

  /** Opens one Direct expected at `expected` in the sequence; throws what open() reports. */
  async #attempt(bytes: Uint8Array, expected: bigint): Promise<T> {
    const kind = this.#payload.kind;
    const [authCode, authMessage] = FAILURES[kind].authentication;
    // A kind byte that is not ours was altered (the seal binds it): it would not open either.
    if (bytes.length < DIRECT_HEADER_LENGTH + AEAD_TAG_LENGTH || bytes[0] !== DIRECT_KIND[kind]) {
      throw new AuthenticationError(authCode, authMessage);
    }
    // The clear transfer id is also in the additional data, so a Direct of another transfer
    // would not open either; checked first, the fault has its name. The caller finds the opener
    // by this id, so only the caller's mistake causes it, never the relay: the part file goes.
    if (!constantTimeEqual(bytes.subarray(1, 1 + TRANSFER_ID_LENGTH), this.#parties.transferId)) {
      const [code, message] = FAILURES[kind].transfer;
      throw new ProtocolError(code, message, { alert: "unexpected_message" });
    }
    const sequence = new DataView(bytes.buffer, bytes.byteOffset + 1 + TRANSFER_ID_LENGTH, 8)
      .getBigUint64(0);
    // Authenticated first: a Direct that does not open says so, whatever sequence it claims.
    let plaintext: Uint8Array;
    try {
      plaintext = await this.#aead.open(
        directNonce(kind, sequence),
        bytes.subarray(DIRECT_HEADER_LENGTH),
        directAad(kind, this.#parties, sequence),
      );
    } catch (error) {
      throw new AuthenticationError(authCode, authMessage, { cause: error });
    }
    if (sequence !== expected) {
      const [code, message] = FAILURES[kind].sequence;
      throw new ProtocolError(code, message, { alert: "unexpected_message" });
    }
    try {
      return this.#payload.decode(plaintext);
    } catch (error) {
      throw error instanceof Error ? error : new Error(String(error));
    }
  }
}

/** Data's plaintext: `file_index u32 || offset u64 || bytes`, 1 to MAX_DATA_SLICE bytes. */
const DATA_PAYLOAD: DirectPayload<DataSlice> = {
  kind: "data",
  encode(slice) {
    if (slice.bytes.length === 0 || slice.bytes.length > MAX_DATA_SLICE) {
      throw new RangeError(`a data slice holds 1 to ${MAX_DATA_SLICE} bytes`);
    }
    return [encodeDataSliceHeader(slice), slice.bytes];
  },
  decode: decodeDataSlice,
};

/**
 * The sender's side of one transfer's Data: seals each slice under the next sequence number
 * ({@linkcode DirectSealer.seal}; its `count` is Done's `data_count`).
 */
export class DataSealer extends DirectSealer<DataSlice> {
  /**
   * A sealer for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the sender (us), the recipient and the transfer
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<DataSealer> {
    return new DataSealer(await importDataKey(dataKey, parties), DATA_PAYLOAD, parties);
  }
}

/**
 * The recipient's side of one transfer's Data: opens each Direct, in sequence, and checks Done's
 * `data_count` ({@linkcode DirectOpener.open}, {@linkcode DirectOpener.end}). Fails closed.
 */
export class DataOpener extends DirectOpener<DataSlice> {
  /**
   * An opener for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the sender, the recipient (us) and the transfer
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<DataOpener> {
    return new DataOpener(await importDataKey(dataKey, parties), DATA_PAYLOAD, parties);
  }
}
