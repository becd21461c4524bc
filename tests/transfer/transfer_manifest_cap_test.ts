/**
 * The manifest size cap (PROTOCOL.md 14.3, `MAX_MANIFEST_BYTES`): an Offer whose file count and
 * name need a larger manifest is rejected before any manifest is read, and a manifest that grows
 * past the cap while it arrives is refused at the slice that crosses it, before that slice is
 * kept. The recipient's manager is driven message by message.
 */

import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import type { MemberInfo } from "../../lib/chat/chat_events.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import {
  decodeTransfer,
  encodeManifest,
  encodeTransfer,
  type ManifestEntry,
  ManifestParser,
  MAX_MANIFEST_BYTES,
  MAX_SLICE,
} from "../../lib/transfer/transfer_messages.ts";
import {
  HandSender,
  inTempRoom,
  memberInfos,
  type TestEndpoint,
} from "../_helpers/transfer_context.ts";

const [alice, bob] = await memberInfos("alice", "bob") as [MemberInfo, MemberInfo];

/** Alice (accepting every offer up to 1 TiB) in a room with Bob, driven by the test. */
async function withAlice(body: (alice: TestEndpoint, dir: string) => Promise<void>) {
  await inTempRoom("securechat-cap-", async (room, dir) => {
    room.addPeer(bob);
    await body(room.join(alice, { receiveDir: dir, autoAccept: true, maxFileSize: 2 ** 40 }), dir);
  });
}

/** Bob's offer to Alice. */
async function offerFrom(to: TestEndpoint, name: string, fileCount: number, manifest: Uint8Array) {
  const sender = new HandSender(bob, to);
  await sender.offer({
    timestamp: Date.now(),
    name,
    fileCount,
    totalSize: 0,
    manifestSha256: await sha256(manifest),
  });
  return sender;
}

/**
 * `count` empty files under "big" with valid 4,000-byte paths (16 segments): about 20 MB of
 * manifest, within the old per-file figure (4138 bytes each) but over the cap.
 */
function bigManifest(count: number): { entries: ManifestEntry[]; bytes: Uint8Array } {
  const entries = [];
  for (let i = 0; i < count; i++) {
    const tail = `${i}`.padStart(8, "0");
    const segments = Array.from({ length: 15 }, () => "d".repeat(249));
    const path = ["big", ...segments, "f".repeat(4000 - 4 - 15 * 250 - 8) + tail].join("/");
    entries.push({ path, size: 0, sha256: new Uint8Array(32) });
  }
  return { entries, bytes: encodeManifest(entries) };
}

Deno.test("an offer whose file count and name need a manifest over MAX_MANIFEST_BYTES is rejected before any manifest is read", async () => {
  await withAlice(async (alice, dir) => {
    // 100,000 files under a 200-byte name: every path is at least "name/x", 24.4 MB in all.
    const name = "n".repeat(200);
    await offerFrom(alice, name, 100_000, new Uint8Array(0));
    const final = alice.events.filter((e) => e.type === "transfer").at(-1);
    ok(final && final.type === "transfer", JSON.stringify(alice.events));
    strictEqual(final.state, "rejected");
    strictEqual(
      final.reason,
      `file offer "${name}" refused: its 100000 files need a manifest of at least 24400000 bytes, ` +
        `over the limit of ${MAX_MANIFEST_BYTES} bytes`,
    );
    strictEqual(alice.events.some((e) => e.type === "offer"), false);
    strictEqual(decodeTransfer(alice.sent.at(-1)!.bytes).type, "reject");
    deepStrictEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  });
});

Deno.test("a manifest that grows past MAX_MANIFEST_BYTES while it arrives is refused at the slice that crosses it", async () => {
  await withAlice(async (alice, dir) => {
    const { entries, bytes } = bigManifest(5000);
    ok(bytes.length > MAX_MANIFEST_BYTES && bytes.length <= entries.length * 4138);
    const fromBob = await offerFrom(alice, "big", entries.length, bytes);
    strictEqual(decodeTransfer(alice.sent.at(-1)!.bytes).type, "accept");
    let failedAt = -1;
    for (let slice = 0; slice * MAX_SLICE < bytes.length; slice++) {
      const offset = slice * MAX_SLICE;
      const part = bytes.subarray(offset, offset + MAX_SLICE);
      await fromBob.sealed(encodeTransfer.manifest(fromBob.party, fromBob.id, offset, part));
      if (failedAt < 0 && alice.events.some((e) => e.type === "transfer" && e.state === "failed")) {
        failedAt = slice;
      }
    }
    strictEqual(failedAt, Math.floor(MAX_MANIFEST_BYTES / MAX_SLICE));
    const failed = alice.events.find((e) => e.type === "transfer" && e.state === "failed");
    ok(failed && failed.type === "transfer");
    match(failed.reason ?? "", new RegExp(`limit of ${MAX_MANIFEST_BYTES} bytes`));
    const types = alice.sent.map((m) => decodeTransfer(m.bytes).type);
    deepStrictEqual(types, ["accept", "cancel"]);
    deepStrictEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  });
});

Deno.test("ManifestParser.push() refuses the slice that takes a manifest past MAX_MANIFEST_BYTES", async () => {
  const { entries, bytes } = bigManifest(5000);
  const parser = await ManifestParser.create(entries.length);
  let offset = 0;
  for (; offset + MAX_SLICE <= MAX_MANIFEST_BYTES; offset += MAX_SLICE) {
    parser.push(bytes.subarray(offset, offset + MAX_SLICE));
  }
  throws(
    () => parser.push(bytes.subarray(offset, offset + MAX_SLICE)),
    new RegExp(`larger than ${MAX_MANIFEST_BYTES} bytes`),
  );
});
