/**
 * The room over real loopback connections and real signatures: fan-out exactly once and in order,
 * private routing, joins and leaves, limits, and a malicious relay whose forgeries are rejected.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import {
  authorOf,
  decodeRoomMessage,
  encodeChat,
  encodeJoined,
  encodeWelcome,
  JOINED_FLAG,
} from "../../lib/chat/room_messages.ts";
import { Relay } from "../../lib/room/relay.ts";
import { encodeTransfer, signOffer } from "../../lib/transfer/transfer_messages.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import { identities, join, type TestMember, texts } from "../_helpers/room.ts";

const [relayIdentity, a, b, c] = await identities(4) as [
  Awaited<ReturnType<typeof identities>>[0],
  ...Awaited<ReturnType<typeof identities>>,
];

function hub(options: Partial<ConstructorParameters<typeof Relay>[0]> = {}) {
  return new Relay({
    identity: relayIdentity,
    hostParticipates: true,
    hostName: "host",
    ...options,
  });
}

function messageEvents(events: ChatEvent[]) {
  return events.filter((e): e is ChatEvent & { type: "message" } => e.type === "message");
}

async function leaveAll(room: Relay, members: TestMember[]) {
  await Promise.all(members.map((member) => member.session.close()));
  await room.close();
}

Deno.test("Relay relays every message exactly once, in order per author, verified", async () => {
  const room = hub();
  const host = room.hostParticipant();
  const hostEvents: ChatEvent[] = [];
  host.onEvent((event) => hostEvents.push(event));
  const members = [
    await join(a!, relayIdentity, (conn, name) => room.admit(conn, name)),
    await join(b!, relayIdentity, (conn, name) => room.admit(conn, name)),
    await join(c!, relayIdentity, (conn, name) => room.admit(conn, name)),
  ];
  await Promise.all(members.map((m) => m.until((ev) => ev.some((e) => e.type === "roster"))));
  for (let i = 0; i < 5; i++) {
    for (const member of members) await member.session.sendText(`${member.identity.comment} #${i}`);
  }
  await host.sendText("from the host");
  for (const member of members) {
    await member.until((events) => messageEvents(events).filter((e) => !e.from.self).length === 11);
    for (const other of members.filter((m) => m !== member)) {
      const fromOther = messageEvents(member.events).filter((e) =>
        e.from.fingerprint === other.identity.fingerprint
      );
      deepStrictEqual(
        fromOther.map((e) => e.text),
        [0, 1, 2, 3, 4].map((i) => `${other.identity.comment} #${i}`),
      );
      ok(fromOther.every((e) => e.verified && e.from.name === other.identity.comment));
    }
    ok(texts(member).includes("from the host"));
    strictEqual(member.events.filter((e) => e.type === "rejected").length, 0);
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  strictEqual(messageEvents(hostEvents).filter((e) => !e.from.self).length, 15);
  await leaveAll(room, members);
});

Deno.test("a private message reaches only its recipient", async () => {
  const room = hub();
  const host = room.hostParticipant();
  const hostEvents: ChatEvent[] = [];
  host.onEvent((event) => hostEvents.push(event));
  const [ma, mb, mc] = [
    await join(a!, relayIdentity, (conn, name) => room.admit(conn, name)),
    await join(b!, relayIdentity, (conn, name) => room.admit(conn, name)),
    await join(c!, relayIdentity, (conn, name) => room.admit(conn, name)),
  ];
  await ma.until(() => ma.session.members().length === 4);
  await ma.session.sendPrivate(b!.comment, "psst, only for you");
  await ma.session.sendText("hello all");
  await mb.until((events) => texts(mb).includes("hello all") && events.length > 0);
  await mc.until(() => texts(mc).includes("hello all"));
  const privateAtB = messageEvents(mb.events).find((e) => e.text === "psst, only for you");
  strictEqual(privateAtB?.kind, "private");
  strictEqual(privateAtB?.from.fingerprint, a!.fingerprint);
  ok(!texts(mc).includes("psst, only for you"));
  ok(!messageEvents(hostEvents).some((e) => e.text === "psst, only for you"));
  // To the host, privately.
  await mc.session.sendPrivate("host", "hi host");
  await new Promise((resolve) => setTimeout(resolve, 200));
  ok(messageEvents(hostEvents).some((e) => e.text === "hi host" && e.kind === "private"));
  ok(!texts(ma).includes("hi host") && !texts(mb).includes("hi host"));
  await leaveAll(room, [ma, mb, mc]);
});

Deno.test("members see joins and leaves; a member that vanishes never takes the room down", async () => {
  const room = hub();
  const ma = await join(a!, relayIdentity, (conn, name) => room.admit(conn, name));
  const mb = await join(b!, relayIdentity, (conn, name) => room.admit(conn, name));
  await ma.until((events) => events.some((e) => e.type === "join" && e.member.name === b!.comment));
  // c vanishes without a goodbye: its socket is cut, no close_notify.
  const killed = await join(c!, relayIdentity, (conn, name) => room.admit(conn, name));
  await ma.until((events) => events.some((e) => e.type === "join" && e.member.name === c!.comment));
  killed.connection!.close();
  await ma.until((events) =>
    events.some((e) =>
      e.type === "leave" && e.member.name === c!.comment && /connection lost/.test(e.reason)
    )
  );
  await mb.session.sendText("still here");
  await ma.until(() => texts(ma).includes("still here"));
  await leaveAll(room, [ma, mb]);
});

Deno.test("a member over the rate limit is warned, then disconnected; others are untouched", async () => {
  let clock = 1_000_000;
  const room = hub({ ratePerSecond: 1, burst: 3, now: () => clock });
  const ma = await join(a!, relayIdentity, (conn, name) => room.admit(conn, name));
  const mb = await join(b!, relayIdentity, (conn, name) => room.admit(conn, name));
  await mb.until(() => mb.session.members().length === 3);
  for (let i = 0; i < 4; i++) await ma.session.sendText(`burst ${i}`);
  await ma.until((events) => events.some((e) => e.type === "notice" && /slow down/.test(e.text)));
  await mb.until(() => texts(mb).length === 3);
  deepStrictEqual(texts(mb), ["burst 0", "burst 1", "burst 2"]);
  for (let i = 0; i < 2; i++) await ma.session.sendText(`flood ${i}`);
  await ma.session.closed;
  ok(
    ma.events.some((e) =>
      e.type === "notice" && /disconnected after repeated warnings/.test(e.text)
    ),
  );
  await mb.until((events) =>
    events.some((e) => e.type === "leave" && e.member.name === a!.comment)
  );
  clock += 10_000;
  const mc = await join(c!, relayIdentity, (conn, name) => room.admit(conn, name));
  await mc.until(() => mc.session.members().length === 3);
  await mb.session.sendText("life goes on");
  await mc.until(() => texts(mc).includes("life goes on"));
  await leaveAll(room, [mb, mc]);
});

Deno.test("a fallback name is checked too: a member who picked it first keeps it", async () => {
  const room = hub({ hostParticipates: false });
  // `join` admits under the identity's name: give each key the name it asks for.
  const named = (identity: typeof a, name: string) =>
    join(identity!, relayIdentity, (conn) => room.admit(conn, name));
  const fallback = `bob-${c!.fingerprint.slice(7, 13)}`;
  const first = await named(a, "bob");
  const squatter = await named(b, fallback);
  const second = await named(c, "bob");
  await second.until(() => second.session.members().length === 3);
  const names = second.session.members().map((member) => member.name);
  strictEqual(new Set(names).size, 3, `names are unique: ${names.join(", ")}`);
  deepStrictEqual(names.slice(0, 2), ["bob", fallback]);
  strictEqual(second.session.self.name, `${fallback}-2`);
  await leaveAll(room, [first, squatter, second]);
});

Deno.test("the room refuses members past --max-members and a key already inside", async () => {
  const room = hub({ maxMembers: 2 });
  const ma = await join(a!, relayIdentity, (conn, name) => room.admit(conn, name));
  const mb = await join(b!, relayIdentity, (conn, name) => room.admit(conn, name));
  const full = await join(c!, relayIdentity, (conn, name) => room.admit(conn, name)).catch((e) =>
    e as Error
  );
  ok(
    full instanceof Error &&
      /the relay refused us: the room is full \(2 members\)/.test(full.message),
  );
  await mb.session.close();
  await ma.until((events) => events.some((e) => e.type === "leave"));
  const again = await join(a!, relayIdentity, (conn, name) => room.admit(conn, name)).catch((e) =>
    e as Error
  );
  ok(again instanceof Error && /your key is already in the room/.test(again.message));
  await leaveAll(room, [ma]);
});

/**
 * A malicious relay: welcomes members honestly, then alters one message, invents one in a
 * member's name, and replays one. Built from the library, as an attacker would.
 */
