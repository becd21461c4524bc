/**
 * The boundary with the MLS library (ts-mls 1.6.4): the one module that imports it. It pins the
 * room's cipher suite, builds the client configuration around our Authentication Service,
 * decodes untrusted bytes without letting the library throw at the caller, and wraps the few
 * library internals group.ts needs (sender data, a commit's proposals before it is applied,
 * one KeyPackage checked alone), and re-exports those mls_join.ts joins a group with.
 *
 * Mirrors docs/PROTOCOL.md section 13.1 (the suite, the wire format) and 13.2 (where the
 * Authentication Service is called).
 *
 * Library quirks handled here or by the caller:
 * - The suite is pinned by name, and its number (83 in ts-mls 1.x, not in the IANA registry) is
 *   checked by tests/group/mls_test.ts, so an upgrade that renumbers fails a test, not a room.
 * - `decodeMlsMessage()` returns undefined, throws (CodecError, TypeError, RangeError) or stops
 *   early on bad input: {@linkcode decodeMessage} turns all of that into undefined.
 * - `validateCredential` is called for Add KeyPackages, a path commit's new leaf, every leaf and
 *   the GroupInfo signer at join, and never for application messages; our AS never throws.
 * - Lifetimes are not checked on receipt (`validateLifetimeOnReceive: false`): the library would
 *   check them on every tree leaf at join, and a member who joined yesterday has a leaf made from
 *   yesterday's KeyPackage. The admitting admin checks the KeyPackage (section 13.1).
 * - Three library bugs are worked around, each reproduced by a test that fails once an upgrade
 *   fixes it: a commit whose Add that is not the last fails crashes the process
 *   ({@linkcode checkAddAlone}); a removed member whose leaf an Add of the same commit takes
 *   back gets an internal error instead of its removal ({@linkcode afterOurRemoval}); and a
 *   newcomer refuses a valid ratchet tree whose unmerged leaves differ from node to node, so
 *   newcomers join with mls_join.ts instead of `joinGroup()`.
 * - Deep imports (`ts-mls/privateMessage.js` and others) go through the package's `./*.js`
 *   export map; they are internals, so this file is the one place to revisit on an upgrade.
 *
 * @module
 */

import {
  bytesToBase64,
  type CiphersuiteImpl,
  ciphersuites,
  type ClientConfig,
  type ClientState,
  type Credential,
  decodeMlsMessage,
  defaultKeyPackageEqualityConfig,
  defaultKeyRetentionConfig,
  defaultPaddingConfig,
  emptyPskIndex,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type KeyPackage,
  type LeafIndex,
  type MLSMessage,
  type PrivateMessage,
  type Proposal,
  type ProposalOrRef,
  type ProposalWithSender,
} from "ts-mls";
import { decryptSenderData } from "ts-mls/privateMessage.js";
import { unprotectPrivateMessage } from "ts-mls/messageProtection.js";
import { addHistoricalReceiverData, applyProposals } from "ts-mls/clientState.js";
import { consumeRatchet } from "ts-mls/secretTree.js";
import { GroupRejection } from "./group_errors.ts";

export {
  createApplicationMessage,
  createCommit,
  createGroup,
  createProposal,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  joinGroup,
  processMessage,
} from "ts-mls";
export type {
  CiphersuiteImpl,
  ClientState,
  Credential,
  Extension,
  IncomingMessageCallback,
  KeyPackage,
  LeafNode,
  MLSMessage,
  MlsPrivateMessage,
  PrivateKeyPackage,
  PrivateMessage,
  Proposal,
  ProposalOrRef,
  ProposalWithSender,
  Welcome,
} from "ts-mls";
export { emptyPskIndex };

