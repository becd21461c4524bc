/**
 * Transfer ids at a recipient: transfers are kept by (sender, whole 16-byte id), so a hostile
 * member whose offer reuses another member's id, or only its first 4 bytes (the 8 hex digits the
 * user sees), neither replaces nor steers that member's transfer; a sender reusing an id of its
 * own is refused. Real signatures, real files; the manager is driven message by message.
 */

import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import { authorOf } from "../../lib/chat/room_messages.ts";
import { TransferManager } from "../../lib/transfer/transfer.ts";
import { IncomingTransfers } from "../../lib/transfer/transfer_incoming.ts";
import { TransferEvents } from "../../lib/transfer/transfer_progress.ts";
import {
  decodeTransfer,
  encodeManifest,
  encodeTransfer,
  signOffer,
} from "../../lib/transfer/transfer_messages.ts";
import { identities } from "../_helpers/room.ts";
import { recipientContext } from "../_helpers/transfer_context.ts";

const [alice, bob, mallory] = await identities(3) as [Identity, Identity, Identity];
const roomId = crypto.getRandomValues(new Uint8Array(16));
let counter = BigInt(Date.now()) * 1000n + 5_000_000_000n;

/** Alice's transfer context, with Bob and Mallory in her roster; `sent` and `events` collect. */
function aliceContext(receiveDir: string) {
  return recipientContext(roomId, [[alice, "alice"], [bob, "bob"], [mallory, "mallory"]], {
    receiveDir,
  });
}

/** Alice's transfer manager, with Bob and Mallory in her roster; `sent` and `events` collect. */
function aliceManager(receiveDir: string) {
  const { context, sent, events } = aliceContext(receiveDir);
  return { manager: new TransferManager(context), sent, events };
}

const CONTENT = new TextEncoder().encode("bob's real file");
const entries = [{ path: "report.txt", size: CONTENT.length, sha256: await sha256(CONTENT) }];
const manifest = encodeManifest(entries);

/** A signed offer from `from` to Alice, as the relay forwards it (party = the sender). */
async function offerFrom(from: Identity, id: Uint8Array, name = "report.txt") {
  const offer = await signOffer(from, {
    roomId,
    sender: authorOf(from.fingerprint),
    recipient: authorOf(alice.fingerprint),
    transferId: id,
  }, {
    counter: counter++,
    timestamp: Date.now(),
    name,
    fileCount: 1,
    totalSize: CONTENT.length,
    manifestSha256: await sha256(manifest),
  });
  return decodeTransfer(encodeTransfer.offer(authorOf(from.fingerprint), id, offer));
}

const offers = (events: ChatEvent[]) =>
  events.filter((e): e is ChatEvent & { type: "offer" } => e.type === "offer");
const rejections = (events: ChatEvent[]) =>
  events.flatMap((e) => e.type === "rejected" ? [e.reason] : []);

