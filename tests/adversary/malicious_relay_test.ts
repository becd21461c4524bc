/**
 * A malicious relay against real members (docs/PROTOCOL.md 13, "it cannot read, forge, alter,
 * replay or move a message to another room, nor add, remove or rename a member"): members join
 * with `joinRoom()` over real loopback SecureConnections and real MLS, and the relay is
 * `tests/_helpers/hostile_relay.ts`, which forwards, drops, alters, replays, reorders, injects
 * and splits as each test says. Each test asserts exactly what the victim sees: its events, in
 * order, from the attack on.
 *
 * "Never shown" is made testable without timing: a member reads the relay one message at a
 * time, in order, so once an honest message sent after the attack is shown, everything the
 * relay delivered before it has been handled.
 */

import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { sha256 } from "../../lib/core/bytes.ts";
import type { FromRelay } from "../../lib/chat/relay_messages.ts";
import { encodeChat } from "../../lib/chat/room_content.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { ADMINS_EXTENSION_TYPE, encodeAdmins } from "../../lib/group/admins.ts";
import { makeCredential } from "../../lib/group/credential.ts";
import { RoomGroup } from "../../lib/group/group.ts";
import { makeKeyPackage } from "../../lib/group/key_package.ts";
import {
  clientConfig,
  type ClientState,
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeMessage,
  encodeMlsMessage,
  type KeyPackage,
  MLS_VERSION,
  type Proposal,
  SUITE_ID,
  suiteImpl,
} from "../../lib/group/mls.ts";
import { CredentialBook } from "../../lib/group/group_members.ts";
import type { RoomParticipant } from "../../lib/room/participant.ts";
import {
  type Delivery,
  flip,
  HostileRelay,
  type RoomGroupHeader,
} from "../_helpers/hostile_relay.ts";
import { privateMessage } from "../_helpers/mls_messages.ts";
import { rawJoin, rawKeyPackage } from "../_helpers/mls_group.ts";
import { identities, type RelayPeer } from "../_helpers/relay_peers.ts";
import { entered, rosterSize, type TestMember, texts } from "../_helpers/room.ts";

const NAMES = ["alice", "bob", "carol", "dave", "eve", "mallory"] as const;
type Name = typeof NAMES[number];

/** The relay's identity and one per name, the same across tests (identities are slow to make). */
async function people(): Promise<{ relay: Identity; of: Record<Name, Identity> }> {
  const [relay, ...rest] = await identities(NAMES.length + 1);
  const of = Object.fromEntries(NAMES.map((name, i) => [name, rest[i]!])) as Record<
    Name,
    Identity
  >;
  return { relay: relay!, of };
}

/**
 * A room on a hostile relay: the first name makes the group and admits the others at once (its
 * admit list names them), who join one after another. Resolves once every roster is complete.
 */
async function hostileRoom(
  names: Name[],
  options: { admits?: Name[]; room?: string; relay?: HostileRelay } = {},
) {
  const { relay: relayIdentity, of } = await people();
  const relay = options.relay ?? new HostileRelay(relayIdentity);
  const room = options.room ?? "1";
  const admitted = new Set((options.admits ?? names).map((name) => of[name].fingerprint));
  // Everyone has the admit list: it matters to those who are or become admins.
  const admitsAtOnce = (fingerprint: string) => admitted.has(fingerprint);
  const members = {} as Record<Name, TestMember>;
  for (const name of names) {
    members[name] = await relay.join(of[name], { name, room, admitsAtOnce });
    await members[name].until(entered);
  }
  for (const name of names) {
    await members[name].until(() => rosterSize(members[name], names.length));
  }
  return {
    relay,
    of,
    members,
    /** Joins a newcomer, which knocks and waits; `as` is the name it asks for. */
    async newcomer(name: Name, as: string = name): Promise<TestMember> {
      const member = await relay.join(of[name], { name: as, room, admitsAtOnce });
      members[name] = member;
      return member;
    },
    async close(): Promise<void> {
      await Promise.all(Object.values(members).map((m) => m.session.close().catch(() => {})));
      if (!options.relay) await relay.close();
    },
    /** For `await using`: closes the room when the test leaves its scope. */
    [Symbol.asyncDispose](): Promise<void> {
      return this.close();
    },
  };
}

/** What a member showed, one line per event (its own lines, rosters and codes left out). */
function shown(member: TestMember, from = 0): string[] {
  return member.events.slice(from).flatMap((event): string[] => {
    switch (event.type) {
      case "message":
        return event.from.self ? [] : [`message ${event.from.name}: ${event.text}`];
      case "rejected":
        return [`rejected (${event.claimedAuthor}): ${event.reason}`];
      case "notice":
        return [`notice: ${event.text}`];
      case "error":
        return [`error ${event.code}: ${event.message}`];
      case "closed":
        return [`closed: ${event.reason}`];
      case "join":
        return [`join ${event.member.name} by ${event.by?.name}`];
      case "leave":
        return [`leave ${event.member.name}: ${event.reason}`];
      case "knock":
        return [`knock ${event.member.name}`];
      default:
        return [];
    }
  });
}

