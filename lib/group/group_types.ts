/**
 * The shapes a room member's group hands out and takes back: events, admissions, pending commits
 * (docs/PROTOCOL.md sections 13.3 to 13.7). group.ts re-exports them.
 *
 * @module
 */

import type { PublicIdentity } from "../keys/identity.ts";
import type { GroupMember } from "./group_members.ts";

/** What processing one message, or adopting our own commit, did. */
export type GroupEvent =
  | {
    kind: "application";
    sender: GroupMember;
    content: Uint8Array;
    /** Generations skipped since this sender's last message in this epoch: 0 normally. */
    missed: number;
  }
  | {
    kind: "proposal";
    sender: GroupMember;
    /** A Remove of its own leaf: the only proposal kept (section 13.3). */
    leaving: boolean;
  }
  | {
    kind: "commit";
    committer: GroupMember;
    added: GroupMember[];
    removed: { member: GroupMember; left: boolean }[];
    /** The admins' fingerprints after the commit. */
    admins: string[];
    removedUs: boolean;
    /** The epoch the commit starts. */
    epoch: bigint;
  };

/** A newcomer's KeyPackage that passed every check, ready for a commit that adds it. */
export interface Admission {
  /** The MLSMessage (mls_key_package) bytes. */
  keyPackage: Uint8Array;
  member: { name: string; fingerprint: string; author: Uint8Array; identity: PublicIdentity };
}

/** What a commit of ours changes, on top of the pending proposals it carries. */
export interface CommitChange {
  add?: Admission[];
  remove?: GroupMember[];
  /** The full new list of admins' fingerprints. */
  admins?: string[];
}

/** A commit made but not applied: the relay decides (Accepted or Refused, section 13.4). */
export interface PendingCommit {
  /** MLSMessage (PrivateMessage, commit). */
  commit: Uint8Array;
  /** MLSMessage (Welcome), when the commit adds someone. */
  welcome?: Uint8Array;
  /** The author ids of the added, in the order of `change.add`. */
  recipients: Uint8Array[];
  /** The epoch it was made in. */
  epoch: bigint;
}
