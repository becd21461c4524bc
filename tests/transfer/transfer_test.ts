/**
 * File transfer between two TransferManagers wired to each other as the room wires them
 * (transfer messages in Sealed messages, Data in Directs the relay cannot read): files and folders
 * arrive identical and are only renamed after verification; offers can be rejected; a leftover
 * .part resumes; either side can cancel; every transfer has its own data key; the relay sees no
 * file byte and cannot alter, drop, replay or reorder Data unnoticed.
 */

import { authorOf } from "../../lib/keys/identity.ts";
import { deepStrictEqual, notDeepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import { SecurechatError } from "../../lib/core/errors.ts";
import { encodePartRecord } from "../../lib/transfer/part_record.ts";
import { DATA_FAILED_AUTHENTICATION, DATA_OUT_OF_SEQUENCE } from "../../lib/transfer/data_seal.ts";
import {
  encodeManifest,
  encodeTransfer,
  MAX_DATA_SLICE,
  WINDOW_BYTES,
} from "../../lib/transfer/transfer_messages.ts";
import {
  flipBitOfSecond,
  fromTheSender,
  inTempRoom,
  lastTransfer,
  listDir,
  memberInfos,
  randomBytes,
  type RelayedDirect,
  SEQUENCE_FAULTS,
  type StreamFault,
  type StreamRelay,
  type TestEndpoint,
  TestRoom,
  transferEnded,
  type TransferEvent,
  transferEvents,
} from "../_helpers/transfer_context.ts";

const [alice, bob, carol] = await memberInfos("alice", "bob", "carol") as [
  MemberInfo,
  MemberInfo,
  MemberInfo,
];

const offered = (events: ChatEvent[]) => events.some((e) => e.type === "offer");

/** Alice (sender) and Bob (recipient, receiving into `dirs.in`) in a room with Carol. */
async function withRoom(
  body: (
    room: TestRoom,
    sender: TestEndpoint,
    receiver: TestEndpoint,
    dirs: { out: string; in: string },
  ) => Promise<void>,
  policy: { autoAccept?: boolean } = {},
) {
  await inTempRoom("securechat-transfer-", async (room, root) => {
    const dirs = { out: `${root}/out`, in: `${root}/in` };
    await Deno.mkdir(dirs.out);
    await Deno.mkdir(dirs.in);
    const sender = room.join(alice);
    const receiver = room.join(bob, { receiveDir: dirs.in, ...policy });
    room.addPeer(carol);
    await body(room, sender, receiver, dirs);
  });
}

Deno.test("a file sent through the room arrives identical after the recipient accepts", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const content = randomBytes(5 * 1024 * 1024 + 123);
    await Deno.writeFile(`${dirs.out}/data.bin`, content);
    await sender.manager.offer(`${dirs.out}/data.bin`, bob);
    await receiver.until(offered);
    const offer = receiver.events.find((e) => e.type === "offer") as ChatEvent & { type: "offer" };
    strictEqual(offer.name, "data.bin");
    strictEqual(offer.size, content.length);
    strictEqual(offer.from.fingerprint, alice.fingerprint);
    // Nothing is written before acceptance.
    deepStrictEqual(await listDir(dirs.in), []);
    await receiver.manager.accept();
    await receiver.until(transferEnded("receive"));
    await sender.until(transferEnded("send"));
    strictEqual(lastTransfer(receiver).state, "done");
    strictEqual(lastTransfer(sender).state, "done");
    deepStrictEqual(await Deno.readFile(`${dirs.in}/data.bin`), content);
    deepStrictEqual(await listDir(dirs.in), ["data.bin"]);
  });
});

Deno.test("what the relay gets of a file: Directs of at most 262144 bytes that hold no file byte in the clear", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const content = randomBytes(3 * MAX_DATA_SLICE + 5);
    await Deno.writeFile(`${dirs.out}/secret.bin`, content);
    await sender.manager.offer(`${dirs.out}/secret.bin`, bob);
    await receiver.until(transferEnded("receive"));
    strictEqual(lastTransfer(receiver).state, "done");
    const directs = sender.sent.filter((s) => s.kind === "direct");
    deepStrictEqual(directs.map((d) => d.bytes.length), [
      262144,
      262144,
      262144,
      1 + 16 + 8 + 17 + 16,
    ]);
    ok(directs.every((d) => d.to.fingerprint === bob.fingerprint));
    // Every Direct's ciphertext differs from the file bytes it carries.
    for (const [i, direct] of directs.entries()) {
      const plain = content.subarray(i * MAX_DATA_SLICE, i * MAX_DATA_SLICE + 64);
      const cipher = direct.bytes.subarray(25 + 12, 25 + 12 + plain.length);
      notDeepStrictEqual(cipher, plain);
    }
    // No transfer message but the Offer carries the data key; none is Data.
    deepStrictEqual(
      sender.sealed().map((m) => m.type),
      ["offer", "manifest", "done"],
    );
  }, { autoAccept: true });
});

