/**
 * lib/transfer/file_hash.ts: the sender's streaming hashes agree with WebCrypto's one-shot digest, and a
 * Resume claim is accepted only for the true prefix. Each test works in its own temporary folder,
 * removed afterwards. Random content comes from a seeded PRNG so failures reproduce.
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import { CHUNK_SIZE, hashFile, prefixMatches } from "../../lib/transfer/file_hash.ts";
import { joinPath } from "../../lib/core/paths.ts";
import { seededRandom, tempDir } from "../_helpers/files.ts";

function randomBytes(length: number, seed: number): Uint8Array {
  const next = seededRandom(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
  return out;
}

const MIB = 1024 * 1024;

Deno.test("hashFile() matches WebCrypto's digest of the whole buffer and reports progress", async () => {
  await using dir = await tempDir();
  for (const size of [0, 1, 55, 64, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * MIB + 3]) {
    const data = randomBytes(size, 100 + size);
    const path = joinPath(dir.path, `f${size}`);
    await Deno.writeFile(path, data);
    const progress: number[] = [];
    const result = await hashFile(path, (bytes) => progress.push(bytes));
    eql(result, { size, sha256: await sha256(data) }, `${size}`);
    ok(progress.every((value, i) => i === 0 || value > progress[i - 1]!), `${progress}`);
    strictEqual(progress.at(-1) ?? 0, size);
    strictEqual(progress.length, Math.ceil(size / CHUNK_SIZE));
  }
  await rejects(hashFile(joinPath(dir.path, "missing")), Deno.errors.NotFound);
});

Deno.test("prefixMatches() accepts only the true prefix hash", async () => {
  await using dir = await tempDir();
  const data = randomBytes(2 * MIB + 10, 15);
  const path = joinPath(dir.path, "f");
  await Deno.writeFile(path, data);
  for (const length of [0, 1, 1000, CHUNK_SIZE, 2 * MIB + 9, 2 * MIB + 10]) {
    const hash = await sha256(data.subarray(0, length));
    ok(await prefixMatches(path, length, hash), `${length}`);
    const wrong = hash.slice();
    wrong[31]! ^= 1;
    ok(!await prefixMatches(path, length, wrong), `${length} wrong hash`);
    if (length > 0) ok(!await prefixMatches(path, length - 1, hash), `${length} off by one`);
  }
  const whole = await sha256(data);
  ok(!await prefixMatches(path, data.length + 1, whole), "longer than the file");
  ok(!await prefixMatches(path, -1, whole), "negative");
  ok(!await prefixMatches(path, 1.5, whole), "fraction");
  ok(!await prefixMatches(path, data.length, whole.subarray(0, 31)), "short hash");
});