/** The member showed exactly `expected` from event `from` on: strings equal, patterns match. */
function assertShown(member: TestMember, from: number, expected: (string | RegExp)[]): void {
  const actual = shown(member, from);
  const same = actual.length === expected.length &&
    actual.every((line, i) => {
      const want = expected[i]!;
      return typeof want === "string" ? line === want : want.test(line);
    });
  ok(
    same,
    `${member.session.self.name} showed:\n${actual.join("\n")}\nexpected:\n${expected.join("\n")}`,
  );
}

const hasText = (text: string) => (events: ChatEvent[]) =>
  events.some((event) => event.type === "message" && event.text === text);

const isClosed = (events: ChatEvent[]) => events.some((event) => event.type === "closed");

/** A member's group (its participant's), to read its epoch. */
function groupOf(member: TestMember): RoomGroup {
  const group = (member.session as RoomParticipant).group;
  if (!group) throw new TypeError(`${member.session.self.name} is not in the group`);
  return group;
}

/**
 * A group of the relay's own making: its identity, the name it chooses, and the room's group id,
 * brought to the room's epoch with empty commits, so that its messages carry the room's clear
 * header exactly.
 */
async function lookAlike(
  identity: Identity,
  name: string,
  target: RoomGroupHeader,
): Promise<ClientState> {
  const cs = await suiteImpl();
  const { publicPackage, privatePackage } = await makeKeyPackage(identity, name, cs);
  let state = await createGroup(
    target.groupId,
    publicPackage,
    privatePackage,
    [{
      extensionType: ADMINS_EXTENSION_TYPE,
      extensionData: encodeAdmins([await sha256(identity.spki)]),
    }],
    cs,
    clientConfig(new CredentialBook(SUITE_ID).validate),
  );
  while (state.groupContext.epoch < target.epoch) {
    state = (await createCommit({ state, cipherSuite: cs }, {})).newState;
  }
  return state;
}

/** A chat line as an application message of `state`. */
async function chatIn(state: ClientState, text: string): Promise<Uint8Array> {
  const made = await createApplicationMessage(
    state,
    encodeChat({ kind: "text", timestamp: Date.now(), text }),
    await suiteImpl(),
  );
  return encodeMlsMessage({
    version: MLS_VERSION,
    wireformat: "mls_private_message",
    privateMessage: made.privateMessage,
  });
}

const CANNOT_READ = (epoch: bigint) =>
  `rejected a room message: a message of epoch ${epoch} that this member cannot read`;

// Forged messages: made up by the relay, or made in a group of its own.

Deno.test("a Group message the relay made up is rejected, never shown", async () => {
  await using room = await hostileRoom(["alice", "bob"]);
  const { relay, members: { alice, bob } } = room;
  const mark = bob.events.length;
  const { groupId, epoch } = relay.group();
  relay.inject(relay.end("bob"), {
    type: "group",
    sender: relay.end("alice").author,
    message: privateMessage({ groupId, epoch, contentType: "application" }),
  });
  await alice.session.sendText("after");
  await bob.until(hasText("after"));
  assertShown(bob, mark, [`rejected (alice): ${CANNOT_READ(epoch)}`, "message alice: after"]);
});

Deno.test("a chat line from a non-member's look-alike group (same group id and epoch) is rejected", async () => {
  await using room = await hostileRoom(["alice", "bob"]);
  const { relay, of, members: { alice, bob } } = room;
  const mark = bob.events.length;
  // The relay's own group, named like the room's and with its creator called "alice".
  const fake = await lookAlike(of.mallory, "alice", relay.group());
  relay.inject(relay.end("bob"), {
    type: "group",
    sender: relay.end("alice").author,
    message: await chatIn(fake, "forged"),
  });
  await alice.session.sendText("after");
  await bob.until(hasText("after"));
  assertShown(bob, mark, [
    `rejected (alice): ${CANNOT_READ(relay.group().epoch)}`,
    "message alice: after",
  ]);
});

// Altered and replayed messages.

/** A route that hands the first delivery `pick` chooses to `action`, and forwards the rest. */
function first(pick: (delivery: Delivery) => boolean, action: (delivery: Delivery) => FromRelay[]) {
  let done = false;
  return (delivery: Delivery): FromRelay[] | undefined => {
    if (done || !pick(delivery)) return undefined;
    done = true;
    return action(delivery);
  };
}

/** Picks a delivery by its type, its sender's name and its recipient's name. */
const is = (type: FromRelay["type"], from: Name | undefined, to: Name) => (delivery: Delivery) =>
  delivery.message.type === type && delivery.from?.name === from && delivery.to.name === to;

/** The MLS message a delivery carries, with its last byte (inside the AEAD tag) flipped. */
function altered(message: FromRelay): FromRelay {
  switch (message.type) {
    case "group":
      return { ...message, message: flip(message.message) };
    case "commit":
      return { ...message, commit: flip(message.commit) };
    case "welcome":
      return { ...message, welcome: flip(message.welcome) };
    default:
      throw new TypeError(`nothing to alter in a ${message.type}`);
  }
}

