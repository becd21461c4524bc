/**
 * Transfer ids and senders at a recipient: transfers are kept by (sender, whole 16-byte id), where
 * the sender is the one MLS authenticated (or, for Data, the one whose key opens it). A hostile
 * member whose offer reuses another member's id, or only its first 4 bytes (the 8 hex digits the
 * user sees), neither replaces nor steers that member's transfer; nor can it continue another
 * member's transfer with its own Manifest, Data, Done or Cancel. A sender reusing an id of its own
 * is refused, as is a message addressed to someone else or from someone not in the room, and one
 * sender holds at most MAX_OPEN_PER_SENDER transfers open. Real files and seals; the recipient's
 * manager is driven message by message.
 */

import { authorOf } from "../../lib/keys/identity.ts";
import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import { IncomingTransfers, MAX_OPEN_PER_SENDER } from "../../lib/transfer/transfer_incoming.ts";
import { TransferEvents } from "../../lib/transfer/transfer_progress.ts";
import { DATA_FAILED_AUTHENTICATION } from "../../lib/transfer/data_seal.ts";
import {
  decodeTransfer,
  encodeManifest,
  encodeTransfer,
  TRANSFER_MESSAGE,
} from "../../lib/transfer/transfer_messages.ts";
import {
  HandSender,
  inTempRoom,
  memberInfos,
  type TestEndpoint,
  type TestRoom,
} from "../_helpers/transfer_context.ts";

const [alice, bob, mallory, stranger] = await memberInfos(
  "alice",
  "bob",
  "mallory",
  "stranger",
) as [MemberInfo, MemberInfo, MemberInfo, MemberInfo];

const CONTENT = new TextEncoder().encode("bob's real file");
const entries = [{ path: "report.txt", size: CONTENT.length, sha256: await sha256(CONTENT) }];
const manifest = encodeManifest(entries);

/** Alice, receiving into a fresh folder, in a room with Bob and Mallory (driven by the test). */
async function withAlice(
  body: (alice: TestEndpoint, dir: string, room: TestRoom) => Promise<void>,
  autoAccept = false,
) {
  await inTempRoom("securechat-ids-", async (room, dir) => {
    room.addPeer(bob);
    room.addPeer(mallory);
    await body(room.join(alice, { receiveDir: dir, autoAccept }), dir, room);
  });
}

/** `from` offers Alice report.txt (or `name`) under `id`. */
async function offerFrom(from: MemberInfo, to: TestEndpoint, id?: Uint8Array, name = "report.txt") {
  const sender = new HandSender(from, to, id);
  await sender.offer({
    timestamp: Date.now(),
    name,
    fileCount: 1,
    totalSize: CONTENT.length,
    manifestSha256: await sha256(manifest),
  });
  return sender;
}

const offers = (events: ChatEvent[]) =>
  events.filter((e): e is ChatEvent & { type: "offer" } => e.type === "offer");
const rejections = (events: ChatEvent[]) =>
  events.flatMap((e) => e.type === "rejected" ? [e.reason] : []);

Deno.test("a hostile offer reusing another member's transfer id cannot take that transfer over", async () => {
  await withAlice(async (alice, dir) => {
    const fromBob = await offerFrom(bob, alice);
    // Same first 4 bytes (what the user sees), then the very same 16 bytes.
    const prefixId = crypto.getRandomValues(new Uint8Array(16));
    prefixId.set(fromBob.id.subarray(0, 4));
    await offerFrom(mallory, alice, prefixId, "evil.txt");
    await offerFrom(mallory, alice, fromBob.id.slice(), "evil2.txt");
    const shown = offers(alice.events);
    strictEqual(shown.length, 3);
    deepStrictEqual(shown.map((o) => o.from.name), ["bob", "mallory", "mallory"]);
    strictEqual(new Set(shown.map((o) => o.id)).size, 3, "each offer has its own id to type");
    // The user accepts Bob's offer by the id shown for it.
    await alice.manager.accept(shown[0]!.id);
    const accept = alice.sent.at(-1)!;
    strictEqual(accept.to.fingerprint, bob.fingerprint);
    const decoded = decodeTransfer(accept.bytes);
    strictEqual(decoded.type, "accept");
    deepStrictEqual(decoded.party, authorOf(bob.fingerprint));
    deepStrictEqual(decoded.transferId, fromBob.id);
    // Mallory's Cancel under the shared id touches only her own offer.
    await alice.manager.handleSealed(
      mallory,
      encodeTransfer.cancel(authorOf(alice.info.fingerprint), fromBob.id, "gotcha"),
    );
    await fromBob.sealed(encodeTransfer.manifest(fromBob.party, fromBob.id, 0, manifest));
    await fromBob.data(0, 0, CONTENT);
    await fromBob.done();
    const done = alice.events.find((e) => e.type === "transfer" && e.state === "done");
    ok(done && done.type === "transfer" && done.peer.name === "bob", JSON.stringify(alice.events));
    deepStrictEqual(await Deno.readFile(`${dir}/report.txt`), CONTENT);
    // Mallory's offer under the other id is still pending, under its own short id.
    notStrictEqual(shown[1]!.id, shown[0]!.id);
    await alice.manager.reject(shown[1]!.id);
    const reject = alice.sent.at(-1)!;
    strictEqual(reject.to.fingerprint, mallory.fingerprint);
    strictEqual(decodeTransfer(reject.bytes).type, "reject");
    deepStrictEqual(decodeTransfer(reject.bytes).transferId, prefixId);
  });
});

