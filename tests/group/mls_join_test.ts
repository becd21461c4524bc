import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { utf8 } from "../../lib/core/bytes.ts";
import { GroupRejection, Newcomer, type RoomGroup } from "../../lib/group/group.ts";
import { CredentialBook } from "../../lib/group/group_members.ts";
import { makeKeyPackage } from "../../lib/group/key_package.ts";
import {
  clientConfig,
  decodeMessage,
  emptyPskIndex,
  encodeMlsMessage,
  joinGroup,
  MLS_VERSION,
  type RatchetTree,
  SUITE_ID,
  suiteImpl,
  type Welcome,
} from "../../lib/group/mls.ts";
import { joinWelcome, validateRatchetTree } from "../../lib/group/mls_join.ts";
import { unmergedLeavesProblem } from "../../lib/group/unmerged_leaves.ts";
import { commitAll, identities, room } from "../_helpers/mls_group.ts";

const MEMBERS = 12;
const LEAVER = 6;

/**
 * A room of 12 made in one commit, whose member at leaf 6 leaves (the admin commits it): the
 * tree's nodes above leaf 6 are blank now, except those the admin's path filled.
 */
async function roomAfterALeave(): Promise<{ admin: RoomGroup; others: RoomGroup[] }> {
  const names = Array.from({ length: MEMBERS }, (_, i) => `member${i}`);
  const members: RoomGroup[] = await room(...names);
  const leaver = members[LEAVER]!;
  const leave = await leaver.proposeLeave();
  for (const member of members) if (member !== leaver) await member.process(leave);
  const [admin, ...others] = members.filter((member) => member !== leaver);
  await commitAll(admin!, others, {});
  return { admin: admin!, others };
}

/** Two newcomers' KeyPackages, added by the admin in one commit, with the Welcome. */
async function addTwoRaw(admin: RoomGroup, others: RoomGroup[]) {
  const cs = await suiteImpl();
  const people = (await identities(MEMBERS + 2)).slice(MEMBERS);
  const newcomers = [];
  for (const [i, person] of people.entries()) {
    const { publicPackage, privatePackage } = await makeKeyPackage(person, `new${i}`, cs);
    const bytes = encodeMlsMessage({
      version: MLS_VERSION,
      wireformat: "mls_key_package",
      keyPackage: publicPackage,
    });
    newcomers.push({
      publicPackage,
      privatePackage,
      admission: await admin.checkKeyPackage(bytes),
    });
  }
  const { pending } = await commitAll(admin, others, {
    add: newcomers.map((newcomer) => newcomer.admission),
  });
  const decoded = decodeMessage(pending.welcome!);
  if (decoded?.wireformat !== "mls_welcome") throw new TypeError("no Welcome");
  return { cs, newcomers, welcome: decoded.welcome, bytes: pending.welcome! };
}

Deno.test("ts-mls 1.6.4 `joinGroup()` refuses a valid Welcome that adds two after a leave", async () => {
  // The library bug `joinWelcome()` works around (lib/group/mls_join.ts). When a ts-mls upgrade
  // fixes it, this test fails: newcomer.ts can join with `joinGroup()` again.
  const { admin, others } = await roomAfterALeave();
  const { cs, newcomers, welcome } = await addTwoRaw(admin, others);
  for (const newcomer of newcomers) {
    await rejects(
      joinGroup(
        welcome,
        newcomer.publicPackage,
        newcomer.privatePackage,
        emptyPskIndex,
        cs,
        undefined,
        undefined,
        clientConfig(new CredentialBook(SUITE_ID).validate),
      ),
      /non-blank intermediate node must list leaf node in its unmerged_leaves/,
    );
  }
});

