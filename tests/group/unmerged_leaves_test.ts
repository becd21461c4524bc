import { strictEqual } from "node:assert/strict";
import { unmergedLeavesProblem, type UnmergedLeavesTree } from "../../lib/group/unmerged_leaves.ts";

const leaf = { nodeType: "leaf" } as const;
const parent = (...unmergedLeaves: number[]) => ({
  nodeType: "parent" as const,
  parent: { unmergedLeaves },
});

/**
 * A tree of 8 leaves (nodes 0..14, root 7) with every leaf present and every parent blank but
 * those given, by node index.
 */
function tree(parents: Record<number, number[]>, blankLeaves: number[] = []): UnmergedLeavesTree {
  const nodes: UnmergedLeavesTree[number][] = [];
  for (let index = 0; index < 15; index++) {
    if (index % 2 === 0) nodes.push(blankLeaves.includes(index / 2) ? undefined : leaf);
    else nodes.push(parents[index] === undefined ? undefined : parent(...parents[index]!));
  }
  return nodes;
}

Deno.test("`unmergedLeavesProblem()` accepts lists that differ from node to node, as the RFC allows", () => {
  // The shape after a leave and an Add of two (the case ts-mls 1.6.4 refuses): leaf 2 is unmerged
  // at node 3 and at the root, leaf 7 at node 11 and the root, so no two lists are equal.
  strictEqual(unmergedLeavesProblem(tree({ 3: [2], 7: [2, 7], 11: [7] })), undefined);
  // Leaf 4 unmerged from node 9 up, leaf 6 from node 11 up (node 13 between is blank).
  strictEqual(unmergedLeavesProblem(tree({ 9: [4], 11: [4, 6], 7: [4, 6] })), undefined);
  // A blank node between the leaf and P needs to list nothing.
  strictEqual(unmergedLeavesProblem(tree({ 7: [0] })), undefined);
  strictEqual(unmergedLeavesProblem(tree({})), undefined);
  strictEqual(unmergedLeavesProblem([leaf]), undefined);
});

Deno.test("`unmergedLeavesProblem()` refuses a leaf listed at P but missing at a non-blank node between", () => {
  strictEqual(
    unmergedLeavesProblem(tree({ 3: [], 7: [2] })),
    "node 3, between leaf 2 and node 7, does not list it as unmerged",
  );
  // The node just above the leaf counts too.
  strictEqual(
    unmergedLeavesProblem(tree({ 9: [], 11: [4] })),
    "node 9, between leaf 4 and node 11, does not list it as unmerged",
  );
  // Listing the leaf at a node above P does not make up for the node between.
  strictEqual(
    unmergedLeavesProblem(tree({ 1: [], 3: [0], 7: [0] })),
    "node 1, between leaf 0 and node 3, does not list it as unmerged",
  );
});

Deno.test("`unmergedLeavesProblem()` refuses a leaf that is not below the node listing it", () => {
  strictEqual(
    unmergedLeavesProblem(tree({ 3: [4] })),
    "node 3 lists leaf 4 as unmerged, which is not below it",
  );
  strictEqual(
    unmergedLeavesProblem(tree({ 11: [1] })),
    "node 11 lists leaf 1 as unmerged, which is not below it",
  );
  // Beyond the tree's last leaf.
  strictEqual(
    unmergedLeavesProblem(tree({ 7: [8] })),
    "node 7 lists leaf 8 as unmerged, which is not below it",
  );
});

Deno.test("`unmergedLeavesProblem()` refuses a blank leaf listed as unmerged", () => {
  strictEqual(
    unmergedLeavesProblem(tree({ 7: [6] }, [6])),
    "node 7 lists leaf 6 as unmerged, which is blank",
  );
});

Deno.test("`unmergedLeavesProblem()` refuses a leaf where a parent belongs on the way up", () => {
  const nodes = [...tree({ 7: [0] })];
  nodes[1] = leaf;
  strictEqual(unmergedLeavesProblem(nodes), "a leaf at node 1, where a parent belongs");
});
