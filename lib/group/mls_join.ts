/**
 * A newcomer's join of a group from a Welcome (RFC 9420 section 12.4.3.1): ts-mls 1.6.4's
 * `joinGroupWithExtensions` (clientState.js) step by step, each step the library's own function
 * (decryption of the GroupSecrets and GroupInfo, the signer's credential and signature, the
 * confirmation tag, the key schedule, the secret tree), and the ratchet tree checked as the
 * library's `validateRatchetTree` does, with one check replaced.
 *
 * Why not the library's `joinGroup()`: ts-mls 1.6.4 refuses valid trees. For every leaf L
 * unmerged at a parent P, it requires each non-blank node on L's whole direct path, up to the
 * root, to have an unmerged_leaves list equal to P's, where RFC 9420 section 12.4.3.1 asks only
 * that the nodes between L and P list L. After a member leaves, an admin's commit that adds two
 * newcomers makes such a tree, and both newcomers refused the Welcome ("non-blank intermediate
 * node must list leaf node in its unmerged_leaves"). unmerged_leaves.ts checks the lists as the
 * RFC says; every other check of the library is kept: the tree's shape, unique HPKE and
 * signature keys, each leaf's signature, credential (through our Authentication Service),
 * capabilities and extensions, credential types every leaf supports, parent hashes, tree hash.
 * tests/group/mls_join_test.ts reproduces the library bug: when an upgrade fixes it, that test
 * fails, and `joinGroup()` can come back.
 *
 * Left out of the library's join: pre-shared keys and resumption (a room uses none, section
 * 13.3, so a Welcome that needs one is refused) and a ratchet tree passed out of band (a room's
 * Welcome carries it in the `ratchet_tree` extension, section 13.1).
 *
 * Mirrors docs/PROTOCOL.md sections 13.1 (the Welcome) and 13.2 (the Authentication Service on
 * every leaf and on the GroupInfo's signer).
 *
 * @module
 */

import { constantTimeEqual, toBase64, wipe } from "../core/bytes.ts";
import {
  type CiphersuiteImpl,
  type ClientConfig,
  type ClientState,
  CodecError,
  createSecretTree,
  CryptoVerificationError,
  decodeRequiredCapabilities,
  decryptGroupInfo,
  decryptGroupSecrets,
  deriveKeySchedule,
  extensionsSupportedByCapabilities,
  findLeafIndex,
  firstCommonAncestor,
  type GroupContext,
  isLeaf,
  type KeyPackage,
  type LeafNode,
  type LeafNodeKeyPackage,
  leafToNodeIndex,
  leafWidth,
  makeKeyPackageRef,
  mergePrivateKeyPaths,
  type MlsError,
  nodeToLeafIndex,
  pathToRoot,
  type PrivateKeyPackage,
  type RatchetTree,
  ratchetTreeFromExtension,
  type RequiredCapabilities,
  type Signature,
  throwIfDefined,
  toLeafIndex,
  toNodeIndex,
  toPrivateKeyPath,
  treeHashRoot,
  UsageError,
  validateLeafNodeUpdateOrCommit,
  ValidationError,
  verifyGroupInfoConfirmationTag,
  verifyGroupInfoSignature,
  verifyLeafNodeSignatureKeyPackage,
  verifyParentHashes,
  type Welcome,
} from "./mls.ts";
import { unmergedLeavesProblem } from "./unmerged_leaves.ts";

/**
 * Joins a group from a Welcome for our KeyPackage, with every check of RFC 9420 section 12.4.3.1.
 *
 * @param config the client configuration, with our Authentication Service
 * @returns the new member's state, and the leaf of the member who signed the GroupInfo (who
 *   added us)
 * @throws {Error} (library errors: ValidationError, CodecError, CryptoVerificationError,
 *   UsageError, and the HPKE library's when the Welcome does not decrypt) when the Welcome is
 *   refused
 */