Deno.test("an Offer from Bob cannot be continued by Mallory: her Manifest, Data, Done and Cancel under his id name nothing", async () => {
  await withAlice(async (alice, dir) => {
    const fromBob = await offerFrom(bob, alice);
    strictEqual(decodeTransfer(alice.sent.at(-1)!.bytes).type, "accept");
    // Mallory knows Bob's id and even his data key: she still cannot feed his transfer.
    const asMallory = new HandSender(mallory, alice, fromBob.id);
    asMallory.dataKey.set(fromBob.dataKey);
    const forged = new TextEncoder().encode("mallory's version");
    const evil = [{ path: "report.txt", size: forged.length, sha256: await sha256(forged) }];
    await asMallory.sealed(
      encodeTransfer.manifest(asMallory.party, asMallory.id, 0, encodeManifest(evil)),
    );
    await asMallory.data(0, 0, forged);
    await asMallory.done();
    await asMallory.sealed(encodeTransfer.cancel(asMallory.party, asMallory.id, "stop"));
    deepStrictEqual(
      alice.events.flatMap((e) => e.type === "transfer" ? [e.state] : []),
      ["receiving"],
    );
    // Bob's transfer goes on and ends with his file.
    await fromBob.sealed(encodeTransfer.manifest(fromBob.party, fromBob.id, 0, manifest));
    await fromBob.data(0, 0, CONTENT);
    await fromBob.done();
    const final = alice.events.filter((e) => e.type === "transfer").at(-1);
    ok(final?.type === "transfer");
    deepStrictEqual([final.state, final.peer.name], ["done", "bob"]);
    deepStrictEqual(await Deno.readFile(`${dir}/report.txt`), CONTENT);
    deepStrictEqual(
      alice.sent.filter((s) => s.to.fingerprint === mallory.fingerprint),
      [],
      "nothing was ever sent to Mallory",
    );
  }, true);
});

Deno.test("Data that Mallory sealed under Bob's data key does not open as Bob's, even when the relay says it is his", async () => {
  await withAlice(async (alice, dir) => {
    const fromBob = await offerFrom(bob, alice);
    await fromBob.sealed(encodeTransfer.manifest(fromBob.party, fromBob.id, 0, manifest));
    const asMallory = new HandSender(mallory, alice, fromBob.id);
    asMallory.dataKey.set(fromBob.dataKey);
    await alice.manager.handleDirect(bob, await asMallory.seal(0, 0, CONTENT));
    await alice.manager.idle();
    const final = alice.events.filter((e) => e.type === "transfer").at(-1);
    ok(final?.type === "transfer");
    deepStrictEqual([final.state, final.reason], ["failed", DATA_FAILED_AUTHENTICATION]);
    deepStrictEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  }, true);
});

Deno.test("a sender reusing the id of its own earlier transfer is refused with a specific reason", async () => {
  await withAlice(async (alice) => {
    const first = await offerFrom(bob, alice);
    await offerFrom(bob, alice, first.id, "other.txt");
    strictEqual(offers(alice.events).length, 1);
    deepStrictEqual(offers(alice.events)[0]!.name, "report.txt");
    deepStrictEqual(rejections(alice.events), [
      "a file offer that reuses the id of an earlier transfer from that member",
    ]);
  });
});

Deno.test("handleSealed() refuses a message addressed to another member, from outside the room, or carrying Data", async () => {
  await withAlice(async (alice) => {
    // Bob's Offer names Mallory as its recipient, yet reaches Alice.
    await alice.manager.handleSealed(
      bob,
      encodeTransfer.offer(authorOf(mallory.fingerprint), new Uint8Array(16), {
        timestamp: 0,
        name: "x",
        fileCount: 1,
        totalSize: 1,
        manifestSha256: new Uint8Array(32),
        dataKey: new Uint8Array(32).fill(7),
      }),
    );
    await offerFrom(stranger, alice);
    const data = Uint8Array.of(
      TRANSFER_MESSAGE.data,
      ...authorOf(alice.info.fingerprint),
      ...new Uint8Array(16),
      ...new Uint8Array(12),
      1,
    );
    await alice.manager.handleSealed(bob, data);
    deepStrictEqual(rejections(alice.events), [
      "a file transfer message addressed to another member",
      "a file transfer message from someone not in the room",
      "peer sent a malformed transfer message: file data (0x35) travels only as a Direct",
    ]);
    deepStrictEqual(offers(alice.events), []);
    deepStrictEqual(alice.sent, []);
  });
});

