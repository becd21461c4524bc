/**
 * Validation of the untrusted relative paths in a file transfer manifest, and containment of the
 * resulting path in the receiver's target folder.
 *
 * Everything a sender says is untrusted (docs/PROTOCOL.md section 14.3). {@linkcode safeRelativePath}
 * refuses a manifest path unless it names a plain entry below the target folder on every OS we run
 * on: no absolute forms (POSIX, UNC, drive letters, drive-relative "C:x"), no "." or ".."
 * segments, no backslashes (a separator on Windows), no controls or bidi formatting characters
 * (they disguise names on a terminal: "gpj.exe" shown as "exe.jpg"), no Windows device names
 * ("CON", "nul.txt", "COM1") or characters Windows forbids, no trailing dot or space (Windows strips
 * them, so "a." and "a" would be the same file), and caps on the byte length of each segment
 * (255), of the whole path (4096) and on the depth (64). Paths are checked as given and never
 * repaired: a sender that needs repairing is refused.
 *
 * {@linkcode resolveInside} then joins the segments under the target folder and refuses a path
 * that would pass through a symbolic link already in that folder, or whose deepest existing
 * folder does not resolve (realPath) inside the target folder's real path: a planted link, a
 * Windows junction or a bind mount must not redirect a write.
 *
 * What it does not do:
 * - It does not detect collisions between two manifest entries that one file system treats as
 *   one name ("a.txt" and "A.txt" on a case-insensitive disk, NFC and NFD spellings on macOS).
 *   The receiver never overwrites (`lib/transfer/free_name.ts` picks "name (1).ext"), so a collision
 *   costs a renamed file, not a lost one. Names are not Unicode-normalized.
 * - It does not close the race between this check and the later open: a local process that can
 *   write into the target folder could swap a folder for a link in between. Deno has no
 *   `openat`/`O_NOFOLLOW`; the defence here is against a remote sender, who cannot do that.
 *
 * Ideas from croc `src/receivefs/path.go` (validate every component, refuse Windows trimmed
 * characters and device names including the superscript COM¹ forms and CONIN$/CONOUT$, walk the
 * existing components with lstat and refuse symbolic links) and Go's `filepath.IsLocal`
 * (`isReservedName`: a device name stays reserved after a dot and before trailing spaces).
 *
 * Mirrors: docs/PROTOCOL.md section 14.3 (Manifest: which paths the recipient refuses).
 *
 * @module
 */

import { ProtocolError } from "../core/errors.ts";
import { joinPath } from "../core/paths.ts";
import { BIDI_FORMATTING, CONTROL_CHARACTERS, LINE_BREAKS, toTerminalLine } from "../core/text.ts";

/** Longest path segment, in UTF-8 bytes (NAME_MAX on Linux, macOS and NTFS components). */
export const MAX_SEGMENT_BYTES = 255;
/** Longest manifest path, in UTF-8 bytes (PATH_MAX on Linux). */
export const MAX_PATH_BYTES = 4096;
/** Most segments (folder depth plus the file name) in one manifest path. */
export const MAX_SEGMENTS = 64;
/** Longest display name, in code points, including the "…" that marks a cut. */
export const MAX_DISPLAY_NAME = 200;