export async function joinWelcome(
  welcome: Welcome,
  keyPackage: KeyPackage,
  privateKeys: PrivateKeyPackage,
  cs: CiphersuiteImpl,
  config: ClientConfig,
): Promise<{ state: ClientState; signer: number }> {
  const reference = await makeKeyPackageRef(keyPackage, cs.hash);
  const initKey = await cs.hpke.importPrivateKey(privateKeys.initPrivateKey);
  const secrets = await decryptGroupSecrets(initKey, reference, welcome, cs.hpke);
  if (secrets === undefined) throw new CodecError("Could not decode group secrets");
  try {
    if (secrets.psks.length > 0) {
      throw new ValidationError("a Welcome that needs a pre-shared key, which rooms do not use");
    }
    // RFC 9420 section 8.4: with no PSK, psk_secret is all zeros.
    const pskSecret = new Uint8Array(cs.kdf.size);
    const info = await decryptGroupInfo(welcome, secrets.joinerSecret, pskSecret, cs);
    if (info === undefined) throw new CodecError("Could not decode group info");
    const context = info.groupContext;
    if (!extensionsSupportedByCapabilities(context.extensions, keyPackage.leafNode.capabilities)) {
      throw new UsageError("client does not support every extension in the GroupContext");
    }
    const tree = ratchetTreeFromExtension(info);
    if (tree === undefined) throw new ValidationError("a Welcome without a ratchet_tree extension");
    const signerNode = tree[leafToNodeIndex(toLeafIndex(info.signer))];
    if (signerNode === undefined) throw new ValidationError("Could not find signer leafNode");
    if (signerNode.nodeType === "parent") throw new ValidationError("Expected non blank leaf node");
    const signer = signerNode.leaf;
    if (
      !(await config.authService.validateCredential(signer.credential, signer.signaturePublicKey))
    ) {
      throw new ValidationError("Could not validate credential");
    }
    if (!(await verifyGroupInfoSignature(info, signer.signaturePublicKey, cs.signature))) {
      throw new CryptoVerificationError("Could not verify groupInfo signature");
    }
    if (context.cipherSuite !== keyPackage.cipherSuite) {
      throw new ValidationError(
        "cipher suite in the GroupInfo does not match the cipher_suite in the KeyPackage",
      );
    }
    throwIfDefined(await validateRatchetTree(tree, context, config, cs));
    const ownLeaf = findLeafIndex(tree, keyPackage.leafNode);
    if (ownLeaf === undefined) {
      throw new ValidationError("Could not find own leaf when processing welcome");
    }
    const ownKey = {
      leafIndex: ownLeaf,
      privateKeys: { [leafToNodeIndex(ownLeaf)]: privateKeys.hpkePrivateKey },
    };
    const ancestor = firstCommonAncestor(tree, ownLeaf, toLeafIndex(info.signer));
    const privatePath = secrets.pathSecret === undefined ? ownKey : mergePrivateKeyPaths(
      await toPrivateKeyPath(
        await pathToRoot(tree, ancestor, secrets.pathSecret, cs.kdf),
        ownLeaf,
        cs,
      ),
      ownKey,
    );
    const [keySchedule, encryptionSecret] = await deriveKeySchedule(
      secrets.joinerSecret,
      pskSecret,
      context,
      cs.kdf,
    );
    if (!(await verifyGroupInfoConfirmationTag(info, secrets.joinerSecret, pskSecret, cs))) {
      throw new CryptoVerificationError("Could not verify confirmation tag");
    }
    const secretTree = await createSecretTree(leafWidth(tree.length), encryptionSecret, cs.kdf);
    wipe(encryptionSecret);
    const state: ClientState = {
      groupContext: context,
      ratchetTree: tree,
      privatePath,
      signaturePrivateKey: privateKeys.signaturePrivateKey,
      confirmationTag: info.confirmationTag,
      unappliedProposals: {},
      keySchedule,
      secretTree,
      historicalReceiverData: new Map(),
      groupActiveState: { kind: "active" },
      clientConfig: config,
    };
    return { state, signer: info.signer };
  } finally {
    wipe(secrets.joinerSecret);
  }
}

/**
 * ts-mls 1.6.4 `validateRatchetTree` (clientState.js), check for check and in its order, with its
 * unmerged-leaves check replaced by RFC 9420's ({@linkcode unmergedLeavesProblem}).
 *
 * @param context the GroupContext the tree belongs to (its tree hash, its required capabilities)
 * @param config the client configuration, with our Authentication Service
 * @returns the first problem found, or undefined when the tree is valid
 */