/** What a member shows when one line of bob's is missing (13.6: a gap in his generations). */
const GAP_NOTICE =
  "notice: 1 message(s) from bob have not arrived: the relay dropped or delayed them";

/** What a member shows of a message whose AEAD tag does not verify. */
const DECRYPTION_FAILED =
  "rejected a room message: MLS refused it: OperationError: Decryption failed";

/**
 * What a member shows of a commit that does not decrypt (altered, or not the group's): nothing of
 * it is authenticated, so it is dropped, never obeyed (13.6).
 */
const COMMIT_DECRYPTION_FAILED =
  "rejected a room message: a commit that does not decrypt: OperationError: Decryption failed";

/**
 * Bob says "one" then "two" in a room with alice and carol while the relay hands his first Group
 * message for carol to `action`: carol shows `expected`, and alice, whose copy the relay left
 * alone, both lines.
 */
async function bobsFirstLineForCarol(
  action: (delivery: Delivery) => FromRelay[],
  expected: string[],
): Promise<void> {
  await using room = await hostileRoom(["alice", "bob", "carol"]);
  const { relay, members: { alice, bob, carol } } = room;
  const [markAlice, markCarol] = [alice.events.length, carol.events.length];
  relay.route = first(is("group", "bob", "carol"), action);
  await bob.session.sendText("one");
  await bob.session.sendText("two");
  await carol.until(hasText("two"));
  await alice.until(hasText("two"));
  assertShown(carol, markCarol, expected);
  assertShown(alice, markAlice, ["message bob: one", "message bob: two"]);
}

Deno.test("a byte flipped in a Group message is rejected, and the lost line is counted", async () => {
  await bobsFirstLineForCarol(({ message }) => [altered(message)], [
    `rejected (bob): ${DECRYPTION_FAILED}`,
    GAP_NOTICE,
    "message bob: two",
  ]);
});

Deno.test("a byte flipped in a Commit is dropped as rejected; the genuine one that follows is applied", async () => {
  await using room = await hostileRoom(["alice", "bob"], { admits: ["bob", "carol"] });
  const { relay, members: { alice, bob } } = room;
  const markBob = bob.events.length;
  relay.route = first(
    is("commit", "alice", "bob"),
    ({ message }) => [altered(message), message],
  );
  const carol = await room.newcomer("carol");
  await carol.until(entered);
  await bob.until(() => rosterSize(bob, 3));
  await carol.session.sendText("hello after the flip");
  await bob.until(hasText("hello after the flip"));
  assertShown(bob, markBob, [
    "knock carol",
    `rejected (alice): ${COMMIT_DECRYPTION_FAILED}`,
    "join carol by alice",
    "message carol: hello after the flip",
  ]);
  ok(!isClosed(bob.events));
  await alice.until(() => rosterSize(alice, 3));
});

Deno.test("a byte flipped in a Welcome is refused: the newcomer keeps waiting, and joins with the real one", async () => {
  await using room = await hostileRoom(["alice", "bob"], { admits: ["bob", "carol"] });
  const { relay, members: { bob } } = room;
  let genuine: FromRelay | undefined;
  relay.route = first(is("welcome", "alice", "carol"), ({ message }) => {
    genuine = message;
    return [altered(message)];
  });
  const carol = await room.newcomer("carol");
  await carol.until((events) => events.some((event) => event.type === "rejected"));
  ok(!entered(carol.events));
  strictEqual(carol.session.members().length, 1);
  relay.inject(relay.end("carol"), genuine!);
  await carol.until(entered);
  await bob.session.sendText("welcome carol");
  await carol.until(hasText("welcome carol"));
  assertShown(carol, 0, [
    /^notice: waiting for an admin of the room to admit you/,
    "rejected (the relay): a Welcome we could not use: rejected a room message: " +
    "a Welcome MLS refuses: OpenError: Decryption failed",
    "notice: alice admitted you",
    "message bob: welcome carol",
  ]);
});

Deno.test("a Group message delivered twice is shown once, also when replayed after a commit", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol"], {
    admits: ["bob", "carol", "dave"],
  });
  const { relay, members: { alice, bob, carol } } = room;
  const [markAlice, markCarol] = [alice.events.length, carol.events.length];
  relay.route = first(is("group", "bob", "carol"), ({ message }) => [message, message]);
  await bob.session.sendText("once");
  await alice.until(hasText("once"));
  const heard = await relay.hear((h) => h.from.name === "bob" && h.message.type === "group");
  const once = heard.message.type === "group" ? heard.message.message : new Uint8Array();
  // A commit later (alice admits dave), the relay plays the line again, to the committer too.
  await room.newcomer("dave");
  await carol.until(() => rosterSize(carol, 4));
  for (const name of ["alice", "carol"] as const) {
    relay.inject(relay.end(name), {
      type: "group",
      sender: relay.end("bob").author,
      message: once,
    });
  }
  await bob.session.sendText("after");
  await carol.until(hasText("after"));
  await alice.until(hasText("after"));
  // MLS's secret tree refuses a generation twice, in the current epoch and in a kept one.
  const replayed =
    "rejected (bob): rejected a room message: MLS refused it: Desired gen in the past";
  assertShown(carol, markCarol, [
    "message bob: once",
    replayed,
    "knock dave",
    "join dave by alice",
    replayed,
    "message bob: after",
  ]);
  assertShown(alice, markAlice, [
    "message bob: once",
    "knock dave",
    "join dave by alice",
    replayed,
    "message bob: after",
  ]);
});

