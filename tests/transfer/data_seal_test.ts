/**
 * The data seal (PROTOCOL.md 14.4): the bytes match a ChaCha20-Poly1305 computation written from the
 * spec's nonce and additional data, straight on WebCrypto (tests/_helpers/transfer_context.ts);
 * slices open only under their own key, sender, recipient and transfer, and only in sequence (a
 * drop, replay or reordering is named as such); Done's count catches Data dropped at the end;
 * a Direct naming another transfer in its clear header is refused as such; sizes stay within a
 * Direct; Data and Acks, sealed under one key, never share a nonce and never open as each other.
 */

import {
  deepStrictEqual,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { concat, u64, u8, utf8 } from "../../lib/core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../../lib/core/errors.ts";
import { AckOpener, AckSealer } from "../../lib/transfer/ack_seal.ts";
import {
  ACK_FAILED_AUTHENTICATION,
  DATA_FAILED_AUTHENTICATION,
  DATA_OTHER_TRANSFER,
  DATA_OUT_OF_SEQUENCE,
  DATA_SEAL_LABEL,
  DataOpener,
  type DataParties,
  DataSealer,
  DIRECT_HEADER_LENGTH,
  directNonce,
  LOST_ON_THE_WAY_CODES,
  readDirectHeader,
} from "../../lib/transfer/data_seal.ts";
import { encodeDataSlice, MAX_DATA_SLICE } from "../../lib/transfer/transfer_messages.ts";
import { randomBytes, sealBySpec as sealDirectBySpec } from "../_helpers/transfer_context.ts";

const parties: DataParties = {
  sender: crypto.getRandomValues(new Uint8Array(32)),
  recipient: crypto.getRandomValues(new Uint8Array(32)),
  transferId: crypto.getRandomValues(new Uint8Array(16)),
};
const slice = (n: number) => ({
  fileIndex: n,
  offset: n * 1000,
  bytes: utf8(`slice number ${n}`),
});

/** Section 14.4, computed independently of lib/: the Direct's bytes for one Data slice. */
function sealBySpec(
  key: Uint8Array,
  sequence: bigint,
  plaintext: Uint8Array,
  p: DataParties = parties,
): Promise<Uint8Array> {
  return sealDirectBySpec(1, key, p, sequence, plaintext);
}

const isAuthFailure = (error: unknown) =>
  error instanceof AuthenticationError && error.code === "bad_file_data" &&
  error.message === DATA_FAILED_AUTHENTICATION;
const isSequenceFailure = (error: unknown) =>
  error instanceof ProtocolError && error.code === "file_data_sequence" &&
  error.message === DATA_OUT_OF_SEQUENCE;
const isOtherTransfer = (error: unknown) =>
  error instanceof ProtocolError && error.code === "file_data_transfer" &&
  error.message === DATA_OTHER_TRANSFER;
const isAckAuthFailure = (error: unknown) =>
  error instanceof AuthenticationError && error.code === "bad_file_ack" &&
  error.message === ACK_FAILED_AUTHENTICATION;

Deno.test("DataSealer.seal() produces exactly the bytes of PROTOCOL.md 14.4, sequence 0, 1, 2", async () => {
  strictEqual(DATA_SEAL_LABEL, "securechat/2 file data");
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  for (let n = 0; n < 3; n++) {
    deepStrictEqual(
      await sealer.seal(slice(n)),
      await sealBySpec(key, BigInt(n), encodeDataSlice(slice(n))),
    );
  }
  strictEqual(sealer.count, 3);
});

Deno.test("DataOpener.open() returns each slice, in sequence, and counts them", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const opener = await DataOpener.create(key, parties);
  for (let n = 0; n < 5; n++) {
    deepStrictEqual(await opener.open(await sealer.seal(slice(n))), slice(n));
  }
  strictEqual(opener.count, 5);
  opener.end(5);
});