// Controls and line breaks (a terminal may start a new line at them), and bidi formatting, which
// can reorder how a file's extension is shown: the sets of lib/core/text.ts.
const CONTROL = new RegExp(`${CONTROL_CHARACTERS.source}|${LINE_BREAKS.source}`, "u");
const BIDI = BIDI_FORMATTING;
// Characters Windows refuses in a name (":" also opens an NTFS alternate data stream).
const WINDOWS_FORBIDDEN = /[<>:"|?*]/u;
const DRIVE = /^[A-Za-z]:/u;
const DEVICE_NAMES = new Set(["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]);
// COM1-COM9, LPT1-LPT9, and the superscript digits Windows also accepts there.
const NUMBERED_DEVICE = /^(?:COM|LPT)[1-9\u00b9\u00b2\u00b3]$/u;

const encoder = new TextEncoder();

/**
 * Validates an untrusted relative path from a manifest and splits it into segments.
 *
 * @param path a path with "/" separators, as the sender wrote it
 * @returns the segments, in order; joining them with "/" gives `path` back
 * @throws {ProtocolError} code "unsafe_path", naming the path and the reason, when the path is
 *   not a plain relative path that is safe to create on Linux, macOS and Windows
 *
 * @example
 * ```ts
 * import { safeRelativePath } from "./safe_path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(safeRelativePath("photos/2024/café.jpg"), ["photos", "2024", "café.jpg"]);
 * assert.throws(() => safeRelativePath("../.ssh/authorized_keys"), /".." segment/);
 * ```
 */
export function safeRelativePath(path: string): string[] {
  if (typeof path !== "string") throw unsafe("", `it is a ${typeof path}, not a string`);
  if (path === "") throw unsafe(path, "it is empty");
  // A UTF-16 unit encodes to at least one byte, so a longer string is over the cap before encoding.
  if (path.length > MAX_PATH_BYTES || utf8Length(path) > MAX_PATH_BYTES) {
    throw unsafe(path, `it is longer than ${MAX_PATH_BYTES} bytes`);
  }
  if (!path.isWellFormed()) throw unsafe(path, "it is not valid Unicode (lone surrogate)");
  const control = CONTROL.exec(path);
  if (control) throw unsafe(path, `it contains the control character ${codePoint(control[0])}`);
  const bidi = BIDI.exec(path);
  if (bidi) {
    throw unsafe(path, `it contains the bidirectional formatting character ${codePoint(bidi[0])}`);
  }
  if (path.startsWith("/") || path.startsWith("\\")) throw unsafe(path, "it is absolute", true);
  if (DRIVE.test(path)) throw unsafe(path, "it starts with a drive letter", true);
  if (path.includes("\\")) throw unsafe(path, "it contains a backslash", true);
  const segments = path.split("/");
  if (segments.length > MAX_SEGMENTS) {
    throw unsafe(path, `it has more than ${MAX_SEGMENTS} segments`);
  }
  for (const segment of segments) {
    const reason = segmentProblem(segment);
    if (reason !== undefined) throw unsafe(path, reason, segment === "..");
  }
  return segments;
}

/** Why one segment is refused, or undefined when it is fine. Controls are checked by the caller. */
function segmentProblem(segment: string): string | undefined {
  if (segment === "") return "it has an empty segment";
  if (segment === "." || segment === "..") return `it has a "${segment}" segment`;
  if (/^\.+$/u.test(segment)) return `the segment "${segment}" is only dots`;
  if (utf8Length(segment) > MAX_SEGMENT_BYTES) {
    return `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  const forbidden = WINDOWS_FORBIDDEN.exec(segment);
  if (forbidden) return `it contains "${forbidden[0]}", which Windows forbids in names`;
  if (segment.endsWith(".") || segment.endsWith(" ")) {
    return `the segment "${segment}" ends with a dot or space, which Windows strips`;
  }
  if (isWindowsDeviceName(segment)) {
    return `the segment "${segment}" is a Windows device name`;
  }
  return undefined;
}

/**
 * True for names Windows opens as a device: "CON", "nul.txt", "Com1.tar.gz", "AUX .c". As in Go's
 * `isReservedName`, the name counts up to its first dot, without trailing spaces.
 */
function isWindowsDeviceName(segment: string): boolean {
  const dot = segment.indexOf(".");
  const base = (dot < 0 ? segment : segment.slice(0, dot)).replace(/ +$/u, "").toUpperCase();
  return DEVICE_NAMES.has(base) || NUMBERED_DEVICE.test(base);
}

/**
 * Joins validated segments under `root` and checks that the result stays inside it.
 *
 * Walks the existing components with `Deno.lstat`: every intermediate folder, and the final entry
 * if it exists, must not be a symbolic link, and an intermediate must be a folder. Then the real
 * path of the deepest existing folder must be `root`'s real path or lie below it (this catches
 * what lstat does not report as a link, such as Windows junctions). `root` itself may be a link:
 * the user chose it. The segments are validated again with {@linkcode safeRelativePath}.
 *
 * Call it right before creating the file, not once per manifest: folders created by earlier
 * files change what exists.
 *
 * @param root the target folder; it must exist
 * @param segments segments from {@linkcode safeRelativePath}
 * @returns the joined path, in the platform's spelling
 * @throws {ProtocolError} code "unsafe_path" when the segments are unsafe (or one holds a "/"),
 *   a component is a symbolic link, an intermediate component is not a folder, or the path
 *   resolves outside `root`
 * @throws {Deno.errors.NotFound} when `root` does not exist
 */
export async function resolveInside(root: string, segments: string[]): Promise<string> {
  const relative = segments.join("/");
  if (safeRelativePath(relative).length !== segments.length) {
    throw unsafe(relative, "a segment contains a slash");
  }
  const realRoot = await Deno.realPath(root);
  let deepestFolder = root;
  let current = root;
  for (const [index, segment] of segments.entries()) {
    current = joinPath(current, segment);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(current);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) break;
      throw error;
    }
    const shown = segments.slice(0, index + 1).join("/");
    if (info.isSymlink) {
      throw unsafe(relative, `"${shown}" in the target folder is a symbolic link`, true);
    }
    const last = index === segments.length - 1;
    if (!last && !info.isDirectory) {
      throw unsafe(relative, `"${shown}" in the target folder is not a folder`);
    }
    if (info.isDirectory) deepestFolder = current;
  }
  const realDeepest = await Deno.realPath(deepestFolder);
  if (!isInside(realDeepest, realRoot)) {
    throw unsafe(relative, `"${deepestFolder}" resolves outside the target folder`, true);
  }
  return joinPath(root, ...segments);
}

/** True when `path` is `root` or below it; both are real (resolved, absolute) paths. */
function isInside(path: string, root: string): boolean {
  const windows = Deno.build.os === "windows";
  const a = windows ? path.toLowerCase() : path;
  const b = windows ? root.toLowerCase() : root;
  if (a === b) return true;
  const prefix = b.endsWith("/") || b.endsWith("\\") ? b : b + (windows ? "\\" : "/");
  return a.startsWith(prefix);
}

/**
 * Makes a sender-chosen name (an offer's name, a manifest path) safe to show on a terminal:
 * lone surrogates become U+FFFD, line breaks and tabs become spaces, other controls and bidi
 * formatting characters are removed, and the result is cut to {@linkcode MAX_DISPLAY_NAME} code
 * points, ending with "…" when cut.
 *
 * @param name untrusted text
 * @returns the name on one line, without escape sequences or reordering characters
 *
 * @example
 * ```ts
 * import { sanitizeDisplayName } from "./safe_path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sanitizeDisplayName("invoice\u202egpj.exe"), "invoicegpj.exe");
 * assert.equal(sanitizeDisplayName("a\x1b[2Jb\nc"), "a[2Jb c");
 * ```
 */
export function sanitizeDisplayName(name: string): string {
  const chars = [...toTerminalLine(name)];
  if (chars.length <= MAX_DISPLAY_NAME) return chars.join("");
  return chars.slice(0, MAX_DISPLAY_NAME - 1).join("") + "\u2026";
}

/** The error for a refused path; traversal-like reasons get a hint naming the attack. */
function unsafe(path: string, reason: string, traversal = false): ProtocolError {
  const hints = traversal
    ? ["the sender may be trying to write outside the target folder (path traversal)"]
    : [];
  return new ProtocolError(
    "unsafe_path",
    `refusing path "${quoted(path)}" from the sender: ${reason}`,
    { hints },
  );
}

/**
 * A path as shown inside an error message: controls, bidi characters and lone surrogates are
 * escaped as `\u{…}`, quotes and backslashes escaped, and long paths cut, so the message itself
 * cannot be used against the terminal that prints it.
 */
function quoted(path: string): string {
  let out = "";
  let count = 0;
  for (const char of path) {
    if (++count > 120) return out + "\u2026";
    if (char === '"' || char === "\\") out += "\\" + char;
    else if (CONTROL.test(char) || BIDI.test(char) || !char.isWellFormed()) {
      out += `\\u{${char.codePointAt(0)!.toString(16)}}`;
    } else out += char;
  }
  return out;
}

/** "U+001B" for a one-character string. */
function codePoint(char: string): string {
  return "U+" + char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
}

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}