Deno.test("a replayed Commit is rejected as a replay; the room goes on", async () => {
  await using room = await hostileRoom(["alice", "bob"], { admits: ["bob", "carol"] });
  const { relay, members: { alice, bob } } = room;
  const markBob = bob.events.length;
  relay.route = first(is("commit", "alice", "bob"), ({ message }) => [message, message]);
  const carol = await room.newcomer("carol");
  await carol.until(entered);
  await alice.session.sendText("after");
  await bob.until(hasText("after"));
  assertShown(bob, markBob, [
    "knock carol",
    "join carol by alice",
    "rejected (alice): rejected a room message: a commit of past epoch 1 (a replay?)",
    "message alice: after",
  ]);
  strictEqual(bob.session.members().length, 3);
});

// Moving messages between rooms, and rooms of the relay's own making (the review's attack (a)).

/** `message` (a PrivateMessage) with its clear group id replaced by `groupId` (same length). */
function withGroupId(message: Uint8Array, groupId: Uint8Array): Uint8Array {
  // version u16, wire_format u16, then group_id<V> whose 32-byte length takes one byte.
  strictEqual(message[4], groupId.length);
  const copy = message.slice();
  copy.set(groupId, 5);
  return copy;
}

Deno.test("cross-room: alice's lines of room 1 replayed into room 2 are never shown as from alice", async () => {
  const { relay: relayIdentity, of } = await people();
  const relay = new HostileRelay(relayIdentity);
  const one = await hostileRoom(["alice", "bob"], { relay, room: "1" });
  const two = await hostileRoom(["carol", "dave"], { relay, room: "2" });
  try {
    const { alice, bob, carol, dave } = { ...one.members, ...two.members };
    const [markCarol, markDave] = [carol.events.length, dave.events.length];
    await alice.session.sendText("for room 1 only");
    await bob.until(hasText("for room 1 only"));
    const heard = await relay.hear((h) => h.from.name === "alice" && h.message.type === "group");
    const line = heard.message.type === "group" ? heard.message.message : new Uint8Array();
    // As it is, and with its clear header rewritten to name room 2's group.
    const renamed = withGroupId(line, relay.group("2").groupId);
    for (const name of ["carol", "dave"] as const) {
      for (const message of [line, renamed]) {
        relay.inject(relay.end(name), {
          type: "group",
          sender: relay.end("alice").author,
          message,
        });
      }
    }
    await carol.session.sendText("room 2 goes on");
    await dave.until(hasText("room 2 goes on"));
    await dave.session.sendText("it does");
    await carol.until(hasText("it does"));
    const rejections = [
      `rejected (${of.alice.fingerprint}): rejected a room message: it belongs to another group`,
      `rejected (${of.alice.fingerprint}): ${CANNOT_READ(relay.group("2").epoch)}`,
    ];
    assertShown(carol, markCarol, [...rejections, "message dave: it does"]);
    assertShown(dave, markDave, [...rejections, "message carol: room 2 goes on"]);
  } finally {
    await one.close();
    await two.close();
    await relay.close();
  }
});

Deno.test("the relay's own room takes in only a waiting newcomer, who sees the relay's key admitted her", async () => {
  const { relay: relayIdentity, of } = await people();
  const relay = new HostileRelay(relayIdentity);
  relay.neverCreate = true;
  const alice = await relay.join(of.alice, { name: "alice" });
  try {
    const heard = await relay.hear((h) => h.message.type === "key_package");
    const keyPackage = heard.message.type === "key_package" ? heard.message.keyPackage : undefined;
    // The relay makes a group with its own key, calls itself "bob", and adds alice's KeyPackage.
    const fake = await RoomGroup.create(relayIdentity, "bob");
    const pending = await fake.prepareCommit({ add: [await fake.checkKeyPackage(keyPackage!)] });
    await fake.confirmCommit(pending);
    const sender = await sha256(relayIdentity.spki);
    relay.inject(relay.end("alice"), { type: "welcome", sender, welcome: pending.welcome! });
    relay.inject(relay.end("alice"), {
      type: "group",
      sender,
      message: await fake.encrypt(encodeChat({ kind: "text", timestamp: 1, text: "it's bob" })),
    });
    await alice.until(hasText("it's bob"));
    assertShown(alice, 0, [
      /^notice: waiting for an admin of the room to admit you/,
      "notice: bob admitted you",
      "message bob: it's bob",
    ]);
    // What gives it away: "bob" is the relay's key, shown as the host, never bob's.
    const shownBob = alice.session.members().find((member) => !member.self)!;
    deepStrictEqual(shownBob, {
      name: "bob",
      fingerprint: relayIdentity.fingerprint,
      host: true,
      admin: true,
    });
    notStrictEqual(shownBob.fingerprint, of.bob.fingerprint);
  } finally {
    await alice.session.close();
    await relay.close();
  }
});

