/**
 * Our side of the signed chat messages (PROTOCOL.md 13.2 and 13.3): counters that start from the
 * clock and strictly increase, signatures that verify for this room only, the recipient field.
 * Real Ed25519 keys, an injected clock.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { ChatSigner, firstCounter } from "../../lib/chat/chat_signer.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  authorOf,
  CHAT_KIND,
  decodeRoomMessage,
  encodeChat,
  MAX_TEXT_BYTES,
  verifyChat,
} from "../../lib/chat/room_messages.ts";
import { NO_RECIPIENT, Roster } from "../../lib/chat/room_roster.ts";
import { identities } from "../_helpers/room.ts";

const [alice, bob] = await identities(2) as [Identity, Identity];

const ROOM = new Uint8Array(16).fill(0x42);
const OTHER_ROOM = new Uint8Array(16).fill(0x43);
const T0 = 1_700_000_000_000;

/** A clock the test moves by hand. */
function clock(start: number) {
  const state = { now: start, calls: 0 };
  return {
    state,
    now: () => {
      state.calls++;
      return state.now;
    },
  };
}

Deno.test("firstCounter() starts a fresh sequence at now_ms * 1000", () => {
  strictEqual(firstCounter(-1n, T0), BigInt(T0) * 1000n);
  strictEqual(firstCounter(0n, T0), BigInt(T0) * 1000n);
  strictEqual(firstCounter(BigInt(T0) * 1000n - 2n, T0), BigInt(T0) * 1000n);
});

Deno.test("firstCounter() is max(last + 1, now_ms * 1000)", () => {
  const fromClock = BigInt(T0) * 1000n;
  // last + 1 equal to the clock's value: either rule gives the same number.
  strictEqual(firstCounter(fromClock - 1n, T0), fromClock);
  // last equal to the clock's value: it must still go up.
  strictEqual(firstCounter(fromClock, T0), fromClock + 1n);
  // A clock behind the last counter (set back, or many messages): last + 1.
  strictEqual(firstCounter(fromClock + 5_000n, T0), fromClock + 5_001n);
  strictEqual(firstCounter(fromClock, T0 - 60_000), fromClock + 1n);
});

Deno.test("firstCounter() floors a fractional clock and handles time zero", () => {
  strictEqual(firstCounter(-1n, 1.9), 1000n);
  strictEqual(firstCounter(-1n, 0), 0n);
  strictEqual(firstCounter(0n, 0), 1n);
});

Deno.test("ChatSigner.sign() counts from firstCounter(-1n, now) and strictly increases", async () => {
  const time = clock(T0);
  const signer = new ChatSigner(alice, ROOM, time.now);
  const counters: bigint[] = [];
  for (let i = 0; i < 5; i++) counters.push((await signer.sign(CHAT_KIND.text, `m${i}`)).counter);
  const start = BigInt(T0) * 1000n;
  deepStrictEqual(counters, [start, start + 1n, start + 2n, start + 3n, start + 4n]);
});

Deno.test("ChatSigner counters keep increasing when the clock goes back", async () => {
  const time = clock(T0);
  const signer = new ChatSigner(alice, ROOM, time.now);
  const first = await signer.sign(CHAT_KIND.text, "before");
  time.state.now = T0 - 3_600_000;
  const second = await signer.sign(CHAT_KIND.text, "after the clock was set back");
  ok(second.counter > first.counter);
  strictEqual(second.counter, first.counter + 1n);
  // The timestamp is the (injected) clock at signing time, not tied to the counter.
  strictEqual(first.timestamp, T0);
  strictEqual(second.timestamp, T0 - 3_600_000);
});

Deno.test("ChatSigner.sign() stamps each message with the injected clock", async () => {
  const time = clock(T0);
  const signer = new ChatSigner(alice, ROOM, time.now);
  time.state.now = T0 + 250;
  const chat = await signer.sign(CHAT_KIND.action, "waves");
  strictEqual(chat.timestamp, T0 + 250);
  // The counter still comes from the clock at construction.
  strictEqual(chat.counter, BigInt(T0) * 1000n);
});

Deno.test("ChatSigner.nextCounter() shares the sequence with sign()", async () => {
  const signer = new ChatSigner(alice, ROOM, () => T0);
  const start = BigInt(T0) * 1000n;
  strictEqual((await signer.sign(CHAT_KIND.text, "a")).counter, start);
  strictEqual(signer.nextCounter(), start + 1n);
  strictEqual(signer.nextCounter(), start + 2n);
  strictEqual((await signer.sign(CHAT_KIND.text, "b")).counter, start + 3n);
});

