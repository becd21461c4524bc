/**
 * Reading an MLS group state the way the room needs it: the occupied leaves, the admins
 * extension, our own leaf key, a proposal as the commit rule sees it, and who left.
 *
 * Mirrors docs/PROTOCOL.md section 13.3 (the admins extension in the GroupContext, leaving by a
 * Remove of one's own leaf). Pure reads: nothing here changes a state.
 *
 * @module
 */

import { ProtocolError } from "../core/errors.ts";
import { ADMINS_EXTENSION_TYPE, decodeAdmins, type PolicyProposal } from "./admins.ts";
import type { ClientState, Extension, ProposalWithSender } from "./mls.ts";
import type { LeafView } from "./group_members.ts";

/** The occupied leaves of a state's tree, in leaf order. */
export function leavesOf(state: ClientState): LeafView[] {
  const leaves: LeafView[] = [];
  state.ratchetTree.forEach((node, index) => {
    if (node?.nodeType !== "leaf") return;
    const credential = node.leaf.credential;
    leaves.push({
      leaf: index / 2,
      credential: credential.credentialType === "basic" ? credential.identity : undefined,
      signatureKey: node.leaf.signaturePublicKey,
    });
  });
  return leaves;
}

/**
 * The admins of a GroupContext's extensions.
 *
 * @throws {ProtocolError} code "bad_admins" unless the extensions are exactly one valid admins
 *   extension (section 13.3)
 */
export function adminsOf(extensions: Extension[]): Uint8Array[] {
  const [only, ...more] = extensions;
  if (only === undefined || more.length > 0 || only.extensionType !== ADMINS_EXTENSION_TYPE) {
    throw new ProtocolError(
      "bad_admins",
      "the group's context holds something other than exactly one admins extension",
    );
  }
  return decodeAdmins(only.extensionData);
}

/** Our leaf's HPKE private key in a state. */
export function ownLeafKey(state: ClientState): Uint8Array {
  const key = state.privatePath.privateKeys[state.privatePath.leafIndex * 2];
  if (key === undefined) throw new TypeError("the state holds no key for our own leaf");
  return key;
}

/** A proposal as the commit rule of section 13.3 sees it. */
export function policyProposal(entry: ProposalWithSender): PolicyProposal {
  const proposer = entry.senderLeafIndex;
  const proposal = entry.proposal;
  switch (proposal.proposalType) {
    case "add":
      return { type: "add", proposer };
    case "remove":
      return { type: "remove", proposer, removed: proposal.remove.removed };
    case "update":
      return { type: "update", proposer };
    case "group_context_extensions":
      return {
        type: "group_context_extensions",
        proposer,
        extensions: proposal.groupContextExtensions.extensions,
      };
    default:
      return { type: "other", proposer, name: String(proposal.proposalType) };
  }
}

/** The leaves a commit removes because they proposed it themselves: they left. */
export function leavingOf(proposals: ProposalWithSender[]): Set<number> {
  const leaving = new Set<number>();
  for (const { proposal, senderLeafIndex } of proposals) {
    if (proposal.proposalType === "remove" && proposal.remove.removed === senderLeafIndex) {
      leaving.add(senderLeafIndex);
    }
  }
  return leaving;
}

/**
 * The last generation seen from each leaf in each recent epoch, to tell how many application
 * messages of a sender the relay did not deliver (section 13.6).
 */
export class GenerationGaps {
  #epochs: number;
  #seen = new Map<bigint, Map<number, number>>();

  /** @param epochs how many epochs back late messages are still counted */
  constructor(epochs: number) {
    this.#epochs = epochs;
  }

  /** Records a message; returns how many generations of its sender were skipped before it. */
  seen(epoch: bigint, leaf: number, generation: number): number {
    let leaves = this.#seen.get(epoch);
    if (leaves === undefined) this.#seen.set(epoch, leaves = new Map());
    const last = leaves.get(leaf);
    leaves.set(leaf, Math.max(generation, last ?? -1));
    return Math.max(0, generation - (last === undefined ? 0 : last + 1));
  }

  /** Forgets the epochs too old to receive messages in, once `epoch` has begun. */
  forgetBefore(epoch: bigint): void {
    for (const old of this.#seen.keys()) {
      if (old + BigInt(this.#epochs) < epoch) this.#seen.delete(old);
    }
  }
}
