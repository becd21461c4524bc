/**
 * Who runs the room: the admins extension of the GroupContext, and the rule every member applies
 * to every commit and every proposal before MLS may apply it.
 *
 * Mirrors docs/PROTOCOL.md section 13.3. The extension, type `0xF5A1`, is
 * `count u16 (1..256) || author id (32 bytes) * count`, in increasing byte order. The commit
 * rule:
 *
 * | proposal               | allowed when                                                       |
 * | ---------------------- | ------------------------------------------------------------------ |
 * | Add                    | the committer is an admin                                          |
 * | Remove                 | the committer is an admin, or the removed member proposed it       |
 * | Update                 | always                                                             |
 * | GroupContextExtensions | the committer is an admin, and the extensions become one valid     |
 * |                        | admins extension listing a member who stays                        |
 * | anything else          | never (PSK, ReInit, ExternalInit, custom), nor an external commit  |
 *
 * A proposal on its own is kept for a later commit only when it is a member leaving (a Remove of
 * its sender's own leaf; room_group.ts also refuses a second one): any other would ride into an
 * admin's next commit by reference.
 *
 * Pure: no MLS library here. group.ts turns the library's proposals into
 * {@linkcode PolicyProposal}s, and decides from the state before the commit.
 *
 * @module
 */

import { fromBase64, toBase64 } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import { FieldReader } from "../core/field_reader.ts";

/** Section 13.3: the admins extension's type (private use range). */
export const ADMINS_EXTENSION_TYPE = 0xf5a1;
/** Section 13.3: at most this many admins. */
export const MAX_ADMINS = 256;
/** An author id is SHA-256 of an SPKI. */
export const AUTHOR_LENGTH = 32;

/**
 * Encodes the admins extension.
 *
 * @param authors the admins' author ids, in any order
 * @returns `count u16 || author * count`, sorted
 * @throws {RangeError} on no author, more than 256, a duplicate or an id that is not 32 bytes
 */
export function encodeAdmins(authors: Uint8Array[]): Uint8Array {
  if (authors.length < 1 || authors.length > MAX_ADMINS) {
    throw new RangeError(`a room has 1 to ${MAX_ADMINS} admins, not ${authors.length}`);
  }
  const sorted = [...authors].sort(compareAuthors);
  const out = new Uint8Array(2 + AUTHOR_LENGTH * sorted.length);
  new DataView(out.buffer).setUint16(0, sorted.length);
  sorted.forEach((author, i) => {
    if (author.length !== AUTHOR_LENGTH) throw new RangeError("an author id is 32 bytes");
    if (i > 0 && compareAuthors(sorted[i - 1]!, author) === 0) {
      throw new RangeError(`admin "${fingerprintOfAuthor(author)}" is listed twice`);
    }
    out.set(author, 2 + AUTHOR_LENGTH * i);
  });
  return out;
}

/**
 * Decodes the admins extension.
 *
 * @returns the admins' author ids, in increasing byte order
 * @throws {ProtocolError} code "bad_admins" when the count is out of range, the ids are not in
 *   strictly increasing order, or the length is not exact
 */
export function decodeAdmins(data: Uint8Array): Uint8Array[] {
  const reader = new FieldReader(data, "admins extension", "bad_admins");
  const count = reader.u16("count");
  if (count < 1 || count > MAX_ADMINS) reader.fail(`count ${count} is not 1..${MAX_ADMINS}`);
  const authors: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const author = reader.take(AUTHOR_LENGTH, "fingerprint");
    if (i > 0 && compareAuthors(authors[i - 1]!, author) >= 0) {
      reader.fail("fingerprints not in increasing order");
    }
    authors.push(author);
  }
  reader.end();
  return authors;
}

/** The fingerprint text (section 5.4) of an author id. */
export function fingerprintOfAuthor(author: Uint8Array): string {
  return "SHA256:" + toBase64(author).replace(/=+$/, "");
}

/**
 * The author id a fingerprint names.
 *
 * @throws {RangeError} when `fingerprint` is not `SHA256:` and 43 characters of base64
 */