async function maliciousRelay(
  members: { connection: SecureConnection; name: string }[],
  roomId: Uint8Array,
) {
  for (const { connection } of members) await exchangeSessionHello(connection, "chat");
  for (const { connection, name } of members) {
    await connection.send(encodeWelcome(roomId, name));
    for (const other of members) {
      const flags = JOINED_FLAG.present | (other.connection === connection ? JOINED_FLAG.you : 0);
      await connection.send(encodeJoined(flags, other.name, other.connection.peer.identity.spki));
    }
  }
  // Handshakes finish in any order: tell the members apart by key.
  const byKey = (fingerprint: string) =>
    members.find((m) => m.connection.peer.identity.fingerprint === fingerprint)!;
  const alice = byKey(a!.fingerprint);
  const bob = byKey(b!.fingerprint);
  const honest = await alice.connection.receive();
  const second = await alice.connection.receive();
  const first = decodeRoomMessage(honest!);
  if (first.type !== "chat") throw new Error("expected chat");
  // 1. forwarded as is; 2. altered text, same signature; 3. invented; 4. replayed.
  await bob.connection.send(honest!);
  await bob.connection.send(encodeChat({ ...first.message, text: "send the money to mallory" }));
  await bob.connection.send(
    encodeChat({
      ...first.message,
      counter: first.message.counter + 100n,
      text: "invented",
      signature: crypto.getRandomValues(new Uint8Array(64)),
    }),
  );
  await bob.connection.send(honest!);
  await bob.connection.send(second!);
}