Deno.test("each transfer has its own random data key, and its Data does not open under another's", async () => {
  await withRoom(async (room, sender, receiver, dirs) => {
    const content = randomBytes(100_000);
    await Deno.writeFile(`${dirs.out}/same.bin`, content);
    await sender.manager.offer(`${dirs.out}/same.bin`, bob);
    await sender.manager.offer(`${dirs.out}/same.bin`, bob);
    await receiver.until((events) => events.filter((e) => e.type === "offer").length === 2);
    const [first, second] = sender.sealed().filter((m) => m.type === "offer");
    ok(first?.type === "offer" && second?.type === "offer");
    notDeepStrictEqual(first.offer.dataKey, second.offer.dataKey);
    for (const key of [first.offer.dataKey, second.offer.dataKey]) {
      strictEqual(key.length, 32);
      ok(key.some((b) => b !== 0));
    }
    // The relay moves the first transfer's Data onto the second one's id: it does not open
    // there, and the first transfer misses it.
    room.relayDirect = (from, _to, bytes) => {
      const moved = bytes.slice();
      moved.set(second.transferId, 1);
      return [{ from, bytes: moved }];
    };
    const shown = receiver.events.filter((e) => e.type === "offer") as (ChatEvent & {
      type: "offer";
    })[];
    await receiver.manager.accept(shown[0]!.id);
    await receiver.until((events) =>
      transferEvents(events).filter((e) => e.state === "failed").length === 2
    );
    // In either order: each transfer writes its Data apart from the other's messages.
    const failures = transferEvents(receiver.events).filter((e) => e.state === "failed");
    deepStrictEqual(
      failures.map((e) => [e.id, e.reason]).sort(),
      [[shown[1]!.id, DATA_FAILED_AUTHENTICATION], [shown[0]!.id, DATA_OUT_OF_SEQUENCE]].sort(),
    );
    await sender.until((events) =>
      transferEvents(events).filter((e) => e.state === "cancelled").length === 2
    );
    deepStrictEqual(await listDir(dirs.in), []);
  });
});

/** Alice sends Bob a file of 4 slices while the relay does `relay` to her Directs. */
async function tamperedTransfer(relay: StreamRelay) {
  let result:
    | { receiver: TransferEvent; sender: TransferEvent; inbox: string[]; part?: Uint8Array }
    | undefined;
  await withRoom(async (room, sender, receiver, dirs) => {
    const content = randomBytes(4 * MAX_DATA_SLICE);
    await Deno.writeFile(`${dirs.out}/file.bin`, content);
    // The relay's part on Alice's Data; Bob's Acks go back untouched.
    room.tamperWithDirectsFrom(alice, relay);
    await sender.manager.offer(`${dirs.out}/file.bin`, bob);
    await receiver.until(transferEnded("receive"));
    await sender.until(transferEnded("send"));
    const inbox = await listDir(dirs.in);
    result = {
      receiver: lastTransfer(receiver),
      sender: lastTransfer(sender),
      inbox,
      ...(inbox.includes("file.bin.securechat-part")
        ? { part: await Deno.readFile(`${dirs.in}/file.bin.securechat-part`) }
        : {}),
    };
    // The part file holds only bytes that were authenticated, in order.
    if (result.part) deepStrictEqual(result.part, content.subarray(0, result.part.length));
  }, { autoAccept: true });
  return result!;
}

for (
  const [where, offset] of [
    ["kind", 0],
    ["transfer id", 3],
    ["sequence number", 1 + 16 + 7],
    ["ciphertext", 100],
    ["tag", -1],
  ] as const
) {
  Deno.test(`a Direct whose ${where} the relay flipped a bit of cancels the transfer: ${DATA_FAILED_AUTHENTICATION}`, async () => {
    const result = await tamperedTransfer(fromTheSender(flipBitOfSecond(offset)));
    strictEqual(result.receiver.state, "failed");
    // A flipped kind or transfer id names no incoming transfer: that Direct is dropped, and the
    // next one is out of sequence.
    const reason = where === "transfer id" || where === "kind"
      ? DATA_OUT_OF_SEQUENCE
      : DATA_FAILED_AUTHENTICATION;
    strictEqual(result.receiver.reason, reason);
    strictEqual(result.sender.state, "cancelled");
    strictEqual(result.sender.reason, reason);
    ok(!result.inbox.includes("file.bin"));
    // The authenticated first slice is kept for a resend to resume.
    strictEqual(result.part?.length, MAX_DATA_SLICE);
  });
}

