/**
 * The relay as the untrusted delivery service of PROTOCOL.md 13.4, over real loopback
 * SecureConnections (and the in-memory pair of the host): Start, one commit per epoch, Welcome
 * routing, Knocks, fan-out, Direct routing, Left, what the relay checks, and a member whose
 * messages are malformed never stopping the others. MLS messages are built by hand: the relay
 * reads only their clear header. Limits are in relay_limits_test.ts.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concat } from "../../lib/core/bytes.ts";
import { PeerAlertError } from "../../lib/core/errors.ts";
import {
  encodeToRelay,
  NOTICE_LEVEL,
  RELAY_MESSAGE,
  type ToRelay,
} from "../../lib/chat/relay_messages.ts";
import { Relay, type RelayOptions } from "../../lib/room/relay.ts";
import {
  keyPackage,
  otherMessage,
  privateMessage,
  random,
  welcome,
} from "../_helpers/mls_messages.ts";
import {
  describe,
  identities,
  joinInMemory,
  joinOverTcp,
  type RelayPeer,
  securePairFor,
} from "../_helpers/relay_peers.ts";
import type { Identity } from "../../lib/keys/identity.ts";

const [relayIdentity, ...people] = await identities(8) as [Identity, ...Identity[]];
const person = (i: number) => people[i]!;

function relay(options: RelayOptions = {}): { relay: Relay; log: string[] } {
  const log: string[] = [];
  return { relay: new Relay({ log: (line) => log.push(line), ...options }), log };
}

const join = (room: Relay, i: number) => joinOverTcp(room, relayIdentity, person(i));

const GROUP = random(32);
const commitAt = (epoch: bigint, groupId = GROUP) =>
  privateMessage({ groupId, epoch, contentType: "commit" });
const application = (groupId = GROUP) =>
  privateMessage({ groupId, epoch: 1n, contentType: "application" });

/** A creator and `count` newcomers, all welcomed by the creator's commit for epoch 0. */
async function group(room: Relay, count: number): Promise<RelayPeer[]> {
  const creator = await join(room, 0);
  deepStrictEqual(await creator.next(), { type: "start", role: "create" });
  const newcomers: RelayPeer[] = [];
  for (let i = 1; i <= count; i++) {
    const newcomer = await join(room, i);
    deepStrictEqual(await newcomer.next(), { type: "start", role: "wait" });
    await newcomer.send({ type: "key_package", keyPackage: keyPackage() });
    strictEqual((await creator.expect("knock")).sender.join(), newcomer.author.join());
    newcomers.push(newcomer);
  }
  const bytes = welcome();
  await creator.send({
    type: "commit",
    commit: commitAt(0n),
    welcome: bytes,
    recipients: newcomers.map((n) => n.author),
  });
  deepStrictEqual(await creator.next(), { type: "accepted", epoch: 0n });
  for (const newcomer of newcomers) {
    deepStrictEqual(await newcomer.next(), {
      type: "welcome",
      sender: creator.author,
      welcome: bytes,
    });
  }
  return [creator, ...newcomers];
}

async function leaveAll(room: Relay, peers: RelayPeer[]) {
  await room.close();
  for (const peer of peers) peer.connection.close();
  await Promise.all(peers.map((peer) => peer.served));
}

Deno.test("Relay.join() answers the first with Start(create), every later one with Start(wait)", async () => {
  const { relay: room, log } = relay();
  const a = await join(room, 0);
  const b = await join(room, 1);
  const c = await join(room, 2);
  deepStrictEqual(await a.next(), { type: "start", role: "create" });
  deepStrictEqual(await b.next(), { type: "start", role: "wait" });
  deepStrictEqual(await c.next(), { type: "start", role: "wait" });
  strictEqual(room.memberCount, 3);
  deepStrictEqual(log, [
    `"${person(0).comment}" ${person(0).fingerprint} joined and creates the group (1 connected)`,
    `"${person(1).comment}" ${person(1).fingerprint} joined and waits to be admitted (2 connected)`,
    `"${person(2).comment}" ${person(2).fingerprint} joined and waits to be admitted (3 connected)`,
  ]);
  await leaveAll(room, [a, b, c]);
});

