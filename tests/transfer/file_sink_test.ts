/**
 * lib/transfer/file_sink.ts: a received file reaches its final name only whole and with the announced
 * SHA-256; oversize, misplaced and wrong data are refused and leave no final file; a `.part` kept
 * after a broken connection resumes to an identical file; names are never reused. Each test works
 * in its own temporary folder, removed afterwards. Random content comes from a seeded PRNG so
 * failures reproduce. (Naming: free_name_test.ts; the sender's hashes: file_hash_test.ts.)
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import { AuthenticationError, ProtocolError, type SecurechatError } from "../../lib/core/errors.ts";
import { CHUNK_SIZE, prefixMatches } from "../../lib/transfer/file_hash.ts";
import { FileSink, prefixProof } from "../../lib/transfer/file_sink.ts";
import { partPath, recordPath } from "../../lib/transfer/free_name.ts";
import { exists, joinPath } from "../../lib/core/paths.ts";
import { tempDir } from "../_helpers/files.ts";

const POSIX = Deno.build.os !== "windows";

/** Sorted entry names of a folder. */
async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

/** mulberry32: a small seeded PRNG, so chunk sizes and content reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(length: number, seed: number): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
  return out;
}

/** Writes `data[from..]` into the sink in chunks of 1..maxChunk bytes. */
async function writeInChunks(
  sink: FileSink,
  data: Uint8Array,
  options: { from?: number; to?: number; seed: number; maxChunk: number },
): Promise<void> {
  const next = prng(options.seed);
  let offset = options.from ?? 0;
  const end = options.to ?? data.length;
  while (offset < end) {
    const n = Math.min(end - offset, 1 + Math.floor(next() * options.maxChunk));
    await sink.write(offset, data.subarray(offset, offset + n));
    offset += n;
  }
}

function isError(
  errorClass: abstract new (...args: never[]) => SecurechatError,
  code: string,
  words?: string,
) {
  return (error: unknown) => {
    ok(error instanceof errorClass, `${error}`);
    strictEqual(error.code, code);
    if (words !== undefined) ok(error.message.includes(words), error.message);
    return true;
  };
}

const MIB = 1024 * 1024;
const text = (s: string) => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------------------------
// FileSink: whole files

Deno.test("FileSink round-trips a multi-MiB random file written in random chunk sizes", async () => {
  await using dir = await tempDir();
  const data = randomBytes(5 * MIB + 12345, 1);
  const final = joinPath(dir.path, "sub", "folder", "video.bin");
  const sink = await FileSink.open(final, { size: data.length, sha256: await sha256(data) });
  strictEqual(sink.written, 0);
  strictEqual(sink.part, partPath(final));
  await writeInChunks(sink, data, { seed: 2, maxChunk: 200_000 });
  strictEqual(sink.written, data.length);
  ok(await exists(partPath(final)));
  ok(!await exists(final));
  strictEqual(await sink.finish(), final);
  eql(await Deno.readFile(final), data);
  eql(await names(joinPath(dir.path, "sub", "folder")), ["video.bin"]);
  if (POSIX) strictEqual((await Deno.stat(final)).mode! & 0o777, 0o600);
});

Deno.test("FileSink round-trips 1-byte writes and an empty file", async () => {
  await using dir = await tempDir();
  const data = randomBytes(1000, 3);
  const one = await FileSink.open(joinPath(dir.path, "one"), {
    size: data.length,
    sha256: await sha256(data),
  });
  await writeInChunks(one, data, { seed: 4, maxChunk: 1 });
  strictEqual(await one.finish(), joinPath(dir.path, "one"));
  eql(await Deno.readFile(joinPath(dir.path, "one")), data);

  const empty = await FileSink.open(joinPath(dir.path, "empty"), {
    size: 0,
    sha256: await sha256(new Uint8Array(0)),
  });
  strictEqual(await empty.finish(), joinPath(dir.path, "empty"));
  strictEqual((await Deno.stat(joinPath(dir.path, "empty"))).size, 0);
  eql(await names(dir.path), ["empty", "one"]);
});

