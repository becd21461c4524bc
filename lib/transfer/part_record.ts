/**
 * The resume record: a small file securechat writes beside each part file it creates
 * (`NAME.securechat-resume` beside `NAME.securechat-part`), naming the sender's fingerprint, the
 * manifest's SHA-256 (from the Offer) and the manifest entry (index, size, SHA-256) the part
 * belongs to.
 *
 * A part file is resumed, so read, hashed, truncated or deleted, only when its record holds
 * exactly what the new transfer would write there ({@linkcode ownsPart}). Anything else at those
 * names (a browser's half download, a file the sender planted through an earlier transfer, a
 * part of another sender or another manifest) is left alone, byte for byte, and the file is
 * received under the next free name instead. Without the record a sender could choose a name and
 * a length and learn the SHA-256 of any prefix of a file in the receive folder, then have it
 * truncated, appended to and deleted.
 *
 * A folder offer gets a record too, beside the top-level folder it created
 * (`NAME (1).securechat-resume` beside `NAME (1)/`, {@linkcode encodeFolderRecord}): the same
 * sender re-offering the same manifest resumes into that folder and no other
 * ({@linkcode ownsFolder}).
 *
 * What it does not do: write the part file (`lib/transfer/file_sink.ts`), pick names (`lib/transfer/free_name.ts`).
 *
 * Mirrors: docs/PROTOCOL.md section 14.4 (Data, flow control and resume).
 *
 * @module
 */

import { constantTimeEqual, toHex } from "../core/bytes.ts";
import { lstatIfExists } from "../core/paths.ts";
import { partPath, recordPath } from "./free_name.ts";

/** Largest record we read; ours are about 250 bytes. */
const MAX_RECORD_BYTES = 1024;

/** Whose part file it is: the sender and the manifest entry it holds a prefix of. */
export interface PartOwner {
  /** The sender's identity fingerprint ("SHA256:..."). */
  sender: string;
  /** SHA-256 of the manifest the Offer named. */
  manifestSha256: Uint8Array;
  /** The file's index in that manifest. */
  fileIndex: number;
  /** The file's announced size. */
  size: number;
  /** The file's announced SHA-256. */
  sha256: Uint8Array;
}

/**
 * The record's bytes for `owner`: a few text lines, compared whole, never parsed.
 *
 * @example
 * ```ts
 * import { encodePartRecord } from "./part_record.ts";
 * import assert from "node:assert/strict";
 *
 * const text = new TextDecoder().decode(encodePartRecord({
 *   sender: "SHA256:abc",
 *   manifestSha256: new Uint8Array(32),
 *   fileIndex: 0,
 *   size: 5,
 *   sha256: new Uint8Array(32),
 * }));
 * assert.match(text, /^securechat part 1\nsender SHA256:abc\n/);
 * ```
 */
export function encodePartRecord(owner: PartOwner): Uint8Array {
  return new TextEncoder().encode(
    [
      "securechat part 1",
      `sender ${owner.sender}`,
      `manifest ${toHex(owner.manifestSha256)}`,
      `file ${owner.fileIndex}`,
      `size ${owner.size}`,
      `sha256 ${toHex(owner.sha256)}`,
      "",
    ].join("\n"),
  );
}

/**
 * True when the part file at `finalPath` is ours for `owner`: a regular part file and beside it a
 * regular record file holding exactly {@linkcode encodePartRecord}`(owner)`. Reads the record
 * only (at most 1 KiB), never the part file.
 *
 * @param finalPath the name the file will have
 * @param owner the sender and manifest entry of the transfer asking
 */
export async function ownsPart(finalPath: string, owner: PartOwner): Promise<boolean> {
  const part = await lstatIfExists(partPath(finalPath));
  const record = await lstatIfExists(recordPath(finalPath));
  if (!part?.isFile || !record?.isFile || record.size > MAX_RECORD_BYTES) return false;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(recordPath(finalPath));
  } catch {
    return false;
  }
  const expected = encodePartRecord(owner);
  return bytes.length === expected.length && constantTimeEqual(bytes, expected);
}

/** Whose top-level folder it is: the sender and the manifest of the folder offer it holds. */
export interface FolderOwner {
  /** The sender's identity fingerprint ("SHA256:..."). */
  sender: string;
  /** SHA-256 of the manifest the Offer named. */
  manifestSha256: Uint8Array;
}

/**
 * The record's bytes for a top-level folder: a few text lines, compared whole, never parsed.
 *
 * @example
 * ```ts
 * import { encodeFolderRecord } from "./part_record.ts";
 * import assert from "node:assert/strict";
 *
 * const text = new TextDecoder().decode(
 *   encodeFolderRecord({ sender: "SHA256:abc", manifestSha256: new Uint8Array(32) }),
 * );
 * assert.match(text, /^securechat folder 1\nsender SHA256:abc\n/);
 * ```
 */
export function encodeFolderRecord(owner: FolderOwner): Uint8Array {
  return new TextEncoder().encode(
    [
      "securechat folder 1",
      `sender ${owner.sender}`,
      `manifest ${toHex(owner.manifestSha256)}`,
      "",
    ].join("\n"),
  );
}

/**
 * True when `folder` is a folder this securechat created for `owner`'s folder offer: a real
 * folder (not a link) and beside it a regular record file holding exactly
 * {@linkcode encodeFolderRecord}`(owner)`. Reads the record only (at most 1 KiB).
 *
 * @param folder the top-level folder's path
 * @param owner the sender and manifest of the offer asking
 */
export async function ownsFolder(folder: string, owner: FolderOwner): Promise<boolean> {
  const info = await lstatIfExists(folder);
  const record = await lstatIfExists(recordPath(folder));
  if (!info?.isDirectory || !record?.isFile || record.size > MAX_RECORD_BYTES) return false;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(recordPath(folder));
  } catch {
    return false;
  }
  const expected = encodeFolderRecord(owner);
  return bytes.length === expected.length && constantTimeEqual(bytes, expected);
}
