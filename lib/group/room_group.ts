/**
 * One member of a room's MLS group (RFC 9420): it encrypts and processes the room's MLS messages,
 * prepares commits that it applies only once the relay accepts them, seals messages for one
 * member, and computes the codes people compare.
 *
 * Mirrors docs/PROTOCOL.md section 13: 13.1 (one state, one message at a time), 13.3 (the rules,
 * checked on the state before each commit), 13.5 (application messages and Sealed), 13.6 (what
 * is a rejection, what ends the session), 13.7 (roster, safety number, epoch code).
 *
 * One state, one message at a time: every call that reads and replaces the state runs after the
 * previous one settled, and always replaces it, because the MLS library accepts a message again
 * when it is processed against an older state object. After a GroupFailure or our removal the
 * group refuses every call. It does no I/O: the relay messages around these bytes (section 13.4)
 * are the caller's.
 *
 * @module
 */

import { constantTimeEqual, sha256 } from "../core/bytes.ts";
import { SecurechatError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import {
  ADMINS_EXTENSION_TYPE,
  commitRefusal,
  encodeAdmins,
  fingerprintOfAuthor,
  proposalRefusal,
} from "./admins.ts";
import { epochCode, safetyNumber } from "./codes.ts";
import { admissionOf, examineCommit, isRemoveOf, makeCommit, messageOf } from "./commits.ts";
import { GroupFailure, GroupRejection } from "./group_errors.ts";
import {
  adminsOf,
  GenerationGaps,
  leavesOf,
  leavingOf,
  ownLeafKey,
  policyProposal,
} from "./group_state.ts";
import type { Admission, CommitChange, GroupEvent, PendingCommit } from "./group_types.ts";
import { makeKeyPackage } from "./key_package.ts";
import {
  afterOurRemoval,
  type CiphersuiteImpl,
  clientConfig,
  type ClientState,
  createApplicationMessage,
  createGroup,
  createProposal,
  decodeMessage,
  emptyPskIndex,
  encodeMlsMessage,
  type IncomingMessageCallback,
  MLS_VERSION,
  type MLSMessage,
  type MlsPrivateMessage,
  type PrivateMessage,
  processMessage,
  type Proposal,
  senderOf,
  SUITE_ID,
  suiteImpl,
  withCurrentHistory,
} from "./mls.ts";
import { CredentialBook, type GroupMember, Roster } from "./group_members.ts";
import { LeafKeyHistory, open, seal, SEALED_KEY_EPOCHS } from "./sealed.ts";

/** Calls that read and replace one state run one at a time, in call order. */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(step: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(step);
    this.#tail = result.catch(() => {});
    return result;
  }
}

/**
 * Makes the group of a state we created or joined (newcomer.ts joins with it). Not part of the
 * API that group.ts exports.
 *
 * @throws {ProtocolError} when the state is not a room's (no valid admins extension, a leaf
 *   whose credential does not verify)
 */
export let openGroup: (
  cs: CiphersuiteImpl,
  state: ClientState,
  book: CredentialBook,
) => Promise<RoomGroup>;

type PrivateMlsMessage = MLSMessage & MlsPrivateMessage;

/** One member of a room's MLS group. */
export class RoomGroup {
  /** The group id: 32 random bytes chosen by the creator. */
  readonly groupId: Uint8Array;
  #cs: CiphersuiteImpl;
  #state: ClientState;
  #book: CredentialBook;
  #roster: Roster;
  #self: GroupMember;
  #serial = new Serial();
  #leafKeys = new LeafKeyHistory();
  #gaps = new GenerationGaps(SEALED_KEY_EPOCHS);
  #pending = new WeakMap<PendingCommit, { state: ClientState; leaving: Set<number> }>();
  /** Why this member can no longer use the group (removed, or a commit it could not follow). */
  #ended: string | undefined;

  static {
    openGroup = async (cs, state, book) => {
      const roster = await rosterOf(state, book);
      return new RoomGroup(cs, state, book, roster);
    };
  }

