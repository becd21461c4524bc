/**
 * Where securechat keeps its files, and atomic file writes.
 *
 * Files that must never be left half-written (private keys, known_hosts) are written to a
 * temporary sibling, flushed to disk, then renamed over the target, so a crash leaves either the
 * old file or the new one.
 *
 * @module
 */

import { SecurechatError } from "./errors.ts";

/** The securechat folder: `$SECURECHAT_HOME`, else `~/.securechat`. */
export function securechatHome(): string {
  const explicit = Deno.env.get("SECURECHAT_HOME");
  if (explicit) return explicit;
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) {
    throw new SecurechatError(
      "no_home",
      "cannot find your home folder: neither HOME nor USERPROFILE is set",
      1,
      { hints: ["set SECURECHAT_HOME to the folder for your keys"] },
    );
  }
  return joinPath(home, ".securechat");
}

/**
 * Where a chat saves accepted files unless told otherwise: `$XDG_DOWNLOAD_DIR/securechat`, else
 * `~/Downloads/securechat`. A folder of its own, never the folder the chat was started from: a
 * file offer must not land among the user's dotfiles. The receiver creates it (0700) on the
 * first accept.
 *
 * @throws {SecurechatError} code "no_home" when neither HOME nor USERPROFILE is set
 */
export function downloadsFolder(): string {
  // The XDG spec allows only absolute paths there; a relative one would mean the current folder.
  const xdg = Deno.env.get("XDG_DOWNLOAD_DIR");
  if (xdg && /^(?:\/|[A-Za-z]:[\\/])/u.test(xdg)) return joinPath(xdg, "securechat");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) {
    throw new SecurechatError(
      "no_home",
      "cannot find your home folder for received files: neither HOME nor USERPROFILE is set",
      1,
      { hints: ['choose a folder with "--accept-files DIR"'] },
    );
  }
  return joinPath(home, "Downloads", "securechat");
}

/** Joins path segments with the platform separator. */
export function joinPath(...parts: string[]): string {
  const separator = Deno.build.os === "windows" ? "\\" : "/";
  return parts.join(separator).replace(/[\\/]+/g, separator);
}

/** The folder part of a path ("." when there is none). */
export function dirName(path: string): string {
  const index = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (index < 0) return ".";
  if (index === 0) return path.slice(0, 1);
  return path.slice(0, index);
}

/**
 * True when `path` is `folder` or inside it, comparing absolute paths as text: on Windows without
 * regard to case or to which separator is used, as NTFS names compare there.
 *
 * @param path an absolute path
 * @param folder an absolute folder path
 * @param options.windows compare the Windows way (default: when running on Windows)
 * @returns whether `path` lies within `folder`
 *
 * @example
 * ```ts
 * import { isWithin } from "./paths.ts";
 * import assert from "node:assert/strict";
 *
 * const windows = { windows: true };
 * assert.equal(isWithin("C:\\Users\\Ann\\.securechat\\id", "c:/users/ann", windows), true);
 * assert.equal(isWithin("C:\\Users\\Annie\\id", "C:\\Users\\Ann", windows), false);
 * assert.equal(isWithin("/home/ann/.securechat/id", "/home/ann", { windows: false }), true);
 * ```
 */
export function isWithin(
  path: string,
  folder: string,
  options: { windows?: boolean } = {},
): boolean {
  const windows = options.windows ?? Deno.build.os === "windows";
  const normal = (text: string) => {
    const trimmed = windows ? text.replaceAll("\\", "/").toLowerCase() : text;
    return trimmed.length > 1 ? trimmed.replace(/\/+$/, "") : trimmed;
  };
  const [inner, outer] = [normal(path), normal(folder)];
  return inner === outer || inner.startsWith(outer.endsWith("/") ? outer : `${outer}/`);
}

/** True when `path` exists (any kind of entry). */
export async function exists(path: string): Promise<boolean> {
  return await lstatIfExists(path) !== undefined;
}

/**
 * What `Deno.lstat` says of `path` (a link itself, never its target), or undefined when nothing
 * is there.
 *
 * @throws what `Deno.lstat` throws for any reason other than a missing entry
 */
export async function lstatIfExists(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Writes `data` to `path` atomically: temporary sibling, fsync, rename.
 *
 * @param options.mode file mode for the new file (POSIX only), e.g. 0o600 for private keys
 * @param options.createNew fail with `AlreadyExists` instead of replacing an existing file
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  options: { mode?: number; createNew?: boolean } = {},
): Promise<void> {
  if (options.createNew && await exists(path)) {
    throw new Deno.errors.AlreadyExists(`"${path}" already exists`);
  }
  const random = crypto.getRandomValues(new Uint8Array(6));
  const suffix = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  const temporary = `${path}.tmp-${suffix}`;
  const file = await Deno.open(temporary, {
    write: true,
    createNew: true,
    ...(options.mode === undefined ? {} : { mode: options.mode }),
  });
  try {
    let written = 0;
    while (written < data.length) written += await file.write(data.subarray(written));
    await file.sync();
  } catch (error) {
    file.close();
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  file.close();
  try {
    if (options.createNew) await publishNew(temporary, path);
    else await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Moves `temporary` to `path` only if nothing is at `path`: a hard link fails atomically with
 * AlreadyExists, where an exists() check before rename() leaves a window for a second writer.
 * File systems without hard links fall back to that check.
 */
async function publishNew(temporary: string, path: string): Promise<void> {
  try {
    await Deno.link(temporary, path);
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) throw error;
    if (await exists(path)) throw new Deno.errors.AlreadyExists(`"${path}" already exists`);
    await Deno.rename(temporary, path);
    return;
  }
  await Deno.remove(temporary);
}
