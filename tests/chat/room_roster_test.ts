/**
 * The roster a participant shows (PROTOCOL.md 13.7): the group's members, named safely, with
 * shared names told apart by fingerprint, and found by name or fingerprint prefix.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Roster } from "../../lib/chat/room_roster.ts";
import type { GroupMember } from "../../lib/group/group.ts";
import { authorOf, type Identity } from "../../lib/keys/identity.ts";
import { identities } from "../_helpers/relay_peers.ts";

const [alice, bob, carol] = await identities(3) as [Identity, Identity, Identity];

function member(identity: Identity, name: string, extra: Partial<GroupMember> = {}): GroupMember {
  return {
    leaf: 0,
    name,
    fingerprint: identity.fingerprint,
    author: authorOf(identity.fingerprint),
    admin: false,
    identity,
    self: false,
    ...extra,
  };
}

Deno.test("Roster shows the group's members in leaf order, marking us, the host and admins", () => {
  const roster = new Roster(alice.fingerprint);
  roster.update([
    member(alice, "alice", { admin: true }),
    member(bob, "bob", { self: true }),
    member(carol, "carol"),
  ]);
  deepStrictEqual(roster.list(), [
    { name: "alice", fingerprint: alice.fingerprint, host: true, admin: true },
    { name: "bob", fingerprint: bob.fingerprint, self: true },
    { name: "carol", fingerprint: carol.fingerprint },
  ]);
  strictEqual(roster.size, 3);
  strictEqual(roster.byAuthor(authorOf(carol.fingerprint))?.name, "carol");
  strictEqual(roster.byAuthor(new Uint8Array(31)), undefined);
});

Deno.test("Roster tells apart members who ask for the same name, by their fingerprints", () => {
  const roster = new Roster();
  roster.update([member(alice, "alice"), member(bob, "alice"), member(carol, "carol")]);
  const [first, second] = roster.list();
  strictEqual(first!.name, `alice-${alice.fingerprint.slice(7, 13)}`);
  strictEqual(second!.name, `alice-${bob.fingerprint.slice(7, 13)}`);
  strictEqual(roster.find("alice"), undefined);
  strictEqual(roster.find(first!.name)?.fingerprint, alice.fingerprint);
});

Deno.test("Roster replaces control and bidirectional characters in names", () => {
  const roster = new Roster();
  roster.update([member(alice, "al\u202eice\x1b[2J"), member(bob, "")]);
  const [first, second] = roster.list();
  strictEqual(first!.name.includes("\u202e") || first!.name.includes("\x1b"), false);
  strictEqual(second!.name, "member");
});

Deno.test("Roster finds a member by exact name or a fingerprint prefix of at least 6 characters", () => {
  const roster = new Roster();
  roster.update([member(alice, "alice"), member(bob, "bob")]);
  strictEqual(roster.find("bob")?.fingerprint, bob.fingerprint);
  strictEqual(roster.find(bob.fingerprint)?.name, "bob");
  strictEqual(roster.find(bob.fingerprint.slice(7, 13))?.name, "bob");
  strictEqual(roster.find(bob.fingerprint.slice(7, 11)), undefined);
  strictEqual(roster.find("nobody"), undefined);
});

Deno.test("Roster.update() forgets members no longer in the group", () => {
  const roster = new Roster();
  roster.update([member(alice, "alice"), member(bob, "bob")]);
  roster.update([member(alice, "alice")]);
  strictEqual(roster.get(bob.fingerprint), undefined);
  strictEqual(roster.size, 1);
});