  private constructor(
    cs: CiphersuiteImpl,
    state: ClientState,
    book: CredentialBook,
    roster: Roster,
  ) {
    this.#cs = cs;
    this.#state = state;
    this.#book = book;
    this.#roster = roster;
    this.#self = roster.at(state.privatePath.leafIndex)!;
    this.groupId = state.groupContext.groupId.slice();
    this.#leafKeys.note(state.groupContext.epoch, ownLeafKey(state));
  }

  /**
   * Creates a new group with a random 32-byte id and us as its only member and admin.
   *
   * @param name the name to be shown as (1..64 bytes of UTF-8)
   * @throws {RangeError} on a bad name
   */
  static async create(identity: Identity, name: string): Promise<RoomGroup> {
    const cs = await suiteImpl();
    const book = new CredentialBook(SUITE_ID);
    const { publicPackage, privatePackage } = await makeKeyPackage(identity, name, cs);
    const admins = encodeAdmins([await sha256(identity.spki)]);
    const state = await createGroup(
      crypto.getRandomValues(new Uint8Array(32)),
      publicPackage,
      privatePackage,
      [{ extensionType: ADMINS_EXTENSION_TYPE, extensionData: admins }],
      cs,
      clientConfig(book.validate),
    );
    return await openGroup(cs, state, book);
  }

  /** The current epoch. */
  get epoch(): bigint {
    return this.#state.groupContext.epoch;
  }

  /** Us. */
  self(): GroupMember {
    return this.#self;
  }

  /** Every member, in leaf order. */
  members(): GroupMember[] {
    return [...this.#roster.members];
  }

  /** The member with this author id, if any. */
  member(author: Uint8Array): GroupMember | undefined {
    return this.#roster.byAuthor(author);
  }

  /** True while proposals wait for a commit (no application message can be sent meanwhile). */
  hasPendingProposals(): boolean {
    return Object.keys(this.#state.unappliedProposals).length > 0;
  }

  /**
   * Checks a newcomer's KeyPackage (a Knock) before admitting it: decoding, suite, credential,
   * lifetime (at most 25 hours, covering now), capabilities, and the library's own checks
   * against the current tree.
   *
   * @throws {GroupRejection} when any check fails
   */
  checkKeyPackage(bytes: Uint8Array): Promise<Admission> {
    return this.#serially(() => admissionOf(this.#state, this.#book, bytes, this.#cs));
  }

  /**
   * Makes a commit of every pending proposal plus `change`, without applying it: adopt it with
   * {@linkcode confirmCommit} after the relay's Accepted, drop it with {@linkcode discardCommit}
   * after its Refused.
   *
   * @throws {SecurechatError} code "group_not_allowed" when the others would refuse the commit
   *   (section 13.3), or "group_commit_failed" when MLS cannot make it
   * @throws {GroupRejection} when an admission's KeyPackage is no longer acceptable
   * @throws {RangeError} on a member no longer in the group, or a bad admins list
   */
  prepareCommit(change: CommitChange): Promise<PendingCommit> {
    return this.#serially(async () => {
      const made = await makeCommit(this.#state, this.#roster, change, this.#cs);
      this.#state = made.current;
      this.#pending.set(made.pending, { state: made.next, leaving: made.leaving });
      return made.pending;
    });
  }

  /**
   * Adopts our commit after the relay's Accepted.
   *
   * @throws {GroupFailure} when the group has left the commit's epoch (the relay accepted a
   *   commit for an epoch that already had one: it lied to someone)
   * @throws {TypeError} for a commit not made here, or already confirmed or discarded
   */
  confirmCommit(pending: PendingCommit): Promise<GroupEvent & { kind: "commit" }> {
    return this.#serially(async () => {
      const made = this.#pending.get(pending);
      if (made === undefined) throw new TypeError("not a pending commit of this group");
      this.#pending.delete(pending);
      if (pending.epoch !== this.epoch) {
        throw new GroupFailure(
          `the relay accepted our commit of epoch ${pending.epoch} at ${this.epoch}`,
        );
      }
      const state = withCurrentHistory(made.state, this.#state);
      return await this.#adopt(state, this.#self.leaf, made.leaving, pending.epoch + 1n);
    });
  }