const droppedAtTheEnd: StreamFault = (directs) => directs.length === 4 ? [] : [directs.at(-1)!];
for (
  const [what, fault] of [...SEQUENCE_FAULTS, ["dropped at the end", droppedAtTheEnd] as const]
) {
  Deno.test(`a Direct the relay ${what} cancels the transfer: ${DATA_OUT_OF_SEQUENCE}`, async () => {
    const result = await tamperedTransfer(fromTheSender(fault));
    strictEqual(result.receiver.state, "failed");
    strictEqual(result.receiver.reason, DATA_OUT_OF_SEQUENCE);
    strictEqual(result.sender.state, "cancelled");
    strictEqual(result.sender.reason, DATA_OUT_OF_SEQUENCE);
    ok(!result.inbox.includes("file.bin"));
  });
}

Deno.test("a Direct the relay says came from another member is dropped: it opens only as the offer's sender's", async () => {
  const result = await tamperedTransfer((directs, from) =>
    directs.length === 2
      ? [{ from: carol, bytes: directs[1]! }, { from: from, bytes: directs[1]! }]
      : [{ from: from, bytes: directs.at(-1)! }]
  );
  strictEqual(result.receiver.state, "done");
  strictEqual(result.sender.state, "done");
  deepStrictEqual(result.inbox, ["file.bin"]);
});

Deno.test("control: the same harness with an honest relay delivers the file", async () => {
  const result = await tamperedTransfer(fromTheSender((directs) => [directs.at(-1)!]));
  strictEqual(result.receiver.state, "done");
  deepStrictEqual(result.inbox, ["file.bin"]);
});

Deno.test("a folder arrives with its structure, empty files included, never into an existing folder", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const files: Record<string, Uint8Array> = {
      "album/a.txt": new TextEncoder().encode("alpha"),
      "album/empty": new Uint8Array(0),
      "album/sub/deep/b.bin": randomBytes(70_000),
      "album/sub/c.bin": randomBytes(15_000),
    };
    for (const [path, data] of Object.entries(files)) {
      await Deno.mkdir(`${dirs.out}/${path}`.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.writeFile(`${dirs.out}/${path}`, data);
    }
    await Deno.mkdir(`${dirs.in}/album`);
    await Deno.writeTextFile(`${dirs.in}/album/a.txt`, "precious, keep me");
    await sender.manager.offer(`${dirs.out}/album`, bob);
    await receiver.until(offered);
    await receiver.manager.accept();
    await receiver.until(transferEnded("receive"));
    const done = lastTransfer(receiver);
    strictEqual(done.state, "done");
    // The existing "album" is not added to: the offer gets a folder of its own.
    strictEqual(done.path, `${dirs.in}/album (1)`);
    deepStrictEqual(await listDir(`${dirs.in}/album`), ["a.txt"]);
    strictEqual(await Deno.readTextFile(`${dirs.in}/album/a.txt`), "precious, keep me");
    for (const [path, data] of Object.entries(files)) {
      deepStrictEqual(
        await Deno.readFile(`${dirs.in}/${path.replace("album/", "album (1)/")}`),
        data,
      );
    }
  });
});

Deno.test("a rejected offer writes nothing and tells the sender", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    await Deno.writeTextFile(`${dirs.out}/note.txt`, "hello");
    await sender.manager.offer(`${dirs.out}/note.txt`, bob);
    await receiver.until(offered);
    await receiver.manager.reject();
    await sender.until(transferEnded("send"));
    strictEqual(lastTransfer(sender).state, "rejected");
    deepStrictEqual(await listDir(dirs.in), []);
  });
});

/** The part file and resume record securechat leaves when `sender`'s transfer of `name` breaks. */
async function leftover(dir: string, name: string, content: Uint8Array, sender: string) {
  const entry = { path: name, size: content.length, sha256: await sha256(content) };
  const record = encodePartRecord({
    sender,
    manifestSha256: await sha256(encodeManifest([entry])),
    fileIndex: 0,
    size: entry.size,
    sha256: entry.sha256,
  });
  await Deno.writeFile(`${dir}/${name}.securechat-part`, content.subarray(0, 2 * 1024 * 1024));
  await Deno.writeFile(`${dir}/${name}.securechat-resume`, record);
}

