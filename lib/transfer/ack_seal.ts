/**
 * The seal of a transfer's Acks (PROTOCOL.md 14.4): the recipient's flow control, sent back to the
 * sender in the data channel's other direction. An Ack is a Direct relay message (13.4), sealed
 * under the transfer's data key like Data (`lib/transfer/data_seal.ts`, which holds the layout),
 * with kind 2, direction 1 in its nonce, the recipient named first in its additional data, and its
 * own sequence numbers 0, 1, 2, ...; its plaintext is `received u64`, the Data bytes received.
 *
 * An Ack is not a transfer message and never travels in a Sealed message (13.5): that would cost
 * an HPKE seal and an MLS message to every member of the room per Ack, and the relay's Group rate
 * (13.8) would cap a transfer at about 5 MiB/s.
 *
 * What it does not do: decide what an Ack means (the sender's window:
 * `lib/transfer/transfer_outgoing.ts`), look transfers up, or send anything.
 *
 * Mirrors: docs/PROTOCOL.md section 14.4 (Data, flow control and resume).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { AckOpener, AckSealer } from "./ack_seal.ts";
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const parties = {
 *   sender: new Uint8Array(32).fill(1),
 *   recipient: new Uint8Array(32).fill(2),
 *   transferId: new Uint8Array(16).fill(3),
 * };
 * // The transfer's recipient seals, its sender opens: the same parties as for its Data.
 * const sealer = await AckSealer.create(key, parties);
 * const opener = await AckOpener.create(key, parties);
 * strictEqual(await opener.open(await sealer.seal(262144)), 262144);
 * ```
 *
 * @module
 */

import { u64 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";
import { type DataParties, DirectOpener, DirectSealer, importDataKey } from "./data_seal.ts";

/**
 * The recipient's side of one transfer's Acks: seals each `received` count under the next
 * sequence number of the Ack direction.
 */
export class AckSealer {
  #direct: DirectSealer;

  private constructor(direct: DirectSealer) {
    this.#direct = direct;
  }

  /**
   * An Ack sealer for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the transfer's sender, its recipient (us) and the transfer, as for Data
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<AckSealer> {
    return new AckSealer(new DirectSealer(await importDataKey(dataKey, parties), "ack", parties));
  }

  /**
   * Seals the next Ack. Send the Directs in the order their `seal()` calls were made.
   *
   * @param received how many bytes of Data this transfer received (resumed ones not counted)
   * @returns the Direct's bytes: `kind || transfer_id || sequence || ciphertext`
   * @throws {RangeError} for a count that is not a non-negative safe integer
   */
  seal(received: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(received) || received < 0) {
      return Promise.reject(new RangeError(`an ack counts 0 to 2^53 - 1 bytes, got ${received}`));
    }
    return this.#direct.seal(u64(BigInt(received)));
  }
}

/** The sender's side of one transfer's Acks: opens each, in sequence. Fails closed. */
export class AckOpener {
  #direct: DirectOpener;

  private constructor(direct: DirectOpener) {
    this.#direct = direct;
  }

  /**
   * An Ack opener for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the transfer's sender (us), its recipient and the transfer, as for Data
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<AckOpener> {
    return new AckOpener(new DirectOpener(await importDataKey(dataKey, parties), "ack", parties));
  }

  /**
   * Opens the next Ack. Call it once at a time, in the order the Directs arrived.
   *
   * @param bytes a Direct's payload, `kind || transfer_id || sequence || ciphertext`
   * @returns `received`: how many bytes the recipient says it received
   * @throws {AuthenticationError} code "bad_file_ack" (`ACK_FAILED_AUTHENTICATION` of data_seal.ts)
   *   when it does not open as an Ack under this transfer's key, recipient, sender and id
   * @throws {ProtocolError} code "file_ack_transfer" (`ACK_OTHER_TRANSFER`) when its clear
   *   transfer id is not this transfer's
   * @throws {ProtocolError} code "file_ack_sequence" (`ACK_OUT_OF_SEQUENCE`) when it
   *   opens but is not the next one: an Ack was dropped, replayed or reordered on the way
   * @throws {ProtocolError} code "bad_transfer_message" when the recipient sealed a malformed Ack
   */
  open(bytes: Uint8Array): Promise<number> {
    return this.#direct.open(bytes, (plaintext) => {
      const reader = new FieldReader(plaintext, "file ack", "bad_transfer_message");
      const received = reader.u64("received");
      reader.end();
      return received;
    });
  }
}
