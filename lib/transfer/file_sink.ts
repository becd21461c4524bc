/**
 * The receiver's side of a transferred file, without any networking: a part file that is
 * hashed as it is written and published under a free name only once its SHA-256 matches, and
 * the proof of a leftover part file for a resume.
 *
 * {@linkcode FileSink}: each file is written to `NAME.securechat-part` beside its final name
 * (docs/PROTOCOL.md section 14.4), with its resume record (`lib/transfer/part_record.ts`) beside it, in
 * order, never past the announced size, while a running SHA-256 follows every byte.
 * {@linkcode FileSink.finish} checks the length and the hash, fsyncs, and moves the part file to
 * the final name, or to "NAME (1).ext", "NAME (2).ext", ... when that is taken (`publish()` in
 * `lib/transfer/free_name.ts`, which never overwrites an existing file). A broken connection keeps the
 * part file and its record; {@linkcode prefixProof} gives its length and prefix hash for the
 * Resume message, and {@linkcode FileSink.open} with `resumeFrom` continues it (section 14.5).
 * It never removes or reuses a file it finds at the part name when not resuming: the caller
 * checks the record (`ownsPart()`) and clears only its own.
 *
 * What it does not do: validate paths (`lib/transfer/safe_path.ts` does: call `resolveInside()` before
 * {@linkcode FileSink.open}), pick the final name (`lib/transfer/free_name.ts`), hash the sender's files
 * (`lib/transfer/file_hash.ts`), parse messages, or pace the sender. It refuses a symbolic link at the
 * part file name and does not follow one there; parent folders are created with
 * `Deno.mkdir(..., { recursive: true })`, which does follow links, hence `resolveInside()` first.
 *
 * Runtime caveats: the running hash is `node:crypto`'s (see `lib/transfer/file_hash.ts`); no file is ever
 * loaded whole. Modes (0600 for part files and records) apply on POSIX only.
 *
 * Ideas from croc (`receivefs/root.go`: exclusive create, refuse link components; the hash is
 * checked before the file is kept) and magic-wormhole's transfer (temporary name, then rename).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.4 (Data, resume) and 14.5 (Cancel and interruption).
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { loadNodeCrypto } from "../core/node_crypto.ts";
import { constantTimeEqual } from "../core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../core/errors.ts";
import { digest, hashPrefix, SHA256_LENGTH } from "./file_hash.ts";
import { partPath, publish, recordPath } from "./free_name.ts";
import { dirName, lstatIfExists } from "../core/paths.ts";
import { sanitizeDisplayName } from "./safe_path.ts";

/**
 * Length and SHA-256 of the prefix of a leftover part file, for the Resume message. Call it only
 * on a part file that `ownsPart()` (`lib/transfer/part_record.ts`) says is ours for this sender and
 * manifest entry: anything else must not be read.
 *
 * @param part path of the part file
 * @param maxLength longest prefix to consider (the file's announced size)
 * @returns the prefix length (the file's length capped at `maxLength`) and its SHA-256, or
 *   undefined when `part` does not exist or is not a regular file (a symbolic link, a folder)
 * @throws {Deno.errors.PermissionDenied} and other I/O errors while reading
 */
export async function prefixProof(
  part: string,
  maxLength: number,
): Promise<{ length: number; sha256: Uint8Array } | undefined> {
  const info = await lstatIfExists(part);
  if (!info?.isFile) return undefined;
  using file = await Deno.open(part, { read: true });
  if (!sameFile(info, await file.stat())) return undefined;
  const hash = (await loadNodeCrypto()).createHash("sha256");
  const length = await hashPrefix(file, Math.max(0, Math.min(info.size, maxLength)), hash);
  return { length, sha256: digest(hash) };
}

