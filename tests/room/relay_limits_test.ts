/**
 * The relay's limits (PROTOCOL.md 13.8) over real loopback SecureConnections and the in-memory
 * pair, on an injected clock: Group rate, Direct bytes, the size of a relay message, one
 * outstanding KeyPackage, --max-members, and a member too slow to keep up dropped without the
 * others noticing.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { NOTICE_LEVEL } from "../../lib/chat/relay_messages.ts";
import { AuthenticationError } from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { MAX_PENDING_BYTES } from "../../lib/room/delivery.ts";
import { MAX_RELAY_MESSAGE_BYTES } from "../../lib/room/limits.ts";
import { Relay, type RelayOptions } from "../../lib/room/relay.ts";
import { keyPackage, privateMessage, random, welcome } from "../_helpers/mls_messages.ts";
import { identities, joinInMemory, joinOverTcp, type RelayPeer } from "../_helpers/relay_peers.ts";

const [relayIdentity, ...people] = await identities(6) as [Identity, ...Identity[]];
const person = (i: number) => people[i]!;
const GROUP = random(32);

const warning = (text: string) => ({ type: "notice", level: NOTICE_LEVEL.warning, text });

/** An application message of `size` bytes in all (at least 100). */
function application(size = 100): Uint8Array {
  // 64 bytes of header and small vectors, then the ciphertext's length and the ciphertext.
  const lengthBytes = size - 64 > 0x4000 + 4 ? 4 : size - 64 > 0x40 + 2 ? 2 : 1;
  const message = privateMessage({
    groupId: GROUP,
    epoch: 1n,
    contentType: "application",
    size: size - 64 - lengthBytes,
  });
  strictEqual(message.length, size);
  return message;
}

/** A Commit (no Welcome) for `epoch` of the test's group. */
function commitAt(epoch: bigint) {
  return {
    type: "commit" as const,
    commit: privateMessage({ groupId: GROUP, epoch, contentType: "commit" }),
    recipients: [],
  };
}

/**
 * A creator and `count` members welcomed at epoch 0; `how` says which of them (by index) join
 * through the in-memory pair, and which never read (`slow`).
 */
async function group(
  room: Relay,
  count: number,
  how: { inMemory?: number[]; slow?: number[] } = {},
): Promise<RelayPeer[]> {
  const peers: RelayPeer[] = [];
  for (let i = 0; i <= count; i++) {
    const join = how.inMemory?.includes(i) ? joinInMemory : joinOverTcp;
    const peer = await join(room, relayIdentity, person(i));
    peers.push(peer);
    await peer.expect("start");
    if (i > 0) {
      await peer.send({ type: "key_package", keyPackage: keyPackage() });
      await peers[0]!.expect("knock");
    }
  }
  const [creator, ...newcomers] = peers as [RelayPeer, ...RelayPeer[]];
  await creator.send({
    type: "commit",
    commit: privateMessage({ groupId: GROUP, epoch: 0n, contentType: "commit" }),
    welcome: welcome(),
    recipients: newcomers.map((n) => n.author),
  });
  await creator.expect("accepted");
  for (const [i, newcomer] of newcomers.entries()) {
    await newcomer.expect("welcome");
    if (how.slow?.includes(i + 1)) newcomer.stopReading();
  }
  return peers;
}

function relay(options: RelayOptions = {}): { room: Relay; log: string[] } {
  const log: string[] = [];
  return { room: new Relay({ log: (line) => log.push(line), ...options }), log };
}

async function closeAll(room: Relay, peers: RelayPeer[]): Promise<void> {
  await room.close();
  for (const peer of peers) peer.connection.close();
  await Promise.all(peers.map((peer) => peer.served));
}

Deno.test("Relay holds a member to its Group rate: a warning, then a final Notice at the third", async () => {
  let time = 0;
  // A burst of 4: the commit that makes the group takes one token (commits count too, 13.8).
  const { room, log } = relay({ groupRate: 1, groupBurst: 4, now: () => time });
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  const messages = [application(), application(), application(), application()];
  for (const message of messages) await a.send({ type: "group", message });
  deepStrictEqual(await a.barrier(), [warning("too many group messages: slow down: dropped")]);
  deepStrictEqual(
    await b.barrier(),
    messages.slice(0, 3).map((message) => ({ type: "group", sender: a.author, message })),
  );
  // A second later there is one more token.
  time += 1000;
  const later = application();
  await a.send({ type: "group", message: later });
  await a.send({ type: "group", message: application() });
  deepStrictEqual(await a.barrier(), [warning("too many group messages: slow down: dropped")]);
  deepStrictEqual(await b.barrier(), [{ type: "group", sender: a.author, message: later }]);
  // The third violation within a minute.
  await a.send({ type: "group", message: application() });
  deepStrictEqual(await a.next(), {
    type: "notice",
    level: NOTICE_LEVEL.final,
    text: "too many group messages: slow down: disconnected after repeated warnings",
  });
  strictEqual(await a.ended(), null);
  await a.served;
  deepStrictEqual(await b.barrier(), [{ type: "left", sender: a.author }]);
  ok(
    log.includes(
      `warning "${person(0).comment}" ${person(0).fingerprint}: too many group messages: slow down`,
    ),
  );
  await closeAll(room, [b]);
});

