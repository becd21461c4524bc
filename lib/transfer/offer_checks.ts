/**
 * What a recipient checks of a file offer and its manifest before anything is written: the
 * offer's name is one safe segment, not hidden unless the user allows hidden files, and not named
 * like securechat's own part files; its file count fits a manifest of at most
 * {@linkcode MAX_MANIFEST_BYTES}; and every manifest path lies under that one name (or is it, for
 * a single file), is listed once, and follows the same rules. Pure: no file is touched here.
 *
 * Mirrors: docs/PROTOCOL.md sections 14.2 (Offer) and 14.3 (Manifest).
 *
 * @module
 */

import { PART_SUFFIX, RECORD_SUFFIX } from "./free_name.ts";
import { safeRelativePath, sanitizeDisplayName } from "./safe_path.ts";
import {
  type ManifestEntry,
  MAX_MANIFEST_BYTES,
  minManifestBytes,
  type Offer,
} from "./transfer_messages.ts";
import { TransferFailure } from "./transfer_progress.ts";

/**
 * Why an offer's name cannot be accepted, or undefined: it must be one safe path segment (the
 * folder or file everything is received under), and not hidden unless `allowHidden`.
 */
export function offerNameProblem(name: string, allowHidden: boolean): string | undefined {
  const shown = sanitizeDisplayName(name);
  let segments: string[];
  try {
    segments = safeRelativePath(name);
  } catch (error) {
    return `file offer "${shown}" refused: its name is not a plain file or folder name (${
      error instanceof Error ? error.message : String(error)
    })`;
  }
  if (segments.length !== 1) {
    return `file offer "${shown}" refused: its name is a path, not a file or folder name`;
  }
  if (name.startsWith(".") && !allowHidden) {
    return `file offer "${shown}" refused: it is a hidden (dot) file; ` +
      `to accept hidden files, start securechat with --allow-hidden-files`;
  }
  if (reservedSuffix(name)) {
    return `file offer "${shown}" refused: its name ends like securechat's own part files`;
  }
  return undefined;
}

/**
 * Why an offer is refused before its manifest is read, or undefined: its file count and name
 * need a manifest larger than {@linkcode MAX_MANIFEST_BYTES} (14.3) even with the shortest paths.
 */
export function manifestSizeProblem(offer: Pick<Offer, "name" | "fileCount">): string | undefined {
  const need = minManifestBytes(offer);
  if (need <= MAX_MANIFEST_BYTES) return undefined;
  return `file offer "${sanitizeDisplayName(offer.name)}" refused: its ${offer.fileCount} files ` +
    `need a manifest of at least ${need} bytes, over the limit of ${MAX_MANIFEST_BYTES} bytes`;
}

/**
 * Checks every manifest path against the offer (14.3): a safe relative path, listed once, under
 * the offer's name (or equal to it for a single file), without hidden segments unless
 * `allowHidden`, and not named like a part file or resume record. Returns the segments of each.
 *
 * @throws {TransferFailure} naming the offer and the path
 */
export function checkManifestPaths(
  name: string,
  entries: ManifestEntry[],
  allowHidden: boolean,
): string[][] {
  const shown = sanitizeDisplayName(name);
  const refuse = (why: string) => new TransferFailure(`file offer "${shown}" refused: ${why}`);
  const seen = new Set<string>();
  const checked = [];
  for (const entry of entries) {
    const segments = safeRelativePath(entry.path);
    const path = sanitizeDisplayName(entry.path);
    const single = entries.length === 1 && segments.length === 1;
    if (segments[0] !== name || (segments.length === 1 && !single)) {
      throw refuse(`its manifest holds "${path}", outside "${shown}"`);
    }
    const hidden = segments.find((segment) => segment.startsWith("."));
    if (hidden !== undefined && !allowHidden) {
      throw refuse(
        `its manifest holds the hidden (dot) file or folder "${path}"; ` +
          `to accept hidden files, start securechat with --allow-hidden-files`,
      );
    }
    if (segments.some(reservedSuffix)) {
      throw refuse(`its manifest holds "${path}", named like securechat's own part files`);
    }
    // One spelling per name, as case-insensitive and normalizing file systems see it.
    const key = segments.join("/").normalize("NFC").toLowerCase();
    if (seen.has(key)) throw refuse(`its manifest lists "${path}" twice`);
    seen.add(key);
    checked.push(segments);
  }
  return checked;
}

/** True for a name ending like a part file or a resume record, in any case. */
function reservedSuffix(segment: string): boolean {
  const lower = segment.toLowerCase();
  return lower.endsWith(PART_SUFFIX) || lower.endsWith(RECORD_SUFFIX);
}