Deno.test("a hostile offer reusing another member's transfer id cannot take that transfer over", async () => {
  const dir = await Deno.makeTempDir({ prefix: "securechat-ids-" });
  try {
    const { manager, sent, events } = aliceManager(dir);
    const bobId = crypto.getRandomValues(new Uint8Array(16));
    await manager.handle(await offerFrom(bob, bobId));
    // Same first 4 bytes (what the user sees), then the very same 16 bytes.
    const prefixId = crypto.getRandomValues(new Uint8Array(16));
    prefixId.set(bobId.subarray(0, 4));
    await manager.handle(await offerFrom(mallory, prefixId, "evil.txt"));
    await manager.handle(await offerFrom(mallory, bobId.slice(), "evil2.txt"));
    const shown = offers(events);
    strictEqual(shown.length, 3);
    deepStrictEqual(shown.map((o) => o.from.name), ["bob", "mallory", "mallory"]);
    strictEqual(new Set(shown.map((o) => o.id)).size, 3, "each offer has its own id to type");
    // The user accepts Bob's offer by the id shown for it.
    await manager.accept(shown[0]!.id);
    const accept = decodeTransfer(sent.at(-1)!);
    strictEqual(accept.type, "accept");
    deepStrictEqual(accept.party, authorOf(bob.fingerprint));
    deepStrictEqual(accept.transferId, bobId);
    // Mallory's Cancel under the shared id touches only her own offer.
    const party = authorOf(mallory.fingerprint);
    await manager.handle(decodeTransfer(encodeTransfer.cancel(party, bobId, "gotcha")));
    const bobParty = authorOf(bob.fingerprint);
    await manager.handle(decodeTransfer(encodeTransfer.manifest(bobParty, bobId, 0, manifest)));
    await manager.handle(decodeTransfer(encodeTransfer.data(bobParty, bobId, 0, 0, CONTENT)));
    await manager.handle(decodeTransfer(encodeTransfer.done(bobParty, bobId)));
    const done = events.find((e) => e.type === "transfer" && e.state === "done");
    ok(done && done.type === "transfer" && done.peer.name === "bob", JSON.stringify(events));
    deepStrictEqual(await Deno.readFile(`${dir}/report.txt`), CONTENT);
    // Mallory's offer under the other id is still pending, under its own short id.
    notStrictEqual(shown[1]!.id, shown[0]!.id);
    await manager.reject(shown[1]!.id);
    strictEqual(decodeTransfer(sent.at(-1)!).type, "reject");
    deepStrictEqual(decodeTransfer(sent.at(-1)!).transferId, prefixId);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sender reusing the id of its own earlier transfer is refused with a specific reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "securechat-ids-" });
  try {
    const { manager, events } = aliceManager(dir);
    const id = crypto.getRandomValues(new Uint8Array(16));
    await manager.handle(await offerFrom(bob, id));
    await manager.handle(await offerFrom(bob, id, "other.txt"));
    strictEqual(offers(events).length, 1);
    deepStrictEqual(offers(events)[0]!.name, "report.txt");
    deepStrictEqual(rejections(events), [
      "a file offer that reuses the id of an earlier transfer from that member",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IncomingTransfers keeps only open transfers: rejected, declined, done and cancelled ones are dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "securechat-ids-" });
  try {
    const { context, events } = aliceContext(dir);
    const incoming = new IncomingTransfers(context, new TransferEvents(context));
    const bobParty = authorOf(bob.fingerprint);
    const offer = async (short: string, name?: string) => {
      const id = crypto.getRandomValues(new Uint8Array(16));
      const message = await offerFrom(bob, id, name);
      if (message.type !== "offer") throw new Error("not an offer");
      await incoming.onOffer(message, short);
      return id;
    };
    const open = () => [...incoming.values()].length;
    // Rejected at once (a hidden name), declined by the user, received, cancelled, pending.
    for (let i = 0; i < 10; i++) await offer(`hidden${i}`, ".hidden.txt");
    for (let i = 0; i < 10; i++) {
      await offer(`declined${i}`);
      await incoming.reject(`declined${i}`);
    }
    const finishedIds = [];
    for (let i = 0; i < 5; i++) {
      finishedIds.push(await offer(`done${i}`));
      await incoming.accept(`done${i}`);
      const inc = [...incoming.values()].find((t) => t.short === `done${i}`)!;
      await incoming.onManifest(inc, 0, manifest);
      await incoming.onData(inc, {
        type: "data",
        party: bobParty,
        transferId: inc.id,
        fileIndex: 0,
        offset: 0,
        bytes: CONTENT,
      });
      await incoming.onDone(inc);
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
    const reused = await offerFrom(bob, finishedIds[0]!);
    if (reused.type !== "offer") throw new Error("not an offer");
    await incoming.onOffer(reused, "again");
    strictEqual(
      rejections(events).at(-1),
      "a file offer that reuses the id of an earlier transfer from that member",
    );
    strictEqual(incoming.size, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