Deno.test("a slice of MAX_DATA_SLICE bytes makes a Direct of exactly 262144 bytes; 0 or one more is refused", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const opener = await DataOpener.create(key, parties);
  const full = {
    fileIndex: 7,
    offset: 2 ** 40,
    bytes: randomBytes(MAX_DATA_SLICE),
  };
  const sealed = await sealer.seal(full);
  strictEqual(sealed.length, 262144);
  deepStrictEqual(await opener.open(sealed), full);
  for (const length of [0, MAX_DATA_SLICE + 1]) {
    await rejects(
      sealer.seal({ fileIndex: 0, offset: 0, bytes: new Uint8Array(length) }),
      RangeError,
    );
  }
  // A sender that seals a longer slice anyway (here by the spec's recipe) is refused on opening.
  const oversize = encodeDataSlice({
    fileIndex: 0,
    offset: 0,
    bytes: new Uint8Array(MAX_DATA_SLICE + 1),
  });
  await rejects(
    opener.open(await sealBySpec(key, 1n, oversize)),
    (error) => error instanceof ProtocolError && error.code === "bad_transfer_message",
  );
});

Deno.test("DataOpener.open() refuses a slice sealed under another key, sender, recipient or transfer: file data failed authentication", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const other = crypto.getRandomValues(new Uint8Array(32));
  const plaintext = encodeDataSlice(slice(0));
  const wrong: [string, Uint8Array, DataParties][] = [
    ["key", other, parties],
    ["sender", key, { ...parties, sender: parties.recipient }],
    ["recipient", key, { ...parties, recipient: parties.sender }],
    ["transfer", key, { ...parties, transferId: new Uint8Array(16) }],
  ];
  for (const [what, sealKey, sealParties] of wrong) {
    const opener = await DataOpener.create(key, parties);
    const sealed = await sealBySpec(sealKey, 0n, plaintext, sealParties);
    // The clear transfer id is the opener's own: only the seal tells them apart.
    sealed.set(parties.transferId, 1);
    await rejects(opener.open(sealed), isAuthFailure, what);
  }
});

Deno.test("DataOpener.open() refuses a Direct whose clear transfer id is not its own: file data for another transfer arrived", async () => {
  strictEqual(DATA_OTHER_TRANSFER, "file data for another transfer arrived");
  // Not the relay's doing (the opener is found by this id): the part file is not kept for it.
  ok(!LOST_ON_THE_WAY_CODES.has("file_data_transfer"));
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const first = await sealer.seal(slice(0));
  // Another transfer's slice, under the same key and parties, delivered as it was sealed.
  const otherParties = { ...parties, transferId: crypto.getRandomValues(new Uint8Array(16)) };
  const other = await (await DataSealer.create(key, otherParties)).seal(slice(0));
  await rejects((await DataOpener.create(key, parties)).open(other), isOtherTransfer);
  // Our own slice with any bit of its clear transfer id flipped.
  for (let i = 1; i < 17; i++) {
    const flipped = first.slice();
    flipped[i]! ^= 0x01;
    await rejects((await DataOpener.create(key, parties)).open(flipped), isOtherTransfer, `${i}`);
  }
  // Fails closed, as after any failure: the slice it expected is refused too.
  const opener = await DataOpener.create(key, parties);
  await rejects(opener.open(other), isOtherTransfer);
  await rejects(opener.open(first), isOtherTransfer);
  // Untouched, it opens.
  deepStrictEqual(await (await DataOpener.create(key, parties)).open(first), slice(0));
});

