/**
 * Commits, before MLS applies them: a newcomer's KeyPackage checked for admission, the commit we
 * make (its proposals checked against the rule the others will apply), and the check of a commit
 * we receive (decrypted and read without
 * changing the state, the rule applied on the state before it, every added KeyPackage checked on
 * its own).
 *
 * Mirrors docs/PROTOCOL.md section 13.3 (the commit rule; a commit carries every pending
 * proposal) and 13.6 (a commit that MLS or the rule refuses ends the session: GroupFailure).
 * room_group.ts makes and applies the commits; nothing here replaces a state.
 *
 * @module
 */

import { SecurechatError } from "../core/errors.ts";
import {
  ADMINS_EXTENSION_TYPE,
  authorOfFingerprint,
  commitRefusal,
  encodeAdmins,
  type PolicyState,
} from "./admins.ts";
import { GroupFailure, GroupRejection } from "./group_errors.ts";
import { adminsOf, leavingOf, policyProposal } from "./group_state.ts";
import type { Admission, CommitChange, PendingCommit } from "./group_types.ts";
import { keyPackageProblem, nowSeconds } from "./key_package.ts";
import {
  afterOwnHandshake,
  checkAddAlone,
  type CiphersuiteImpl,
  type ClientState,
  createCommit,
  decodeMessage,
  encodeMlsMessage,
  type KeyPackage,
  MLS_VERSION,
  openCommit,
  type PrivateMessage,
  type Proposal,
  type ProposalOrRef,
  type ProposalWithSender,
} from "./mls.ts";
import type { CredentialBook, Roster } from "./group_members.ts";

/** The rule's view of a state and its roster: the group before a commit. */
export function policyStateOf(state: ClientState, roster: Roster): PolicyState {
  return {
    admins: adminsOf(state.groupContext.extensions),
    authorOf: (leaf) => roster.at(leaf)?.author,
    leaves: roster.members.map((member) => member.leaf),
  };
}

/**
 * The proposals of a commit we make: every pending one, and those `change` asks for.
 *
 * @returns the proposals to add by value, the KeyPackages they add, and everything the commit
 *   will apply (for the rule and for telling who left)
 * @throws {SecurechatError} code "group_not_allowed" when the others would refuse the commit
 * @throws {GroupRejection} when an admission's KeyPackage is no longer acceptable (it expired)
 * @throws {RangeError} on a member no longer at its leaf, ourselves, or a bad admins list
 */
export function ourProposals(
  state: ClientState,
  roster: Roster,
  change: CommitChange,
): { extra: Proposal[]; adds: KeyPackage[]; all: ProposalWithSender[] } {
  const self = state.privatePath.leafIndex;
  const held = Object.values(state.unappliedProposals);
  if (held.some(({ proposal }) => isRemoveOf(proposal, self))) {
    throw new SecurechatError("group_not_allowed", "cannot commit after proposing to leave");
  }
  const extra: Proposal[] = [];
  const adds: KeyPackage[] = [];
  for (const admission of change.add ?? []) {
    const keyPackage = keyPackageOf(admission.keyPackage);
    const problem = keyPackageProblem(keyPackage, nowSeconds());
    if (problem !== undefined) {
      throw new GroupRejection(`the KeyPackage of "${admission.member.fingerprint}": ${problem}`);
    }
    adds.push(keyPackage);
    extra.push({ proposalType: "add", add: { keyPackage } });
  }
  for (const member of change.remove ?? []) {
    if (!roster.holds(member)) {
      throw new RangeError(`"${member.fingerprint}" is no longer at leaf ${member.leaf}`);
    }
    if (member.leaf === self) throw new RangeError("a member leaves by proposing it");
    // A member who proposed to leave is removed by that proposal: a second Remove of the same
    // leaf would make the commit invalid.
    const removes = [...held.map(({ proposal }) => proposal), ...extra];
    if (!removes.some((proposal) => isRemoveOf(proposal, member.leaf))) {
      extra.push({ proposalType: "remove", remove: { removed: member.leaf } });
    }
  }
  if (change.admins !== undefined) {
    const admins = encodeAdmins(change.admins.map(authorOfFingerprint));
    if (adds.length > 0 && !change.admins.includes(roster.at(self)!.fingerprint)) {
      // Newcomers check that whoever added them is an admin of the group they join.
      throw new RangeError("stop being an admin in a commit that adds nobody");
    }
    extra.push({
      proposalType: "group_context_extensions",
      groupContextExtensions: {
        extensions: [{ extensionType: ADMINS_EXTENSION_TYPE, extensionData: admins }],
      },
    });
  }
  const all = [...held, ...extra.map((proposal) => ({ proposal, senderLeafIndex: self }))];
  const refusal = commitRefusal(self, all.map(policyProposal), policyStateOf(state, roster));
  if (refusal !== undefined) {
    throw new SecurechatError("group_not_allowed", `cannot commit to the room: ${refusal}`);
  }
  return { extra, adds, all };
}

/**
 * Checks a newcomer's KeyPackage (a Knock) before admitting it: decoding, suite, lifetime,
 * capabilities, credential, and the library's own checks against the current tree.
 *
 * @throws {GroupRejection} when any check fails
 */