Deno.test("Relay passes a KeyPackage to the group as a Knock, and hands it again to each new member", async () => {
  const { relay: room } = relay();
  const a = await join(room, 0);
  await a.expect("start");
  const [b, c] = [await join(room, 1), await join(room, 2)];
  await b.expect("start");
  await c.expect("start");
  const [kpB, kpC] = [keyPackage(), keyPackage()];
  await b.send({ type: "key_package", keyPackage: kpB });
  deepStrictEqual(await a.next(), { type: "knock", sender: b.author, keyPackage: kpB });
  await c.send({ type: "key_package", keyPackage: kpC });
  deepStrictEqual(await a.next(), { type: "knock", sender: c.author, keyPackage: kpC });
  // a admits b only: b gets the Welcome, then c's Knock, which is still waiting.
  const bytes = welcome();
  await a.send({ type: "commit", commit: commitAt(0n), welcome: bytes, recipients: [b.author] });
  deepStrictEqual(await a.next(), { type: "accepted", epoch: 0n });
  deepStrictEqual(await b.next(), { type: "welcome", sender: a.author, welcome: bytes });
  deepStrictEqual(await b.next(), { type: "knock", sender: c.author, keyPackage: kpC });
  deepStrictEqual(await b.barrier(), []);
  // c, still waiting, heard nothing of it (its barrier costs it one warning).
  deepStrictEqual(await c.barrier("waiting"), []);
  await leaveAll(room, [a, b, c]);
});

Deno.test("Relay accepts exactly one of two commits racing for an epoch; everyone else gets that one", async () => {
  const { relay: room, log } = relay();
  const [a, b, c] = await group(room, 2) as [RelayPeer, RelayPeer, RelayPeer];
  const [fromB, fromC] = [commitAt(1n), commitAt(1n)];
  await Promise.all([
    b.send({ type: "commit", commit: fromB, recipients: [] }),
    c.send({ type: "commit", commit: fromC, recipients: [] }),
  ]);
  const answers = [await b.barrier(), await c.barrier()];
  const winner = answers.findIndex((got) => got.some((m) => m.type === "accepted"));
  ok(winner === 0 || winner === 1, `answers: ${answers.map(describe)}`);
  const [won, lost] = winner === 0 ? [b, c] : [c, b];
  const winning = winner === 0 ? fromB : fromC;
  deepStrictEqual(answers[winner], [{ type: "accepted", epoch: 1n }]);
  // The loser first gets the winning commit, then Refused with the room's epoch.
  deepStrictEqual(answers[1 - winner], [
    { type: "commit", sender: won.author, commit: winning },
    { type: "refused", epoch: 2n },
  ]);
  deepStrictEqual(await a.barrier(), [{ type: "commit", sender: won.author, commit: winning }]);
  ok(log.includes(`"${won.identity.comment}" ${won.identity.fingerprint} committed epoch 1`));
  ok(!log.some((line) => line.includes(`${lost.identity.fingerprint} committed`)));
  // A commit for an epoch long past, or one to come, is refused the same way.
  for (const epoch of [0n, 1n, 3n]) {
    await a.send({ type: "commit", commit: commitAt(epoch), recipients: [] });
    deepStrictEqual(await a.barrier(), [{ type: "refused", epoch: 2n }]);
  }
  deepStrictEqual(await b.barrier(), []);
  await leaveAll(room, [a, b, c]);
});