Deno.test("`joinWelcome()` joins both newcomers of that Welcome, whose tree's unmerged lists differ", async () => {
  const { admin, others } = await roomAfterALeave();
  const { cs, newcomers, welcome } = await addTwoRaw(admin, others);
  for (const newcomer of newcomers) {
    const { state, signer } = await joinWelcome(
      welcome,
      newcomer.publicPackage,
      newcomer.privatePackage,
      cs,
      clientConfig(new CredentialBook(SUITE_ID).validate),
    );
    strictEqual(signer, 0, "the admin signed the GroupInfo");
    strictEqual(state.groupContext.epoch, admin.epoch);
    const tree = state.ratchetTree;
    strictEqual(unmergedLeavesProblem(tree), undefined);
    // The case itself: some node lists an unmerged leaf that a node above it lists with others.
    const lists = tree.flatMap((node) =>
      node?.nodeType === "parent" && node.parent.unmergedLeaves.length > 0
        ? [node.parent.unmergedLeaves.join(",")]
        : []
    );
    ok(new Set(lists).size > 1, `unmerged lists ${JSON.stringify(lists)}`);
  }
});

Deno.test("`Newcomer.join()`: after a leave in a room of 12, two added in one commit both join and talk", async () => {
  const { admin, others } = await roomAfterALeave();
  const people = (await identities(MEMBERS + 2)).slice(MEMBERS);
  const newcomers = await Promise.all(
    people.map((person, i) => Newcomer.create(person, `new${i}`)),
  );
  const admissions = [];
  for (const newcomer of newcomers) {
    admissions.push(await admin.checkKeyPackage(newcomer.keyPackage));
  }
  const { pending } = await commitAll(admin, others, { add: admissions });
  const joined = [];
  for (const newcomer of newcomers) {
    const { group, addedBy } = await newcomer.join(pending.welcome!);
    strictEqual(addedBy.name, "member0");
    joined.push(group);
  }
  const everyone = [admin, ...others, ...joined];
  for (const member of everyone) {
    strictEqual(member.epoch, admin.epoch);
    strictEqual(member.members().length, MEMBERS + 1);
  }
  const codes = new Set(await Promise.all(everyone.map((member) => member.epochCode())));
  strictEqual(codes.size, 1, "every member is in the same epoch of the same group");
  for (const [i, sender] of joined.entries()) {
    const message = await sender.encrypt(utf8(`hello from new${i}`));
    for (const receiver of everyone) {
      if (receiver === sender) continue;
      const event = await receiver.process(message);
      ok(event.kind === "application");
      eql(new TextDecoder().decode(event.content), `hello from new${i}`);
      strictEqual(event.sender.name, `new${i}`);
    }
  }
  const fromAdmin = await admin.encrypt(utf8("welcome"));
  for (const newcomer of joined) {
    const event = await newcomer.process(fromAdmin);
    ok(event.kind === "application" && event.sender.name === "member0");
  }
});

/** The Welcome with one byte of its encrypted GroupInfo flipped. */
function withFlippedGroupInfo(welcome: Welcome, at: number): Welcome {
  const encryptedGroupInfo = welcome.encryptedGroupInfo.slice();
  encryptedGroupInfo[at]! ^= 0x01;
  return { ...welcome, encryptedGroupInfo };
}

Deno.test("`joinWelcome()` and `Newcomer.join()` still refuse a tampered Welcome", async () => {
  const { admin, others } = await roomAfterALeave();
  const { cs, newcomers, welcome } = await addTwoRaw(admin, others);
  const newcomer = newcomers[0]!;
  const config = clientConfig(new CredentialBook(SUITE_ID).validate);
  for (
    const at of [0, welcome.encryptedGroupInfo.length >> 1, welcome.encryptedGroupInfo.length - 1]
  ) {
    await rejects(
      joinWelcome(
        withFlippedGroupInfo(welcome, at),
        newcomer.publicPackage,
        newcomer.privatePackage,
        cs,
        config,
      ),
      /Decryption failed/,
    );
  }
  // Its GroupSecrets, for this newcomer's KeyPackage.
  const secrets = welcome.secrets.map((entry) => {
    const ciphertext = entry.encryptedGroupSecrets.ciphertext.slice();
    ciphertext[0]! ^= 0x01;
    return { ...entry, encryptedGroupSecrets: { ...entry.encryptedGroupSecrets, ciphertext } };
  });
  await rejects(
    joinWelcome(
      { ...welcome, secrets },
      newcomer.publicPackage,
      newcomer.privatePackage,
      cs,
      config,
    ),
    /Decryption failed/,
  );
  // Untouched, it joins: the refusals above are the tampering's.
  const { signer } = await joinWelcome(
    welcome,
    newcomer.publicPackage,
    newcomer.privatePackage,
    cs,
    config,
  );
  strictEqual(signer, 0);

  // The same through the Newcomer, on the Welcome's bytes.
  const person = (await identities(MEMBERS + 3))[MEMBERS + 2]!;
  const late = await Newcomer.create(person, "late");
  const { pending } = await commitAll(admin, others, {
    add: [await admin.checkKeyPackage(late.keyPackage)],
  });
  const tampered = pending.welcome!.slice();
  tampered[tampered.length - 20]! ^= 0x01;
  await rejects(late.join(tampered), (error) => {
    ok(error instanceof GroupRejection);
    ok(/a Welcome MLS refuses: .*Decryption failed/.test(error.message), error.message);
    return true;
  });
  const { group } = await late.join(pending.welcome!);
  strictEqual(group.epoch, admin.epoch);
});

