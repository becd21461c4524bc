/**
 * File transfer through a real room over loopback: files and folders arrive identical and are
 * only renamed after verification; offers can be rejected; a leftover .part resumes; chat keeps
 * flowing during a transfer; hostile manifests and oversize data are refused.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import { encodePartRecord } from "../../lib/transfer/part_record.ts";
import { Relay } from "../../lib/room/relay.ts";
import { encodeManifest } from "../../lib/transfer/transfer_messages.ts";
import { identities, join, type TestMember } from "../_helpers/room.ts";
import { randomBytes } from "../_helpers/peers.ts";

const [relayIdentity, a, b] = await identities(3) as [
  Awaited<ReturnType<typeof identities>>[0],
  ...Awaited<ReturnType<typeof identities>>,
];

type TransferEvent = ChatEvent & { type: "transfer" };
const transfers = (events: ChatEvent[]) =>
  events.filter((e): e is TransferEvent => e.type === "transfer");
const finished = (_member: TestMember, direction: "send" | "receive") => (events: ChatEvent[]) =>
  transfers(events).some((e) =>
    e.direction === direction && ["done", "failed", "cancelled", "rejected"].includes(e.state)
  );

async function withRoom(
  body: (
    room: Relay,
    sender: TestMember,
    receiver: TestMember,
    dirs: { out: string; in: string },
  ) => Promise<void>,
) {
  const root = await Deno.makeTempDir({ prefix: "securechat-transfer-" });
  const dirs = { out: `${root}/out`, in: `${root}/in` };
  await Deno.mkdir(dirs.out);
  await Deno.mkdir(dirs.in);
  const room = new Relay({ identity: relayIdentity!, hostParticipates: false });
  const sender = await join(a!, relayIdentity!, (conn, name) => room.admit(conn, name));
  const receiver = await join(b!, relayIdentity!, (conn, name) => room.admit(conn, name), {
    receiveDir: dirs.in,
  });
  await sender.until(() => sender.session.members().length === 2);
  try {
    await body(room, sender, receiver, dirs);
  } finally {
    await Promise.all([sender.session.close(), receiver.session.close()]);
    await room.close();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a file sent through the room arrives identical after the recipient accepts", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const content = randomBytes(5 * 1024 * 1024 + 123);
    await Deno.writeFile(`${dirs.out}/data.bin`, content);
    await sender.session.sendFile!(`${dirs.out}/data.bin`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    const offer = receiver.events.find((e) => e.type === "offer") as ChatEvent & { type: "offer" };
    strictEqual(offer.name, "data.bin");
    strictEqual(offer.size, content.length);
    strictEqual(offer.from.fingerprint, a!.fingerprint);
    // Nothing is written before acceptance.
    deepStrictEqual(await listDir(dirs.in), []);
    await receiver.session.acceptOffer!();
    await receiver.until(finished(receiver, "receive"));
    await sender.until(finished(sender, "send"));
    strictEqual(transfers(receiver.events).at(-1)!.state, "done");
    strictEqual(transfers(sender.events).at(-1)!.state, "done");
    deepStrictEqual(await Deno.readFile(`${dirs.in}/data.bin`), content);
    deepStrictEqual(await listDir(dirs.in), ["data.bin"]);
  });
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
    await sender.session.sendFile!(`${dirs.out}/album`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    await receiver.session.acceptOffer!();
    await receiver.until(finished(receiver, "receive"));
    const done = transfers(receiver.events).at(-1)!;
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
    await sender.session.sendFile!(`${dirs.out}/note.txt`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    await receiver.session.rejectOffer!();
    await sender.until(finished(sender, "send"));
    strictEqual(transfers(sender.events).at(-1)!.state, "rejected");
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
    await leftover(dirs.in, "big.bin", content, a!.fingerprint);
    await sender.session.sendFile!(`${dirs.out}/big.bin`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    await receiver.session.acceptOffer!();
    await receiver.until(finished(receiver, "receive"));
    const done = transfers(receiver.events).at(-1)!;
    strictEqual(done.state, "done");
    strictEqual(done.resumed, 2 * 1024 * 1024);
    deepStrictEqual(await Deno.readFile(`${dirs.in}/big.bin`), content);
    deepStrictEqual(await listDir(dirs.in), ["big.bin"]);
  });
});

Deno.test("a part file recorded for another sender is not resumed, read or changed", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    const content = randomBytes(3 * 1024 * 1024);
    await Deno.writeFile(`${dirs.out}/big.bin`, content);
    await leftover(dirs.in, "big.bin", content, b!.fingerprint);
    const before = await Deno.readFile(`${dirs.in}/big.bin.securechat-part`);
    await sender.session.sendFile!(`${dirs.out}/big.bin`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    await receiver.session.acceptOffer!();
    await receiver.until(finished(receiver, "receive"));
    const done = transfers(receiver.events).at(-1)!;
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

Deno.test("chat messages sent during a transfer arrive before it ends", async () => {
  await withRoom(async (_room, sender, receiver, dirs) => {
    await Deno.writeFile(`${dirs.out}/large.bin`, randomBytes(40 * 1024 * 1024));
    await sender.session.sendFile!(`${dirs.out}/large.bin`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    await receiver.session.acceptOffer!();
    await receiver.until((events) =>
      transfers(events).some((e) => e.state === "receiving" && e.bytes > 0)
    );
    await sender.session.sendText("still chatting");
    await receiver.until(finished(receiver, "receive"), 60_000);
    const chatAt = receiver.events.findIndex((e) =>
      e.type === "message" && e.text === "still chatting"
    );
    const doneAt = receiver.events.findIndex((e) => e.type === "transfer" && e.state === "done");
    ok(chatAt >= 0 && chatAt < doneAt, `chat at ${chatAt}, done at ${doneAt}`);
  });
});

async function listDir(path: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}

for (const who of ["recipient", "sender"] as const) {
  Deno.test(`/cancel by the ${who} mid-transfer leaves no final file and no .part, and tells the other side`, async () => {
    await withRoom(async (_room, sender, receiver, dirs) => {
      await Deno.writeFile(`${dirs.out}/long.bin`, randomBytes(40 * 1024 * 1024));
      await sender.session.sendFile!(`${dirs.out}/long.bin`);
      await receiver.until((events) => events.some((e) => e.type === "offer"));
      await receiver.session.acceptOffer!();
      await receiver.until((events) =>
        transfers(events).some((e) => e.state === "receiving" && e.bytes > 0)
      );
      const canceller = who === "recipient" ? receiver : sender;
      const other = who === "recipient" ? sender : receiver;
      await canceller.session.cancelTransfer!();
      await other.until(finished(other, who === "recipient" ? "send" : "receive"));
      await receiver.until(finished(receiver, "receive"));
      strictEqual(transfers(other.events).at(-1)!.state, "cancelled");
      strictEqual(transfers(canceller.events).at(-1)!.state, "cancelled");
      await new Promise((resolve) => setTimeout(resolve, 100));
      deepStrictEqual(await listDir(dirs.in), []);
    });
  });
}

Deno.test("without a receive folder, an accepted file goes to ~/Downloads/securechat (made 0700), shown in the offer", async () => {
  const home = await Deno.makeTempDir({ prefix: "securechat-home-" });
  const saved = { HOME: Deno.env.get("HOME"), XDG: Deno.env.get("XDG_DOWNLOAD_DIR") };
  Deno.env.set("HOME", home);
  Deno.env.delete("XDG_DOWNLOAD_DIR");
  const room = new Relay({ identity: relayIdentity!, hostParticipates: false });
  const sender = await join(a!, relayIdentity!, (conn, name) => room.admit(conn, name));
  const receiver = await join(b!, relayIdentity!, (conn, name) => room.admit(conn, name));
  try {
    await sender.until(() => sender.session.members().length === 2);
    await Deno.writeTextFile(`${home}/note.txt`, "hello");
    await sender.session.sendFile!(`${home}/note.txt`);
    await receiver.until((events) => events.some((e) => e.type === "offer"));
    const offer = receiver.events.find((e) => e.type === "offer") as ChatEvent & { type: "offer" };
    const folder = `${home}/Downloads/securechat`;
    strictEqual(offer.folder, folder);
    strictEqual(offer.hidden, "refused");
    await receiver.session.acceptOffer!();
    await receiver.until(finished(receiver, "receive"));
    const done = transfers(receiver.events).at(-1)!;
    strictEqual(done.state, "done");
    strictEqual(done.path, `${folder}/note.txt`);
    strictEqual(await Deno.readTextFile(`${folder}/note.txt`), "hello");
    if (Deno.build.os !== "windows") strictEqual((await Deno.stat(folder)).mode! & 0o777, 0o700);
  } finally {
    await Promise.all([sender.session.close(), receiver.session.close()]);
    await room.close();
    for (const [name, value] of [["HOME", saved.HOME], ["XDG_DOWNLOAD_DIR", saved.XDG]]) {
      if (value === undefined) Deno.env.delete(name!);
      else Deno.env.set(name!, value);
    }
    await Deno.remove(home, { recursive: true });
  }
});
