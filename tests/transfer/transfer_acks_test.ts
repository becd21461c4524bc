/**
 * Acks in the data channel (PROTOCOL.md 14.4): the recipient acknowledges in Directs sealed under
 * the transfer's data key, never in a Sealed message (an Ack there is refused); the relay cannot
 * drop, replay, reorder or alter one unnoticed (the sender cancels, naming acks, and the
 * recipient keeps its authenticated part file for a resume); an Ack widens the sender's window no
 * further than what was sent; and two members sending each other transfers under the same id
 * keep them apart by the Direct's kind. Real files and seals; managers wired as the room wires
 * them.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { sha256, u64 } from "../../lib/core/bytes.ts";
import { authorOf } from "../../lib/keys/identity.ts";
import { AckOpener, AckSealer } from "../../lib/transfer/ack_seal.ts";
import {
  ACK_FAILED_AUTHENTICATION,
  ACK_OUT_OF_SEQUENCE,
  DIRECT_KIND,
} from "../../lib/transfer/data_seal.ts";
import { OutgoingTransfers } from "../../lib/transfer/transfer_outgoing.ts";
import { TransferEvents } from "../../lib/transfer/transfer_progress.ts";
import {
  ACK_EVERY_BYTES,
  encodeManifest,
  encodeTransfer,
  MAX_DATA_SLICE,
  TRANSFER_MESSAGE,
  WINDOW_BYTES,
} from "../../lib/transfer/transfer_messages.ts";
import {
  flipBitOfSecond,
  fromTheSender,
  HandSender,
  inTempRoom,
  lastTransfer,
  listDir,
  memberInfos,
  randomBytes,
  SEQUENCE_FAULTS,
  type StreamFault,
  type TestEndpoint,
  type TestRoom,
  transferEnded,
  type TransferEvent,
  transferEvents,
} from "../_helpers/transfer_context.ts";

const [alice, bob] = await memberInfos("alice", "bob") as [MemberInfo, MemberInfo];

const directsOf = (endpoint: TestEndpoint) =>
  endpoint.sent.filter((s) => s.kind === "direct").map((s) => s.bytes);

/** Alice (sender) and Bob (recipient, accepting into `dirs.in`). */
async function withRoom(
  body: (
    room: TestRoom,
    sender: TestEndpoint,
    receiver: TestEndpoint,
    dirs: { out: string; in: string },
  ) => Promise<void>,
) {
  await inTempRoom("securechat-acks-", async (room, root) => {
    const dirs = { out: `${root}/out`, in: `${root}/in` };
    await Deno.mkdir(dirs.out);
    await Deno.mkdir(dirs.in);
    const sender = room.join(alice, { receiveDir: dirs.in, autoAccept: true });
    const receiver = room.join(bob, { receiveDir: dirs.in, autoAccept: true });
    await body(room, sender, receiver, dirs);
  });
}

Deno.test("the recipient acknowledges in Directs sealed under the data key, in sequence, and in no Sealed message", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const slices = 23;
    const content = randomBytes(slices * MAX_DATA_SLICE - 100);
    await Deno.writeFile(`${dirs.out}/film.bin`, content);
    await sender.manager.offer(`${dirs.out}/film.bin`, bob);
    await receiver.until(transferEnded("receive"));
    await sender.until(transferEnded("send"));
    strictEqual(lastTransfer(receiver, "receive").state, "done");
    strictEqual(lastTransfer(sender, "send").state, "done");
    deepStrictEqual(await Deno.readFile(`${dirs.in}/film.bin`), content);
    // What Bob sealed for Alice: no Ack among them.
    deepStrictEqual(receiver.sealed().map((m) => m.type), ["accept", "resume", "complete"]);
    // Bob's Directs are all Acks to Alice for this transfer, and open in sequence under its key.
    const offer = sender.sealed()[0]!;
    ok(offer.type === "offer");
    const acks = directsOf(receiver);
    ok(receiver.sent.every((s) => s.kind === "sealed" || s.to.fingerprint === alice.fingerprint));
    const opener = await AckOpener.create(offer.offer.dataKey, {
      sender: authorOf(alice.fingerprint),
      recipient: authorOf(bob.fingerprint),
      transferId: offer.transferId,
    });
    const received = [];
    for (const ack of acks) {
      strictEqual(ack[0], DIRECT_KIND.ack);
      deepStrictEqual(ack.subarray(1, 17), offer.transferId);
      received.push(await opener.open(ack));
    }
    // Every ACK_EVERY_BYTES (5 slices make the first 256 KiB) and at the end of the file.
    const every = Math.ceil(ACK_EVERY_BYTES / MAX_DATA_SLICE);
    const expected = [];
    for (let n = every; n < slices; n += every) expected.push(n * MAX_DATA_SLICE);
    expected.push(content.length);
    deepStrictEqual(received, expected);
  });
});

/** Slices of a file 40 slices longer than the window: its sender needs Bob's Acks to finish. */
const BEYOND_WINDOW = Math.ceil(WINDOW_BYTES / MAX_DATA_SLICE) + 40;