/** The tree with parent node `index` changed by `change`. */
function withParent(
  tree: RatchetTree,
  index: number,
  change: (parent: { unmergedLeaves: number[]; hpkePublicKey: Uint8Array }) => object,
): RatchetTree {
  const node = tree[index];
  if (node?.nodeType !== "parent") throw new TypeError(`node ${index} is not a parent`);
  const copy = tree.slice();
  copy[index] = { nodeType: "parent", parent: { ...node.parent, ...change(node.parent) } };
  return copy;
}

Deno.test("`validateRatchetTree()` keeps the library's other checks of the tree", async () => {
  const { admin, others } = await roomAfterALeave();
  const { cs, newcomers, welcome } = await addTwoRaw(admin, others);
  const newcomer = newcomers[0]!;
  const config = clientConfig(new CredentialBook(SUITE_ID).validate);
  const { state } = await joinWelcome(
    welcome,
    newcomer.publicPackage,
    newcomer.privatePackage,
    cs,
    config,
  );
  const tree = state.ratchetTree;
  const context = state.groupContext;
  // Leaf 6 (the leaver's, taken by the first newcomer) is unmerged at node 7 and the root (15),
  // which also lists leaf 12 (the second newcomer's): the lists differ, and that is valid.
  eql(tree[7]?.nodeType === "parent" && tree[7].parent.unmergedLeaves, [6]);
  eql(tree[15]?.nodeType === "parent" && tree[15].parent.unmergedLeaves, [6, 12]);
  strictEqual(await validateRatchetTree(tree, context, config, cs), undefined);

  const problem = async (changed: RatchetTree, withContext = context, withConfig = config) =>
    (await validateRatchetTree(changed, withContext, withConfig, cs))?.message;
  // Leaf 6 listed at the root but not at node 7 between them: RFC 9420 section 12.4.3.1.
  strictEqual(
    await problem(withParent(tree, 7, () => ({ unmergedLeaves: [] }))),
    "node 7, between leaf 6 and node 15, does not list it as unmerged",
  );
  // Leaf 12 no longer listed at the root: valid lists, but not the tree the group hashed.
  ok(
    /Unable to verify (parent|tree) hash/.test(
      String(await problem(withParent(tree, 15, () => ({ unmergedLeaves: [6] })))),
    ),
  );
  const otherHash = context.treeHash.slice();
  otherHash[0]! ^= 0x01;
  strictEqual(
    await problem(tree, { ...context, treeHash: otherHash }),
    "Unable to verify tree hash",
  );
  const node3 = tree[3];
  if (node3?.nodeType !== "parent") throw new TypeError("node 3 is not a parent");
  strictEqual(
    await problem(withParent(tree, 7, () => ({ hpkePublicKey: node3.parent.hpkePublicKey }))),
    "hpke keys not unique",
  );
  const refuseAll = {
    ...config,
    authService: { validateCredential: () => Promise.resolve(false) },
  };
  strictEqual(await problem(tree, context, refuseAll), "Could not validate credential");
  const misplaced = tree.slice();
  misplaced[5] = tree[3];
  strictEqual(await problem(misplaced), "hpke keys not unique");
  misplaced[5] = tree[0];
  strictEqual(await problem(misplaced), "Received Ratchet Tree is not structurally sound");
});
