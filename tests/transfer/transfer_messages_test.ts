/**
 * Transfer message encodings (PROTOCOL.md 14.1 to 14.4): the Offer carries its data key and no
 * counter or signature, Data and Acks never travel in the envelope, Done counts the Data slices, a Data
 * body's size is bounded on both sides, and author ids and fingerprints convert both ways.
 */

import { authorOf, fingerprintOfAuthor } from "../../lib/keys/identity.ts";
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  decodeDataSlice,
  decodeTransfer,
  encodeDataSlice,
  encodeTransfer,
  isTransferType,
  MAX_DATA_SLICE,
  type Offer,
  TRANSFER_MESSAGE,
} from "../../lib/transfer/transfer_messages.ts";

const party = crypto.getRandomValues(new Uint8Array(32));
const id = crypto.getRandomValues(new Uint8Array(16));
const offer: Offer = {
  timestamp: 1_700_000_000_000,
  name: "photos",
  fileCount: 3,
  totalSize: 123_456,
  manifestSha256: crypto.getRandomValues(new Uint8Array(32)),
  dataKey: crypto.getRandomValues(new Uint8Array(32)),
};
const malformed = (error: unknown) =>
  error instanceof ProtocolError && error.code === "bad_transfer_message";

Deno.test("encodeTransfer.offer() lays out timestamp, name, file_count, total_size, manifest_sha256, data_key", () => {
  const bytes = encodeTransfer.offer(party, id, offer);
  strictEqual(bytes.length, 1 + 32 + 16 + 8 + 2 + 6 + 4 + 8 + 32 + 32);
  strictEqual(bytes[0], TRANSFER_MESSAGE.offer);
  deepStrictEqual(bytes.subarray(1, 33), party);
  deepStrictEqual(bytes.subarray(33, 49), id);
  deepStrictEqual(bytes.subarray(-32), offer.dataKey);
  deepStrictEqual(decodeTransfer(bytes), { type: "offer", party, transferId: id, offer });
});

Deno.test("decodeTransfer() refuses an Offer cut short in its data key, or with trailing bytes", () => {
  const bytes = encodeTransfer.offer(party, id, offer);
  throws(() => decodeTransfer(bytes.subarray(0, bytes.length - 1)), malformed);
  throws(() => decodeTransfer(new Uint8Array([...bytes, 0])), malformed);
});

Deno.test("encodeTransfer.offer() refuses a data key that is not 32 bytes", () => {
  throws(
    () => encodeTransfer.offer(party, id, { ...offer, dataKey: new Uint8Array(16) }),
    RangeError,
  );
});

Deno.test("decodeTransfer() refuses Data (0x35) and Ack (0x36): they travel only as Directs", () => {
  const bytes = Uint8Array.of(
    TRANSFER_MESSAGE.data,
    ...party,
    ...id,
    0,
    0,
    0,
    0,
    ...new Uint8Array(8),
    1,
  );
  throws(() => decodeTransfer(bytes), /file data \(0x35\) travels only as a Direct/);
  // An Ack as it travelled in a Sealed message before 14.4 moved it to the data channel.
  const ack = Uint8Array.of(TRANSFER_MESSAGE.ack, ...party, ...id, ...new Uint8Array(8));
  throws(
    () => decodeTransfer(ack),
    (error) => malformed(error) && /file acks \(0x36\) travel only as Directs/.test(String(error)),
  );
  strictEqual(isTransferType(TRANSFER_MESSAGE.data), false);
  strictEqual(isTransferType(TRANSFER_MESSAGE.ack), false);
  for (const type of [0x30, 0x31, 0x32, 0x33, 0x34, 0x37, 0x38, 0x39]) {
    strictEqual(isTransferType(type), true);
  }
  strictEqual(isTransferType(0x2f), false);
  strictEqual(isTransferType(0x3a), false);
});

Deno.test("encodeTransfer.done() carries the number of Data slices sent", () => {
  const bytes = encodeTransfer.done(party, id, 42);
  strictEqual(bytes.length, 1 + 32 + 16 + 8);
  deepStrictEqual(decodeTransfer(bytes), { type: "done", party, transferId: id, dataCount: 42 });
  throws(() => decodeTransfer(bytes.subarray(0, bytes.length - 1)), malformed);
});

Deno.test("decodeDataSlice() takes 1 to MAX_DATA_SLICE bytes after file_index and offset", () => {
  for (const length of [1, MAX_DATA_SLICE]) {
    const slice = { fileIndex: 9, offset: 2 ** 50, bytes: new Uint8Array(length).fill(5) };
    deepStrictEqual(decodeDataSlice(encodeDataSlice(slice)), slice);
  }
  for (const length of [0, MAX_DATA_SLICE + 1]) {
    const bytes = encodeDataSlice({ fileIndex: 0, offset: 0, bytes: new Uint8Array(length) });
    throws(() => decodeDataSlice(bytes), malformed);
  }
  throws(() => decodeDataSlice(new Uint8Array(11)), malformed);
  strictEqual(MAX_DATA_SLICE, 262144 - 1 - 16 - 8 - 4 - 8 - 16);
});

Deno.test("authorOf() and fingerprintOfAuthor() convert both ways; anything but a fingerprint is refused", () => {
  deepStrictEqual(authorOf(fingerprintOfAuthor(party)), party);
  const fingerprint = "SHA256:rXeudpvF0tRSzldMvL9YjkhPxJjktwKGx6ouPcq9Z/U";
  strictEqual(fingerprintOfAuthor(authorOf(fingerprint)), fingerprint);
  for (
    const bad of ["", "SHA256:", "MD5:rXeudpvF0tRSzldMvL9YjkhPxJjktwKGx6ouPcq9Z/U", "SHA256:AAAA"]
  ) {
    throws(() => authorOf(bad), TypeError, bad);
  }
});