Deno.test("Relay hands a commit's Welcome only to the listed newcomers still waiting", async () => {
  const { relay: room } = relay();
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  const [listed, unlisted] = [await join(room, 2), await join(room, 3)];
  for (const newcomer of [listed, unlisted]) {
    await newcomer.expect("start");
    await newcomer.send({ type: "key_package", keyPackage: keyPackage() });
    await a.expect("knock");
    await b.expect("knock");
  }
  const bytes = welcome();
  const commit = commitAt(1n);
  // b is already a member; the last id is nobody's.
  await a.send({
    type: "commit",
    commit,
    welcome: bytes,
    recipients: [listed.author, b.author, random(32)],
  });
  deepStrictEqual(await a.barrier(), [{ type: "accepted", epoch: 1n }]);
  deepStrictEqual(await b.barrier(), [{ type: "commit", sender: a.author, commit }]);
  const atListed = await listed.barrier();
  deepStrictEqual(atListed.map((m) => m.type), ["welcome", "knock"]);
  deepStrictEqual(atListed[1], {
    type: "knock",
    sender: unlisted.author,
    keyPackage: await knockOf(a, unlisted),
  });
  deepStrictEqual(await unlisted.barrier("waiting"), []);
  // The listed one is now a member: its Group messages go through.
  const message = application();
  await listed.send({ type: "group", message });
  deepStrictEqual(await listed.barrier(), []);
  for (const member of [a, b]) {
    deepStrictEqual(await member.barrier(), [{ type: "group", sender: listed.author, message }]);
  }
  await leaveAll(room, [a, b, listed, unlisted]);
});

/** The KeyPackage of `who` as `member` received it in a Knock. */
function knockOf(member: RelayPeer, who: RelayPeer): Uint8Array {
  for (const message of member.inbox) {
    if (message.type === "knock" && message.sender.join() === who.author.join()) {
      return message.keyPackage;
    }
  }
  throw new Error("no such knock");
}

Deno.test("Relay fans a Group message out to every other member, and a Direct to its recipient only", async () => {
  const { relay: room } = relay();
  const [a, b, c] = await group(room, 2) as [RelayPeer, RelayPeer, RelayPeer];
  const waiting = await join(room, 3);
  await waiting.expect("start");
  const message = application();
  // Each sender's barrier first: then the relay has handled what it sent before the others ask.
  await b.send({ type: "group", message });
  deepStrictEqual(await b.barrier(), []);
  const secret = random(1000);
  await a.send({ type: "direct", recipient: c.author, bytes: secret });
  deepStrictEqual(await a.barrier(), [{ type: "group", sender: b.author, message }]);
  deepStrictEqual(await c.barrier(), [
    { type: "group", sender: b.author, message },
    { type: "direct", sender: a.author, bytes: secret },
  ]);
  deepStrictEqual(await waiting.barrier("waiting"), []);
  // A Direct to a newcomer that is not in the group is not delivered; its sender is told.
  await a.send({ type: "direct", recipient: waiting.author, bytes: Uint8Array.of(1) });
  const notice = await a.expect("notice");
  strictEqual(notice.level, NOTICE_LEVEL.info);
  deepStrictEqual(await waiting.barrier("waiting"), []);
  await leaveAll(room, [a, b, c, waiting]);
});

Deno.test("Relay announces Left to the group when a member leaves or a newcomer gives up, not to newcomers", async () => {
  const { relay: room, log } = relay();
  const [a, b, c] = await group(room, 2) as [RelayPeer, RelayPeer, RelayPeer];
  const waiting = await join(room, 3);
  await waiting.expect("start");
  // c says goodbye: it gets ours back.
  await c.connection.closeWrite();
  strictEqual(await c.ended(), null);
  await c.served;
  for (const member of [a, b]) {
    deepStrictEqual(await member.barrier(), [{ type: "left", sender: c.author }]);
  }
  deepStrictEqual(await waiting.barrier("waiting"), []);
  // b vanishes without a goodbye.
  b.connection.close();
  await b.served;
  deepStrictEqual(await a.barrier(), [{ type: "left", sender: b.author }]);
  deepStrictEqual(await waiting.barrier("waiting"), []);
  // A newcomer that gives up: the group hears it (its Knock is withdrawn).
  waiting.connection.close();
  await waiting.served;
  deepStrictEqual(await a.barrier(), [{ type: "left", sender: waiting.author }]);
  ok(
    log.includes(`"${person(2).comment}" ${person(2).fingerprint} left (3 connected)`),
    log.join("\n"),
  );
  ok(
    log.some((line) =>
      line.startsWith(`"${person(1).comment}" ${person(1).fingerprint} disconnected: `)
    ),
  );
  await leaveAll(room, [a]);
});

