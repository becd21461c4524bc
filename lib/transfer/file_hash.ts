/**
 * Streaming SHA-256 of files and file prefixes, without loading a file whole: the sender's
 * {@linkcode hashFile} for the manifest (docs/PROTOCOL.md section 14.3) and {@linkcode prefixMatches}
 * that checks a receiver's Resume claim against the sender's own file (section 14.4), and the
 * {@linkcode hashPrefix} and {@linkcode digest} steps that `lib/transfer/file_sink.ts` shares for the
 * receiver's running hash and its own Resume claim.
 *
 * What it does not do: decide anything from a hash (callers compare), or open `.part` files
 * (`lib/transfer/file_sink.ts` does, with its symbolic-link checks).
 *
 * Runtime caveats: WebCrypto has no incremental digest, so hashing streams through `node:crypto`
 * `createHash("sha256")` in {@linkcode CHUNK_SIZE} reads.
 *
 * Mirrors: docs/PROTOCOL.md sections 14.3 (Manifest) and 14.4 (Data, resume).
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { constantTimeEqual } from "../core/bytes.ts";
import { loadNodeCrypto } from "../core/node_crypto.ts";

/** Bytes read at a time when hashing. */
export const CHUNK_SIZE = 1024 * 1024;

/** Length of a SHA-256 digest in bytes. */
export const SHA256_LENGTH = 32;

/**
 * Size and SHA-256 of a file, read in {@linkcode CHUNK_SIZE} chunks (sender side, for the
 * manifest).
 *
 * @param path the file
 * @param onProgress called after each chunk with the bytes hashed so far
 * @returns the number of bytes read and their SHA-256
 * @throws {Deno.errors.NotFound} and other I/O errors
 */
export async function hashFile(
  path: string,
  onProgress?: (bytes: number) => void,
): Promise<{ size: number; sha256: Uint8Array }> {
  using file = await Deno.open(path, { read: true });
  const hash = (await loadNodeCrypto()).createHash("sha256");
  const size = await hashPrefix(file, Infinity, hash, onProgress);
  return { size, sha256: digest(hash) };
}

/** A file's identity and version as `stat` gives them: an early hash is used only if they hold. */
function versionOf(info: Deno.FileInfo): string {
  return [info.dev, info.ino, info.size, info.mtime?.getTime(), info.ctime?.getTime()].join(":");
}

/** What {@linkcode hashFile} gives. */
export type FileHash = { size: number; sha256: Uint8Array };

/**
 * Hashes started by {@linkcode startHashing}, by path, with the version of the file they were
 * started on (undefined when hashing failed: the file is hashed again, and the error reported).
 */
const early = new Map<string, Promise<{ version: string; hashed: FileHash } | undefined>>();

/**
 * Starts hashing files that are about to be offered (`dial --send` starts them before dialing,
 * so that hashing overlaps the handshake and the room's setup instead of following them: 128 MiB
 * take about 140 ms on the bench machine). {@linkcode hashFileOnce} takes the result.
 */
export function startHashing(paths: readonly string[]): void {
  // One file after the other, as the Offer would: a folder of many files opens one at a time.
  let before: Promise<unknown> = Promise.resolve();
  for (const path of paths) {
    if (early.has(path)) continue;
    const started = before.then(async () => {
      const version = versionOf(await Deno.stat(path));
      return { version, hashed: await hashFile(path) };
    }).catch(() => undefined);
    early.set(path, started);
    before = started;
  }
}

/**
 * The size and SHA-256 of a file: the early hash {@linkcode startHashing} made of it if the file
 * is still the same one, unchanged since (device, inode, size, modification and change times),
 * otherwise hashed now. An early hash is used once.
 */
export async function hashFileOnce(path: string): Promise<FileHash> {
  const started = early.get(path);
  early.delete(path);
  const done = await started;
  if (done !== undefined) {
    const now = await Deno.stat(path).then(versionOf, () => undefined);
    if (now === done.version) return done.hashed;
  }
  return await hashFile(path);
}
/**
 * Whether the first `length` bytes of a file hash to `sha256` (sender side: checks a receiver's
 * Resume claim before continuing from `length`). Any malformed claim is simply false.
 *
 * @param path the sender's file
 * @param length the prefix length the receiver claims
 * @param sha256 the SHA-256 the receiver claims for that prefix
 * @returns true only when the file holds at least `length` bytes and their hash matches
 * @throws {Deno.errors.NotFound} and other I/O errors
 */
export async function prefixMatches(
  path: string,
  length: number,
  sha256: Uint8Array,
): Promise<boolean> {
  if (!Number.isSafeInteger(length) || length < 0 || sha256.length !== SHA256_LENGTH) return false;
  using file = await Deno.open(path, { read: true });
  if ((await file.stat()).size < length) return false;
  const hash = (await loadNodeCrypto()).createHash("sha256");
  if (await hashPrefix(file, length, hash) !== length) return false;
  return constantTimeEqual(digest(hash), sha256);
}

/** Feeds up to `length` bytes from the file's current position into `hash`; returns the count. */
export async function hashPrefix(
  file: Deno.FsFile,
  length: number,
  hash: Hash,
  onProgress?: (bytes: number) => void,
): Promise<number> {
  const buffer = new Uint8Array(Math.min(CHUNK_SIZE, Math.max(length, 1)));
  let total = 0;
  while (total < length) {
    const n = await file.read(buffer.subarray(0, Math.min(buffer.length, length - total)));
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
    total += n;
    onProgress?.(total);
  }
  return total;
}

/** The finished digest of `hash` as bytes. */
export function digest(hash: Hash): Uint8Array {
  return new Uint8Array(hash.digest());
}