/** Options for {@linkcode FileSink.open}. */
export interface FileSinkOptions {
  /** Announced size in bytes. */
  size: number;
  /** Announced SHA-256 of the whole file (32 bytes). */
  sha256: Uint8Array;
  /** Keep the first `resumeFrom` bytes of the existing part file and continue after them. */
  resumeFrom?: number;
  /**
   * The resume record (`encodePartRecord()`): written beside a new part file, kept while it is,
   * and removed with it. With `resumeFrom`, the caller has checked the one already there.
   */
  record?: Uint8Array;
}

type SinkState = "open" | "failed" | "done" | "aborted";

/**
 * Receives one file: part file, in-order writes with a running SHA-256, verified publish.
 *
 * @example
 * ```ts
 * import { FileSink } from "./file_sink.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const data = new TextEncoder().encode("hello");
 * const sha256 = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
 * const sink = await FileSink.open(`${dir}/hello.txt`, { size: data.length, sha256 });
 * await sink.write(0, data.subarray(0, 2));
 * await sink.write(2, data.subarray(2));
 * assert.equal(await sink.finish(), `${dir}/hello.txt`);
 * assert.equal(await Deno.readTextFile(`${dir}/hello.txt`), "hello");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileSink {
  readonly #finalPath: string;
  readonly #part: string;
  readonly #record: string | undefined;
  readonly #size: number;
  readonly #expected: Uint8Array;
  readonly #hash: Hash;
  #file: Deno.FsFile | undefined;
  #written: number;
  #state: SinkState = "open";
  #busy = false;

  private constructor(
    finalPath: string,
    file: Deno.FsFile,
    hash: Hash,
    written: number,
    options: FileSinkOptions,
  ) {
    this.#finalPath = finalPath;
    this.#part = partPath(finalPath);
    this.#record = options.record === undefined ? undefined : recordPath(finalPath);
    this.#size = options.size;
    this.#expected = options.sha256.slice();
    this.#file = file;
    this.#hash = hash;
    this.#written = written;
  }

  /**
   * Opens `finalPath + ".securechat-part"` for writing, creating parent folders.
   *
   * Without `resumeFrom` (or with 0) the part file (and the record, when given) is created
   * exclusively with mode 0600: anything already at either name is refused and left as it is.
   * With `resumeFrom > 0` the existing part file is truncated to that length, its first
   * `resumeFrom` bytes are read back into the running hash, and writing goes on from there.
   * Either way a symbolic link or anything but a regular file at the part name is refused, never
   * followed.
   *
   * @param finalPath the verified name the file should get (from `resolveInside()`)
   * @param options announced size and SHA-256, and where to resume
   * @returns a sink expecting its next write at offset `resumeFrom ?? 0`
   * @throws {RangeError} when `size` or `resumeFrom` is not a safe non-negative integer, or
   *   `resumeFrom` exceeds `size`
   * @throws {TypeError} when `sha256` is not 32 bytes
   * @throws {ProtocolError} code "unsafe_path" when the part name holds a symbolic link, a
   *   non-regular file or a file with other hard links, or (not resuming) anything at all at the
   *   part or record name; code "bad_offset" when resuming from more bytes than the part holds
   */
  static async open(finalPath: string, options: FileSinkOptions): Promise<FileSink> {
    const { size, sha256 } = options;
    const resumeFrom = options.resumeFrom ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`file size must be a non-negative integer, got ${size}`);
    }
    if (!Number.isSafeInteger(resumeFrom) || resumeFrom < 0 || resumeFrom > size) {
      throw new RangeError(`resumeFrom must be an integer in 0..${size}, got ${resumeFrom}`);
    }
    if (!(sha256 instanceof Uint8Array) || sha256.length !== SHA256_LENGTH) {
      throw new TypeError(`sha256 must be ${SHA256_LENGTH} bytes`);
    }
    const part = partPath(finalPath);
    await Deno.mkdir(dirName(part), { recursive: true });
    const info = await lstatIfExists(part);
    if (info !== undefined && !info.isFile) {
      const what = info.isSymlink ? "a symbolic link" : "not a regular file";
      throw new ProtocolError(
        "unsafe_path",
        `refusing to write "${sanitizeDisplayName(part)}": it is ${what}`,
        { hints: ["something other than securechat created it; move it away and try again"] },
      );
    }
    const hash = (await loadNodeCrypto()).createHash("sha256");
    if (resumeFrom === 0) {
      if (info !== undefined) throw occupied(part);
      if (options.record !== undefined) {
        const record = options.record;
        await createNew(recordPath(finalPath), async (file) => {
          let done = 0;
          while (done < record.length) done += await file.write(record.subarray(done));
        });
      }
      try {
        const file = await Deno.open(part, { write: true, createNew: true, mode: 0o600 });
        return new FileSink(finalPath, file, hash, 0, options);
      } catch (error) {
        if (options.record !== undefined) await Deno.remove(recordPath(finalPath));
        throw error instanceof Deno.errors.AlreadyExists ? occupied(part) : error;
      }
    }
    if (info === undefined || info.size < resumeFrom) {
      throw new ProtocolError(
        "bad_offset",
        `cannot resume "${sanitizeDisplayName(finalPath)}" at byte ${resumeFrom}: ` +
          `its partial file holds ${info?.size ?? 0} bytes`,
      );
    }
    if (info.nlink !== null && info.nlink > 1) {
      throw new ProtocolError(
        "unsafe_path",
        `refusing to resume "${sanitizeDisplayName(part)}": it has other hard links`,
      );
    }
    const file = await Deno.open(part, { read: true, write: true });
    try {
      if (!sameFile(info, await file.stat())) {
        throw new ProtocolError(
          "unsafe_path",
          `refusing to resume "${sanitizeDisplayName(part)}": it was replaced while opening`,
        );
      }
      await file.truncate(resumeFrom);
      await file.seek(0, Deno.SeekMode.Start);
      const read = await hashPrefix(file, resumeFrom, hash);
      if (read !== resumeFrom) {
        throw new ProtocolError(
          "bad_offset",
          `cannot resume "${sanitizeDisplayName(finalPath)}" at byte ${resumeFrom}: ` +
            `its partial file shrank to ${read} bytes`,
        );
      }
      await file.seek(0, Deno.SeekMode.End);
    } catch (error) {
      file.close();
      throw error;
    }
    return new FileSink(finalPath, file, hash, resumeFrom, options);
  }

  /** Bytes in the part file so far (including resumed ones): the offset the next write must use. */
  get written(): number {
    return this.#written;
  }

  /** Path of the part file this sink writes. */
  get part(): string {
    return this.#part;
  }

  /**
   * Appends `data`, which the sender placed at `offset`.
   *
   * A refused write puts the sink in a failed state: only {@linkcode FileSink.abort} is allowed
   * afterwards.
   *
   * @param offset must equal {@linkcode FileSink.written}
   * @param data the bytes
   * @throws {ProtocolError} code "bad_offset" when `offset` is not the bytes written so far;
   *   code "oversize" when the data would go past the announced size
   * @throws {Error} when the sink is finished, aborted or failed, or a write is in progress
   */
  async write(offset: number, data: Uint8Array): Promise<void> {
    const file = this.#check("write");
    if (offset !== this.#written) {
      this.#state = "failed";
      throw new ProtocolError(
        "bad_offset",
        `receiving "${this.#name()}" failed: data at offset ${offset}, expected ${this.#written}`,
        { hints: ["the sender may be replaying or reordering data"] },
      );
    }
    if (data.length > this.#size - this.#written) {
      this.#state = "failed";
      throw new ProtocolError(
        "oversize",
        `receiving "${this.#name()}" failed: ` +
          `the sender sent more than the announced ${this.#size} bytes`,
      );
    }
    this.#busy = true;
    try {
      let done = 0;
      while (done < data.length) done += await file.write(data.subarray(done));
    } catch (error) {
      this.#state = "failed";
      throw error;
    } finally {
      this.#busy = false;
    }
    this.#hash.update(data);
    this.#written += data.length;
  }

  /**
   * Verifies the file and moves it to its final name.
   *
   * @returns the final path: the one given to {@linkcode FileSink.open}, or a numbered variant
   *   when that name was taken meanwhile (see `freeName()` in `lib/transfer/free_name.ts`)
   * @throws {ProtocolError} code "truncated_file" when fewer than the announced bytes arrived
   *   (the part file is kept, so a resend can resume)
   * @throws {AuthenticationError} code "file_hash_mismatch" when the SHA-256 differs from the
   *   announced one (the part file and its record are deleted: its content is wrong)
   * @throws {Error} when the sink is finished, aborted or failed
   */
  async finish(): Promise<string> {
    const file = this.#check("finish");
    if (this.#written !== this.#size) {
      this.#state = "failed";
      throw new ProtocolError(
        "truncated_file",
        `receiving "${this.#name()}" failed: ` +
          `got ${this.#written} of the announced ${this.#size} bytes`,
        { hints: ["the file may have been truncated in transit; offer it again to resume"] },
      );
    }
    if (!constantTimeEqual(digest(this.#hash), this.#expected)) {
      this.#state = "failed";
      this.#close();
      await Deno.remove(this.#part).catch(() => {});
      await this.#removeRecord().catch(() => {});
      throw new AuthenticationError(
        "file_hash_mismatch",
        `receiving "${this.#name()}" failed: its SHA-256 does not match the announced one; ` +
          `it may be corrupted or tampered with`,
      );
    }
    try {
      await file.sync();
    } catch (error) {
      this.#state = "failed";
      throw error;
    }
    this.#close();
    try {
      const published = await publish(this.#part, this.#finalPath);
      this.#state = "done";
      await this.#removeRecord();
      return published;
    } catch (error) {
      this.#state = "failed";
      throw error;
    }
  }

  /**
   * Stops receiving: closes the part file and, with `removePart`, deletes it and its record. Keep it when the
   * connection broke (a resend can resume); delete it when either side cancelled. Idempotent,
   * and a no-op after a successful {@linkcode FileSink.finish}.
   *
   * @param removePart delete the part file and its record
   * @throws {Deno.errors.PermissionDenied} and other errors from deleting, except NotFound
   */
  async abort(removePart: boolean): Promise<void> {
    if (this.#state === "done") return;
    this.#close();
    this.#state = "aborted";
    if (!removePart) return;
    try {
      await Deno.remove(this.#part);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    await this.#removeRecord();
  }

  async #removeRecord(): Promise<void> {
    if (this.#record === undefined) return;
    try {
      await Deno.remove(this.#record);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  #check(action: string): Deno.FsFile {
    if (this.#state !== "open" || this.#file === undefined) {
      throw new Error(`cannot ${action} "${this.#name()}": the file sink is ${this.#state}`);
    }
    // Writes must be awaited one by one: the offset check relies on it.
    if (this.#busy) throw new Error(`cannot ${action} "${this.#name()}": a write is in progress`);
    return this.#file;
  }

  #close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  #name(): string {
    return sanitizeDisplayName(this.#finalPath);
  }
}

/** The error for a name already taken where a new part file or record would go. */
function occupied(path: string): ProtocolError {
  return new ProtocolError(
    "unsafe_path",
    `refusing to write "${sanitizeDisplayName(path)}": something is already there`,
    { hints: ["securechat never reuses or deletes a file it did not create for this transfer"] },
  );
}

/** Creates `path` exclusively with mode 0600, writes it through `fill`, and closes it. */
async function createNew(path: string, fill: (file: Deno.FsFile) => Promise<void>): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    throw error instanceof Deno.errors.AlreadyExists ? occupied(path) : error;
  }
  try {
    await fill(file);
  } finally {
    file.close();
  }
}

/** Same device and inode (where the platform reports them), and a regular file. */
function sameFile(before: Deno.FileInfo, after: Deno.FileInfo): boolean {
  return after.isFile && before.dev === after.dev && before.ino === after.ino;
}
