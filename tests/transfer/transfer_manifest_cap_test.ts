/**
 * The manifest size cap (PROTOCOL.md 14.3, `MAX_MANIFEST_BYTES`): an Offer whose file count and
 * name need a larger manifest is rejected before any manifest is read, and a manifest that grows
 * past the cap while it arrives is refused at the slice that crosses it, before that slice is
 * kept. Real signatures; the recipient's manager is driven message by message.
 */

import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import type { Identity } from "../../lib/keys/identity.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import { authorOf } from "../../lib/chat/room_messages.ts";
import {
  decodeTransfer,
  encodeManifest,
  encodeTransfer,
  type ManifestEntry,
  ManifestParser,
  MAX_MANIFEST_BYTES,
  MAX_SLICE,
  signOffer,
} from "../../lib/transfer/transfer_messages.ts";
import { identities } from "../_helpers/room.ts";
import { recipientManager } from "../_helpers/transfer_context.ts";

const [alice, bob] = await identities(2) as [Identity, Identity];
const roomId = crypto.getRandomValues(new Uint8Array(16));
let counter = BigInt(Date.now()) * 1000n + 7_000_000_000n;

/** Alice's manager (accepting every offer up to 1 TiB), with Bob in her roster. */
function aliceManager(receiveDir: string) {
  return recipientManager(roomId, [[alice, "alice"], [bob, "bob"]], {
    receiveDir,
    autoAccept: true,
    maxFileSize: 2 ** 40,
  });
}

/** Bob's signed offer to Alice, as the relay forwards it. */
async function offerFrom(id: Uint8Array, name: string, fileCount: number, manifest: Uint8Array) {
  const offer = await signOffer(bob, {
    roomId,
    sender: authorOf(bob.fingerprint),
    recipient: authorOf(alice.fingerprint),
    transferId: id,
  }, {
    counter: counter++,
    timestamp: Date.now(),
    name,
    fileCount,
    totalSize: 0,
    manifestSha256: await sha256(manifest),
  });
  return decodeTransfer(encodeTransfer.offer(authorOf(bob.fingerprint), id, offer));
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
  const dir = await Deno.makeTempDir({ prefix: "securechat-cap-" });
  try {
    const { manager, sent, events } = aliceManager(dir);
    // 100,000 files under a 200-byte name: every path is at least "name/x", 24.4 MB in all.
    const name = "n".repeat(200);
    const id = crypto.getRandomValues(new Uint8Array(16));
    await manager.handle(await offerFrom(id, name, 100_000, new Uint8Array(0)));
    const final = events.filter((e) => e.type === "transfer").at(-1);
    ok(final && final.type === "transfer", JSON.stringify(events));
    strictEqual(final.state, "rejected");
    strictEqual(
      final.reason,
      `file offer "${name}" refused: its 100000 files need a manifest of at least 24400000 bytes, ` +
        `over the limit of ${MAX_MANIFEST_BYTES} bytes`,
    );
    strictEqual(events.some((e) => e.type === "offer"), false);
    const reply = decodeTransfer(sent.at(-1)!);
    strictEqual(reply.type, "reject");
    deepStrictEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a manifest that grows past MAX_MANIFEST_BYTES while it arrives is refused at the slice that crosses it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "securechat-cap-" });
  try {
    const { manager, sent, events } = aliceManager(dir);
    const { entries, bytes } = bigManifest(5000);
    ok(bytes.length > MAX_MANIFEST_BYTES && bytes.length <= entries.length * 4138);
    const id = crypto.getRandomValues(new Uint8Array(16));
    await manager.handle(await offerFrom(id, "big", entries.length, bytes));
    strictEqual(decodeTransfer(sent.at(-1)!).type, "accept");
    const party = authorOf(bob.fingerprint);
    let failedAt = -1;
    for (let slice = 0; slice * MAX_SLICE < bytes.length; slice++) {
      const offset = slice * MAX_SLICE;
      const part = bytes.subarray(offset, offset + MAX_SLICE);
      await manager.handle(decodeTransfer(encodeTransfer.manifest(party, id, offset, part)));
      if (failedAt < 0 && events.some((e) => e.type === "transfer" && e.state === "failed")) {
        failedAt = slice;
      }
    }
    strictEqual(failedAt, Math.floor(MAX_MANIFEST_BYTES / MAX_SLICE));
    const failed = events.find((e) => e.type === "transfer" && e.state === "failed");
    ok(failed && failed.type === "transfer");
    match(failed.reason ?? "", new RegExp(`limit of ${MAX_MANIFEST_BYTES} bytes`));
    const types = sent.map((m) => decodeTransfer(m).type);
    deepStrictEqual(types, ["accept", "cancel"]);
    deepStrictEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