Deno.test("a member refuses a Welcome to the relay's own room, made with its KeyPackage", async () => {
  const { relay: relayIdentity } = await people();
  await using room = await hostileRoom(["bob", "alice"]);
  const { relay, members: { alice, bob } } = room;
  const mark = alice.events.length;
  const heard = await relay.hear((h) =>
    h.from.name === "alice" && h.message.type === "key_package"
  );
  const keyPackage = heard.message.type === "key_package" ? heard.message.keyPackage : undefined;
  const fake = await RoomGroup.create(relayIdentity, "bob");
  const pending = await fake.prepareCommit({ add: [await fake.checkKeyPackage(keyPackage!)] });
  await fake.confirmCommit(pending);
  relay.inject(relay.end("alice"), {
    type: "welcome",
    sender: await sha256(relayIdentity.spki),
    welcome: pending.welcome!,
  });
  await bob.session.sendText("after");
  await alice.until(hasText("after"));
  assertShown(alice, mark, [
    "rejected (the relay): a Welcome although we are in the room already",
    "message bob: after",
  ]);
});

// A second "alice" (the review's attack (b)).

Deno.test("the relay cannot add a second alice: its Welcome and commit are dropped, never show her", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol"]);
  const { relay, of, members: { alice, bob, carol } } = room;
  const marks = [bob.events.length, carol.events.length];
  // The relay's look-alike of the room's group (same id, same epoch) adds mallory as "alice".
  const cs = await suiteImpl();
  const fake = await lookAlike(relay.identity, "alice", relay.group());
  const { publicPackage } = await makeKeyPackage(of.mallory, "alice", cs);
  const made = await createCommit({ state: fake, cipherSuite: cs }, {
    extraProposals: [{ proposalType: "add", add: { keyPackage: publicPackage } }],
    ratchetTreeExtension: true,
  });
  const welcome = encodeMlsMessage({
    version: MLS_VERSION,
    wireformat: "mls_welcome",
    welcome: made.welcome!,
  });
  const sender = relay.end("alice").author;
  for (const name of ["bob", "carol"] as const) {
    relay.inject(relay.end(name), { type: "welcome", sender, welcome });
    relay.inject(relay.end(name), {
      type: "commit",
      sender,
      commit: encodeMlsMessage(made.commit),
    });
  }
  const rejections = (events: ChatEvent[]) =>
    events.filter((event) => event.type === "rejected").length;
  await bob.until((events) => rejections(events) === 2);
  await carol.until((events) => rejections(events) === 2);
  await alice.session.sendText("the room goes on");
  for (const [i, member] of [bob, carol].entries()) {
    await member.until(hasText("the room goes on"));
    assertShown(member, marks[i]!, [
      "rejected (the relay): a Welcome although we are in the room already",
      `rejected (alice): ${COMMIT_DECRYPTION_FAILED}`,
      "message alice: the room goes on",
    ]);
    deepStrictEqual(member.session.members().map((m) => m.name), ["alice", "bob", "carol"]);
  }
  strictEqual(alice.session.members().length, 3);
});

Deno.test("a second alice that an admin let in is shown with her own fingerprint, both names told apart", async () => {
  await using room = await hostileRoom(["alice", "bob"], { admits: ["bob", "mallory"] });
  const { of, members: { alice, bob } } = room;
  const mark = bob.events.length;
  const other = await room.newcomer("mallory", "alice");
  await bob.until(() => rosterSize(bob, 3));
  await other.until(entered);
  const real = `alice-${of.alice.fingerprint.slice(7, 13)}`;
  const second = `alice-${of.mallory.fingerprint.slice(7, 13)}`;
  await other.session.sendText("I am alice");
  await bob.until(hasText("I am alice"));
  await alice.session.sendText("no, I am");
  await bob.until(hasText("no, I am"));
  assertShown(bob, mark, [
    "knock alice",
    `join ${second} by alice`,
    `message ${second}: I am alice`,
    `message ${real}: no, I am`,
  ]);
  const byName = new Map(bob.session.members().map((m) => [m.name, m.fingerprint]));
  strictEqual(byName.get(real), of.alice.fingerprint);
  strictEqual(byName.get(second), of.mallory.fingerprint);
  ok(!byName.has("alice"));
});

// A member whose client is modified (mallory): she joins like anyone, alice admitting her, then
// drives MLS herself with ts-mls and speaks to the relay by hand.

interface Rogue {
  peer: RelayPeer;
  state: ClientState;
}