Deno.test("FileSink.finish() never overwrites: a name taken meanwhile gets a number", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "report.pdf");
  const data = text("new content");
  const sink = await FileSink.open(final, { size: data.length, sha256: await sha256(data) });
  await sink.write(0, data);
  await Deno.writeTextFile(final, "existing");
  await Deno.writeTextFile(joinPath(dir.path, "report (1).pdf"), "existing 1");
  strictEqual(await sink.finish(), joinPath(dir.path, "report (2).pdf"));
  strictEqual(await Deno.readTextFile(final), "existing");
  strictEqual(await Deno.readTextFile(joinPath(dir.path, "report (1).pdf")), "existing 1");
  strictEqual(await Deno.readTextFile(joinPath(dir.path, "report (2).pdf")), "new content");
  eql(await names(dir.path), ["report (1).pdf", "report (2).pdf", "report.pdf"]);
});

Deno.test("FileSink.write() refuses data past the announced size, and nothing is renamed", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "small.txt");
  const data = text("0123456789");
  for (const chunks of [[text("0123456789X")], [text("012345"), text("6789X")]]) {
    const sink = await FileSink.open(final, { size: 10, sha256: await sha256(data) });
    let offset = 0;
    await rejects(async () => {
      for (const chunk of chunks) {
        await sink.write(offset, chunk);
        offset += chunk.length;
      }
    }, isError(ProtocolError, "oversize", "the sender sent more than the announced 10 bytes"));
    // The sink is failed now: it finishes nothing.
    await rejects(sink.finish(), /the file sink is failed/);
    await rejects(sink.write(offset, text("x")), /the file sink is failed/);
    await sink.abort(true);
    eql(await names(dir.path), []);
  }
});

Deno.test("FileSink.write() refuses an offset other than the bytes written so far", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "x");
  const data = text("abcdef");
  for (const [first, second] of [[0, 2], [0, 4], [0, 0]]) {
    const sink = await FileSink.open(final, { size: 6, sha256: await sha256(data) });
    await sink.write(first!, data.subarray(0, 3));
    await rejects(
      sink.write(second!, data.subarray(3)),
      isError(ProtocolError, "bad_offset", `offset ${second}, expected 3`),
    );
    await sink.abort(true);
  }
  const late = await FileSink.open(final, { size: 6, sha256: await sha256(data) });
  await rejects(late.write(1, data), isError(ProtocolError, "bad_offset"));
  await late.abort(true);
  eql(await names(dir.path), []);
});

Deno.test("FileSink.finish() with the wrong hash: error, no final file, no .part", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "photo.jpg");
  const data = randomBytes(300_000, 5);
  const tampered = data.slice();
  tampered[123_456]! ^= 1;
  const sink = await FileSink.open(final, { size: data.length, sha256: await sha256(data) });
  await writeInChunks(sink, tampered, { seed: 6, maxChunk: 50_000 });
  await rejects(
    sink.finish(),
    isError(AuthenticationError, "file_hash_mismatch", "photo.jpg"),
  );
  eql(await names(dir.path), []);
  await sink.abort(true); // harmless afterwards
  eql(await names(dir.path), []);
});

Deno.test("FileSink.finish() refuses a short file and keeps the .part for a resume", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "short.bin");
  const data = randomBytes(1000, 7);
  const sink = await FileSink.open(final, { size: data.length, sha256: await sha256(data) });
  await sink.write(0, data.subarray(0, 999));
  await rejects(
    sink.finish(),
    isError(ProtocolError, "truncated_file", "got 999 of the announced 1000"),
  );
  await sink.abort(false);
  eql(await names(dir.path), ["short.bin.securechat-part"]);
});

Deno.test("FileSink.abort() keeps or deletes the .part, is idempotent, and is a no-op when done", async () => {
  await using dir = await tempDir();
  const data = text("hello");
  const hash = await sha256(data);
  const record = text("securechat part 1\n");
  const kept = await FileSink.open(joinPath(dir.path, "kept"), { size: 5, sha256: hash, record });
  await kept.write(0, data.subarray(0, 2));
  await kept.abort(false);
  await kept.abort(false);
  await rejects(kept.write(2, data.subarray(2)), /the file sink is aborted/);
  eql(await Deno.readFile(partPath(joinPath(dir.path, "kept"))), data.subarray(0, 2));
  eql(await Deno.readFile(recordPath(joinPath(dir.path, "kept"))), record);

  const removed = await FileSink.open(joinPath(dir.path, "removed"), {
    size: 5,
    sha256: hash,
    record,
  });
  await removed.write(0, data.subarray(0, 2));
  await removed.abort(true);
  await removed.abort(true);

  const done = await FileSink.open(joinPath(dir.path, "done"), { size: 5, sha256: hash, record });
  await done.write(0, data);
  await done.finish();
  await done.abort(true);
  await rejects(done.finish(), /the file sink is done/);
  eql(await names(dir.path), ["done", "kept.securechat-part", "kept.securechat-resume"]);
});

