/**
 * The check of a ratchet tree's unmerged leaves that a newcomer runs on the tree a Welcome
 * carries, as RFC 9420 section 12.4.3.1 words it: for each non-blank parent node P and each leaf
 * L in P's unmerged_leaves, L is a non-blank leaf below P, and every non-blank node strictly
 * between L and P lists L in its own unmerged_leaves too.
 *
 * Why our own: ts-mls 1.6.4 (`validateRatchetTree` in clientState.js) asks more than the RFC:
 * every non-blank node on L's whole direct path, up to the root and past P, must have an
 * unmerged_leaves list equal to P's. An Add puts the newcomer's leaf on the lists of the non-blank
 * nodes above it, so once a member has left (its path blank, the commit that removed it mending
 * only the committer's path) two newcomers added by one commit give lists that honestly differ
 * (P lists one newcomer, the root both), and every newcomer refused the Welcome. mls_join.ts runs
 * the library's other checks and this one instead.
 *
 * Pure: it reads node indices and lists, no keys. The tree's shape (leaves at even indices,
 * parents at odd ones), its hashes and its keys are checked by mls_join.ts.
 *
 * Mirrors docs/PROTOCOL.md section 13.1 (joining: a newcomer checks the tree of its Welcome).
 *
 * @module
 */

/** What this check reads of a ratchet tree, in RFC 9420 array order: ts-mls's RatchetTree fits. */
export type UnmergedLeavesTree = ReadonlyArray<
  | { nodeType: "leaf" }
  | { nodeType: "parent"; parent: { unmergedLeaves: readonly number[] } }
  | undefined
>;

/** RFC 9420 appendix C `level(x)`: the number of trailing one bits of a node index. */
function level(node: number): number {
  let k = 0;
  while (((node >> k) & 1) === 1) k++;
  return k;
}

/**
 * The parent of a node in the unbounded tree (RFC 9420 appendix C `parent_step`): for a node
 * below P, stepping up from it reaches P, whatever the tree's width.
 */
function parentStep(node: number): number {
  const k = level(node);
  const b = (node >> (k + 1)) & 1;
  return (node | (1 << k)) ^ (b << (k + 1));
}

/**
 * Checks every unmerged_leaves list of a ratchet tree (RFC 9420 section 12.4.3.1).
 *
 * @param tree the tree's nodes by node index (leaf L at 2L), blank nodes undefined
 * @returns why the tree is refused, or undefined when every list is valid
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { unmergedLeavesProblem } from "./unmerged_leaves.ts";
 *
 * const leaf = { nodeType: "leaf" } as const;
 * const parent = (...unmergedLeaves: number[]) =>
 *   ({ nodeType: "parent", parent: { unmergedLeaves } }) as const;
 * // Leaves 0..3; node 1 lists leaf 1, the root (3) lists leaves 1 and 3: valid, though unequal.
 * const tree = [leaf, parent(1), leaf, parent(1, 3), leaf, undefined, leaf];
 * strictEqual(unmergedLeavesProblem(tree), undefined);
 * // Node 1 no longer lists leaf 1, which the root lists: refused.
 * tree[1] = parent();
 * strictEqual(
 *   unmergedLeavesProblem(tree),
 *   "node 1, between leaf 1 and node 3, does not list it as unmerged",
 * );
 * ```
 */
export function unmergedLeavesProblem(tree: UnmergedLeavesTree): string | undefined {
  for (const [index, node] of tree.entries()) {
    if (node?.nodeType !== "parent") continue;
    // The subtree of a node of level k spans the 2^k - 1 nodes on either side of it.
    const span = 2 ** level(index) - 1;
    for (const leaf of node.parent.unmergedLeaves) {
      const leafNode = 2 * leaf;
      if (Math.abs(leafNode - index) > span) {
        return `node ${index} lists leaf ${leaf} as unmerged, which is not below it`;
      }
      if (tree[leafNode]?.nodeType !== "leaf") {
        return `node ${index} lists leaf ${leaf} as unmerged, which is blank`;
      }
      for (let between = parentStep(leafNode); between !== index; between = parentStep(between)) {
        const on = tree[between];
        if (on === undefined) continue;
        if (on.nodeType !== "parent") return `a leaf at node ${between}, where a parent belongs`;
        if (!on.parent.unmergedLeaves.includes(leaf)) {
          return `node ${between}, between leaf ${leaf} and node ${index}, does not list it as unmerged`;
        }
      }
    }
  }
  return undefined;
}