async function rogue(relay: HostileRelay, mallory: Identity): Promise<Rogue> {
  const peer = await relay.connect(mallory, "mallory");
  strictEqual((await peer.expect("start")).role, "wait");
  const keyPackage = await rawKeyPackage(mallory, "mallory");
  await peer.send({ type: "key_package", keyPackage: keyPackage.message });
  const state = await rawJoin((await peer.expect("welcome")).welcome, keyPackage);
  return { peer, state };
}

/** alice (the only admin), bob and carol, then mallory, whom alice admits. */
async function roomWithRogue(admits: Name[] = ["bob", "carol", "mallory"]) {
  const room = await hostileRoom(["alice", "bob", "carol"], { admits });
  const mallory = await rogue(room.relay, room.of.mallory);
  for (const name of ["alice", "bob", "carol"] as const) {
    const member = room.members[name];
    await member.until(() => rosterSize(member, 4));
  }
  return {
    ...room,
    mallory,
    async close() {
      await room.close();
      mallory.peer.connection.close();
    },
    [Symbol.asyncDispose](): Promise<void> {
      return this.close();
    },
  };
}

/** Leaves in join order: alice 0, bob 1, carol 2, mallory 3. */
const LEAF = { alice: 0, bob: 1, carol: 2, mallory: 3 } as const;

const add = (keyPackage: KeyPackage): Proposal => ({ proposalType: "add", add: { keyPackage } });
const remove = (leaf: number): Proposal => ({ proposalType: "remove", remove: { removed: leaf } });

/** Commits mallory made, and what every honest member says of them. */
const ROGUE_COMMITS: {
  what: string;
  refusal: string;
  make(mallory: ClientState, of: Record<Name, Identity>): Promise<Proposal[]> | Proposal[];
  /** Her commit's state: her own leaf changed before she commits. */
  before?(mallory: ClientState): ClientState;
}[] = [
  {
    what: "adds eve (who knocked)",
    refusal: "a member who is not an admin adds someone",
    make: () => [],
  },
  {
    what: "removes bob",
    refusal: "a member who is not an admin removes someone else",
    make: () => [remove(LEAF.bob)],
  },
  {
    what: 'renames bob: removes him and adds a "bob" of her own',
    refusal: "a member who is not an admin adds someone",
    make: async (_, of) => [
      add((await makeKeyPackage(of.mallory, "bob", await suiteImpl())).publicPackage),
      remove(LEAF.bob),
    ],
  },
  {
    what: "makes herself an admin",
    refusal: "a member who is not an admin changes the admins",
    make: async (_, of) => [{
      proposalType: "group_context_extensions",
      groupContextExtensions: {
        extensions: [{
          extensionType: ADMINS_EXTENSION_TYPE,
          extensionData: encodeAdmins(
            await Promise.all([of.alice, of.mallory].map((p) => sha256(p.spki))),
          ),
        }],
      },
    }],
  },
  {
    what: "puts alice's credential on her own leaf",
    // The Authentication Service: alice's credential binds her signature key, not mallory's.
    refusal: "MLS refused it: Could not validate credential",
    make: () => [],
    before: (state) => {
      const tree = state.ratchetTree.slice();
      const own = tree[LEAF.mallory * 2];
      const alice = tree[LEAF.alice * 2];
      if (own?.nodeType !== "leaf" || alice?.nodeType !== "leaf") throw new TypeError("no leaf");
      tree[LEAF.mallory * 2] = { ...own, leaf: { ...own.leaf, credential: alice.leaf.credential } };
      return { ...state, ratchetTree: tree };
    },
  },
];

for (const rogueCommit of ROGUE_COMMITS) {
  Deno.test(`a commit by a member who is not an admin that ${rogueCommit.what} is refused by every honest member`, async () => {
    await using room = await roomWithRogue();
    const { relay, members, mallory, of } = room;
    const adding = rogueCommit.what.startsWith("adds eve");
    const eve = adding ? await room.newcomer("eve") : undefined;
    if (eve) {
      for (const name of ["alice", "bob", "carol"] as const) {
        await members[name].until((events) =>
          events.some((event) => event.type === "knock" && event.member.name === "eve")
        );
      }
    }
    const marks = (["alice", "bob", "carol"] as const).map((name) => members[name].events.length);
    const proposals = await rogueCommit.make(mallory.state, of);
    let recipients: Uint8Array[] = [];
    if (eve) {
      const knock = await relay.hear((h) => h.from.name === "eve");
      if (knock.message.type !== "key_package") throw new TypeError("no KeyPackage");
      const decoded = decodeMessage(knock.message.keyPackage);
      if (decoded?.wireformat !== "mls_key_package") throw new TypeError("no KeyPackage");
      proposals.push(add(decoded.keyPackage));
      recipients = [relay.end("eve").author];
    }
    const state = rogueCommit.before?.(mallory.state) ?? mallory.state;
    const made = await createCommit({ state, cipherSuite: await suiteImpl() }, {
      extraProposals: proposals,
      ratchetTreeExtension: true,
    });
    await mallory.peer.send({
      type: "commit",
      commit: encodeMlsMessage(made.commit),
      ...(made.welcome
        ? {
          welcome: encodeMlsMessage({
            version: MLS_VERSION,
            wireformat: "mls_welcome",
            welcome: made.welcome,
          }),
        }
        : {}),
      recipients,
    });
    const refused = `the room's commit was refused: ${rogueCommit.refusal}`;
    for (const [i, name] of (["alice", "bob", "carol"] as const).entries()) {
      const member = members[name];
      await member.until(isClosed);
      assertShown(member, marks[i]!, [
        `error group_commit_refused: ${refused}`,
        `closed: ${refused}`,
      ]);
      strictEqual(member.session.members().length, 4);
    }
    if (eve) {
      await eve.until((events) => events.some((event) => event.type === "rejected"));
      assertShown(eve, 0, [
        /^notice: waiting for an admin of the room to admit you/,
        "rejected (the relay): a Welcome we could not use: rejected a room message: " +
        "a Welcome from a member who is not an admin",
      ]);
      ok(!entered(eve.events));
    }
  });
}

