/**
 * The seal of file data (PROTOCOL.md 14.4). Data does not go through MLS: it travels as a Direct
 * relay message (13.4) to the recipient alone, and these bytes are the Direct's payload:
 *
 * ```
 * transfer_id (16) || sequence u64 || AES-256-GCM(data_key, nonce, aad, file_index u32 || offset u64 || bytes)
 * nonce = 0x00000000 || sequence (big-endian u64)
 * aad   = "securechat/2 file data" || 0x00 || sender (32) || recipient (32) || transfer_id || sequence
 * ```
 *
 * `data_key` is the random key the sender chose for this one transfer and sent inside its Offer,
 * which only the recipient could read (a Sealed message, 13.5). The sender seals slices under
 * sequence 0, 1, 2, ... ({@linkcode DataSealer}); the recipient ({@linkcode DataOpener}) opens
 * each and requires the next sequence number, so a relay that drops, replays or reorders a Direct
 * is caught, as is one that alters a byte, moves a Direct to another transfer, recipient or
 * sender, or makes one up. One key per transfer and one sequence number per slice: a nonce is
 * never used twice under a key.
 *
 * What it does not do: decide what a failure means (the recipient cancels the transfer:
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

import { concat, u64, utf8 } from "../core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../core/errors.ts";
import { AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH, Aes256Gcm } from "../crypto/aead.ts";
import {
  DATA_KEY_LENGTH,
  type DataSlice,
  decodeDataSlice,
  encodeDataSlice,
  MAX_DATA_SLICE,
  PARTY_LENGTH,
  TRANSFER_ID_LENGTH,
} from "./transfer_messages.ts";

/** Section 14.4: the label that starts the data seal's additional data. */
export const DATA_SEAL_LABEL = "securechat/2 file data";
/** Section 14.4: the clear header of a sealed slice, `transfer_id || sequence`. */
export const DATA_HEADER_LENGTH = TRANSFER_ID_LENGTH + 8;
/** The reason a transfer ends when a Direct does not open. */
export const DATA_FAILED_AUTHENTICATION = "file data failed authentication";
/** The reason a transfer ends when a Direct opens but is not the next one. */
export const DATA_OUT_OF_SEQUENCE = "file data was dropped or replayed on the way";

const MAX_SEQUENCE = 2n ** 64n - 1n;

/** Who a transfer's data goes between, by raw 32-byte author id, and which transfer it is. */
export interface DataParties {
  sender: Uint8Array;
  recipient: Uint8Array;
  transferId: Uint8Array;
}

/**
 * The transfer id a sealed slice names, read from its clear header, or undefined when it is too
 * short to name one. Unauthenticated: only good for finding the transfer whose key opens it.
 */
export function sealedTransferId(bytes: Uint8Array): Uint8Array | undefined {
  return bytes.length >= TRANSFER_ID_LENGTH ? bytes.slice(0, TRANSFER_ID_LENGTH) : undefined;
}

/** Section 14.4: the nonce and additional data of the slice with this sequence number. */
function nonceAndAad(parties: DataParties, sequence: bigint) {
  const nonce = new Uint8Array(AEAD_NONCE_LENGTH);
  nonce.set(u64(sequence), AEAD_NONCE_LENGTH - 8);
  const aad = concat(
    utf8(DATA_SEAL_LABEL),
    Uint8Array.of(0),
    parties.sender,
    parties.recipient,
    parties.transferId,
    u64(sequence),
  );
  return { nonce, aad };
}

async function importKey(dataKey: Uint8Array, parties: DataParties): Promise<Aes256Gcm> {
  if (dataKey.length !== DATA_KEY_LENGTH) {
    throw new RangeError(`data key must be ${DATA_KEY_LENGTH} bytes, got ${dataKey.length}`);
  }
  if (parties.sender.length !== PARTY_LENGTH || parties.recipient.length !== PARTY_LENGTH) {
    throw new RangeError(`sender and recipient must be ${PARTY_LENGTH}-byte author ids`);
  }
  if (parties.transferId.length !== TRANSFER_ID_LENGTH) {
    throw new RangeError(`transfer id must be ${TRANSFER_ID_LENGTH} bytes`);
  }
  return await Aes256Gcm.create(dataKey);
}

/** The sender's side of one transfer's data: seals each slice under the next sequence number. */
export class DataSealer {
  #aead: Aes256Gcm;
  #parties: DataParties;
  #next = 0n;

  private constructor(aead: Aes256Gcm, parties: DataParties) {
    this.#aead = aead;
    this.#parties = parties;
  }

