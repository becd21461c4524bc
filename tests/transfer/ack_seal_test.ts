/**
 * The Ack seal (PROTOCOL.md 14.4): the bytes match the spec's recipe computed straight on
 * WebCrypto (kind 2, direction 1, the recipient named first); Acks open only under their own key,
 * parties and transfer (one naming another transfer in its clear header is refused as such), only
 * in their own sequence (a drop, replay or reordering is named as such, in words about acks), and
 * only with a well-formed `received`.
 */

import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { u64 } from "../../lib/core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../../lib/core/errors.ts";
import { AckOpener, AckSealer } from "../../lib/transfer/ack_seal.ts";
import {
  ACK_FAILED_AUTHENTICATION,
  ACK_OTHER_TRANSFER,
  ACK_OUT_OF_SEQUENCE,
  type DataParties,
} from "../../lib/transfer/data_seal.ts";
import { sealBySpec } from "../_helpers/transfer_context.ts";

const parties: DataParties = {
  sender: crypto.getRandomValues(new Uint8Array(32)),
  recipient: crypto.getRandomValues(new Uint8Array(32)),
  transferId: crypto.getRandomValues(new Uint8Array(16)),
};

const isAuthFailure = (error: unknown) =>
  error instanceof AuthenticationError && error.code === "bad_file_ack" &&
  error.message === ACK_FAILED_AUTHENTICATION;
const isOtherTransfer = (error: unknown) =>
  error instanceof ProtocolError && error.code === "file_ack_transfer" &&
  error.message === ACK_OTHER_TRANSFER;
const isSequenceFailure = (error: unknown) =>
  error instanceof ProtocolError && error.code === "file_ack_sequence" &&
  error.message === ACK_OUT_OF_SEQUENCE;

Deno.test("AckSealer.seal() produces exactly the bytes of PROTOCOL.md 14.4, sequence 0, 1, 2", async () => {
  strictEqual(ACK_FAILED_AUTHENTICATION, "file acks failed authentication");
  strictEqual(ACK_OUT_OF_SEQUENCE, "file acks were dropped or replayed on the way");
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await AckSealer.create(key, parties);
  for (const [n, received] of [0, 262_144, 2 ** 53 - 1].entries()) {
    const sealed = await sealer.seal(received);
    deepStrictEqual(sealed, await sealBySpec(2, key, parties, BigInt(n), u64(BigInt(received))));
    strictEqual(sealed.length, 1 + 16 + 8 + 8 + 16);
  }
});

Deno.test("AckOpener.open() returns each count, in sequence", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await AckSealer.create(key, parties);
  const opener = await AckOpener.create(key, parties);
  for (const received of [262_144, 524_288, 600_000]) {
    strictEqual(await opener.open(await sealer.seal(received)), received);
  }
});

Deno.test("AckOpener.open() refuses an Ack sealed under another key, parties, transfer or the Data direction: file acks failed authentication", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const other = crypto.getRandomValues(new Uint8Array(32));
  const plaintext = u64(1000n);
  const wrong: [string, Uint8Array, DataParties, 1 | 2][] = [
    ["key", other, parties, 2],
    // The sender and recipient swapped: what an Ack sealed by the sender would name.
    ["parties", key, { ...parties, sender: parties.recipient, recipient: parties.sender }, 2],
    ["transfer", key, { ...parties, transferId: new Uint8Array(16) }, 2],
    ["data direction", key, parties, 1],
  ];
  for (const [what, sealKey, sealParties, kind] of wrong) {
    const sealed = await sealBySpec(kind, sealKey, sealParties, 0n, plaintext);
    // The clear kind and transfer id are the opener's own: only the seal tells them apart.
    sealed[0] = 2;
    sealed.set(parties.transferId, 1);
    await rejects((await AckOpener.create(key, parties)).open(sealed), isAuthFailure, what);
  }
});