Deno.test(`one sender holds at most ${MAX_OPEN_PER_SENDER} transfers open; another sender's offers still come through`, async () => {
  await withAlice(async (alice) => {
    for (let i = 0; i < MAX_OPEN_PER_SENDER; i++) await offerFrom(bob, alice);
    strictEqual(offers(alice.events).length, MAX_OPEN_PER_SENDER);
    await offerFrom(bob, alice, undefined, "one-too-many.txt");
    const refused = alice.events.at(-1)!;
    ok(refused.type === "transfer" && refused.state === "rejected");
    strictEqual(
      refused.reason,
      `too many file offers open from "bob" (at most ${MAX_OPEN_PER_SENDER})`,
    );
    strictEqual(decodeTransfer(alice.sent.at(-1)!.bytes).type, "reject");
    await offerFrom(mallory, alice);
    strictEqual(offers(alice.events).at(-1)!.from.name, "mallory");
    // Once one of Bob's ends, he may offer again.
    await alice.manager.reject(offers(alice.events)[0]!.id);
    await offerFrom(bob, alice, undefined, "now.txt");
    strictEqual(offers(alice.events).at(-1)!.name, "now.txt");
  });
});

Deno.test("IncomingTransfers keeps only open transfers: rejected, declined, done and cancelled ones are dropped", async () => {
  await withAlice(async (alice) => {
    const incoming = new IncomingTransfers(alice.options, new TransferEvents(alice.options));
    const events = alice.events;
    const offer = async (short: string, name = "report.txt") => {
      const sender = new HandSender(bob, alice);
      const message = decodeTransfer(
        encodeTransfer.offer(sender.party, sender.id, {
          timestamp: Date.now(),
          name,
          fileCount: 1,
          totalSize: CONTENT.length,
          manifestSha256: await sha256(manifest),
          dataKey: sender.dataKey.slice(),
        }),
      );
      if (message.type !== "offer") throw new Error("not an offer");
      await incoming.onOffer(bob, message, short);
      return sender;
    };
    const open = () => [...incoming.values()].length;
    // Rejected at once (a hidden name), declined by the user, received, cancelled, pending.
    for (let i = 0; i < 10; i++) await offer(`hidden${i}`, ".hidden.txt");
    for (let i = 0; i < 10; i++) {
      await offer(`declined${i}`);
      await incoming.reject(`declined${i}`);
    }
    const finished = [];
    for (let i = 0; i < 5; i++) {
      const sender = await offer(`done${i}`);
      finished.push(sender);
      await incoming.accept(`done${i}`);
      const inc = [...incoming.values()].find((t) => t.short === `done${i}`)!;
      await incoming.onManifest(inc, 0, manifest);
      const slice = await inc.opener.open(await sender.seal(0, 0, CONTENT));
      await incoming.onData(inc, slice);
      await incoming.onDone(inc, 1);
    }
    for (let i = 0; i < 2; i++) {
      await offer(`cancelled${i}`);
      await incoming.accept(`cancelled${i}`);
      const inc = [...incoming.values()].find((t) => t.short === `cancelled${i}`)!;
      await incoming.end(inc, "cancelled", "you cancelled it", true);
    }
    for (let i = 0; i < 3; i++) await offer(`pending${i}`);
    const states = events.flatMap((e) => e.type === "transfer" ? [e.state] : []);
    strictEqual(states.filter((s) => s === "done").length, 5);
    strictEqual(open(), 3);
    strictEqual(incoming.size, 3);
    // The ids of ended transfers are still refused when reused.
    const reused = decodeTransfer(
      encodeTransfer.offer(finished[0]!.party, finished[0]!.id, {
        timestamp: Date.now(),
        name: "again.txt",
        fileCount: 1,
        totalSize: 1,
        manifestSha256: new Uint8Array(32),
        dataKey: new Uint8Array(32).fill(1),
      }),
    );
    if (reused.type !== "offer") throw new Error("not an offer");
    await incoming.onOffer(bob, reused, "again");
    strictEqual(
      rejections(events).at(-1),
      "a file offer that reuses the id of an earlier transfer from that member",
    );
    strictEqual(incoming.size, 3);
  });
});