  /** How many slices were sealed: the next sequence number, and Done's `data_count` (14.4). */
  get count(): number {
    return Number(this.#next);
  }

  /**
   * A sealer for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the sender (us), the recipient and the transfer
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<DataSealer> {
    return new DataSealer(await importKey(dataKey, parties), { ...parties });
  }

  /**
   * Seals the next slice. Sequence numbers are taken in call order, so Directs must be sent in
   * the order their `seal()` calls were made.
   *
   * @param slice the file bytes and where they go
   * @returns the Direct's bytes: `transfer_id || sequence || ciphertext`, at most 65536
   * @throws {RangeError} for a slice of 0 or more than {@linkcode MAX_DATA_SLICE} bytes, or when
   *   the sequence numbers are used up (2^64 slices; never in practice)
   */
  async seal(slice: DataSlice): Promise<Uint8Array> {
    if (slice.bytes.length === 0 || slice.bytes.length > MAX_DATA_SLICE) {
      throw new RangeError(`a data slice holds 1 to ${MAX_DATA_SLICE} bytes`);
    }
    if (this.#next > MAX_SEQUENCE) throw new RangeError("file data sequence numbers are used up");
    const sequence = this.#next++;
    const { nonce, aad } = nonceAndAad(this.#parties, sequence);
    const sealed = await this.#aead.seal(nonce, encodeDataSlice(slice), aad);
    return concat(this.#parties.transferId, u64(sequence), sealed);
  }
}

/**
 * The recipient's side of one transfer's data: opens each Direct and requires sequence numbers
 * 0, 1, 2, ... with none missing or repeated. Fails closed: after one failure it refuses every
 * later call with the same error.
 */
export class DataOpener {
  #aead: Aes256Gcm;
  #parties: DataParties;
  #next = 0n;
  #failed: Error | undefined;

  private constructor(aead: Aes256Gcm, parties: DataParties) {
    this.#aead = aead;
    this.#parties = parties;
  }

  /** How many slices were opened, in sequence. */
  get count(): number {
    return Number(this.#next);
  }

  /**
   * Checks the sender's Done: it sent `dataCount` slices, and every one of them was opened. Fewer
   * means the relay dropped the last ones, which no later sequence number could show.
   *
   * @throws {ProtocolError} code "file_data_sequence" ({@linkcode DATA_OUT_OF_SEQUENCE}) otherwise,
   *   and any earlier failure again
   */
  end(dataCount: number): void {
    if (this.#failed) throw this.#failed;
    if (BigInt(dataCount) !== this.#next) {
      this.#failed = new ProtocolError("file_data_sequence", DATA_OUT_OF_SEQUENCE, {
        alert: "unexpected_message",
      });
      throw this.#failed;
    }
  }

  /**
   * An opener for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the sender, the recipient (us) and the transfer
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<DataOpener> {
    return new DataOpener(await importKey(dataKey, parties), { ...parties });
  }

  /**
   * Opens the next sealed slice. Call it once at a time, in the order the Directs arrived.
   *
   * @param bytes a Direct's payload, `transfer_id || sequence || ciphertext`
   * @returns the slice, authenticated and in sequence
   * @throws {AuthenticationError} code "bad_file_data" ({@linkcode DATA_FAILED_AUTHENTICATION})
   *   when it does not open under this transfer's key, sender, recipient and id
   * @throws {ProtocolError} code "file_data_sequence" ({@linkcode DATA_OUT_OF_SEQUENCE}) when it
   *   opens but is not the next one: a slice was dropped, replayed or reordered on the way
   * @throws {ProtocolError} code "bad_transfer_message" when the sender sealed a malformed slice
   */
  async open(bytes: Uint8Array): Promise<DataSlice> {
    if (this.#failed) throw this.#failed;
    try {
      if (bytes.length < DATA_HEADER_LENGTH + AEAD_TAG_LENGTH) {
        throw new AuthenticationError("bad_file_data", DATA_FAILED_AUTHENTICATION);
      }
      const sequence = new DataView(bytes.buffer, bytes.byteOffset + TRANSFER_ID_LENGTH, 8)
        .getBigUint64(0);
      // Authenticated first: a slice that does not open says so, whatever sequence it claims.
      const { nonce, aad } = nonceAndAad(this.#parties, sequence);
      let plaintext: Uint8Array;
      try {
        plaintext = await this.#aead.open(nonce, bytes.subarray(DATA_HEADER_LENGTH), aad);
      } catch (error) {
        throw new AuthenticationError("bad_file_data", DATA_FAILED_AUTHENTICATION, {
          cause: error,
        });
      }
      if (sequence !== this.#next) {
        throw new ProtocolError("file_data_sequence", DATA_OUT_OF_SEQUENCE, {
          alert: "unexpected_message",
        });
      }
      this.#next++;
      return decodeDataSlice(plaintext);
    } catch (error) {
      this.#failed = error instanceof Error ? error : new Error(String(error));
      throw error;
    }
  }
}