Deno.test("Relay makes the longest-waiting newcomer the creator when the group empties, and forgets the old group", async () => {
  const { relay: room, log } = relay();
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  await a.send({ type: "commit", commit: commitAt(1n), recipients: [] });
  await a.expect("accepted");
  const [first, second] = [await join(room, 2), await join(room, 3)];
  for (const newcomer of [first, second]) {
    await newcomer.expect("start");
    await newcomer.send({ type: "key_package", keyPackage: keyPackage() });
  }
  await a.connection.closeWrite();
  await a.served;
  await b.connection.closeWrite();
  await b.served;
  deepStrictEqual(await first.next(), { type: "start", role: "create" });
  deepStrictEqual(await first.next(), {
    type: "knock",
    sender: second.author,
    keyPackage: knockOf(first, second),
  });
  ok(
    log.includes(
      `the group is empty: "${person(2).comment}" ${person(2).fingerprint} creates a new one`,
    ),
  );
  // Its new group starts at epoch 0 with a new id: accepted, the room's old epoch is gone.
  const newGroup = random(32);
  const bytes = welcome();
  await first.send({
    type: "commit",
    commit: commitAt(0n, newGroup),
    welcome: bytes,
    recipients: [second.author],
  });
  deepStrictEqual(await first.barrier(), [{ type: "accepted", epoch: 0n }]);
  deepStrictEqual(await second.next(), { type: "welcome", sender: first.author, welcome: bytes });
  // The old group's messages are now another group's.
  await second.send({ type: "group", message: application(GROUP) });
  const warning = await second.expect("notice");
  strictEqual(warning.level, NOTICE_LEVEL.warning);
  strictEqual(warning.text, "a group message that is for another group: dropped");
  deepStrictEqual(await first.barrier(), []);
  await leaveAll(room, [first, second]);
});

Deno.test("Relay drops, with a warning, MLS messages of the wrong kind or group; the room goes on", async () => {
  // Each case is one warning; the clock moves past the violation window between cases.
  let time = 0;
  const { relay: room, log } = relay({ now: () => time });
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  const garbage = new Uint8Array(40).fill(0xff);
  const cases: [string, ToRelay, string][] = [
    [
      "a Group message for another group",
      { type: "group", message: application(random(32)) },
      "a group message that is for another group: dropped",
    ],
    [
      "a commit sent as a Group message",
      { type: "group", message: commitAt(1n) },
      "a group message that is a PrivateMessage holding a commit: dropped",
    ],
    [
      "a Welcome sent as a Group message",
      { type: "group", message: welcome() },
      "a group message that is a welcome, not a PrivateMessage: dropped",
    ],
    [
      "garbage as a Group message",
      { type: "group", message: garbage },
      "a group message that is not an MLS message (peer sent a malformed MLS message: version 65535 is not mls10): dropped",
    ],
    [
      "a truncated PrivateMessage",
      { type: "group", message: application().subarray(0, 30) },
      "a group message that is not an MLS message (peer sent a malformed MLS message: group_id is cut short): dropped",
    ],
    [
      "a PrivateMessage with a trailing byte",
      { type: "group", message: concat(application(), Uint8Array.of(0)) },
      "a group message that is not an MLS message (peer sent a malformed MLS message: trailing bytes): dropped",
    ],
    ["a commit that is an application message", {
      type: "commit",
      commit: application(),
      recipients: [],
    }, "a Commit that is a PrivateMessage holding an application: dropped"],
    [
      "a public commit",
      { type: "commit", commit: otherMessage("public_message"), recipients: [] },
      "a Commit that is a public_message, not a PrivateMessage: dropped",
    ],
    ["a Welcome that is not one", {
      type: "commit",
      commit: commitAt(1n),
      welcome: keyPackage(),
      recipients: [b.author],
    }, "a Commit whose Welcome is a key_package: dropped"],
  ];
  for (const [name, message, text] of cases) {
    time += 60_001;
    await a.send(message);
    deepStrictEqual(
      await a.barrier(),
      [{ type: "notice", level: NOTICE_LEVEL.warning, text }],
      name,
    );
    deepStrictEqual(await b.barrier(), [], name);
  }
  // A commit for another group is refused as well as warned about: its author waits for an answer.
  await a.send({ type: "commit", commit: commitAt(1n, random(32)), recipients: [] });
  deepStrictEqual(await a.barrier(), [
    { type: "refused", epoch: 1n },
    { type: "notice", level: NOTICE_LEVEL.warning, text: "a Commit for another group: dropped" },
  ]);
  // Through all of it the room kept its epoch and its members.
  await b.send({ type: "commit", commit: commitAt(1n), recipients: [] });
  deepStrictEqual(await b.barrier(), [{ type: "accepted", epoch: 1n }]);
  strictEqual(room.memberCount, 2);
  ok(
    log.includes(
      `warning "${person(0).comment}" ${person(0).fingerprint}: a Commit for another group`,
    ),
  );
  await leaveAll(room, [a, b]);
});