Deno.test("a member cannot sign as another: mallory's line from alice's leaf is rejected, alice's own shown", async () => {
  await using room = await roomWithRogue();
  const { relay, members: { alice, bob, carol }, mallory } = room;
  const marks = [bob.events.length, carol.events.length];
  // Every member can derive any leaf's message keys; only alice's signature key signs as her.
  const asAlice = {
    ...mallory.state,
    privatePath: { ...mallory.state.privatePath, leafIndex: LEAF.alice },
  };
  // The relay plays along, naming alice as the sender.
  relay.route = (delivery) =>
    delivery.message.type === "group" && delivery.from?.name === "mallory"
      ? [{ ...delivery.message, sender: relay.end("alice").author }]
      : undefined;
  await mallory.peer.send({ type: "group", message: await chatIn(asAlice, "I am alice") });
  await alice.session.sendText("the real alice");
  for (const [i, member] of [bob, carol].entries()) {
    await member.until(hasText("the real alice"));
    assertShown(member, marks[i]!, [
      "rejected (alice): rejected a room message: MLS refused it: Signature invalid",
      "message alice: the real alice",
    ]);
  }
});

Deno.test("a member that renames itself alice is told apart by its fingerprint, and the rename is shown", async () => {
  await using room = await roomWithRogue();
  const { members: { alice, bob }, mallory, of } = room;
  const mark = bob.events.length;
  // 13.3 lets a member update its own leaf: mallory's new credential, signed by her own
  // identity key, asks for the name "alice".
  const tree = mallory.state.ratchetTree.slice();
  const own = tree[LEAF.mallory * 2];
  if (own?.nodeType !== "leaf") throw new TypeError("no leaf");
  const identity = await makeCredential(
    of.mallory,
    "alice",
    own.leaf.signaturePublicKey,
    SUITE_ID,
  );
  tree[LEAF.mallory * 2] = {
    ...own,
    leaf: { ...own.leaf, credential: { credentialType: "basic", identity } },
  };
  const made = await createCommit({
    state: { ...mallory.state, ratchetTree: tree },
    cipherSuite: await suiteImpl(),
  }, {});
  await mallory.peer.send({
    type: "commit",
    commit: encodeMlsMessage(made.commit),
    recipients: [],
  });
  await alice.session.sendText("the real alice");
  await bob.until(hasText("the real alice"));
  const real = `alice-${of.alice.fingerprint.slice(7, 13)}`;
  const renamed = `alice-${of.mallory.fingerprint.slice(7, 13)}`;
  assertShown(bob, mark, [
    `notice: mallory now calls itself ${renamed}`,
    `message ${real}: the real alice`,
  ]);
  const byName = new Map(bob.session.members().map((m) => [m.name, m.fingerprint]));
  strictEqual(byName.get(real), of.alice.fingerprint);
  strictEqual(byName.get(renamed), of.mallory.fingerprint);
});

Deno.test("the relay's sender field is not trusted: bob's line relabelled as alice's is shown from bob", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol"]);
  const { relay, of, members: { bob, carol } } = room;
  const mark = carol.events.length;
  relay.route = first(
    is("group", "bob", "carol"),
    ({ message }) => [{ ...message, sender: relay.end("alice").author } as FromRelay],
  );
  await bob.session.sendText("signed by bob");
  await carol.until(hasText("signed by bob"));
  assertShown(carol, mark, ["message bob: signed by bob"]);
  const line = carol.events.find((event) => event.type === "message" && !event.from.self);
  strictEqual(line?.type === "message" && line.from.fingerprint, of.bob.fingerprint);
});

// Dropping, holding back, and splitting the room.

Deno.test("a Group message dropped for carol only: her next line from bob says 1 has not arrived", async () => {
  await bobsFirstLineForCarol(() => [], [GAP_NOTICE, "message bob: two"]);
});