Deno.test("Relay counts Commits against the Group rate, answering an extra one Refused", async () => {
  const time = 0;
  const { room } = relay({ groupRate: 1, groupBurst: 2, now: () => time });
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  // The group's first commit took one token, this one the last.
  await a.send(commitAt(1n));
  deepStrictEqual(await a.barrier(), [{ type: "accepted", epoch: 1n }]);
  await a.send(commitAt(2n));
  deepStrictEqual(await a.barrier(), [
    { type: "refused", epoch: 2n },
    warning("too many commits: slow down: dropped"),
  ]);
  strictEqual((await b.barrier()).filter((message) => message.type === "commit").length, 1);
  await closeAll(room, [a, b]);
});

Deno.test("Relay holds a member to its Direct bytes a second", async () => {
  let time = 0;
  const { room } = relay({ directBytesPerSecond: 1000, directBurstBytes: 3000, now: () => time });
  const [a, b] = await group(room, 1) as [RelayPeer, RelayPeer];
  const first = random(2000);
  await a.send({ type: "direct", recipient: b.author, bytes: first });
  await a.send({ type: "direct", recipient: b.author, bytes: random(2000) });
  deepStrictEqual(await a.next(), warning("too many direct bytes: slow down: dropped"));
  time += 1000;
  const second = random(1999); // 1000 left, 1000 refilled, and the barrier's one byte
  await a.send({ type: "direct", recipient: b.author, bytes: second });
  deepStrictEqual(await a.barrier(), []);
  deepStrictEqual(await b.barrier(), [
    { type: "direct", sender: a.author, bytes: first },
    { type: "direct", sender: a.author, bytes: second },
  ]);
  await closeAll(room, [a, b]);
});

Deno.test("Relay passes the largest relay message (1 MiB less 32 bytes) and drops a larger one with a warning", async () => {
  // The host's in-memory link has no record layer to stop a larger one first.
  const { room } = relay();
  const [host, b] = await group(room, 1, { inMemory: [0] }) as [RelayPeer, RelayPeer];
  const largest = application(MAX_RELAY_MESSAGE_BYTES - 1); // and its type byte
  await host.send({ type: "group", message: largest });
  await host.send({ type: "group", message: application(MAX_RELAY_MESSAGE_BYTES) });
  deepStrictEqual(await host.barrier(), [
    warning(`a relay message over ${MAX_RELAY_MESSAGE_BYTES} bytes: dropped`),
  ]);
  deepStrictEqual(await b.barrier(), [{ type: "group", sender: host.author, message: largest }]);
  // Over TCP too, the largest goes through, in one record.
  await b.send({ type: "group", message: largest });
  deepStrictEqual(await b.barrier(), []);
  deepStrictEqual(await host.barrier(), [{ type: "group", sender: b.author, message: largest }]);
  await closeAll(room, [host, b]);
});

Deno.test("Relay keeps one KeyPackage outstanding per newcomer, and only KeyPackages", async () => {
  let time = 0;
  const { room } = relay({ now: () => time });
  const [a] = await group(room, 0) as [RelayPeer];
  const newcomer = await joinOverTcp(room, relayIdentity, person(1));
  await newcomer.expect("start");
  await newcomer.send({ type: "key_package", keyPackage: welcome() });
  deepStrictEqual(await newcomer.next(), warning("a KeyPackage that is a welcome: dropped"));
  time += 60_001;
  const kp = keyPackage();
  await newcomer.send({ type: "key_package", keyPackage: kp });
  await newcomer.send({ type: "key_package", keyPackage: keyPackage() });
  deepStrictEqual(
    await newcomer.next(),
    warning("a second KeyPackage: one at a time, until admitted: dropped"),
  );
  deepStrictEqual(await a.barrier(), [{ type: "knock", sender: newcomer.author, keyPackage: kp }]);
  await closeAll(room, [a, newcomer]);
});