Deno.test("DataOpener.open() refuses every flipped bit and every truncation: file data failed authentication", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealed = await (await DataSealer.create(key, parties)).seal(slice(0));
  // The kind byte, and from the sequence number on (a flipped transfer id is the manager's: it
  // names no transfer).
  for (let i = 0; i < sealed.length; i = i === 0 ? 17 : i + 1) {
    const flipped = sealed.slice();
    flipped[i]! ^= 0x80;
    await rejects(
      (await DataOpener.create(key, parties)).open(flipped),
      isAuthFailure,
      `byte ${i}`,
    );
  }
  for (
    const length of [0, 1, DIRECT_HEADER_LENGTH, DIRECT_HEADER_LENGTH + 15, sealed.length - 1]
  ) {
    await rejects(
      (await DataOpener.create(key, parties)).open(sealed.subarray(0, length)),
      isAuthFailure,
      `length ${length}`,
    );
  }
});

Deno.test("DataOpener.open() refuses a dropped, replayed or reordered slice: file data was dropped or replayed on the way", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const sealed = [];
  for (let n = 0; n < 3; n++) sealed.push(await sealer.seal(slice(n)));
  // Each delivery opens up to its last slice, which is refused.
  const cases: [string, Uint8Array[]][] = [
    ["first dropped", [sealed[1]!]],
    ["one dropped", [sealed[0]!, sealed[2]!]],
    ["replayed", [sealed[0]!, sealed[1]!, sealed[0]!]],
    ["delivered twice", [sealed[0]!, sealed[0]!]],
    ["reordered", [sealed[0]!, sealed[2]!]],
  ];
  for (const [what, delivered] of cases) {
    const opener = await DataOpener.create(key, parties);
    for (const bytes of delivered.slice(0, -1)) await opener.open(bytes);
    await rejects(opener.open(delivered.at(-1)!), isSequenceFailure, what);
  }
});

Deno.test("DataOpener fails closed: after a failure it refuses even the slice it expected", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const first = await sealer.seal(slice(0));
  const opener = await DataOpener.create(key, parties);
  const flipped = first.slice();
  flipped[30]! ^= 1;
  await rejects(opener.open(flipped), isAuthFailure);
  await rejects(opener.open(first), isAuthFailure);
  throws(() => opener.end(0), isAuthFailure);
});

Deno.test("DataOpener.open() calls may overlap: each takes its place in the sequence when it is made", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const sealed = [];
  for (let n = 0; n < 8; n++) sealed.push(await sealer.seal(slice(n)));
  const opener = await DataOpener.create(key, parties);
  deepStrictEqual(
    await Promise.all(sealed.map((bytes) => opener.open(bytes))),
    sealed.map((_, n) => slice(n)),
  );
  strictEqual(opener.count, 8);
  opener.end(8);
  // Reordered while overlapping: the first call, which expected sequence 0, is refused.
  const reordered = await DataOpener.create(key, parties);
  const calls = [sealed[1]!, sealed[0]!].map((bytes) => reordered.open(bytes));
  await rejects(calls[0]!, isSequenceFailure);
  await calls[1]!.catch(() => {});
  throws(() => reordered.end(2), isSequenceFailure);
  // A flipped slice among overlapping calls is refused, and so is the end.
  const flipped = sealed[1]!.slice();
  flipped[40]! ^= 1;
  const tampered = await DataOpener.create(key, parties);
  const results = await Promise.allSettled(
    [sealed[0]!, flipped, sealed[2]!].map((bytes) => tampered.open(bytes)),
  );
  deepStrictEqual(results.map((r) => r.status), ["fulfilled", "rejected", "rejected"]);
  ok(results[1]!.status === "rejected" && isAuthFailure(results[1]!.reason));
  throws(() => tampered.end(3), isAuthFailure);
});

Deno.test("DataOpener.end() catches slices dropped at the end, which no later sequence number shows", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await DataSealer.create(key, parties);
  const opener = await DataOpener.create(key, parties);
  await opener.open(await sealer.seal(slice(0)));
  await sealer.seal(slice(1)); // never delivered
  throws(() => opener.end(sealer.count), isSequenceFailure);
  const empty = await DataOpener.create(key, parties);
  empty.end(0);
  throws(() => empty.end(1), isSequenceFailure);
});