Deno.test("Relay refuses Group, Direct and Commit from a newcomer outside the group", async () => {
  const { relay: room, log } = relay();
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  const outsider = await join(room, 2);
  await outsider.expect("start");
  await outsider.send({ type: "direct", recipient: a.author, bytes: Uint8Array.of(1, 2, 3) });
  deepStrictEqual(await outsider.next(), {
    type: "notice",
    level: NOTICE_LEVEL.warning,
    text: "a direct message from outside the group: dropped",
  });
  await outsider.send({ type: "commit", commit: commitAt(1n), recipients: [] });
  deepStrictEqual(await outsider.next(), {
    type: "notice",
    level: NOTICE_LEVEL.warning,
    text: "a Commit from outside the group: dropped",
  });
  // The third violation within a minute: a final Notice, then close_notify.
  await outsider.send({ type: "group", message: application() });
  deepStrictEqual(await outsider.next(), {
    type: "notice",
    level: NOTICE_LEVEL.final,
    text: "a group message from outside the group: disconnected after repeated warnings",
  });
  strictEqual(await outsider.ended(), null);
  await outsider.served;
  // Nothing reached the group but the outsider's Left; the room's epoch did not move.
  for (const member of [a, b]) {
    deepStrictEqual(await member.barrier(), [{ type: "left", sender: outsider.author }]);
  }
  await a.send({ type: "commit", commit: commitAt(1n), recipients: [] });
  deepStrictEqual(await a.barrier(), [{ type: "accepted", epoch: 1n }]);
  ok(
    log.includes(
      `"${person(2).comment}" ${
        person(2).fingerprint
      } disconnected: repeated violations, the last: a group message from outside the group (2 connected)`,
    ),
    log.join("\n"),
  );
  await leaveAll(room, [a, b]);
});

Deno.test("Relay disconnects a member whose relay message is malformed, with decode_error, and serves the others", async () => {
  const malformed: [string, Uint8Array][] = [
    ["an empty record", new Uint8Array(0)],
    ["an unknown type", Uint8Array.of(0x99, 1, 2)],
    ["a type only the relay sends", Uint8Array.of(RELAY_MESSAGE.start, 1)],
    ["a truncated Commit", Uint8Array.of(RELAY_MESSAGE.commit, 0, 0, 1, 0, 1)],
    ["a Direct without bytes", concat(Uint8Array.of(RELAY_MESSAGE.direct), new Uint8Array(32))],
    [
      "a Commit with a trailing byte",
      concat(
        encodeToRelay({ type: "commit", commit: commitAt(1n), recipients: [] }),
        Uint8Array.of(0),
      ),
    ],
  ];
  const { relay: room, log } = relay();
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  for (const [i, [name, bytes]] of malformed.entries()) {
    const member = await join(room, 2 + (i % 2));
    await member.expect("start");
    await member.connection.send(bytes);
    const ending = await member.ended();
    ok(ending !== null && ending.error instanceof PeerAlertError, `${name}: ${ending}`);
    strictEqual((ending.error as PeerAlertError).received, "decode_error", name);
    await member.served;
    for (const other of [a, b]) {
      deepStrictEqual(await other.barrier(), [{ type: "left", sender: member.author }], name);
    }
    ok(
      /disconnected: peer sent a malformed relay message: /.test(log.at(-1)!),
      `${name}: ${log.at(-1)}`,
    );
  }
  await b.send({ type: "group", message: application() });
  deepStrictEqual(await b.barrier(), []);
  deepStrictEqual((await a.barrier()).map((m) => m.type), ["group"]);
  await leaveAll(room, [a, b]);
});