Deno.test("Relay admits at most maxMembers connections, waiting newcomers included", async () => {
  const { room, log } = relay({ maxMembers: 2 });
  const a = await joinOverTcp(room, relayIdentity, person(0));
  const b = await joinOverTcp(room, relayIdentity, person(1));
  const c = await joinOverTcp(room, relayIdentity, person(2));
  deepStrictEqual(await c.next(), {
    type: "notice",
    level: NOTICE_LEVEL.final,
    text: "the room is full (2 members)",
  });
  strictEqual(await c.ended(), null);
  await c.served;
  ok(
    log.includes(
      `"${person(2).comment}" ${person(2).fingerprint} refused: the room is full (2 members)`,
    ),
  );
  // Once one leaves, there is room again.
  await b.connection.closeWrite();
  await b.served;
  const d = await joinOverTcp(room, relayIdentity, person(2));
  deepStrictEqual(await d.next(), { type: "start", role: "wait" });
  await closeAll(room, [a, d]);
});

/**
 * `a` sends the largest Group messages, each answered (its barrier) before the next, until it
 * hears that `slow`, which reads nothing, is gone; at most `limit` of them.
 *
 * @returns the messages sent
 */
async function floodUntilGone(a: RelayPeer, slow: RelayPeer, limit: number): Promise<Uint8Array[]> {
  const sent: Uint8Array[] = [];
  while (true) {
    ok(sent.length < limit, `still there after ${sent.length} messages`);
    const message = application(MAX_RELAY_MESSAGE_BYTES - 1);
    sent.push(message);
    await a.send({ type: "group", message });
    const got = await a.barrier();
    if (got.length === 0) continue;
    deepStrictEqual(got, [{ type: "left", sender: slow.author }]);
    return sent;
  }
}

/** Checks that `member` got exactly `sent` from `sender`, in order, and the Left of `gone`. */
async function assertGotAll(
  member: RelayPeer,
  sender: RelayPeer,
  sent: Uint8Array[],
  gone: RelayPeer,
): Promise<void> {
  const got = await member.barrier();
  deepStrictEqual(
    got.filter((m) => m.type === "left"),
    [{ type: "left", sender: gone.author }],
  );
  const messages = got.filter((m) => m.type === "group");
  strictEqual(messages.length, sent.length);
  for (const [i, message] of sent.entries()) {
    const at = messages[i]!;
    ok(at.type === "group" && at.sender.join() === sender.author.join(), `message ${i}`);
    ok(at.message.length === message.length, `message ${i}`);
    ok(at.message.every((byte, j) => byte === message[j]), `message ${i}`);
  }
}

Deno.test("Relay drops a member whose queue passes 16 MiB (in-memory link); the others get everything", async () => {
  const { room, log } = relay({ groupBurst: 1000 });
  const [a, b, slow] = await group(room, 2, { inMemory: [2], slow: [2] }) as [
    RelayPeer,
    RelayPeer,
    RelayPeer,
  ];
  const sent = await floodUntilGone(a, slow, 64);
  // It was the queue that passed 16 MiB, past what the link itself holds (PAIR_BUFFER_BYTES).
  ok(sent.length * MAX_RELAY_MESSAGE_BYTES > MAX_PENDING_BYTES, `${sent.length} sent`);
  await assertGotAll(b, a, sent, slow);
  ok(
    log.includes(`dropping "${person(2).comment}": it does not keep up with the room`),
    log.join("\n"),
  );
  await slow.served;
  ok(
    log.at(-1)!.startsWith(
      `"${person(2).comment}" ${
        person(2).fingerprint
      } disconnected: dropped: it did not keep up with the room`,
    ),
  );
  // The slow member, reading at last, finds its connection cut short.
  slow.startReading();
  const ending = await slow.ended();
  ok(
    ending !== null && ending.error instanceof AuthenticationError &&
      ending.error.code === "truncated",
  );
  await closeAll(room, [a, b]);
});

Deno.test("Relay drops a member that stopped reading its socket; the others get everything", async () => {
  const { room, log } = relay({ groupBurst: 1000 });
  const [a, b, slow] = await group(room, 2, { slow: [2] }) as [RelayPeer, RelayPeer, RelayPeer];
  // 16 MiB at the relay, plus what the sockets' buffers hold on the way.
  const sent = await floodUntilGone(a, slow, 256);
  ok(sent.length * MAX_RELAY_MESSAGE_BYTES > MAX_PENDING_BYTES, `${sent.length} sent`);
  await assertGotAll(b, a, sent, slow);
  ok(log.includes(`dropping "${person(2).comment}": it does not keep up with the room`));
  await slow.served;
  slow.connection.close();
  await closeAll(room, [a, b]);
});