Deno.test("a new ChatSigner a millisecond later starts above the previous connection's counters", async () => {
  const earlier = new ChatSigner(alice, ROOM, () => T0);
  let last = 0n;
  for (let i = 0; i < 20; i++) last = (await earlier.sign(CHAT_KIND.text, `m${i}`)).counter;
  const later = new ChatSigner(alice, ROOM, () => T0 + 1);
  ok((await later.sign(CHAT_KIND.text, "after reconnecting")).counter > last);
});

Deno.test("ChatSigner.sign() fills in author, kind and text, and verifies under our key for this room", async () => {
  const signer = new ChatSigner(alice, ROOM, () => T0);
  const chat = await signer.sign(CHAT_KIND.text, "hello");
  deepStrictEqual(chat.author, authorOf(alice.fingerprint));
  strictEqual(chat.kind, CHAT_KIND.text);
  strictEqual(chat.text, "hello");
  deepStrictEqual(chat.recipient, NO_RECIPIENT);
  strictEqual(chat.signature.length, 64, "an Ed25519 signature");
  strictEqual(await verifyChat(alice, ROOM, chat), true);
});

Deno.test("ChatSigner signatures fail for another room, another key, or any altered field", async () => {
  const signer = new ChatSigner(alice, ROOM, () => T0);
  const chat = await signer.sign(CHAT_KIND.text, "hello");
  strictEqual(await verifyChat(alice, OTHER_ROOM, chat), false);
  strictEqual(await verifyChat(bob, ROOM, chat), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, text: "hellO" }), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, counter: chat.counter + 1n }), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, timestamp: T0 + 1 }), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, kind: CHAT_KIND.action }), false);
  strictEqual(
    await verifyChat(alice, ROOM, { ...chat, recipient: authorOf(bob.fingerprint) }),
    false,
  );
  strictEqual(
    await verifyChat(alice, ROOM, { ...chat, author: authorOf(bob.fingerprint) }),
    false,
  );
});

Deno.test("ChatSigner.sign() of a private message carries the recipient's author id", async () => {
  const signer = new ChatSigner(alice, ROOM, () => T0);
  const chat = await signer.sign(CHAT_KIND.private, "psst", bob.fingerprint);
  strictEqual(chat.kind, CHAT_KIND.private);
  deepStrictEqual(chat.recipient, authorOf(bob.fingerprint));
  strictEqual(chat.recipient.length, 32);
  strictEqual(await verifyChat(alice, ROOM, chat), true);
  // A relay cannot redirect it to someone else.
  strictEqual(await verifyChat(alice, ROOM, { ...chat, recipient: NO_RECIPIENT }), false);
});

Deno.test("ChatSigner messages survive encoding and are shown by the recipient's roster in order", async () => {
  const signer = new ChatSigner(alice, ROOM, () => T0);
  const roster = new Roster(ROOM, bob.fingerprint);
  await roster.add(alice.spki, "alice", 0);
  await roster.add(bob.spki, "bob", 0);
  const sent = [
    await signer.sign(CHAT_KIND.text, "one"),
    await signer.sign(CHAT_KIND.action, "two"),
    await signer.sign(CHAT_KIND.private, "three", bob.fingerprint),
  ];
  const kinds: string[] = [];
  for (const chat of sent) {
    const decoded = decodeRoomMessage(encodeChat(chat));
    strictEqual(decoded.type, "chat");
    if (decoded.type !== "chat") return;
    const event = await roster.accept(decoded.message, T0);
    strictEqual(event.type, "message");
    if (event.type === "message") kinds.push(`${event.kind}:${event.text}`);
  }
  deepStrictEqual(kinds, ["text:one", "action:two", "private:three"]);
  // The first one again is a replay.
  strictEqual((await roster.accept(sent[0]!, T0)).type, "rejected");
});

Deno.test("ChatSigner.sign() refuses a text over 4096 bytes", async () => {
  const signer = new ChatSigner(alice, ROOM, () => T0);
  await rejects(signer.sign(CHAT_KIND.text, "x".repeat(MAX_TEXT_BYTES + 1)), RangeError);
  const fits = await signer.sign(CHAT_KIND.text, "x".repeat(MAX_TEXT_BYTES));
  strictEqual(await verifyChat(alice, ROOM, fits), true);
});

Deno.test("ChatSigner.sign() hands out its own all-zero recipient, never the shared NO_RECIPIENT", async () => {
  const signer = new ChatSigner(alice, ROOM, clock(T0).now);
  const chat = await signer.sign(CHAT_KIND.text, "hello");
  deepStrictEqual(chat.recipient, new Uint8Array(32));
  chat.recipient.fill(0xff); // what a careless caller might do
  deepStrictEqual(NO_RECIPIENT, new Uint8Array(32), "the constant every roster compares with");
});