Deno.test("securechat's own part file for the same sender and manifest is resumed, not sent again", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const content = randomBytes(3 * 1024 * 1024);
    await Deno.writeFile(`${dirs.out}/big.bin`, content);
    await leftover(dirs.in, "big.bin", content, alice.fingerprint);
    await sender.manager.offer(`${dirs.out}/big.bin`, bob);
    await receiver.until(offered);
    await receiver.manager.accept();
    await receiver.until(transferEnded("receive"));
    const done = lastTransfer(receiver);
    strictEqual(done.state, "done");
    strictEqual(done.resumed, 2 * 1024 * 1024);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/big.bin`), content);
    deepStrictEqual(await listDir(dirs.in), ["big.bin"]);
    // Only the missing megabyte travelled.
    const directs = sender.sent.filter((s) => s.kind === "direct");
    strictEqual(directs.length, Math.ceil(1024 * 1024 / MAX_DATA_SLICE));
  });
});

Deno.test("a part file recorded for another sender is not resumed, read or changed", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const content = randomBytes(3 * 1024 * 1024);
    await Deno.writeFile(`${dirs.out}/big.bin`, content);
    await leftover(dirs.in, "big.bin", content, bob.fingerprint);
    const before = await Deno.readFile(`${dirs.in}/big.bin.securechat-part`);
    await sender.manager.offer(`${dirs.out}/big.bin`, bob);
    await receiver.until(offered);
    await receiver.manager.accept();
    await receiver.until(transferEnded("receive"));
    const done = lastTransfer(receiver);
    strictEqual(done.state, "done");
    strictEqual(done.resumed, undefined);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/big (1).bin`), content);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/big.bin.securechat-part`), before);
    deepStrictEqual(await listDir(dirs.in), [
      "big (1).bin",
      "big.bin.securechat-part",
      "big.bin.securechat-resume",
    ]);
  });
});

Deno.test("a transfer cut by a data failure resumes from its authenticated part when offered again", async () => {
  await withRoom(async (room, sender, receiver, dirs) => {
    const content = randomBytes(6 * MAX_DATA_SLICE);
    await Deno.writeFile(`${dirs.out}/film.bin`, content);
    let count = 0;
    room.relayDirect = (from, _to, bytes) => ++count === 4 ? [] : [{ from, bytes }];
    await sender.manager.offer(`${dirs.out}/film.bin`, bob);
    await receiver.until(transferEnded("receive"));
    strictEqual(lastTransfer(receiver).reason, DATA_OUT_OF_SEQUENCE);
    room.relayDirect = (from, _to, bytes) => [{ from, bytes }];
    await sender.manager.offer(`${dirs.out}/film.bin`, bob);
    await receiver.until((events) => transferEvents(events).some((e) => e.state === "done"));
    strictEqual(lastTransfer(receiver).resumed, 3 * MAX_DATA_SLICE);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/film.bin`), content);
    deepStrictEqual(await listDir(dirs.in), ["film.bin"]);
  }, { autoAccept: true });
});

for (const who of ["recipient", "sender"] as const) {
  Deno.test(`cancel() by the ${who} mid-transfer leaves no final file and no .part, and tells the other side`, async () => {
    await withRoom(async (room, sender, receiver, dirs) => {
      // Twice the sender's window: it cannot have sent it all before the cancel.
      await Deno.writeFile(`${dirs.out}/long.bin`, randomBytes(2 * WINDOW_BYTES));
      // The relay holds the Directs after the first few, as a slow link would.
      let count = 0;
      const held: RelayedDirect[] = [];
      room.relayDirect = (from, _to, bytes) => {
        if (++count <= 4) return [{ from, bytes }];
        held.push({ from, bytes });
        return [];
      };
      await sender.manager.offer(`${dirs.out}/long.bin`, bob);
      await receiver.until(offered);
      await receiver.manager.accept();
      await receiver.until(() => held.length > 0);
      await room.settled();
      const canceller = who === "recipient" ? receiver : sender;
      const other = who === "recipient" ? sender : receiver;
      await canceller.manager.cancel();
      await other.until(transferEnded(who === "recipient" ? "send" : "receive"));
      await receiver.until(transferEnded("receive"));
      strictEqual(lastTransfer(other).state, "cancelled");
      strictEqual(lastTransfer(canceller).state, "cancelled");
      // Data still in flight after the end is dropped unread.
      for (const direct of held) await receiver.manager.handleDirect(direct.from, direct.bytes);
      await receiver.manager.idle();
      strictEqual(lastTransfer(receiver).state, "cancelled");
      deepStrictEqual(await listDir(dirs.in), []);
    });
  });
}

