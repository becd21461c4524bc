/**
 * File fixtures: temporary folders, and for transfer tests big random files written in 1 MiB chunks and hashed as they
 * are written (never held whole in memory), trees of small files with nested folders, empty files
 * and non-ASCII names, and streaming SHA-256 of whole files and trees, computed here
 * independently of `lib/` so a test compares against its own digest.
 *
 * Tree shapes come from a seeded PRNG so a failure reproduces; contents come from
 * `crypto.getRandomValues`.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Bytes written or read at a time. */
export const CHUNK = 1024 * 1024;

/** 1 MiB, for readable sizes. */
export const MiB = 1024 * 1024;

/** A temporary folder, removed with everything in it when the test leaves its scope. */
export async function tempDir(
  prefix = "securechat_test_",
): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  await using dir = await tempDir();
  await fn(dir.path);
}

/** Fills `buffer` with random bytes (getRandomValues fills at most 64 KiB per call). */
function fillRandom(buffer: Uint8Array): void {
  for (let i = 0; i < buffer.length; i += 65536) {
    crypto.getRandomValues(buffer.subarray(i, Math.min(i + 65536, buffer.length)));
  }
}

/**
 * Writes `size` random bytes to a new file at `path`, one 1 MiB chunk at a time.
 *
 * @returns the file's SHA-256 as hex
 */
export async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(Math.min(CHUNK, Math.max(size, 1)));
  using file = await Deno.open(path, { write: true, createNew: true });
  for (let done = 0; done < size;) {
    const chunk = buffer.subarray(0, Math.min(buffer.length, size - done));
    fillRandom(chunk);
    hash.update(chunk);
    for (let written = 0; written < chunk.length;) {
      written += await file.write(chunk.subarray(written));
    }
    done += chunk.length;
  }
  return hash.digest("hex");
}

/** SHA-256 of a file as hex, read in 1 MiB chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(CHUNK);
  using file = await Deno.open(path, { read: true });
  for (let n; (n = await file.read(buffer)) !== null;) hash.update(buffer.subarray(0, n));
  return hash.digest("hex");
}

/** Size of a file, or 0 when it does not exist (yet). */
export async function sizeOrZero(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

/** Names in a folder (not recursive), sorted. */
export async function listNames(dir: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/**
 * Every regular file under `root`, recursively, as "relative/path" → SHA-256 hex; anything else
 * (a symbolic link, a socket) is listed with the value "not a regular file".
 */
export async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const relative = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) await walk(`${dir}/${entry.name}`, relative);
      else if (entry.isFile) out.set(relative, await sha256File(`${dir}/${entry.name}`));
      else out.set(relative, "not a regular file");
    }
  };
  await walk(root, "");
  return out;
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same tree shape. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Folders of {@linkcode makeRandomTree}, relative to its root; "" is the root itself. */
const TREE_FOLDERS = [
  "",
  "docs",
  "docs/drafts",
  "docs/drafts/old",
  "src/lib/deep/deeper/deepest",
  "src/lib",
  "données",
  "données/été",
  "日本語/フォルダ",
  "with space/and more",
];

/** Names that must survive the trip byte for byte (no case-only twins: receivers refuse those). */
const SPECIAL_NAMES = [
  "café.txt",
  "naïve résumé.md",
  "日本語.txt",
  "emoji 🎉 party.dat",
  "Ωmega",
  ".hidden",
  "no-extension",
  "two.dots.tar.gz",
  "spaces  twice .txt",
];

/** What {@linkcode makeRandomTree} made. */
export interface RandomTree {
  /** "relative/path" (from `root`'s parent, as a transfer names them) → SHA-256 hex. */
  files: Map<string, string>;
  /** How many of them are empty. */
  empty: number;
}

/**
 * Writes `count` files of 0..`maxSize` random bytes under `root` (which must not exist), spread
 * over nested folders, with every special name once and some forced empty files.
 *
 * @returns the files with their hashes, keyed by path relative to `root`'s parent
 */
export async function makeRandomTree(
  root: string,
  options: { count: number; maxSize: number; seed: number },
): Promise<RandomTree> {
  const random = seededRandom(options.seed);
  const top = root.slice(root.lastIndexOf("/") + 1);
  await Deno.mkdir(root);
  for (const folder of TREE_FOLDERS) {
    if (folder !== "") await Deno.mkdir(`${root}/${folder}`, { recursive: true });
  }
  const files = new Map<string, string>();
  let empty = 0;
  for (let i = 0; i < options.count; i++) {
    const folder = TREE_FOLDERS[Math.floor(random() * TREE_FOLDERS.length)]!;
    const name = SPECIAL_NAMES[i] ?? `file-${String(i).padStart(4, "0")}.bin`;
    // Every 40th file is empty on purpose; others may be by chance.
    const size = i % 40 === 7 ? 0 : Math.floor(random() * (options.maxSize + 1));
    const content = new Uint8Array(size);
    fillRandom(content);
    const relative = folder === "" ? name : `${folder}/${name}`;
    await Deno.writeFile(`${root}/${relative}`, content, { createNew: true });
    files.set(`${top}/${relative}`, createHash("sha256").update(content).digest("hex"));
    if (size === 0) empty++;
  }
  return { files, empty };
}
