/**
 * The roster and the checks every recipient runs before it shows a chat message (PROTOCOL.md
 * 13.2 "Recipients", and the counter rule of 13.3): known author, signature over this room,
 * recipient, per-author strictly increasing counter. Real Ed25519 signatures, no sockets.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import { generateIdentity, type Identity } from "../../lib/keys/identity.ts";
import {
  authorOf,
  CHAT_KIND,
  JOINED_FLAG,
  signChat,
  type SignedChat,
} from "../../lib/chat/room_messages.ts";
import { NO_RECIPIENT, Roster } from "../../lib/chat/room_roster.ts";
import { isCode } from "../_helpers/assert_error.ts";

const [me, alice, bob, mallory] = await Promise.all(
  ["me", "alice", "bob", "mallory"].map((comment) =>
    generateIdentity({ type: "ed25519", comment }).then((pair) => pair.identity)
  ),
) as [Identity, Identity, Identity, Identity];

const ROOM = new Uint8Array(16).fill(0x11);
const OTHER_ROOM = new Uint8Array(16).fill(0x22);
const NOW = 1_700_000_000_000;

const REASON = {
  unknown: "its author is not in the room",
  signature: "its signature does not verify (altered or forged)",
  notForUs: "it is a private message for someone else",
  recipientNotPrivate: "it names a recipient but is not private",
  replay: "it was replayed or arrived out of order",
} as const;

/** A signed chat from `author`, text kind by default, for `ROOM` unless told. */
function chat(
  author: Identity,
  counter: bigint,
  options: {
    text?: string;
    kind?: 1 | 2 | 3;
    recipient?: Uint8Array;
    roomId?: Uint8Array;
    timestamp?: number;
  } = {},
): Promise<SignedChat> {
  return signChat(author, options.roomId ?? ROOM, {
    author: authorOf(author.fingerprint),
    counter,
    timestamp: options.timestamp ?? NOW - 5,
    kind: options.kind ?? CHAT_KIND.text,
    recipient: options.recipient ?? NO_RECIPIENT,
    text: options.text ?? `message ${counter}`,
  });
}

/** A roster seen by `me`, with me, alice and bob in it. */
async function roster(): Promise<Roster> {
  const r = new Roster(ROOM, me.fingerprint);
  await r.add(me.spki, "me", JOINED_FLAG.present | JOINED_FLAG.you);
  await r.add(alice.spki, "alice", JOINED_FLAG.present | JOINED_FLAG.host);
  await r.add(bob.spki, "bob", JOINED_FLAG.present);
  return r;
}

function rejected(claimedAuthor: string, reason: string, time = NOW): ChatEvent {
  return { type: "rejected", time, claimedAuthor, reason };
}

Deno.test("NO_RECIPIENT is 32 zero bytes", () => {
  strictEqual(NO_RECIPIENT.length, 32);
  ok(NO_RECIPIENT.every((byte) => byte === 0));
});

Deno.test("Roster.add() marks the host and ourselves and sanitizes the name", async () => {
  const r = new Roster(ROOM, me.fingerprint);
  const mine = await r.add(me.spki, "me", JOINED_FLAG.you);
  const host = await r.add(alice.spki, "alice", JOINED_FLAG.host | JOINED_FLAG.present);
  const plain = await r.add(bob.spki, "bob\u001b[31m\u202e", 0);
  deepStrictEqual(mine.info, { name: "me", fingerprint: me.fingerprint, self: true });
  deepStrictEqual(host.info, { name: "alice", fingerprint: alice.fingerprint, host: true });
  deepStrictEqual(plain.info, { name: "bob?[31m?", fingerprint: bob.fingerprint });
  strictEqual(plain.identity.fingerprint, bob.fingerprint);
  deepStrictEqual(plain.identity.spki, bob.spki);
  strictEqual(r.size, 3);
  deepStrictEqual(r.list().map((info) => info.name), ["me", "alice", "bob?[31m?"]);
});

Deno.test("Roster.add() refuses a malformed key with unsupported_key", async () => {
  const r = new Roster(ROOM, me.fingerprint);
  await rejects(
    r.add(Uint8Array.of(0x30, 0x03, 1, 2, 3), "junk", 0),
    isCode(ProtocolError, "unsupported_key"),
  );
  strictEqual(r.size, 0);
});