export async function validateRatchetTree(
  tree: RatchetTree,
  context: GroupContext,
  config: ClientConfig,
  cs: CiphersuiteImpl,
): Promise<MlsError | undefined> {
  const hpkeKeys = new Set<string>();
  const signatureKeys = new Set<string>();
  const credentialTypes = new Set<LeafNode["credential"]["credentialType"]>();
  for (const [i, node] of tree.entries()) {
    const nodeIndex = toNodeIndex(i);
    if (node?.nodeType === "leaf") {
      if (!isLeaf(nodeIndex)) {
        return new ValidationError("Received Ratchet Tree is not structurally sound");
      }
      if (!addNew(hpkeKeys, node.leaf.hpkePublicKey)) {
        return new ValidationError("hpke keys not unique");
      }
      if (!addNew(signatureKeys, node.leaf.signaturePublicKey)) {
        return new ValidationError("signature keys not unique");
      }
      credentialTypes.add(node.leaf.credential.credentialType);
      const leaf = node.leaf;
      const problem = leaf.leafNodeSource === "key_package"
        ? await validateLeafNodeKeyPackage(leaf, context, config, cs.signature)
        : await validateLeafNodeUpdateOrCommit(
          leaf,
          nodeToLeafIndex(nodeIndex),
          context,
          config.authService,
          cs.signature,
        );
      if (problem !== undefined) return problem;
    } else if (node?.nodeType === "parent") {
      if (isLeaf(nodeIndex)) {
        return new ValidationError("Received Ratchet Tree is not structurally sound");
      }
      if (!addNew(hpkeKeys, node.parent.hpkePublicKey)) {
        return new ValidationError("hpke keys not unique");
      }
    }
  }
  // The one check that differs from the library: membership between L and P (RFC 9420 section
  // 12.4.3.1), not equal lists all the way to the root.
  const unmerged = unmergedLeavesProblem(tree);
  if (unmerged !== undefined) return new ValidationError(unmerged);
  for (const node of tree) {
    if (node?.nodeType !== "leaf") continue;
    for (const credentialType of credentialTypes) {
      if (!node.leaf.capabilities.credentials.includes(credentialType)) {
        return new ValidationError(
          "LeafNode has credential that is not supported by member of the group",
        );
      }
    }
  }
  if (!(await verifyParentHashes(tree, cs.hash))) {
    return new CryptoVerificationError("Unable to verify parent hash");
  }
  if (!constantTimeEqual(context.treeHash, await treeHashRoot(tree, cs.hash))) {
    return new ValidationError("Unable to verify tree hash");
  }
  return undefined;
}

/** Adds a key to a set of base64 keys; false when it was already there. */
function addNew(seen: Set<string>, key: Uint8Array): boolean {
  const text = toBase64(key);
  if (seen.has(text)) return false;
  seen.add(text);
  return true;
}

/** ts-mls 1.6.4 `validateLeafNodeKeyPackage` (not exported), as a newcomer runs it. */
async function validateLeafNodeKeyPackage(
  leaf: LeafNodeKeyPackage,
  context: GroupContext,
  config: ClientConfig,
  s: Signature,
): Promise<MlsError | undefined> {
  if (!(await verifyLeafNodeSignatureKeyPackage(leaf, s))) {
    return new CryptoVerificationError("Could not verify leaf node signature");
  }
  // Off in a room (section 13.1: the leaves of members who joined yesterday), kept as the library.
  if (config.lifetimeConfig.validateLifetimeOnReceive) {
    const now = BigInt(Math.floor(Date.now() / 1000));
    if (leaf.lifetime.notBefore > now || leaf.lifetime.notAfter < now) {
      return new ValidationError("Current time not within Lifetime");
    }
  }
  return await validateLeafNodeCommon(leaf, context, config);
}

/** ts-mls 1.6.4 `validateLeafNodeCommon` (not exported). */
async function validateLeafNodeCommon(
  leaf: LeafNode,
  context: GroupContext,
  config: ClientConfig,
): Promise<MlsError | undefined> {
  if (!(await config.authService.validateCredential(leaf.credential, leaf.signaturePublicKey))) {
    return new ValidationError("Could not validate credential");
  }
  const required = context.extensions.find((e) => e.extensionType === "required_capabilities");
  if (required !== undefined) {
    const caps = decodeRequiredCapabilities(required.extensionData, 0);
    if (caps === undefined) return new CodecError("Could not decode required_capabilities");
    if (!supportsRequired(caps[0], leaf)) {
      return new ValidationError("LeafNode does not support required capabilities");
    }
  }
  if (!extensionsSupportedByCapabilities(leaf.extensions, leaf.capabilities)) {
    return new ValidationError("LeafNode contains extension not listed in capabilities");
  }
  return undefined;
}

/** ts-mls 1.6.4 `capabiltiesAreSupported` (not exported). */
function supportsRequired(required: RequiredCapabilities, leaf: LeafNode): boolean {
  const has = leaf.capabilities;
  return required.credentialTypes.every((c) => has.credentials.includes(c)) &&
    required.extensionTypes.every((e) => has.extensions.includes(e)) &&
    required.proposalTypes.every((p) => has.proposals.includes(p));
}