// Internals mls_join.ts runs to join from a Welcome as ts-mls 1.6.4 `joinGroupWithExtensions`
// (clientState.js) does, but with the ratchet tree's unmerged leaves checked as RFC 9420 says.
// On an upgrade, check that they still exist and mean the same, and whether the workaround can go.
export { throwIfDefined, validateLeafNodeUpdateOrCommit } from "ts-mls/clientState.js";
export {
  CodecError,
  CryptoVerificationError,
  InternalError,
  type MlsError,
  UsageError,
  ValidationError,
} from "ts-mls/mlsError.js";
export { extensionsSupportedByCapabilities } from "ts-mls/extension.js";
export {
  ratchetTreeFromExtension,
  verifyGroupInfoConfirmationTag,
  verifyGroupInfoSignature,
} from "ts-mls/groupInfo.js";
export { makeKeyPackageRef } from "ts-mls/keyPackage.js";
export { deriveKeySchedule } from "ts-mls/keySchedule.js";
export { verifyLeafNodeSignatureKeyPackage } from "ts-mls/leafNode.js";
export { verifyParentHashes } from "ts-mls/parentHash.js";
export { pathToRoot } from "ts-mls/pathSecrets.js";
export { mergePrivateKeyPaths, toPrivateKeyPath } from "ts-mls/privateKeyPath.js";
export { findLeafIndex } from "ts-mls/ratchetTree.js";
export { createSecretTree } from "ts-mls/secretTree.js";
export { treeHashRoot } from "ts-mls/treeHash.js";
export {
  isLeaf,
  leafToNodeIndex,
  leafWidth,
  nodeToLeafIndex,
  toLeafIndex,
  toNodeIndex,
} from "ts-mls/treemath.js";
export { firstCommonAncestor } from "ts-mls/updatePath.js";
export { decryptGroupInfo, decryptGroupSecrets } from "ts-mls/welcome.js";
export {
  type ClientConfig,
  decodeRequiredCapabilities,
  type GroupContext,
  type LeafNodeKeyPackage,
  type PrivateKeyPath,
  type RatchetTree,
  type RequiredCapabilities,
  type Signature,
} from "ts-mls";

/** Section 13.1: the room's cipher suite, X-Wing + AES-256-GCM + SHA-512 + Ed25519. */
export const SUITE_NAME = "MLS_256_XWING_AES256GCM_SHA512_Ed25519";
/** Section 13.1: its number on the wire (ts-mls 1.x numbering). */
export const SUITE_ID = 83;
/** Section 13.1: the MLS version. */
export const MLS_VERSION = "mls10";

let impl: Promise<CiphersuiteImpl> | undefined;

/** The suite's implementation, made once. */
export function suiteImpl(): Promise<CiphersuiteImpl> {
  impl ??= getCiphersuiteImpl(getCiphersuiteFromName(SUITE_NAME));
  return impl;
}

/** The suite id ts-mls gives {@linkcode SUITE_NAME}: the pin test compares it to {@linkcode SUITE_ID}. */
export function librarySuiteId(): number {
  return ciphersuites[SUITE_NAME];
}

/**
 * The client configuration of one member: the library's defaults (4 epochs of receiver keys,
 * 10 skipped generations, padding to 256 bytes) with our Authentication Service.
 *
 * @param validateCredential the AS: true when the credential binds to the signature key; must
 *   not throw
 */
export function clientConfig(
  validateCredential: (credential: Credential, signaturePublicKey: Uint8Array) => Promise<boolean>,
): ClientConfig {
  return {
    keyRetentionConfig: defaultKeyRetentionConfig,
    lifetimeConfig: { maximumTotalLifetime: 25n * 3600n, validateLifetimeOnReceive: false },
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    paddingConfig: defaultPaddingConfig,
    authService: { validateCredential },
  };
}

/**
 * Decodes one MLSMessage of untrusted bytes.
 *
 * @returns the message, or undefined when the bytes do not decode exactly (garbage, cut short,
 *   trailing bytes); never throws
 */
export function decodeMessage(bytes: Uint8Array): MLSMessage | undefined {
  try {
    const decoded = decodeMlsMessage(bytes, 0);
    if (decoded === undefined || decoded[1] !== bytes.length) return undefined;
    return decoded[0];
  } catch {
    return undefined;
  }
}

/**
 * Who sent a PrivateMessage, read before MLS checks it: authenticated only once
 * `processMessage()` accepts the message. Uses the sender data secret of the message's epoch
 * (the current one, or one the state keeps for late messages).
 *
 * @returns the sender's leaf and generation, or undefined when it does not decrypt
 */
export async function senderOf(
  state: ClientState,
  message: PrivateMessage,
  cs: CiphersuiteImpl,
): Promise<{ leafIndex: number; generation: number } | undefined> {
  const secret = message.epoch === state.groupContext.epoch
    ? state.keySchedule.senderDataSecret
    : state.historicalReceiverData.get(message.epoch)?.senderDataSecret;
  if (secret === undefined) return undefined;
  try {
    const data = await decryptSenderData(message, secret, cs);
    return data === undefined
      ? undefined
      : { leafIndex: data.leafIndex, generation: data.generation };
  } catch {
    return undefined;
  }
}

/**
 * A commit's committer and every proposal it applies (by value, or by reference to a proposal
 * the state holds), read without changing the state: the commit rule and the KeyPackage checks
 * run on this before the library applies anything.
 *
 * @throws {Error} (library errors) when the commit does not decrypt, verify or resolve
 */
export async function openCommit(
  state: ClientState,
  message: PrivateMessage,
  cs: CiphersuiteImpl,
): Promise<
  { committer: number | undefined; proposals: ProposalWithSender[]; listed: ProposalOrRef[] }