Deno.test("Roster.add() of a known key replaces its entry", async () => {
  const r = await roster();
  await r.add(bob.spki, "bobby", 0);
  strictEqual(r.size, 3);
  strictEqual(r.get(bob.fingerprint)?.info.name, "bobby");
});

Deno.test("Roster.addIdentity() adds an imported key with the given info", async () => {
  const r = new Roster(ROOM, me.fingerprint);
  const info = { name: "alice", fingerprint: alice.fingerprint, code: "12345" };
  const entry = r.addIdentity(alice, info);
  strictEqual(entry.info, info);
  strictEqual(r.get(alice.fingerprint), entry);
  deepStrictEqual(await r.accept(await chat(alice, 1n), NOW), {
    type: "message",
    time: NOW - 5,
    from: info,
    text: "message 1",
    kind: "text",
    verified: true,
  });
});

Deno.test("Roster.find() matches an exact name or a unique fingerprint prefix of 6+ characters", async () => {
  const r = await roster();
  strictEqual(r.find("alice")?.info.fingerprint, alice.fingerprint);
  strictEqual(r.find("Alice"), undefined);
  strictEqual(r.find(bob.fingerprint)?.info.name, "bob");
  strictEqual(r.find(bob.fingerprint.slice(7))?.info.name, "bob");
  strictEqual(r.find(bob.fingerprint.slice(0, 7 + 10))?.info.name, "bob");
  strictEqual(r.find(bob.fingerprint.slice(7, 7 + 5)), undefined, "5 characters are too few");
  strictEqual(r.find("nobody-at-all"), undefined);
});

Deno.test("Roster.find() refuses an ambiguous name", async () => {
  const r = await roster();
  await r.add(mallory.spki, "bob", 0);
  strictEqual(r.find("bob"), undefined);
  strictEqual(r.find(mallory.fingerprint)?.info.fingerprint, mallory.fingerprint);
});

Deno.test("Roster.accept() shows a correctly signed message from a member", async () => {
  const r = await roster();
  const event = await r.accept(await chat(alice, 7n, { text: "hello room", timestamp: 1234 }), NOW);
  deepStrictEqual(event, {
    type: "message",
    time: 1234,
    from: { name: "alice", fingerprint: alice.fingerprint, host: true },
    text: "hello room",
    kind: "text",
    verified: true,
  });
});

Deno.test("Roster.accept() reports an action as kind action", async () => {
  const r = await roster();
  const event = await r.accept(await chat(bob, 1n, { kind: CHAT_KIND.action, text: "waves" }), NOW);
  strictEqual(event.type, "message");
  if (event.type !== "message") return;
  strictEqual(event.kind, "action");
  strictEqual(event.text, "waves");
  strictEqual(event.to, undefined);
});

Deno.test("Roster.accept() replaces control characters in the shown text", async () => {
  const r = await roster();
  const event = await r.accept(await chat(bob, 1n, { text: "a\u001b[2Jb\u202ec" }), NOW);
  strictEqual(event.type === "message" && event.text, "a?[2Jb?c");
});

Deno.test("Roster.accept() shows a private message addressed to us, with us as recipient", async () => {
  const r = await roster();
  const event = await r.accept(
    await chat(alice, 1n, { kind: CHAT_KIND.private, recipient: authorOf(me.fingerprint) }),
    NOW,
  );
  deepStrictEqual(event, {
    type: "message",
    time: NOW - 5,
    from: { name: "alice", fingerprint: alice.fingerprint, host: true },
    text: "message 1",
    kind: "private",
    to: { name: "me", fingerprint: me.fingerprint, self: true },
    verified: true,
  });
});

Deno.test("Roster.accept() rejects a private message addressed to another member", async () => {
  const r = await roster();
  const event = await r.accept(
    await chat(alice, 1n, { kind: CHAT_KIND.private, recipient: authorOf(bob.fingerprint) }),
    NOW,
  );
  deepStrictEqual(event, rejected("alice", REASON.notForUs));
});

Deno.test("Roster.accept() rejects a private message with no recipient", async () => {
  const r = await roster();
  const event = await r.accept(await chat(alice, 1n, { kind: CHAT_KIND.private }), NOW);
  deepStrictEqual(event, rejected("alice", REASON.notForUs));
});