Deno.test("readDirectHeader() reads the clear kind and transfer id, or nothing from a shorter Direct or another kind", () => {
  const data = concat(u8(1), parties.transferId, u64(5n), new Uint8Array(20));
  deepStrictEqual(readDirectHeader(data), { kind: "data", transferId: parties.transferId });
  deepStrictEqual(readDirectHeader(data.subarray(0, 17)), {
    kind: "data",
    transferId: parties.transferId,
  });
  strictEqual(readDirectHeader(data.subarray(0, 16)), undefined);
  const ack = concat(u8(2), parties.transferId, u64(0n), new Uint8Array(16));
  deepStrictEqual(readDirectHeader(ack), { kind: "ack", transferId: parties.transferId });
  for (const kind of [0, 3, 0x35, 0xff]) {
    strictEqual(readDirectHeader(concat(u8(kind), parties.transferId)), undefined, `${kind}`);
  }
});

Deno.test("directNonce(): Data and an Ack with the same sequence number, under one key, never share a nonce", async () => {
  // Both directions count from 0 under the transfer's one data key: with the sequence alone as
  // the nonce, Data n and Ack n would reuse a nonce, which no AEAD survives (14.4).
  const key = crypto.getRandomValues(new Uint8Array(32));
  const dataSealer = await DataSealer.create(key, parties);
  const ackSealer = await AckSealer.create(key, parties);
  for (let n = 0n; n < 3n; n++) {
    const data = await dataSealer.seal(slice(Number(n)));
    const ack = await ackSealer.seal(1000 * Number(n));
    // Both Directs carry the same sequence number in the clear...
    deepStrictEqual(data.subarray(17, 25), u64(n));
    deepStrictEqual(ack.subarray(17, 25), u64(n));
    // ... and are sealed under different nonces, which differ exactly in the direction word.
    const dataNonce = directNonce("data", n);
    const ackNonce = directNonce("ack", n);
    notDeepStrictEqual(dataNonce, ackNonce);
    deepStrictEqual(dataNonce, concat(Uint8Array.of(0, 0, 0, 0), u64(n)));
    deepStrictEqual(ackNonce, concat(Uint8Array.of(0, 0, 0, 1), u64(n)));
    // Each is the nonce the Direct was really sealed under: the spec's recipe with it gives the
    // same bytes.
    deepStrictEqual(data, await sealBySpec(key, n, encodeDataSlice(slice(Number(n)))));
    deepStrictEqual(ack, await sealDirectBySpec(2, key, parties, n, u64(1000n * n)));
  }
});

Deno.test("an Ack does not open as Data, nor Data as an Ack, even with its kind byte rewritten", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const data = await (await DataSealer.create(key, parties)).seal(slice(0));
  const ack = await (await AckSealer.create(key, parties)).seal(65_000);
  for (const kind of [1, 2]) {
    const ackAsData = ack.slice();
    ackAsData[0] = kind;
    await rejects((await DataOpener.create(key, parties)).open(ackAsData), isAuthFailure);
    const dataAsAck = data.slice();
    dataAsAck[0] = kind;
    await rejects((await AckOpener.create(key, parties)).open(dataAsAck), isAckAuthFailure);
  }
  // Control: each opens on its own side.
  deepStrictEqual(await (await DataOpener.create(key, parties)).open(data), slice(0));
  strictEqual(await (await AckOpener.create(key, parties)).open(ack), 65_000);
});

Deno.test("DataSealer.create() and DataOpener.create() refuse keys and ids of the wrong length", async () => {
  for (const create of [DataSealer.create, DataOpener.create]) {
    await rejects(create(new Uint8Array(16), parties), RangeError);
    await rejects(
      create(new Uint8Array(32), { ...parties, sender: new Uint8Array(31) }),
      RangeError,
    );
    await rejects(
      create(new Uint8Array(32), { ...parties, transferId: new Uint8Array(8) }),
      RangeError,
    );
  }
});
