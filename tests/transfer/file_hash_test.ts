/**
 * lib/transfer/file_hash.ts: the sender's streaming hashes agree with WebCrypto's one-shot digest, and a
 * Resume claim is accepted only for the true prefix; a hash started early is used only for the
 * file as it still is. Each test works in its own temporary folder,
 * removed afterwards. Random content comes from a seeded PRNG so failures reproduce.
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import {
  CHUNK_SIZE,
  hashFile,
  hashFileOnce,
  prefixMatches,
  startHashing,
} from "../../lib/transfer/file_hash.ts";
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

Deno.test("hashFileOnce() takes the hash startHashing() made, for a file unchanged since, once", async () => {
  await using dir = await tempDir();
  const paths = [0, 1, 2].map((n) => joinPath(dir.path, `f${n}`));
  const contents = paths.map((_, n) => randomBytes(2 * MIB + n, 300 + n));
  for (const [n, path] of paths.entries()) await Deno.writeFile(path, contents[n]!);
  startHashing(paths);
  for (const [n, path] of paths.entries()) {
    eql(await hashFileOnce(path), {
      size: contents[n]!.length,
      sha256: await sha256(contents[n]!),
    });
  }
  // Used once: the next call hashes the file as it is then.
  const changed = randomBytes(100, 400);
  await Deno.writeFile(paths[0]!, changed);
  eql(await hashFileOnce(paths[0]!), { size: 100, sha256: await sha256(changed) });
});

Deno.test("hashFileOnce() hashes again a file changed or replaced after startHashing(), and reports a missing one", async () => {
  await using dir = await tempDir();
  const [grown, replaced, gone, last] = ["grown", "replaced", "gone", "last"].map((name) =>
    joinPath(dir.path, name)
  );
  const original = randomBytes(MIB, 500);
  for (const path of [grown!, replaced!, gone!, last!]) await Deno.writeFile(path, original);
  startHashing([grown!, replaced!, gone!, last!]);
  // The early hashes run one after the other: once the last is taken, the others are made.
  eql(await hashFileOnce(last!), { size: MIB, sha256: await sha256(original) });
  // Then the files behind them change.
  const longer = new Uint8Array([...original, 1]);
  await Deno.writeFile(grown!, longer);
  const other = randomBytes(MIB, 501);
  await Deno.writeFile(`${replaced}.new`, other);
  await Deno.rename(`${replaced}.new`, replaced!);
  await Deno.remove(gone!);
  eql(await hashFileOnce(grown!), { size: longer.length, sha256: await sha256(longer) });
  eql(await hashFileOnce(replaced!), { size: other.length, sha256: await sha256(other) });
  await rejects(hashFileOnce(gone!), Deno.errors.NotFound);
});