/** Alice sends Bob a file larger than the window while the relay does `fault` to Bob's Acks. */
async function tamperedAcks(fault: StreamFault) {
  let result:
    | { sender: TransferEvent; receiver: TransferEvent; resumed?: number | undefined }
    | undefined;
  await withRoom(async (room, sender, receiver, dirs) => {
    const content = randomBytes(BEYOND_WINDOW * MAX_DATA_SLICE);
    await Deno.writeFile(`${dirs.out}/file.bin`, content);
    room.tamperWithDirectsFrom(bob, fromTheSender(fault));
    await sender.manager.offer(`${dirs.out}/file.bin`, bob);
    await sender.until(transferEnded("send"));
    await receiver.until(transferEnded("receive"));
    result = { sender: lastTransfer(sender, "send"), receiver: lastTransfer(receiver, "receive") };
    if (result.receiver.state === "done") return;
    // Every byte Bob wrote was authenticated: his part file is kept, and a resend resumes.
    const part = await Deno.readFile(`${dirs.in}/file.bin.securechat-part`);
    ok(part.length > 0);
    deepStrictEqual(part, content.subarray(0, part.length));
    room.relayDirect = (from, _to, bytes) => [{ from, bytes }];
    await sender.manager.offer(`${dirs.out}/file.bin`, bob);
    await receiver.until((events) => transferEvents(events).some((e) => e.state === "done"));
    result.resumed = lastTransfer(receiver, "receive").resumed;
    strictEqual(result.resumed, part.length);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/file.bin`), content);
    deepStrictEqual(await listDir(dirs.in), ["file.bin"]);
  });
  return result!;
}

for (const [what, fault] of SEQUENCE_FAULTS) {
  Deno.test(`an Ack the relay ${what} cancels the transfer: ${ACK_OUT_OF_SEQUENCE}; the part file is kept and resumed`, async () => {
    const result = await tamperedAcks(fault);
    strictEqual(result.sender.state, "failed");
    strictEqual(result.sender.reason, ACK_OUT_OF_SEQUENCE);
    strictEqual(result.receiver.state, "cancelled");
    strictEqual(result.receiver.reason, ACK_OUT_OF_SEQUENCE);
    ok(result.resumed! > 0);
  });
}

for (const [where, offset] of [["sequence number", 1 + 16 + 7], ["tag", -1]] as const) {
  Deno.test(`an Ack whose ${where} the relay flipped a bit of cancels the transfer: ${ACK_FAILED_AUTHENTICATION}`, async () => {
    const result = await tamperedAcks(flipBitOfSecond(offset));
    strictEqual(result.sender.state, "failed");
    strictEqual(result.sender.reason, ACK_FAILED_AUTHENTICATION);
    strictEqual(result.receiver.state, "cancelled");
    strictEqual(result.receiver.reason, ACK_FAILED_AUTHENTICATION);
    ok(result.resumed! > 0);
  });
}

Deno.test("control: the same harness with an honest relay delivers the file", async () => {
  const result = await tamperedAcks((acks) => [acks.at(-1)!]);
  strictEqual(result.sender.state, "done");
  strictEqual(result.receiver.state, "done");
});

Deno.test("an Ack in a Sealed message is refused, and only a sealed Ack Direct opens the window", async () => {
  await inTempRoom("securechat-acks-", async (room, dir) => {
    const sender = room.join(alice);
    room.addPeer(bob);
    await Deno.writeFile(`${dir}/big.bin`, randomBytes(BEYOND_WINDOW * MAX_DATA_SLICE));
    await sender.manager.offer(`${dir}/big.bin`, bob);
    const offer = sender.sealed()[0]!;
    ok(offer.type === "offer");
    const self = authorOf(alice.fingerprint);
    await sender.manager.handleSealed(bob, encodeTransfer.accept(self, offer.transferId));
    await sender.until(() => sender.sealed().some((m) => m.type === "manifest"));
    await sender.manager.handleSealed(bob, encodeTransfer.resume(self, offer.transferId, []));
    // A full window goes out, then the sender waits for an Ack.
    const window = Math.floor(WINDOW_BYTES / MAX_DATA_SLICE);
    await sender.until(() => directsOf(sender).length >= window);
    await new Promise((resolve) => setTimeout(resolve, 50));
    strictEqual(directsOf(sender).length, window);
    // Bob acknowledges everything in a Sealed message, as before 14.4: refused.
    await sender.manager.handleSealed(
      bob,
      Uint8Array.of(TRANSFER_MESSAGE.ack, ...self, ...offer.transferId, ...u64(BigInt(2 ** 30))),
    );
    deepStrictEqual(
      sender.events.flatMap((e) => e.type === "rejected" ? [e.reason] : []),
      ["peer sent a malformed transfer message: file acks (0x36) travel only as Directs"],
    );
    // The same Ack, sealed in a Direct, is taken: the sender goes on.
    const acks = await AckSealer.create(offer.offer.dataKey, {
      sender: self,
      recipient: authorOf(bob.fingerprint),
      transferId: offer.transferId,
    });
    await sender.manager.handleDirect(bob, await acks.seal(window * MAX_DATA_SLICE));
    await sender.until(() => directsOf(sender).length > window);
    await sender.manager.cancel();
    strictEqual(lastTransfer(sender, "send").state, "cancelled");
  });
});

Deno.test("OutgoingTransfers.onAck() widens the window by what was acknowledged, never beyond what was sent", async () => {
  await inTempRoom("securechat-acks-", async (room, dir) => {
    room.addPeer(bob);
    const endpoint = room.join(alice);
    const { options } = endpoint;
    await Deno.writeFile(`${dir}/x.bin`, randomBytes(10));
    const outgoing = new OutgoingTransfers(options, new TransferEvents(options));
    await outgoing.offer(`${dir}/x.bin`, bob, () => "x");
    const out = [...outgoing.values()][0]!;
    const offer = endpoint.sealed()[0]!;
    ok(offer.type === "offer");
    const acks = await AckSealer.create(offer.offer.dataKey, {
      sender: authorOf(alice.fingerprint),
      recipient: authorOf(bob.fingerprint),
      transferId: out.id,
    });
    // Nothing sent yet: a terabyte acknowledged opens nothing.
    await outgoing.onAck(out, await acks.seal(2 ** 40));
    strictEqual(out.acked, 0);
    out.sent = 300_000;
    await outgoing.onAck(out, await acks.seal(2 ** 40));
    strictEqual(out.acked, 300_000);
    // An Ack for less than an earlier one takes nothing back.
    await outgoing.onAck(out, await acks.seal(1000));
    strictEqual(out.acked, 300_000);
    strictEqual(out.finished, false);
    outgoing.end(out, "cancelled", "over", "over");
  });
});

Deno.test("Alice sending Bob transfer X while Bob sends Alice his own transfer X: the Direct's kind keeps them apart", async () => {
  await withRoom(async (_room, a, b, dirs) => {
    // Alice's file needs Bob's Acks to get past her window; Bob's needs Alice's Acks to be sent.
    const mine = randomBytes(3 * 1024 * 1024);
    const his = randomBytes(12 * MAX_DATA_SLICE + 7);
    await Deno.writeFile(`${dirs.out}/alice.bin`, mine);
    await a.manager.offer(`${dirs.out}/alice.bin`, bob);
    const x = a.sealed()[0]!.transferId;
    // Bob's own transfer to Alice under the same id, sent by hand through the room (his manager
    // receives Alice's, and has no outgoing transfer of its own).
    const hand = new HandSender(bob, a, x);
    const entries = [{ path: "bob.bin", size: his.length, sha256: await sha256(his) }];
    const manifest = encodeManifest(entries);
    const toAlice = (bytes: Uint8Array) => b.options.sendSealed(bytes, alice);
    await toAlice(encodeTransfer.offer(hand.party, x, {
      timestamp: Date.now(),
      name: "bob.bin",
      fileCount: 1,
      totalSize: his.length,
      manifestSha256: await sha256(manifest),
      dataKey: hand.dataKey.slice(),
    }));
    await toAlice(encodeTransfer.manifest(hand.party, x, 0, manifest));
    for (let offset = 0; offset < his.length; offset += MAX_DATA_SLICE) {
      const slice = his.subarray(offset, offset + MAX_DATA_SLICE);
      await b.options.sendDirect(await hand.seal(0, offset, slice), alice);
    }
    await toAlice(encodeTransfer.done(hand.party, x, Math.ceil(his.length / MAX_DATA_SLICE)));

    const done = (direction: "send" | "receive") => (events: ChatEvent[]) =>
      transferEvents(events).some((e) => e.direction === direction && e.state === "done");
    await a.until(done("receive"));
    await b.until(done("receive"));
    await a.until(done("send"));
    deepStrictEqual(await Deno.readFile(`${dirs.in}/bob.bin`), his);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/alice.bin`), mine);
    deepStrictEqual(
      [...a.events, ...b.events].filter((e) =>
        e.type === "rejected" || e.type === "transfer" &&
          ["failed", "cancelled"].includes(e.state)
      ),
      [],
    );
    // Both directions of Directs from Alice name X: her Data one way, her Acks of Bob's file.
    const fromAlice = directsOf(a);
    ok(fromAlice.every((d) => d.subarray(1, 17).every((byte, i) => byte === x[i])));
    const kinds = new Set(fromAlice.map((d) => d[0]));
    deepStrictEqual([...kinds].sort(), [DIRECT_KIND.data, DIRECT_KIND.ack]);
    // Alice's Acks open, in sequence, as Acks of Bob's transfer, and count his whole file.
    // (An Ack every 256 KiB: every second slice of 262091 bytes, then the file's end.)
    deepStrictEqual(await hand.acks(), [
      ...[2, 4, 6, 8, 10, 12].map((n) => n * MAX_DATA_SLICE),
      his.length,
    ]);
  });
});
