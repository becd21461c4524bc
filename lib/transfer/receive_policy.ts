/**
 * How a participant receives files: the user's choices ({@linkcode ReceivePolicy}, one struct that
 * every layer passes on), and what a recipient checks before it accepts a file offer, beyond its
 * name and file count: the size limit (`--max-file-size`, and a default one for offers accepted without asking) and the free
 * space of the receive folder's file system, so that an offer that cannot fit is declined with
 * its reason instead of failing half-way with the disk full.
 *
 * Free space comes from `statfs` (`node:fs/promises`; Deno needs `--allow-sys=statfs`, which the
 * shipped binary has). Where it is unavailable (permission denied, unsupported platform) the
 * check is skipped and only the size limit applies. The bytes still to come of transfers already
 * accepted count as used. A resumed transfer is counted whole, so a resume near a full disk may
 * be declined although its `.part` files hold most of it.
 *
 * Mirrors: docs/PROTOCOL.md section 14.5 (a recipient's limits on an Offer).
 *
 * @module
 */

import { statfs } from "node:fs/promises";

/** How a participant receives files, as the command line chose. */
export interface ReceivePolicy {
  /** Where accepted files are written (default: `downloadsFolder()`, lib/core/paths.ts). */
  receiveDir?: string | undefined;
  /** Accept files and folders whose names start with "." (`--allow-hidden-files`). */
  allowHidden?: boolean | undefined;
  /** Accept every verified offer at once (`listen --receive`, `--accept-files`). */
  autoAccept?: boolean | undefined;
  /** Reject offers larger than this many bytes (`--max-file-size`; see {@linkcode sizeLimit}). */
  maxFileSize?: number | undefined;
}

/**
 * The receive policy in `options`, and nothing else of them, for handing on to the next layer.
 *
 * @param options any options struct that carries a receive policy
 * @returns a new object with only the policy's fields that are set
 */
export function receivePolicyOf(options: ReceivePolicy): ReceivePolicy {
  const policy: ReceivePolicy = {};
  if (options.receiveDir !== undefined) policy.receiveDir = options.receiveDir;
  if (options.allowHidden !== undefined) policy.allowHidden = options.allowHidden;
  if (options.autoAccept !== undefined) policy.autoAccept = options.autoAccept;
  if (options.maxFileSize !== undefined) policy.maxFileSize = options.maxFileSize;
  return policy;
}

/** The size limit of offers accepted without asking (`--receive`, `--accept-files`): 1 GiB. */
export const DEFAULT_AUTO_ACCEPT_MAX_BYTES = 1024 ** 3;

/**
 * The size limit that applies: `--max-file-size` when given, else the default one when offers
 * are accepted without asking, else none.
 */
export function sizeLimit(
  maxFileSize: number | undefined,
  autoAccept: boolean | undefined,
): number | undefined {
  return maxFileSize ?? (autoAccept ? DEFAULT_AUTO_ACCEPT_MAX_BYTES : undefined);
}

/** Bytes an unprivileged user may still write on `dir`'s file system, when that can be known. */
export async function freeSpace(dir: string): Promise<number | undefined> {
  try {
    const info = await statfs(dir);
    return Number(info.bavail) * Number(info.bsize);
  } catch {
    return undefined;
  }
}

/**
 * Why an offer of `total` bytes cannot be received into `dir`, or undefined when it fits (or
 * the free space cannot be known). `committed` gives the bytes already promised to transfers
 * accepted but not yet written: it is called after the free space is read, so that the caller
 * can mark its offer accepted with no await in between, and offers accepted at once cannot each
 * count the same free space.
 */
export async function noRoomFor(
  total: number,
  dir: string,
  committed: () => number = () => 0,
): Promise<string | undefined> {
  const free = await freeSpace(dir);
  if (free === undefined) return undefined;
  const promised = committed();
  if (total + promised <= free) return undefined;
  return `not enough free space: ${total} bytes offered, ${free} available` +
    (promised > 0 ? ` of which ${promised} are promised to transfers in progress` : "");
}