  /** Drops our commit after the relay's Refused: the group is as if it was never made. */
  discardCommit(pending: PendingCommit): void {
    this.#pending.delete(pending);
  }

  /**
   * Encrypts an application message for the group.
   *
   * @returns MLSMessage (PrivateMessage, application) bytes
   * @throws {SecurechatError} code "group_pending_proposals" while proposals wait for a commit
   *   (RFC 9420 forbids sending then)
   */
  encrypt(content: Uint8Array): Promise<Uint8Array> {
    return this.#serially(async () => {
      if (this.hasPendingProposals()) {
        throw new SecurechatError(
          "group_pending_proposals",
          "cannot send to the room while a proposal waits for a commit",
        );
      }
      const made = await createApplicationMessage(this.#state, content, this.#cs);
      this.#state = made.newState;
      return encodeMlsMessage({
        version: MLS_VERSION,
        wireformat: "mls_private_message",
        privateMessage: made.privateMessage,
      });
    });
  }

  /**
   * Proposes our own removal, to send before leaving (section 13.3).
   *
   * @returns MLSMessage (PrivateMessage, proposal) bytes
   */
  proposeLeave(): Promise<Uint8Array> {
    return this.#serially(async () => {
      const remove: Proposal = { proposalType: "remove", remove: { removed: this.#self.leaf } };
      const made = await createProposal(this.#state, false, remove, this.#cs);
      this.#state = made.newState;
      return encodeMlsMessage(made.message);
    });
  }

  /**
   * Processes one MLSMessage from the room, in the relay's order.
   *
   * @throws {GroupRejection} for a message to drop (section 13.6)
   * @throws {GroupFailure} for a commit this member cannot follow: the session must end
   */
  process(message: Uint8Array): Promise<GroupEvent> {
    return this.#serially(async () => {
      const decoded = decodeMessage(message);
      if (decoded === undefined) throw new GroupRejection("it is not an MLS message");
      if (decoded.wireformat !== "mls_private_message") {
        throw new GroupRejection(`a ${decoded.wireformat} message where a PrivateMessage belongs`);
      }
      const header = decoded.privateMessage;
      if (!constantTimeEqual(header.groupId, this.groupId)) {
        throw new GroupRejection("it belongs to another group");
      }
      switch (header.contentType) {
        case "application":
          return await this.#application(decoded, header);
        case "proposal":
          return await this.#proposal(decoded, header);
        default:
          return await this.#commit(decoded, header);
      }
    });
  }

  /**
   * Seals `plaintext` for one member (section 13.5), to send inside {@linkcode encrypt}.
   *
   * @returns the Sealed body: recipient || enc_length u16 || enc || ciphertext
   * @throws {RangeError} when `recipient` is no longer at its leaf
   */
  async seal(recipient: GroupMember, plaintext: Uint8Array): Promise<Uint8Array> {
    this.#checkUsable();
    const node = this.#state.ratchetTree[recipient.leaf * 2];
    if (!this.#roster.holds(recipient) || node?.nodeType !== "leaf") {
      throw new RangeError(`"${recipient.fingerprint}" is no longer at leaf ${recipient.leaf}`);
    }
    const parties = {
      groupId: this.groupId,
      sender: this.#self.author,
      recipient: recipient.author,
      recipientKey: node.leaf.hpkePublicKey,
    };
    return await seal(this.#cs.hpke, parties, plaintext);
  }

  /**
   * Opens a Sealed body that `sender` sent (the sender of the application message, as MLS
   * authenticated it).
   *
   * @returns the plaintext, or undefined when it is addressed to someone else
   * @throws {GroupRejection} when it is for us and does not open
   */
  async open(sender: GroupMember, sealed: Uint8Array): Promise<Uint8Array | undefined> {
    const parties = { groupId: this.groupId, sender: sender.author, self: this.#self.author };
    return await open(this.#cs.hpke, parties, this.#leafKeys.keys(), sealed);
  }

  /** The safety number of us and `other` (section 13.7): both compute the same. */
  safetyNumber(other: GroupMember): Promise<string> {
    return safetyNumber(this.#self.author, other.author);
  }

  /** The epoch code (section 13.7): the same for every member in this epoch of this group. */
  epochCode(): Promise<string> {
    return epochCode(this.#state.keySchedule.epochAuthenticator);
  }

  async #application(message: PrivateMlsMessage, header: PrivateMessage): Promise<GroupEvent> {
    // Read before MLS checks the message, trusted only once it has.
    const sender = await senderOf(this.#state, header, this.#cs);
    if (sender === undefined) {
      throw new GroupRejection(`a message of epoch ${header.epoch} that this member cannot read`);
    }
    const result = await this.#mls(message, () => "reject", (detail) => new GroupRejection(detail));
    if (result.kind !== "applicationMessage") throw new GroupRejection("not an application");
    this.#state = result.newState;
    const member = await this.#memberAt(header.epoch, sender.leafIndex);
    const missed = this.#gaps.seen(header.epoch, sender.leafIndex, sender.generation);
    return { kind: "application", sender: member, content: result.message, missed };
  }

  async #proposal(message: PrivateMlsMessage, header: PrivateMessage): Promise<GroupEvent> {
    if (header.epoch !== this.epoch) {
      throw new GroupRejection(`a proposal of epoch ${header.epoch} at epoch ${this.epoch}`);
    }
    const held = Object.values(this.#state.unappliedProposals);
    const verdict: { refusal?: string | undefined; sender?: number | undefined } = {
      refusal: "not a proposal",
    };
    const result = await this.#mls(message, (incoming) => {
      if (incoming.kind !== "proposal") return "reject";
      const sender = incoming.proposal.senderLeafIndex;
      verdict.sender = sender;
      verdict.refusal = proposalRefusal(sender, policyProposal(incoming.proposal));
      // A second leave of one member would make every later commit invalid (two Removes of one
      // leaf), and every commit carries every pending proposal.
      if (verdict.refusal === undefined && held.some((p) => isRemoveOf(p.proposal, sender))) {
        verdict.refusal = "a second proposal to leave";
      }
      return verdict.refusal === undefined ? "accept" : "reject";
    }, (detail) => new GroupRejection(detail));
    // Even a refused proposal used up its key: keep the state that knows it.
    this.#state = result.newState;
    const sender = this.#roster.at(verdict.sender ?? -1);
    if (verdict.refusal !== undefined || sender === undefined) {
      throw new GroupRejection(verdict.refusal ?? "a proposal from no member");
    }
    return { kind: "proposal", sender, leaving: true };
  }

  async #commit(message: PrivateMlsMessage, header: PrivateMessage): Promise<GroupEvent> {
    if (header.epoch < this.epoch) {
      throw new GroupRejection(`a commit of past epoch ${header.epoch} (a replay?)`);
    }
    if (header.epoch > this.epoch) {
      throw new GroupFailure(`it is for epoch ${header.epoch} but this member is at ${this.epoch}`);
    }
    const { committer, proposals, listed, before } = await examineCommit(
      this.#state,
      this.#roster,
      header,
      this.#cs,
    );
    const leaving = leavingOf(proposals);
    if (proposals.some(({ proposal }) => isRemoveOf(proposal, this.#self.leaf))) {
      // Removed: the library would fail when an Add takes our leaf back (see afterOurRemoval).
      let state: ClientState;
      try {
        state = await afterOurRemoval(this.#state, committer, listed, this.#cs);
      } catch (error) {
        throw new GroupFailure(`MLS refused it: ${messageOf(error)}`, { cause: error });
      }
      return await this.#adopt(state, committer, leaving, header.epoch + 1n);
    }
    // examineCommit applied the rule; the library's callback applies it again to exactly what
    // the library is about to apply.
    const verdict: { refusal?: string | undefined } = { refusal: "not a commit" };
    const result = await this.#mls(message, (incoming) => {
      if (incoming.kind !== "commit") return "reject";
      const seen = incoming.proposals.map(policyProposal);
      verdict.refusal = commitRefusal(incoming.senderLeafIndex, seen, before);
      return verdict.refusal === undefined ? "accept" : "reject";
    }, (detail, cause) => new GroupFailure(detail, { cause }));
    if (result.kind !== "newState" || result.actionTaken !== "accept") {
      throw new GroupFailure(verdict.refusal ?? "refused");
    }
    return await this.#adopt(result.newState, committer, leaving, header.epoch + 1n);
  }

  /** Runs the library on one message, its errors made a rejection or a failure. */
  async #mls(
    message: PrivateMlsMessage,
    decide: IncomingMessageCallback,
    refuse: (detail: string, cause: unknown) => Error,
  ): ReturnType<typeof processMessage> {
    try {
      return await processMessage(message, this.#state, emptyPskIndex, decide, this.#cs);
    } catch (error) {
      throw refuse(`MLS refused it: ${messageOf(error)}`, error);
    }
  }

  /** Replaces the state after a commit and says what changed. */
  async #adopt(
    state: ClientState,
    committerLeaf: number,
    leaving: Set<number>,
    epoch: bigint,
  ): Promise<GroupEvent & { kind: "commit" }> {
    const committer = this.#roster.at(committerLeaf)!;
    const removedUs = state.groupActiveState.kind === "removedFromGroup";
    let after: Roster;
    try {
      // Removed, our leaf index may now be someone else's.
      after = await rosterOf(state, this.#book, removedUs ? -1 : this.#self.leaf);
    } catch (error) {
      throw new GroupFailure(`it leaves a group that is not a room: ${messageOf(error)}`);
    }
    const { added, removed } = this.#roster.changesTo(after, leaving);
    this.#state = state;
    this.#roster = after;
    if (!removedUs) this.#self = after.at(this.#self.leaf)!;
    if (removedUs) {
      this.#ended = "this member was removed from the room";
    } else {
      this.#leafKeys.note(epoch, ownLeafKey(state));
      this.#gaps.forgetBefore(epoch);
    }
    const admins = adminsOf(state.groupContext.extensions).map(fingerprintOfAuthor);
    return { kind: "commit", committer, added, removed, admins, removedUs, epoch };
  }

  /** The sender of a message of `epoch`: in the current roster, or in the tree kept for it. */
  async #memberAt(epoch: bigint, leaf: number): Promise<GroupMember> {
    if (epoch === this.epoch) return this.#roster.at(leaf)!;
    const kept = this.#state.historicalReceiverData.get(epoch)!;
    const roster = await Roster.build(
      leavesOf({ ...this.#state, ratchetTree: kept.ratchetTree }),
      this.#self.leaf,
      adminsOf(kept.groupContext.extensions),
      this.#book,
    );
    return roster.at(leaf)!;
  }

  /** Runs a step after the previous one; a GroupFailure ends the group for good. */
  #serially<T>(step: () => Promise<T>): Promise<T> {
    return this.#serial.run(async () => {
      this.#checkUsable();
      try {
        return await step();
      } catch (error) {
        if (error instanceof GroupFailure) this.#ended = error.message;
        throw error;
      }
    });
  }

  #checkUsable(): void {
    if (this.#ended !== undefined) {
      throw new SecurechatError("group_ended", `the room can no longer be used: ${this.#ended}`);
    }
  }
}

async function rosterOf(
  state: ClientState,
  book: CredentialBook,
  self = state.privatePath.leafIndex,
): Promise<Roster> {
  const leaves = leavesOf(state);
  const admins = adminsOf(state.groupContext.extensions);
  const roster = await Roster.build(leaves, self, admins, book);
  book.keepOnly(leaves);
  return roster;
}
