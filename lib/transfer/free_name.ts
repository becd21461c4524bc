/**
 * The names a received file goes by: `NAME.securechat-part` while it is written
 * ({@linkcode partPath}), with its resume record `NAME.securechat-resume` beside it
 * ({@linkcode recordPath}, `lib/transfer/part_record.ts`), then its final name or, when that is taken,
 * "NAME (1).ext", "NAME (2).ext", ... ({@linkcode freeName}), and the move that publishes a
 * verified part file there ({@linkcode publish}). An existing file is never overwritten, because
 * the move is a hard link, which fails atomically when the name exists, followed by removing the
 * part file.
 *
 * What it does not do: validate paths (`lib/transfer/safe_path.ts`), or write, hash and verify the file
 * (`lib/transfer/file_sink.ts` calls {@linkcode publish} only once the SHA-256 matches).
 *
 * Runtime caveats: on file systems without hard links (FAT, some network shares) publishing falls
 * back to an existence check then `Deno.rename`, which leaves a short window in which a file
 * appearing at that name would be replaced.
 *
 * Idea from magic-wormhole's transfer (temporary name, then rename).
 *
 * Mirrors: docs/PROTOCOL.md section 14.4 (Data, resume: part file, then rename to a free name).
 *
 * @module
 */

import { SecurechatError } from "../core/errors.ts";
import { exists } from "../core/paths.ts";
import { sanitizeDisplayName } from "./safe_path.ts";

/**
 * Suffix of the file a transfer writes before its hash is verified. Not the common ".part": a
 * browser's or downloader's half download must never be mistaken for ours (14.4).
 */
export const PART_SUFFIX = ".securechat-part";
/** Suffix of the resume record kept beside a part file (`lib/transfer/part_record.ts`). */
export const RECORD_SUFFIX = ".securechat-resume";
/** How many "name (n).ext" candidates {@linkcode freeName} tries before giving up. */
export const MAX_FREE_NAME_TRIES = 10_000;

/**
 * The temporary name a file is written under before its hash is verified.
 *
 * @param finalPath the name the file will have
 * @returns `finalPath + ".securechat-part"`
 */
export function partPath(finalPath: string): string {
  return finalPath + PART_SUFFIX;
}

/**
 * The resume record kept beside a part file: who sent it and for which manifest entry.
 *
 * @param finalPath the name the file will have
 * @returns `finalPath + ".securechat-resume"`
 */
export function recordPath(finalPath: string): string {
  return finalPath + RECORD_SUFFIX;
}

/**
 * A name at which nothing exists: `path` itself, else "name (1).ext", "name (2).ext", ...
 *
 * The extension is what follows the last dot ("report.pdf" → "report (1).pdf",
 * "a.tar.gz" → "a.tar (1).gz"); a name without one, or a dotfile, gets the number at the end
 * ("Makefile (1)", ".bashrc (1)"). Existence is checked with lstat, so a dangling link counts as
 * taken. When the numbered name would exceed 255 UTF-8 bytes, the stem is shortened.
 *
 * @param path the wanted path
 * @returns `path` or the first free numbered variant
 * @throws {SecurechatError} code "no_free_name" when {@linkcode MAX_FREE_NAME_TRIES} numbered
 *   names are all taken
 */
export async function freeName(path: string): Promise<string> {
  if (!await exists(path)) return path;
  for (let n = 1; n <= MAX_FREE_NAME_TRIES; n++) {
    const candidate = numberedName(path, n);
    if (!await exists(candidate)) return candidate;
  }
  throw new SecurechatError(
    "no_free_name",
    `cannot find a free name for "${sanitizeDisplayName(path)}": ` +
      `"${baseName(path)}" and its numbered variants up to (${MAX_FREE_NAME_TRIES}) are all taken`,
    1,
    { hints: ["move or remove some of those files, or receive into another folder"] },
  );
}

/**
 * The n-th name for a folder: `name` itself (n = 0), else "name (n)", the number always at the
 * end (a folder has no extension: "photos.2024 (1)"), the name shortened to fit 255 UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { numberedFolderName } from "./free_name.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(numberedFolderName("Library", 0), "Library");
 * assert.equal(numberedFolderName("photos.2024", 2), "photos.2024 (2)");
 * ```
 */
export function numberedFolderName(name: string, n: number): string {
  return n === 0 ? name : fitName(name, ` (${n})`);
}

/** `stem + tail`, with the stem cut by code points until the name fits in 255 UTF-8 bytes. */
function fitName(stem: string, tail: string): string {
  const encoder = new TextEncoder();
  let chars = [...stem];
  const tailBytes = encoder.encode(tail).length;
  while (chars.length > 1 && encoder.encode(chars.join("")).length + tailBytes > 255) {
    chars = chars.slice(0, -1);
  }
  return chars.join("") + tail;
}

/**
 * The `n`th numbered variant of a file's path, as {@linkcode freeName} numbers them: "report.pdf"
 * → "report (n).pdf", a name without extension or a dotfile gets the number at the end; n = 0 is
 * the path itself.
 *
 * @example
 * ```ts
 * import { numberedName } from "./free_name.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(numberedName("dir/report.pdf", 2), "dir/report (2).pdf");
 * assert.equal(numberedName(".bashrc", 1), ".bashrc (1)");
 * ```
 */
export function numberedName(path: string, n: number): string {
  if (n === 0) return path;
  const base = baseName(path);
  const folder = path.slice(0, path.length - base.length);
  const dot = base.lastIndexOf(".");
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const extension = dot > 0 ? base.slice(dot) : "";
  return folder + fitName(stem, ` (${n})${extension}`);
}

/** The last segment of a path, after its last slash or backslash. */
function baseName(path: string): string {
  return path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
}

/**
 * Moves `part` to a free name based on `finalPath`: a hard link fails with AlreadyExists rather
 * than replace a file that appeared since {@linkcode freeName} looked, so loop until one sticks.
 *
 * @param part the part file, already verified
 * @param finalPath the name it should get
 * @returns the name it got: `finalPath` or a numbered variant (see {@linkcode freeName})
 * @throws {SecurechatError} code "no_free_name" when every name tried was taken meanwhile
 */
export async function publish(part: string, finalPath: string): Promise<string> {
  for (let attempt = 0; attempt < MAX_FREE_NAME_TRIES; attempt++) {
    const target = await freeName(finalPath);
    try {
      await Deno.link(part, target);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) continue;
      // No hard links here (FAT, some shares): check, then rename (see the module doc).
      if (await exists(target)) continue;
      await Deno.rename(part, target);
      return target;
    }
    await Deno.remove(part);
    return target;
  }
  throw new SecurechatError(
    "no_free_name",
    `cannot find a free name for "${sanitizeDisplayName(finalPath)}": names keep appearing`,
  );
}