Deno.test("FileSink.write() refuses a second write before the first finished", async () => {
  await using dir = await tempDir();
  const data = text("abcdef");
  const sink = await FileSink.open(joinPath(dir.path, "x"), {
    size: 6,
    sha256: await sha256(data),
  });
  const first = sink.write(0, data.subarray(0, 3));
  await rejects(sink.write(0, data.subarray(0, 3)), /a write is in progress/);
  await first;
  await sink.write(3, data.subarray(3));
  await sink.finish();
  strictEqual(await Deno.readTextFile(joinPath(dir.path, "x")), "abcdef");
});

Deno.test("FileSink.open() checks its arguments", async () => {
  await using dir = await tempDir();
  const path = joinPath(dir.path, "x");
  const hash = await sha256(new Uint8Array(0));
  await rejects(FileSink.open(path, { size: -1, sha256: hash }), RangeError);
  await rejects(FileSink.open(path, { size: 1.5, sha256: hash }), RangeError);
  await rejects(FileSink.open(path, { size: 2 ** 53, sha256: hash }), RangeError);
  await rejects(FileSink.open(path, { size: 4, sha256: hash, resumeFrom: 5 }), RangeError);
  await rejects(FileSink.open(path, { size: 4, sha256: hash, resumeFrom: -1 }), RangeError);
  await rejects(FileSink.open(path, { size: 4, sha256: hash.subarray(1) }), TypeError);
  eql(await names(dir.path), []);
});

Deno.test("FileSink.open() never replaces, reads or deletes a file at the part or record name", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "x.txt");
  const data = text("fresh");
  for (const taken of [partPath(final), recordPath(final)]) {
    await Deno.writeTextFile(taken, "someone else's content");
    const before = await Deno.stat(taken);
    await rejects(
      FileSink.open(final, { size: 5, sha256: await sha256(data), record: text("r") }),
      isError(ProtocolError, "unsafe_path", "something is already there"),
    );
    strictEqual(await Deno.readTextFile(taken), "someone else's content");
    strictEqual((await Deno.stat(taken)).mtime?.getTime(), before.mtime?.getTime());
    eql(await names(dir.path), [taken.slice(dir.path.length + 1)]);
    await Deno.remove(taken);
  }
});

Deno.test({
  name: "FileSink.open() refuses a symbolic link at the .part name and writes nothing through it",
  ignore: !POSIX,
  fn: async () => {
    await using dir = await tempDir();
    await using outside = await tempDir("securechat_outside_");
    const victim = joinPath(outside.path, "victim");
    await Deno.writeTextFile(victim, "original");
    const final = joinPath(dir.path, "x.txt");
    await Deno.symlink(victim, partPath(final));
    const data = text("evil");
    for (const resumeFrom of [0, 2]) {
      await rejects(
        FileSink.open(final, { size: 4, sha256: await sha256(data), resumeFrom }),
        isError(ProtocolError, "unsafe_path", "it is a symbolic link"),
      );
    }
    strictEqual(await Deno.readTextFile(victim), "original");
    strictEqual(await prefixProof(partPath(final), 100), undefined);
  },
});

Deno.test({
  name: "FileSink.open() refuses to resume a .part with other hard links",
  ignore: !POSIX,
  fn: async () => {
    await using dir = await tempDir();
    const final = joinPath(dir.path, "x.txt");
    await Deno.writeTextFile(joinPath(dir.path, "other"), "abcdef");
    await Deno.link(joinPath(dir.path, "other"), partPath(final));
    await rejects(
      FileSink.open(final, { size: 6, sha256: await sha256(text("abcdef")), resumeFrom: 3 }),
      isError(ProtocolError, "unsafe_path", "other hard links"),
    );
    strictEqual(await Deno.readTextFile(joinPath(dir.path, "other")), "abcdef");
  },
});

// ---------------------------------------------------------------------------------------------
// Resume