Deno.test("AckOpener.open() refuses an Ack whose clear transfer id is not its own: file acks for another transfer arrived", async () => {
  strictEqual(ACK_OTHER_TRANSFER, "file acks for another transfer arrived");
  const key = crypto.getRandomValues(new Uint8Array(32));
  const first = await (await AckSealer.create(key, parties)).seal(42);
  const otherParties = { ...parties, transferId: crypto.getRandomValues(new Uint8Array(16)) };
  const other = await (await AckSealer.create(key, otherParties)).seal(42);
  await rejects((await AckOpener.create(key, parties)).open(other), isOtherTransfer);
  for (let i = 1; i < 17; i++) {
    const flipped = first.slice();
    flipped[i]! ^= 0x80;
    await rejects((await AckOpener.create(key, parties)).open(flipped), isOtherTransfer, `${i}`);
  }
  const opener = await AckOpener.create(key, parties);
  await rejects(opener.open(other), isOtherTransfer);
  await rejects(opener.open(first), isOtherTransfer);
  strictEqual(await (await AckOpener.create(key, parties)).open(first), 42);
});

Deno.test("AckOpener.open() refuses a flipped kind byte, every flipped bit from the sequence on, and every truncation", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealed = await (await AckSealer.create(key, parties)).seal(42);
  for (let i = 0; i < sealed.length; i = i === 0 ? 17 : i + 1) {
    const flipped = sealed.slice();
    flipped[i]! ^= 0x01;
    await rejects((await AckOpener.create(key, parties)).open(flipped), isAuthFailure, `${i}`);
  }
  for (const length of [0, 1, 25, 40, sealed.length - 1]) {
    await rejects(
      (await AckOpener.create(key, parties)).open(sealed.subarray(0, length)),
      isAuthFailure,
      `length ${length}`,
    );
  }
});

Deno.test("AckOpener.open() refuses a dropped, replayed or reordered Ack: file acks were dropped or replayed on the way", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealer = await AckSealer.create(key, parties);
  const sealed = [];
  for (let n = 1; n <= 3; n++) sealed.push(await sealer.seal(n * 262_144));
  const cases: [string, Uint8Array[]][] = [
    ["first dropped", [sealed[1]!]],
    ["one dropped", [sealed[0]!, sealed[2]!]],
    ["replayed", [sealed[0]!, sealed[1]!, sealed[0]!]],
    ["delivered twice", [sealed[0]!, sealed[0]!]],
  ];
  for (const [what, delivered] of cases) {
    const opener = await AckOpener.create(key, parties);
    for (const bytes of delivered.slice(0, -1)) await opener.open(bytes);
    await rejects(opener.open(delivered.at(-1)!), isSequenceFailure, what);
    // Fails closed: even the Ack it expected is refused now.
    await rejects(opener.open(sealed[delivered.length - 1]!), isSequenceFailure, what);
  }
});

Deno.test("AckOpener.open() refuses a sealed `received` that is not one u64 of a safe size", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  for (const plaintext of [new Uint8Array(7), new Uint8Array(9), u64(2n ** 53n)]) {
    const sealed = await sealBySpec(2, key, parties, 0n, plaintext);
    await rejects(
      (await AckOpener.create(key, parties)).open(sealed),
      (error) => error instanceof ProtocolError && error.code === "bad_transfer_message",
    );
  }
});

Deno.test("AckSealer.seal() refuses a negative or unsafe count; create() refuses keys and ids of the wrong length", async () => {
  const sealer = await AckSealer.create(new Uint8Array(32), parties);
  for (const received of [-1, 0.5, 2 ** 53, Number.NaN]) {
    await rejects(sealer.seal(received), RangeError, `${received}`);
  }
  for (const create of [AckSealer.create, AckOpener.create]) {
    await rejects(create(new Uint8Array(31), parties), RangeError);
    await rejects(
      create(new Uint8Array(32), { ...parties, recipient: new Uint8Array(33) }),
      RangeError,
    );
    await rejects(
      create(new Uint8Array(32), { ...parties, transferId: new Uint8Array(15) }),
      RangeError,
    );
  }
});