Deno.test("recipients reject messages a malicious relay altered, invented or replayed", async () => {
  const roomId = crypto.getRandomValues(new Uint8Array(16));
  const admitted: { connection: SecureConnection; name: string }[] = [];
  let ready: () => void = () => {};
  const bothIn = new Promise<void>((resolve) => ready = resolve);
  const admit = (connection: SecureConnection, name: string) => {
    admitted.push({ connection, name });
    if (admitted.length === 2) ready();
    return Promise.resolve();
  };
  const joining = [join(a!, relayIdentity, admit), join(b!, relayIdentity, admit)];
  await bothIn;
  const relaying = maliciousRelay(admitted, roomId);
  const [ma, mb] = await Promise.all(joining) as [TestMember, TestMember];
  await ma.until(() => ma.session.members().length === 2);
  await ma.session.sendText("meet at noon");
  await ma.session.sendText("bring snacks");
  await relaying;
  await mb.until(() => texts(mb).includes("bring snacks"));
  deepStrictEqual(texts(mb), ["meet at noon", "bring snacks"]);
  const rejected = mb.events.filter((e): e is ChatEvent & { type: "rejected" } =>
    e.type === "rejected"
  );
  strictEqual(rejected.length, 3);
  ok(rejected.every((e) => e.claimedAuthor === a!.comment));
  ok(/signature does not verify/.test(rejected[0]!.reason));
  ok(/signature does not verify/.test(rejected[1]!.reason));
  ok(/replayed/.test(rejected[2]!.reason));
  for (const { connection } of admitted) connection.close();
  ma.session.close();
  mb.session.close();
});

Deno.test("a file offer to a member who is not in the room earns its sender a Notice, and reaches nobody", async () => {
  // PROTOCOL.md 14.1: the relay routes by the recipient's author id; an Offer for an unknown one
  // is answered with a Notice (other transfer messages for unknown members are dropped silently).
  const room = hub({ hostParticipates: false });
  const sender = await join(a!, relayIdentity, (conn, name) => room.admit(conn, name));
  const bystander = await join(b!, relayIdentity, (conn, name) => room.admit(conn, name));
  await sender.until(() => sender.session.members().length === 2);
  const [absent] = await identities(1);
  const id = crypto.getRandomValues(new Uint8Array(16));
  const offer = await signOffer(a!, {
    roomId: room.roomId,
    sender: authorOf(a!.fingerprint),
    recipient: authorOf(absent!.fingerprint),
    transferId: id,
  }, {
    counter: BigInt(Date.now()) * 1000n,
    timestamp: Date.now(),
    name: "report.txt",
    fileCount: 1,
    totalSize: 1,
    manifestSha256: new Uint8Array(32),
  });
  await sender.connection!.send(encodeTransfer.offer(authorOf(absent!.fingerprint), id, offer));
  await sender.until((events) =>
    events.some((e) =>
      e.type === "notice" && e.text === "no such member: the file offer was not delivered"
    )
  );
  // The bystander saw no offer, and the sender is still in the room.
  await sender.session.sendText("still here");
  await bystander.until((events) => texts(bystander).includes("still here") && events.length > 0);
  strictEqual(bystander.events.some((e) => e.type === "offer"), false);
  await leaveAll(room, [sender, bystander]);
});