Deno.test("FileSink resumes: half, abort(false), prefixProof, reopen, finish → identical", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "big.bin");
  const data = randomBytes(3 * MIB + 777, 8);
  const hash = await sha256(data);
  const half = Math.floor(data.length / 2);

  const first = await FileSink.open(final, { size: data.length, sha256: hash });
  await writeInChunks(first, data, { to: half, seed: 9, maxChunk: 15_000 });
  await first.abort(false);

  const proof = await prefixProof(partPath(final), data.length);
  ok(proof);
  strictEqual(proof.length, half);
  eql(proof.sha256, await sha256(data.subarray(0, half)));
  // The sender agrees with the claim.
  const source = joinPath(dir.path, "source.bin");
  await Deno.writeFile(source, data);
  ok(await prefixMatches(source, proof.length, proof.sha256));

  const second = await FileSink.open(final, {
    size: data.length,
    sha256: hash,
    resumeFrom: proof.length,
  });
  strictEqual(second.written, half);
  await rejects(second.write(0, data.subarray(0, 10)), isError(ProtocolError, "bad_offset"));
  await second.abort(false);
  const third = await FileSink.open(final, { size: data.length, sha256: hash, resumeFrom: half });
  await writeInChunks(third, data, { from: half, seed: 10, maxChunk: 15_000 });
  strictEqual(await third.finish(), final);
  eql(await Deno.readFile(final), data);
  eql(await names(dir.path), ["big.bin", "source.bin"]);
});

Deno.test("FileSink resume truncates a longer .part to resumeFrom before going on", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "x.bin");
  const data = randomBytes(100_000, 11);
  // The leftover holds 80,000 bytes, the last 20,000 of them wrong.
  const leftover = data.slice(0, 80_000);
  leftover.fill(0xee, 60_000);
  await Deno.writeFile(partPath(final), leftover);
  const sink = await FileSink.open(final, {
    size: data.length,
    sha256: await sha256(data),
    resumeFrom: 60_000,
  });
  strictEqual((await Deno.stat(partPath(final))).size, 60_000);
  await writeInChunks(sink, data, { from: 60_000, seed: 12, maxChunk: 9_000 });
  await sink.finish();
  eql(await Deno.readFile(final), data);
});

Deno.test("FileSink resume from a wrong prefix ends in file_hash_mismatch", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "x.bin");
  const data = randomBytes(10_000, 13);
  const leftover = data.slice(0, 5_000);
  leftover[0]! ^= 0xff;
  await Deno.writeFile(partPath(final), leftover);
  const sink = await FileSink.open(final, {
    size: data.length,
    sha256: await sha256(data),
    resumeFrom: 5_000,
  });
  await sink.write(5_000, data.subarray(5_000));
  await rejects(sink.finish(), isError(AuthenticationError, "file_hash_mismatch"));
  eql(await names(dir.path), []);
});

Deno.test("FileSink.open() refuses to resume past what the .part holds", async () => {
  await using dir = await tempDir();
  const final = joinPath(dir.path, "x.bin");
  const hash = await sha256(new Uint8Array(10));
  await rejects(
    FileSink.open(final, { size: 10, sha256: hash, resumeFrom: 1 }),
    isError(ProtocolError, "bad_offset", "holds 0 bytes"),
  );
  await Deno.writeFile(partPath(final), new Uint8Array(4));
  await rejects(
    FileSink.open(final, { size: 10, sha256: hash, resumeFrom: 5 }),
    isError(ProtocolError, "bad_offset", "holds 4 bytes"),
  );
  strictEqual((await Deno.stat(partPath(final))).size, 4);
});

Deno.test("prefixProof() is undefined without a regular .part and caps at maxLength", async () => {
  await using dir = await tempDir();
  const part = joinPath(dir.path, "x.part");
  strictEqual(await prefixProof(part, 100), undefined);
  await Deno.mkdir(part);
  strictEqual(await prefixProof(part, 100), undefined);
  await Deno.remove(part);
  const data = randomBytes(CHUNK_SIZE + 5000, 14);
  await Deno.writeFile(part, data);
  for (const max of [0, 1, 4999, CHUNK_SIZE, CHUNK_SIZE + 4999, CHUNK_SIZE + 5000, 10 * MIB]) {
    const proof = await prefixProof(part, max);
    const length = Math.min(max, data.length);
    eql(proof, { length, sha256: await sha256(data.subarray(0, length)) }, `${max}`);
  }
});