Deno.test("without a receive folder, an accepted file goes to ~/Downloads/securechat (made 0700), shown in the offer", async () => {
  const home = await Deno.makeTempDir({ prefix: "securechat-home-" });
  const saved = { HOME: Deno.env.get("HOME"), XDG: Deno.env.get("XDG_DOWNLOAD_DIR") };
  Deno.env.set("HOME", home);
  Deno.env.delete("XDG_DOWNLOAD_DIR");
  const room = new TestRoom();
  const sender = room.join(alice);
  const receiver = room.join(bob);
  try {
    await Deno.writeTextFile(`${home}/note.txt`, "hello");
    await sender.manager.offer(`${home}/note.txt`, bob);
    await receiver.until(offered);
    const offer = receiver.events.find((e) => e.type === "offer") as ChatEvent & { type: "offer" };
    const folder = `${home}/Downloads/securechat`;
    strictEqual(offer.folder, folder);
    strictEqual(offer.hidden, "refused");
    await receiver.manager.accept();
    await receiver.until(transferEnded("receive"));
    const done = lastTransfer(receiver);
    strictEqual(done.state, "done");
    strictEqual(done.path, `${folder}/note.txt`);
    strictEqual(await Deno.readTextFile(`${folder}/note.txt`), "hello");
    if (Deno.build.os !== "windows") strictEqual((await Deno.stat(folder)).mode! & 0o777, 0o700);
  } finally {
    await room.close();
    for (const [name, value] of [["HOME", saved.HOME], ["XDG_DOWNLOAD_DIR", saved.XDG]]) {
      if (value === undefined) Deno.env.delete(name!);
      else Deno.env.set(name!, value);
    }
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("offer() refuses ourselves and anyone not in the room, before reading the file", async () => {
  const room = new TestRoom();
  const sender = room.join(alice);
  const [stranger] = await memberInfos("stranger");
  for (const to of [alice, stranger!]) {
    await rejects(
      sender.manager.offer("/nonexistent/file", to),
      (error) => error instanceof SecurechatError && error.code === "not_in_room",
    );
  }
  deepStrictEqual(sender.sent, []);
  await room.close();
});

Deno.test("a member who left is sent nothing more: abortWith() ends the transfers with them", async () => {
  await withRoom(async (room, sender, receiver, dirs) => {
    await Deno.writeFile(`${dirs.out}/x.bin`, randomBytes(10));
    await sender.manager.offer(`${dirs.out}/x.bin`, bob);
    await receiver.until(offered);
    room.leave(bob);
    await sender.manager.abortWith(bob.fingerprint, "they left the room");
    strictEqual(lastTransfer(sender).state, "failed");
    strictEqual(lastTransfer(sender).reason, "they left the room");
  });
});

Deno.test("a recipient repeating its Accept and Resume gets one stream: every slice once, in sequence", async () => {
  await inTempRoom("securechat-transfer-", async (room, dir) => {
    const sender = room.join(alice);
    room.addPeer(bob);
    const content = randomBytes(2 * MAX_DATA_SLICE + 1);
    await Deno.writeFile(`${dir}/twice.bin`, content);
    await sender.manager.offer(`${dir}/twice.bin`, bob);
    const offer = sender.sealed()[0]!;
    const self = authorOf(alice.fingerprint);
    for (let i = 0; i < 3; i++) {
      await sender.manager.handleSealed(bob, encodeTransfer.accept(self, offer.transferId));
    }
    await sender.until(() => sender.sealed().some((m) => m.type === "manifest"));
    for (let i = 0; i < 3; i++) {
      await sender.manager.handleSealed(bob, encodeTransfer.resume(self, offer.transferId, []));
    }
    await sender.until(() => sender.sealed().some((m) => m.type === "done"));
    deepStrictEqual(sender.sealed().map((m) => m.type), ["offer", "manifest", "done"]);
    const directs = sender.sent.filter((s) => s.kind === "direct").map((s) => s.bytes);
    deepStrictEqual(
      directs.map((d) => new DataView(d.buffer, d.byteOffset + 17, 8).getBigUint64(0)),
      [0n, 1n, 2n],
    );
  });
});