> {
  let content;
  try {
    ({ content } = await unprotectPrivateMessage(
      state.keySchedule.senderDataSecret,
      message,
      state.secretTree,
      state.ratchetTree,
      state.groupContext,
      state.clientConfig.keyRetentionConfig,
      cs,
    ));
  } catch (error) {
    // Nothing of it is authenticated: anyone (the relay) could have made it. Dropped, not obeyed.
    throw new GroupRejection(
      `a commit that does not decrypt: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const framed = content.content;
  if (framed.contentType !== "commit") throw new TypeError("not a commit");
  const committer = framed.sender.senderType === "member" ? framed.sender.leafIndex : undefined;
  const proposals = framed.commit.proposals.map((entry) => {
    if (entry.proposalOrRefType === "proposal") {
      return { proposal: entry.proposal, senderLeafIndex: committer };
    }
    const held = state.unappliedProposals[bytesToBase64(entry.reference)];
    if (held === undefined) throw new TypeError("it refers to a proposal this member never saw");
    return held;
  });
  return { committer, proposals, listed: framed.commit.proposals };
}

/**
 * Our state after a commit that removes us: the tree with the commit's proposals applied, no
 * pending proposals, and the group marked as left, as the library records a removal.
 *
 * Why not the library: ts-mls 1.6.4 notices that a commit removes us only when our leaf is blank
 * after it; when an Add of the same commit takes the leaf back (a member who comes back while
 * its old session still runs, section 13.3), it tries to decrypt the update path, which a
 * removed member is left out of, and fails with an internal error. A removed member needs
 * nothing of the path or the next epoch.
 *
 * @param listed the commit's proposals as it lists them (by value or by reference)
 * @throws {Error} (library errors) when the proposals do not apply
 */
export async function afterOurRemoval(
  state: ClientState,
  committer: number,
  listed: ProposalOrRef[],
  cs: CiphersuiteImpl,
): Promise<ClientState> {
  const { tree } = await applyProposals(
    state,
    listed,
    committer as LeafIndex,
    emptyPskIndex,
    false,
    cs,
  );
  return {
    ...state,
    ratchetTree: tree,
    unappliedProposals: {},
    groupActiveState: { kind: "removedFromGroup" },
  };
}

/**
 * Runs the library's own checks of one Add (KeyPackage signature, credential through the AS,
 * capabilities, uniqueness in the tree) on its own.
 *
 * Why alone: ts-mls 1.6.4 checks the Adds of one commit in an `async` reduce
 * (clientState.js `applyTreeMutations`) that starts checking every KeyPackage before it awaits
 * the previous step, so when a KeyPackage that is not the last fails, the previous step's
 * rejection has no handler yet: an unhandled promise rejection, which ends a Deno process. A
 * commit with two or more Adds is checked here one Add at a time first, where that cannot
 * happen; the checks are the same and, with lifetimes checked only by us, do not depend on the
 * clock, so a commit that passes here passes there.
 *
 * @param sentByClient true for our own commit (the library then also checks the lifetime)
 * @throws {Error} (library errors) when the KeyPackage is refused
 */
export async function checkAddAlone(
  state: ClientState,
  keyPackage: KeyPackage,
  committer: number,
  sentByClient: boolean,
  cs: CiphersuiteImpl,
): Promise<void> {
  const add: Proposal = { proposalType: "add", add: { keyPackage } };
  await applyProposals(
    state,
    [{ proposalOrRefType: "proposal", proposal: add }],
    committer as LeafIndex,
    emptyPskIndex,
    sentByClient,
    cs,
  );
}

/**
 * Our state with our own handshake ratchet moved past the generation a commit we made (and may
 * discard) used, so that a later proposal or commit in the same epoch never reuses its key and
 * nonce.
 */
export async function afterOwnHandshake(
  state: ClientState,
  cs: CiphersuiteImpl,
): Promise<ClientState> {
  const { newTree } = await consumeRatchet(
    state.secretTree,
    state.privatePath.leafIndex * 2,
    "commit",
    cs,
  );
  return { ...state, secretTree: newTree };
}

/**
 * A pending commit's new state brought up to date with what the current state learned since it
 * was made: the receiver keys of the current and earlier epochs, which processing application
 * messages has consumed. Adopting the pending state as it was would let a message already
 * shown be accepted again, as a late message of the old epoch.
 */
export function withCurrentHistory(pending: ClientState, current: ClientState): ClientState {
  const [historicalReceiverData] = addHistoricalReceiverData(current);
  return { ...pending, historicalReceiverData };
}
