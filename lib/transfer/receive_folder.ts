/**
 * The top-level folder a folder offer is received into: always one this transfer created itself.
 * When `NAME` exists in the receive folder (a folder, a file, a link: any entry), the next free
 * "NAME (1)", "NAME (2)", ... is used, created with a plain `mkdir` that fails if anything is
 * there (so no link is followed), and a folder record (`lib/transfer/part_record.ts`) is written
 * beside it. An offer never adds files to a folder that was already there: not the user's
 * `Library` under `--receive ~`, not the `project/` another member sent earlier.
 *
 * The one exception is resume: the same sender re-offering the same manifest gets back the folder
 * whose record names that sender and manifest ({@linkcode claimFolder}), and only that one.
 *
 * What it does not do: validate the name (`offerNameProblem` in `lib/transfer/offer_checks.ts`
 * did), or create anything below the folder (`lib/transfer/file_sink.ts`, after
 * `lib/transfer/safe_path.ts`).
 *
 * Mirrors: docs/PROTOCOL.md section 14.3 (Manifest: where a folder is received) and 14.4 (resume).
 *
 * @module
 */

import { SecurechatError } from "../core/errors.ts";
import { exists, joinPath } from "../core/paths.ts";
import { MAX_FREE_NAME_TRIES, numberedFolderName, recordPath } from "./free_name.ts";
import { encodeFolderRecord, type FolderOwner, ownsFolder } from "./part_record.ts";
import { sanitizeDisplayName } from "./safe_path.ts";

/**
 * The folder name an offer would be received under if it came now, for the prompt: the one
 * {@linkcode claimFolder} would resume into, else the first free one. Creates nothing.
 *
 * @param root the receive folder (it may not exist yet)
 * @param name the offer's name, already checked to be one safe segment
 * @param owner the offer's sender and manifest hash
 */
export async function predictFolder(
  root: string,
  name: string,
  owner: FolderOwner,
): Promise<string> {
  const resumed = await resumeFolder(root, name, owner);
  if (resumed !== undefined) return resumed;
  for (let n = 0; n <= MAX_FREE_NAME_TRIES; n++) {
    const candidate = numberedFolderName(name, n);
    if (await free(joinPath(root, candidate))) return candidate;
  }
  return name;
}

/**
 * Claims the top-level folder for a folder offer: the folder recorded for this very sender and
 * manifest (resume), else a new one at the first free name, created exclusively, with its record.
 *
 * @param root the receive folder; it must exist
 * @param name the offer's name, already checked to be one safe segment
 * @param owner the offer's sender and manifest hash
 * @returns the folder's name in `root` ("NAME" or "NAME (n)")
 * @throws {SecurechatError} code "no_free_name" when no name up to (MAX_FREE_NAME_TRIES) is free
 */
export async function claimFolder(root: string, name: string, owner: FolderOwner): Promise<string> {
  const resumed = await resumeFolder(root, name, owner);
  if (resumed !== undefined) return resumed;
  for (let n = 0; n <= MAX_FREE_NAME_TRIES; n++) {
    const candidate = numberedFolderName(name, n);
    const path = joinPath(root, candidate);
    if (!await free(path)) continue;
    try {
      // Not recursive: it fails on any existing entry, a link included, and follows none.
      await Deno.mkdir(path);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) continue;
      throw error;
    }
    try {
      await Deno.writeFile(recordPath(path), encodeFolderRecord(owner), {
        createNew: true,
        mode: 0o600,
      });
    } catch (error) {
      await Deno.remove(path).catch(() => {});
      if (error instanceof Deno.errors.AlreadyExists) continue;
      throw error;
    }
    return candidate;
  }
  throw new SecurechatError(
    "no_free_name",
    `cannot find a free name for the folder "${sanitizeDisplayName(name)}": ` +
      `it and its numbered variants up to (${MAX_FREE_NAME_TRIES}) are all taken`,
    1,
    { hints: ["move or remove some of those folders, or receive into another folder"] },
  );
}

/**
 * Removes the record of a folder received whole (or cancelled): it is no longer to be resumed.
 *
 * @param root the receive folder
 * @param folder the name {@linkcode claimFolder} returned
 */
export async function releaseFolder(root: string, folder: string): Promise<void> {
  try {
    await Deno.remove(recordPath(joinPath(root, folder)));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * The first numbered name whose folder is recorded for `owner`, looking only while the names
 * are taken (a folder or a record there); undefined when there is none.
 */
async function resumeFolder(
  root: string,
  name: string,
  owner: FolderOwner,
): Promise<string | undefined> {
  for (let n = 0; n <= MAX_FREE_NAME_TRIES; n++) {
    const candidate = numberedFolderName(name, n);
    const path = joinPath(root, candidate);
    if (await ownsFolder(path, owner)) return candidate;
    if (await free(path)) return undefined;
  }
  return undefined;
}

/** True when neither `path` nor a record beside it exists (lstat: a dangling link is taken). */
async function free(path: string): Promise<boolean> {
  return !await exists(path) && !await exists(recordPath(path));
}
