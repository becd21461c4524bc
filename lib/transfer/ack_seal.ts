/**
 * The seal of a transfer's Acks (PROTOCOL.md 14.4): the recipient's flow control, sent back to the
 * sender in the data channel's other direction. An Ack is a Direct relay message (13.4), sealed
 * under the transfer's data key like Data (`lib/transfer/data_seal.ts`, which holds the layout),
 * with kind 2, direction 1 in its nonce, the recipient named first in its additional data, and its
 * own sequence numbers 0, 1, 2, ...; its plaintext is `received u64`, the Data bytes received.
 * The sealing and opening are data_seal.ts's `DirectSealer` and `DirectOpener`, which Data uses
 * too: this module adds only the Ack's plaintext.
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
import {
  type DataParties,
  DirectOpener,
  type DirectPayload,
  DirectSealer,
  importDataKey,
} from "./data_seal.ts";

/** An Ack's plaintext: `received u64`, a count of bytes that is a safe integer. */
const ACK_PAYLOAD: DirectPayload<number> = {
  kind: "ack",
  encode(received) {
    if (!Number.isSafeInteger(received) || received < 0) {
      throw new RangeError(`an ack counts 0 to 2^53 - 1 bytes, got ${received}`);
    }
    return [u64(BigInt(received))];
  },
  decode(plaintext) {
    const reader = new FieldReader(plaintext, "file ack", "bad_transfer_message");
    const received = reader.u64("received");
    reader.end();
    return received;
  },
};

/**
 * The recipient's side of one transfer's Acks: seals each `received` count (how many bytes of
 * Data this transfer received, resumed ones not counted) under the next sequence number of the
 * Ack direction ({@linkcode DirectSealer.seal}).
 */
export class AckSealer extends DirectSealer<number> {
  /**
   * An Ack sealer for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the transfer's sender, its recipient (us) and the transfer, as for Data
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<AckSealer> {
    return new AckSealer(await importDataKey(dataKey, parties), ACK_PAYLOAD, parties);
  }
}

/**
 * The sender's side of one transfer's Acks: opens each, in sequence, to the `received` count the
 * recipient sealed ({@linkcode DirectOpener.open}, with the codes "bad_file_ack",
 * "file_ack_transfer" and "file_ack_sequence" and the messages `ACK_*` of data_seal.ts). Fails
 * closed.
 */
export class AckOpener extends DirectOpener<number> {
  /**
   * An Ack opener for one transfer. The caller keeps (and wipes) `dataKey`.
   *
   * @param dataKey the 32-byte key of the transfer's Offer
   * @param parties the transfer's sender (us), its recipient and the transfer, as for Data
   * @throws {RangeError} for a key, author id or transfer id of the wrong length
   */
  static async create(dataKey: Uint8Array, parties: DataParties): Promise<AckOpener> {
    return new AckOpener(await importDataKey(dataKey, parties), ACK_PAYLOAD, parties);
  }
}
