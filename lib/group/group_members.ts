/**
 * Who is in the group: the members of the ratchet tree's leaves as the Authentication Service
 * verified them, and what changed between two rosters (who was added, who was removed, who left).
 *
 * Mirrors docs/PROTOCOL.md sections 13.2 (a member is the fingerprint of its identity key; the
 * name is only what it asked to be called) and 13.7 (the roster is the group's leaves; joins show
 * who added whom, leaves who removed whom or that the member left).
 *
 * The {@linkcode CredentialBook} is the Authentication Service MLS calls, and remembers what it
 * verified, so the roster of the next state is built without verifying anyone twice. It does not
 * decide who may join (admins.ts), and it never sees plaintext.
 *
 * @module
 */

import { toHex } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import type { PublicIdentity } from "../keys/identity.ts";
import { compareAuthors } from "./admins.ts";
import { type VerifiedCredential, verifyCredential } from "./credential.ts";
import type { Credential } from "./mls.ts";

/** One member of the group, at one leaf of the tree. */
export interface GroupMember {
  /** The leaf index. */
  leaf: number;
  /** The name from its credential: a claim, shown with the fingerprint. */
  name: string;
  /** Its identity key's fingerprint (section 5.4): who it is. */
  fingerprint: string;
  /** SHA-256 of its identity key's SPKI: the author id of sections 13.4 and 14. */
  author: Uint8Array;
  /** Listed in the admins extension. */
  admin: boolean;
  /** Its identity key. */
  identity: PublicIdentity;
  /** This is us. */
  self: boolean;
}

/** What the roster needs of one occupied leaf. */
export interface LeafView {
  leaf: number;
  /** The basic credential's bytes; undefined for any other credential type. */
  credential: Uint8Array | undefined;
  signatureKey: Uint8Array;
}

/** The Authentication Service of one member, and the memory of what it verified. */
export class CredentialBook {
  #suiteId: number;
  #verified = new Map<string, Promise<VerifiedCredential | undefined>>();

  constructor(suiteId: number) {
    this.#suiteId = suiteId;
  }

  /** The AS as MLS calls it: true when a basic credential verifies for the signature key. */
  validate = async (credential: Credential, signatureKey: Uint8Array): Promise<boolean> => {
    if (credential.credentialType !== "basic") return false;
    return await this.check(credential.identity, signatureKey) !== undefined;
  };

  /**
   * Verifies a credential for a signature key, once.
   *
   * @returns who it names, or undefined when it does not verify
   */
  check(credential: Uint8Array, signatureKey: Uint8Array): Promise<VerifiedCredential | undefined> {
    const key = `${toHex(signatureKey)}:${toHex(credential)}`;
    let verified = this.#verified.get(key);
    if (verified === undefined) {
      // Anything that goes wrong is a credential that does not verify: the AS must not throw
      // inside the library (a signature key too long for its u16 field is a RangeError).
      verified = verifyCredential(credential, signatureKey, this.#suiteId).catch(() => undefined);
      this.#verified.set(key, verified);
    }
    return verified;
  }

  /** Forgets everything but the credentials of `leaves` (the tree's, after a commit). */
  keepOnly(leaves: LeafView[]): void {
    const keep = new Set(
      leaves.map((leaf) =>
        `${toHex(leaf.signatureKey)}:${toHex(leaf.credential ?? new Uint8Array())}`
      ),
    );
    for (const key of this.#verified.keys()) if (!keep.has(key)) this.#verified.delete(key);
  }
}

/** The members of one group state, in leaf order. */
export class Roster {
  readonly members: readonly GroupMember[];
  #signatureKeys: Map<number, string>;

  private constructor(members: GroupMember[], signatureKeys: Map<number, string>) {
    this.members = members;
    this.#signatureKeys = signatureKeys;
  }

  /**
   * Builds the roster of a tree.
   *
   * @param leaves the occupied leaves, in leaf order
   * @param self our own leaf
   * @param admins the admins' author ids
   * @throws {ProtocolError} code "bad_credential" when a leaf's credential does not verify (MLS
   *   verified every leaf through the same book, so this means the tree was not checked)
   */
  static async build(
    leaves: LeafView[],
    self: number,
    admins: Uint8Array[],
    book: CredentialBook,
  ): Promise<Roster> {
    const members: GroupMember[] = [];
    const signatureKeys = new Map<number, string>();
    for (const view of leaves) {
      const verified = view.credential === undefined
        ? undefined
        : await book.check(view.credential, view.signatureKey);
      if (verified === undefined) {
        throw new ProtocolError(
          "bad_credential",
          `the credential of leaf ${view.leaf} does not verify`,
        );
      }
      members.push({
        leaf: view.leaf,
        name: verified.name,
        fingerprint: verified.fingerprint,
        author: verified.author,
        admin: admins.some((admin) => compareAuthors(admin, verified.author) === 0),
        identity: verified.identity,
        self: view.leaf === self,
      });
      signatureKeys.set(view.leaf, toHex(view.signatureKey));
    }
    return new Roster(members, signatureKeys);
  }

  /** The member at a leaf. */
  at(leaf: number): GroupMember | undefined {
    return this.members.find((member) => member.leaf === leaf);
  }

  /** The first member whose author id is `author`. */
  byAuthor(author: Uint8Array): GroupMember | undefined {
    return this.members.find((member) => compareAuthors(member.author, author) === 0);
  }

  /** Is `member` still the one at its leaf (same leaf, same identity)? */
  holds(member: GroupMember): boolean {
    const current = this.at(member.leaf);
    return current !== undefined && compareAuthors(current.author, member.author) === 0;
  }

  /**
   * What a commit changed. A leaf is the same member across the commit when it keeps its
   * signature key: a leaf emptied and filled again in one commit is a removal and an addition.
   *
   * @param after the roster after the commit
   * @param leaving the leaves removed by their own proposal (they left)
   */
  changesTo(
    after: Roster,
    leaving: ReadonlySet<number>,
  ): { added: GroupMember[]; removed: { member: GroupMember; left: boolean }[] } {
    const added = after.members.filter((member) =>
      this.#signatureKeys.get(member.leaf) !== after.#signatureKeys.get(member.leaf)
    );
    const removed = this.members
      .filter((member) =>
        this.#signatureKeys.get(member.leaf) !== after.#signatureKeys.get(member.leaf)
      )
      .map((member) => ({ member, left: leaving.has(member.leaf) }));
    return { added, removed };
  }
}