Deno.test("Roster.accept() rejects a public message that names a recipient", async () => {
  const r = await roster();
  for (const kind of [CHAT_KIND.text, CHAT_KIND.action]) {
    const event = await r.accept(
      await chat(alice, BigInt(kind), { kind, recipient: authorOf(me.fingerprint) }),
      NOW,
    );
    deepStrictEqual(event, rejected("alice", REASON.recipientNotPrivate));
  }
});

Deno.test("Roster.accept() rejects a message whose signature does not verify", async () => {
  const r = await roster();
  const honest = await chat(alice, 10n, { text: "pay bob 10" });
  const flipped = honest.signature.slice();
  flipped[0]! ^= 1;
  const forgeries: SignedChat[] = [
    { ...honest, text: "pay mallory 10" },
    { ...honest, counter: 11n },
    { ...honest, timestamp: honest.timestamp + 1 },
    { ...honest, kind: CHAT_KIND.action },
    { ...honest, kind: CHAT_KIND.private, recipient: authorOf(me.fingerprint) },
    { ...honest, signature: flipped },
    { ...honest, signature: new Uint8Array(64) },
    { ...honest, signature: new Uint8Array(0) },
    { ...honest, signature: honest.signature.subarray(0, 63) },
    // Signed by mallory's key but claiming alice as author.
    { ...(await chat(mallory, 10n)), author: authorOf(alice.fingerprint) },
  ];
  for (const forged of forgeries) {
    deepStrictEqual(await r.accept(forged, NOW), rejected("alice", REASON.signature));
  }
  // None of them moved alice's counter: her real message 10 is still shown.
  strictEqual((await r.accept(honest, NOW)).type, "message");
});

Deno.test("Roster.accept() rejects a message signed for another room", async () => {
  const r = await roster();
  const elsewhere = await chat(alice, 1n, { roomId: OTHER_ROOM });
  deepStrictEqual(await r.accept(elsewhere, NOW), rejected("alice", REASON.signature));
  const otherRoster = new Roster(OTHER_ROOM, me.fingerprint);
  await otherRoster.add(alice.spki, "alice", 0);
  strictEqual((await otherRoster.accept(elsewhere, NOW)).type, "message");
});

Deno.test("Roster.accept() rejects a replay and an older counter from the same author", async () => {
  const r = await roster();
  const m5 = await chat(alice, 5n);
  const m3 = await chat(alice, 3n);
  const m6 = await chat(alice, 6n);
  strictEqual((await r.accept(m5, NOW)).type, "message");
  deepStrictEqual(await r.accept(m5, NOW + 1), rejected("alice", REASON.replay, NOW + 1));
  deepStrictEqual(await r.accept(m3, NOW), rejected("alice", REASON.replay));
  strictEqual((await r.accept(m6, NOW)).type, "message");
  deepStrictEqual(await r.accept(m5, NOW), rejected("alice", REASON.replay));
  deepStrictEqual(await r.accept(m6, NOW), rejected("alice", REASON.replay));
});

Deno.test("Roster.accept() allows gaps but never equality: counter 0 is the lowest", async () => {
  const r = await roster();
  strictEqual((await r.accept(await chat(alice, 0n), NOW)).type, "message");
  deepStrictEqual(
    await r.accept(await chat(alice, 0n, { text: "again" }), NOW),
    rejected("alice", REASON.replay),
  );
  strictEqual((await r.accept(await chat(alice, 1_000_000n), NOW)).type, "message");
  strictEqual((await r.accept(await chat(alice, 2n ** 64n - 1n), NOW)).type, "message");
  deepStrictEqual(
    await r.accept(await chat(alice, 2n ** 64n - 1n, { text: "x" }), NOW),
    rejected("alice", REASON.replay),
  );
});

Deno.test("Roster.accept() keeps counters per author", async () => {
  const r = await roster();
  strictEqual((await r.accept(await chat(alice, 100n), NOW)).type, "message");
  // bob's sequence is his own: a lower counter than alice's last is fine for him.
  strictEqual((await r.accept(await chat(bob, 5n), NOW)).type, "message");
  strictEqual((await r.accept(await chat(bob, 6n), NOW)).type, "message");
  strictEqual((await r.accept(await chat(alice, 101n), NOW)).type, "message");
  deepStrictEqual(
    await r.accept(await chat(bob, 6n, { text: "x" }), NOW),
    rejected("bob", REASON.replay),
  );
  deepStrictEqual(
    await r.accept(await chat(alice, 100n, { text: "x" }), NOW),
    rejected("alice", REASON.replay),
  );
});