Deno.test("two Group messages swapped for carol are both shown once, in the relay's order", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol"]);
  const { relay, members: { bob, carol } } = room;
  const mark = carol.events.length;
  let held: FromRelay | undefined;
  relay.route = (delivery) => {
    if (!is("group", "bob", "carol")(delivery)) return undefined;
    if (held === undefined) {
      held = delivery.message;
      return [];
    }
    const late = held;
    held = undefined;
    return late.type === "group" ? [delivery.message, late] : undefined;
  };
  await bob.session.sendText("one");
  await bob.session.sendText("two");
  await carol.until(hasText("one"));
  assertShown(carol, mark, [
    GAP_NOTICE,
    "message bob: two",
    "message bob: one",
  ]);
});

Deno.test("a Commit dropped for carol only: she reads nothing of the new epoch, and the next commit ends her session", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol"], {
    admits: ["bob", "carol", "dave", "eve"],
  });
  const { relay, members: { bob, carol } } = room;
  const mark = carol.events.length;
  const epoch = relay.group().epoch;
  relay.route = first(is("commit", "alice", "carol"), () => []);
  const dave = await room.newcomer("dave");
  await dave.until(entered);
  await bob.session.sendText("in the epoch carol missed");
  await dave.until(hasText("in the epoch carol missed"));
  const eve = await room.newcomer("eve");
  await eve.until(entered);
  await carol.until(isClosed);
  const gap = `the room's commit was refused: it is for epoch ${epoch + 1n} ` +
    `but this member is at ${epoch}`;
  assertShown(carol, mark, [
    "knock dave",
    `rejected (bob): ${CANNOT_READ(epoch + 1n)}`,
    "knock eve",
    `error group_commit_refused: ${gap}`,
    `closed: ${gap}`,
  ]);
});

Deno.test("a removed member whose removal the relay hides reads nothing said after it", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol"]);
  const { relay, members: { alice, bob, carol } } = room;
  const mark = carol.events.length;
  const epoch = relay.group().epoch;
  relay.route = first(is("commit", "alice", "carol"), () => []);
  await alice.session.kick!("carol");
  await bob.until(() => rosterSize(bob, 2));
  // The relay goes on forwarding everything to carol, as if she were still in.
  await bob.session.sendText("carol is gone");
  await alice.session.sendText("we can talk");
  await carol.until((events) => events.filter((event) => event.type === "rejected").length === 2);
  assertShown(carol, mark, [
    `rejected (bob): ${CANNOT_READ(epoch + 1n)}`,
    `rejected (alice): ${CANNOT_READ(epoch + 1n)}`,
  ]);
  deepStrictEqual(texts(carol), []);
});

Deno.test("a relay that splits the room into two groups is caught by the epoch codes", async () => {
  await using room = await hostileRoom(["alice", "bob", "carol", "dave"]);
  const { relay, members: { alice, bob, carol, dave } } = room;
  // alice makes bob an admin; everyone follows.
  await alice.session.setAdmin!("bob", true);
  await dave.until(() => dave.session.members().filter((m) => m.admin).length === 2);
  await bob.until(() => bob.session.members().find((m) => m.self)?.admin === true);
  const before = relay.group().epoch;
  // From now on: alice's commits reach carol only, bob's reach dave only, and the relay
  // accepts both for one epoch.
  relay.acceptEveryCommit = true;
  const halves: Record<string, string> = { alice: "carol", bob: "dave" };
  relay.route = (delivery) =>
    delivery.message.type === "commit" && halves[delivery.from!.name] !== delivery.to.name
      ? []
      : undefined;
  // alice admits eve; bob, unaware, makes dave an admin: two commits of the same epoch.
  const eve = await room.newcomer("eve");
  await alice.until((events) => events.some((e) => e.type === "knock" && e.member.name === "eve"));
  await alice.session.admit!("eve");
  await eve.until(entered);
  await carol.until(() => rosterSize(carol, 5));
  await bob.session.setAdmin!("dave", true);
  await dave.until(() => dave.session.members().filter((m) => m.admin).length === 3);
  const codes = new Map<string, string | undefined>();
  for (const [name, member] of Object.entries({ alice, bob, carol, dave, eve })) {
    codes.set(name, (await member.session.verify()).epochCode);
  }
  // Each half agrees within itself, and both are in the same epoch number: only the code tells.
  ok(codes.get("alice"));
  strictEqual(codes.get("carol"), codes.get("alice"));
  strictEqual(codes.get("eve"), codes.get("alice"));
  strictEqual(codes.get("dave"), codes.get("bob"));
  notStrictEqual(codes.get("bob"), codes.get("alice"));
  for (const member of [alice, bob, carol, dave, eve]) {
    strictEqual(groupOf(member).epoch, before + 1n);
  }
  // A line from one half is no more than a rejection in the other.
  const mark = carol.events.length;
  await bob.session.sendText("half B");
  await dave.until(hasText("half B"));
  await alice.session.sendText("half A");
  await carol.until(hasText("half A"));
  assertShown(carol, mark, [
    `rejected (bob): ${CANNOT_READ(before + 1n)}`,
    "message alice: half A",
  ]);
});