export async function admissionOf(
  state: ClientState,
  book: CredentialBook,
  bytes: Uint8Array,
  cs: CiphersuiteImpl,
): Promise<Admission> {
  const keyPackage = keyPackageOf(bytes);
  const problem = keyPackageProblem(keyPackage, nowSeconds());
  if (problem !== undefined) throw new GroupRejection(`a KeyPackage: ${problem}`);
  const { credential, signaturePublicKey } = keyPackage.leafNode;
  const verified = credential.credentialType === "basic"
    ? await book.check(credential.identity, signaturePublicKey)
    : undefined;
  if (verified === undefined) {
    throw new GroupRejection("a KeyPackage whose credential does not verify");
  }
  try {
    await checkAddAlone(state, keyPackage, state.privatePath.leafIndex, true, cs);
  } catch (error) {
    throw new GroupRejection(`a KeyPackage MLS refuses: ${messageOf(error)}`, { cause: error });
  }
  const { name, fingerprint, author, identity } = verified;
  return { keyPackage: bytes.slice(), member: { name, fingerprint, author, identity } };
}

/**
 * Makes our commit of every pending proposal plus `change`, without applying it.
 *
 * @returns the commit to send, the state it leads to (adopted after the relay's Accepted), our
 *   current state with the commit's handshake key used up (to keep either way), and the leaves
 *   that leave by it
 * @throws {SecurechatError} code "group_not_allowed" (see {@linkcode ourProposals}) or
 *   "group_commit_failed" when MLS cannot make it
 * @throws {GroupRejection} when an admission's KeyPackage is no longer acceptable
 */
export async function makeCommit(
  state: ClientState,
  roster: Roster,
  change: CommitChange,
  cs: CiphersuiteImpl,
): Promise<
  { pending: PendingCommit; next: ClientState; current: ClientState; leaving: Set<number> }
> {
  const { extra, adds, all } = ourProposals(state, roster, change);
  const problem = await problemWithAdds(state, adds, state.privatePath.leafIndex, true, cs);
  if (problem !== undefined) throw new GroupRejection(`a KeyPackage MLS refuses: ${problem}`);
  let made;
  try {
    made = await createCommit(
      { state, cipherSuite: cs },
      { extraProposals: extra, ratchetTreeExtension: true },
    );
  } catch (error) {
    throw new SecurechatError("group_commit_failed", `cannot commit: ${messageOf(error)}`);
  }
  const welcome = made.welcome === undefined ? {} : {
    welcome: encodeMlsMessage({
      version: MLS_VERSION,
      wireformat: "mls_welcome",
      welcome: made.welcome,
    }),
  };
  const pending: PendingCommit = {
    commit: encodeMlsMessage(made.commit),
    ...welcome,
    recipients: (change.add ?? []).map((admission) => admission.member.author),
    epoch: state.groupContext.epoch,
  };
  // The commit used a handshake key of this epoch; should the relay refuse it, our next
  // proposal or commit in this epoch must not use the same key and nonce.
  const current = await afterOwnHandshake(state, cs);
  return { pending, next: made.newState, current, leaving: leavingOf(all) };
}

/**
 * Checks each KeyPackage of a commit on its own when there are two or more (see mls.ts
 * `checkAddAlone()`: the library would otherwise crash the process on the first bad one).
 *
 * @returns what MLS says about the first KeyPackage it refuses, or undefined
 */
export async function problemWithAdds(
  state: ClientState,
  adds: KeyPackage[],
  committer: number,
  sentByClient: boolean,
  cs: CiphersuiteImpl,
): Promise<string | undefined> {
  if (adds.length < 2) return undefined;
  for (const keyPackage of adds) {
    try {
      await checkAddAlone(state, keyPackage, committer, sentByClient, cs);
    } catch (error) {
      return messageOf(error);
    }
  }
  return undefined;
}

/**
 * Checks a commit received for the current epoch before MLS applies it: it decrypts and
 * verifies, it refers only to proposals we hold, the rule allows it on the state before it, and
 * every KeyPackage it adds passes on its own.
 *
 * @returns the committer's leaf, every proposal the commit applies, the commit's own list of
 *   them (by value or by reference), and the rule's view of the state before
 * @throws {GroupFailure} when any of that fails
 */
export async function examineCommit(
  state: ClientState,
  roster: Roster,
  header: PrivateMessage,
  cs: CiphersuiteImpl,
): Promise<
  {
    committer: number;
    proposals: ProposalWithSender[];
    listed: ProposalOrRef[];
    before: PolicyState;
  }
> {
  let opened;
  try {
    opened = await openCommit(state, header, cs);
  } catch (error) {
    if (error instanceof GroupRejection) throw error;
    throw new GroupFailure(`MLS refused it: ${messageOf(error)}`, { cause: error });
  }
  const before = policyStateOf(state, roster);
  const { committer, proposals, listed } = opened;
  const refusal = commitRefusal(committer, proposals.map(policyProposal), before);
  if (refusal !== undefined || committer === undefined) {
    throw new GroupFailure(refusal ?? "a commit from outside the group");
  }
  const adds = proposals.flatMap(({ proposal }) =>
    proposal.proposalType === "add" ? [proposal.add.keyPackage] : []
  );
  const problem = await problemWithAdds(state, adds, committer, false, cs);
  if (problem !== undefined) throw new GroupFailure(`it adds a KeyPackage MLS refuses: ${problem}`);
  return { committer, proposals, listed, before };
}

/**
 * The KeyPackage of MLSMessage bytes.
 *
 * @throws {GroupRejection} when the bytes are not exactly one MLSMessage (mls_key_package)
 */
export function keyPackageOf(bytes: Uint8Array): KeyPackage {
  const decoded = decodeMessage(bytes);
  if (decoded?.wireformat !== "mls_key_package") throw new GroupRejection("not a KeyPackage");
  return decoded.keyPackage;
}

/** Is `proposal` a Remove of `leaf`? */
export function isRemoveOf(proposal: Proposal, leaf: number | undefined): boolean {
  return proposal.proposalType === "remove" && proposal.remove.removed === leaf;
}

/** The message of a library error, for our one-line errors. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