Deno.test("Roster.accept() does not move the counter on a rejection", async () => {
  const r = await roster();
  // A private message for bob with a high counter is rejected for us, and must not burn
  // alice's counters below it.
  const forBob = await chat(alice, 50n, {
    kind: CHAT_KIND.private,
    recipient: authorOf(bob.fingerprint),
  });
  deepStrictEqual(await r.accept(forBob, NOW), rejected("alice", REASON.notForUs));
  strictEqual((await r.accept(await chat(alice, 10n), NOW)).type, "message");
});

Deno.test("Roster.accept() rejects a message from an author who is not in the room, naming the fingerprint", async () => {
  const r = await roster();
  const event = await r.accept(await chat(mallory, 1n), NOW);
  deepStrictEqual(event, rejected(mallory.fingerprint, REASON.unknown));
});

Deno.test("Roster.remove() removes a member: their later messages are rejected", async () => {
  const r = await roster();
  strictEqual((await r.accept(await chat(bob, 1n), NOW)).type, "message");
  const removed = r.remove(bob.fingerprint);
  strictEqual(removed?.info.name, "bob");
  strictEqual(r.get(bob.fingerprint), undefined);
  strictEqual(r.size, 2);
  deepStrictEqual(r.list().map((info) => info.name), ["me", "alice"]);
  deepStrictEqual(
    await r.accept(await chat(bob, 2n), NOW),
    rejected(bob.fingerprint, REASON.unknown),
  );
  strictEqual(r.remove(bob.fingerprint), undefined, "a second remove finds nothing");
});

Deno.test("Roster remembers a member's counter across leaving and rejoining (13.3)", async () => {
  const r = await roster();
  const old = await chat(bob, 1_000n);
  strictEqual((await r.accept(old, NOW)).type, "message");
  r.remove(bob.fingerprint);
  await r.add(bob.spki, "bob", 0);
  // The relay cannot replay bob's message from his earlier connection to us.
  deepStrictEqual(await r.accept(old, NOW), rejected("bob", REASON.replay));
  strictEqual((await r.accept(await chat(bob, 1_001n), NOW)).type, "message");
});

Deno.test("Roster.add() of a newcomer: their messages are accepted from then on", async () => {
  const r = await roster();
  const early = await chat(mallory, 1n);
  deepStrictEqual(await r.accept(early, NOW), rejected(mallory.fingerprint, REASON.unknown));
  await r.add(mallory.spki, "mallory", 0);
  // The rejection did not record a counter: the same message is now shown once.
  strictEqual((await r.accept(early, NOW)).type, "message");
  deepStrictEqual(await r.accept(early, NOW), rejected("mallory", REASON.replay));
});

Deno.test("Roster.checkCounter() shares each author's sequence with accept()", async () => {
  const r = await roster();
  strictEqual(r.checkCounter(alice.fingerprint, 10n), true);
  strictEqual(r.checkCounter(alice.fingerprint, 10n), false);
  strictEqual(r.checkCounter(alice.fingerprint, 9n), false);
  deepStrictEqual(await r.accept(await chat(alice, 10n), NOW), rejected("alice", REASON.replay));
  strictEqual((await r.accept(await chat(alice, 11n), NOW)).type, "message");
  strictEqual(r.checkCounter(alice.fingerprint, 11n), false);
  strictEqual(r.checkCounter(alice.fingerprint, 12n), true);
  strictEqual(r.checkCounter(bob.fingerprint, 0n), true, "bob's sequence is separate");
});

Deno.test("Roster.accept() checks in order: author, signature, recipient, counter", async () => {
  const r = await roster();
  strictEqual((await r.accept(await chat(alice, 5n), NOW)).type, "message");
  // Bad signature and a replayed counter: the signature is reported.
  const stale = await chat(alice, 5n, {
    kind: CHAT_KIND.private,
    recipient: authorOf(bob.fingerprint),
  });
  deepStrictEqual(
    await r.accept({ ...stale, text: "x" }, NOW),
    rejected("alice", REASON.signature),
  );
  // Good signature, wrong recipient, replayed counter: the recipient is reported.
  deepStrictEqual(await r.accept(stale, NOW), rejected("alice", REASON.notForUs));
});