Deno.test("Relay takes the host's in-memory link like any member's connection", async () => {
  const { relay: room } = relay();
  const host = await joinInMemory(room, relayIdentity, person(0));
  deepStrictEqual(await host.next(), { type: "start", role: "create" });
  const dialer = await join(room, 1);
  await dialer.expect("start");
  const kp = keyPackage();
  await dialer.send({ type: "key_package", keyPackage: kp });
  deepStrictEqual(await host.next(), { type: "knock", sender: dialer.author, keyPackage: kp });
  const bytes = welcome(200_000);
  await host.send({
    type: "commit",
    commit: commitAt(0n),
    welcome: bytes,
    recipients: [dialer.author],
  });
  deepStrictEqual(await host.next(), { type: "accepted", epoch: 0n });
  deepStrictEqual(await dialer.next(), { type: "welcome", sender: host.author, welcome: bytes });
  const message = application();
  await dialer.send({ type: "group", message });
  deepStrictEqual(await dialer.barrier(), []);
  deepStrictEqual(await host.barrier(), [{ type: "group", sender: dialer.author, message }]);
  await host.connection.closeWrite();
  strictEqual(await host.ended(), null);
  deepStrictEqual(await dialer.barrier(), [{ type: "left", sender: host.author }]);
  await leaveAll(room, [dialer]);
});

Deno.test("Relay refuses a second connection with a key already in the room, with a final Notice", async () => {
  const { relay: room, log } = relay();
  const first = await join(room, 0);
  await first.expect("start");
  const second = await join(room, 0);
  deepStrictEqual(await second.next(), {
    type: "notice",
    level: NOTICE_LEVEL.final,
    text: "your key is already in the room",
  });
  strictEqual(await second.ended(), null);
  await second.served;
  strictEqual(room.memberCount, 1);
  ok(
    log.includes(
      `"${person(0).comment}" ${person(0).fingerprint} refused: its key is already in the room`,
    ),
  );
  deepStrictEqual(await first.barrier(), []);
  await leaveAll(room, [first]);
});

Deno.test("Relay refuses a peer that asks for the version-1 room, naming an older securechat", async () => {
  const { relay: room, log } = relay();
  const { memberSide, relaySide } = await securePairFor(person(0), relayIdentity);
  const served = room.join(relaySide);
  await memberSide.send(Uint8Array.of(2));
  deepStrictEqual(await memberSide.receive(), Uint8Array.of(3));
  await memberSide.receive().then(
    () => ok(false, "expected an alert"),
    (error) => strictEqual((error as PeerAlertError).received, "no_application_protocol"),
  );
  await served;
  memberSide.close();
  deepStrictEqual(log, [
    `"${person(0).comment}" ${
      person(0).fingerprint
    } refused: the peer wants the version-1 room, we are in chat mode`,
  ]);
  strictEqual(room.memberCount, 0);
});

Deno.test("Relay.close() sends every connection a final Notice and close_notify, and refuses later ones", async () => {
  const { relay: room } = relay();
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  await room.close();
  await room.closed;
  for (const peer of [a, b]) {
    strictEqual(await peer.ended(), null);
    deepStrictEqual(peer.rest(), [{
      type: "notice",
      level: NOTICE_LEVEL.final,
      text: "the relay is shutting down",
    }]);
  }
  const late = await join(room, 2);
  deepStrictEqual(await late.next(), {
    type: "notice",
    level: NOTICE_LEVEL.final,
    text: "the relay is closing",
  });
  strictEqual(await late.ended(), null);
  for (const peer of [a, b, late]) peer.connection.close();
  await Promise.all([a, b, late].map((peer) => peer.served));
});