export function authorOfFingerprint(fingerprint: string): Uint8Array {
  const match = /^SHA256:([A-Za-z0-9+/]{43})$/.exec(fingerprint);
  const author = match === null ? undefined : fromBase64(match[1]!);
  if (author === undefined || fingerprintOfAuthor(author) !== fingerprint) {
    throw new RangeError(`not a fingerprint: "${fingerprint}"`);
  }
  return author;
}

/** One proposal of a commit, as the rule sees it. `proposer` is the proposing leaf. */
export type PolicyProposal =
  | { type: "add"; proposer: number | undefined }
  | { type: "remove"; proposer: number | undefined; removed: number }
  | { type: "update"; proposer: number | undefined }
  | {
    type: "group_context_extensions";
    proposer: number | undefined;
    extensions: { extensionType: number | string; extensionData: Uint8Array }[];
  }
  | { type: "other"; proposer: number | undefined; name: string };

/** The state before the commit, as the rule needs it. */
export interface PolicyState {
  /** The admins' author ids. */
  admins: Uint8Array[];
  /** The author id of the member at a leaf, undefined for a blank leaf. */
  authorOf(leaf: number): Uint8Array | undefined;
  /** Every occupied leaf. */
  leaves: number[];
}

/**
 * Section 13.3: may this commit be applied?
 *
 * @param committer the committing leaf; undefined for an external commit
 * @param proposals every proposal the commit applies, by value or by reference
 * @param before the group before the commit
 * @returns why the commit is refused, or undefined when every proposal is allowed
 */
export function commitRefusal(
  committer: number | undefined,
  proposals: PolicyProposal[],
  before: PolicyState,
): string | undefined {
  if (committer === undefined) return "a commit from outside the group";
  const committerAuthor = before.authorOf(committer);
  const isAdmin = committerAuthor !== undefined && includes(before.admins, committerAuthor);
  const removed = new Set<number>();
  for (const proposal of proposals) {
    if (proposal.type === "remove") removed.add(proposal.removed);
  }
  for (const proposal of proposals) {
    switch (proposal.type) {
      case "add":
        if (!isAdmin) return "a member who is not an admin adds someone";
        break;
      case "remove":
        if (!isAdmin && proposal.proposer !== proposal.removed) {
          return "a member who is not an admin removes someone else";
        }
        break;
      case "update":
        break;
      case "group_context_extensions": {
        if (!isAdmin) return "a member who is not an admin changes the admins";
        const problem = adminsChangeProblem(proposal.extensions, before, removed);
        if (problem !== undefined) return problem;
        break;
      }
      default:
        return `a ${proposal.name} proposal, which rooms never use`;
    }
  }
  return undefined;
}

/**
 * Is a proposal received on its own kept for a later commit? Only a member leaving (a Remove of
 * its own leaf) is: the commit rule would let an admin's commit carry anything else by reference.
 *
 * @param sender the proposing leaf
 * @returns why the proposal is refused, or undefined when it is kept
 */
export function proposalRefusal(
  sender: number | undefined,
  proposal: PolicyProposal,
): string | undefined {
  if (proposal.type === "remove" && sender !== undefined && proposal.removed === sender) {
    return undefined;
  }
  return proposal.type === "remove"
    ? "a proposal to remove another member"
    : `a ${proposal.type === "other" ? proposal.name : proposal.type} proposal on its own`;
}

function adminsChangeProblem(
  extensions: { extensionType: number | string; extensionData: Uint8Array }[],
  before: PolicyState,
  removed: Set<number>,
): string | undefined {
  const [only, ...more] = extensions;
  if (only === undefined || more.length > 0 || only.extensionType !== ADMINS_EXTENSION_TYPE) {
    return "a GroupContext with anything but the admins extension";
  }
  let admins: Uint8Array[];
  try {
    admins = decodeAdmins(only.extensionData);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return `an invalid admins extension (${error.message})`;
  }
  const staying = before.leaves.filter((leaf) => !removed.has(leaf));
  const adminStays = staying.some((leaf) => {
    const author = before.authorOf(leaf);
    return author !== undefined && includes(admins, author);
  });
  return adminStays ? undefined : "an admins extension that lists no member of the room";
}

/** Orders author ids (or any byte strings) by unsigned bytes, shorter first on a tie. */
export function compareAuthors(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}

function includes(list: Uint8Array[], author: Uint8Array): boolean {
  return list.some((entry) => compareAuthors(entry, author) === 0);
}
