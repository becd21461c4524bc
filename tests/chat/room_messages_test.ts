/**
 * Room messages (PROTOCOL.md 13.1 and 13.2): byte layouts checked against hand-written encodings,
 * round trips, the signature over the canonical form, and strict decoding that refuses truncated,
 * oversized, malformed or trailing input with `bad_room_message`.
 */

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { own } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  AUTHOR_LENGTH,
  authorOf,
  CHAT_KIND,
  decodeRoomMessage,
  encodeChat,
  encodeJoined,
  encodeLeft,
  encodeNotice,
  encodeWelcome,
  fingerprintOfAuthor,
  JOINED_FLAG,
  MAX_NOTICE_BYTES,
  MAX_ROOM_NAME_BYTES,
  MAX_TEXT_BYTES,
  ROOM_ID_LENGTH,
  ROOM_MESSAGE,
  ROOM_SIGNATURE_CONTEXT,
  signChat,
  type SignedChat,
  verifyChat,
} from "../../lib/chat/room_messages.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { identities } from "../_helpers/room.ts";

const [alice, bob] = await identities(2) as [Identity, Identity];

const encoder = new TextEncoder();
const ROOM = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

// --- hand-written encoders (section 13), independent of lib/chat/room_messages.ts ---

function be16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function be64(n: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(56 - 8 * i)) & 0xffn));
}

function welcomeBytes(roomId: Uint8Array, name: Uint8Array, nameLength = name.length): number[] {
  return [0x01, ...roomId, nameLength, ...name];
}

function chatFieldBytes(o: {
  author: Uint8Array;
  counter: bigint;
  timestamp: bigint;
  kind: number;
  recipient: Uint8Array;
  text: Uint8Array;
  textLength?: number;
}): number[] {
  return [
    ...o.author,
    ...be64(o.counter),
    ...be64(o.timestamp),
    o.kind,
    ...o.recipient,
    ...be16(o.textLength ?? o.text.length),
    ...o.text,
  ];
}

function chatBytes(
  o: Parameters<typeof chatFieldBytes>[0] & { signature: Uint8Array; sigLength?: number },
): Uint8Array {
  return Uint8Array.from([
    0x10,
    ...chatFieldBytes(o),
    ...be16(o.sigLength ?? o.signature.length),
    ...o.signature,
  ]);
}

const AUTHOR = new Uint8Array(32).fill(0xa1);
const ZERO32 = new Uint8Array(32);

/** A chat body with a dummy signature, for decoding tests (decoding does not verify). */
function rawChat(overrides: Partial<Parameters<typeof chatBytes>[0]> = {}): Uint8Array {
  return chatBytes({
    author: AUTHOR,
    counter: 7n,
    timestamp: 1_700_000_000_000n,
    kind: 1,
    recipient: ZERO32,
    text: encoder.encode("hi"),
    signature: new Uint8Array(64).fill(0x5a),
    ...overrides,
  });
}

function isBadRoomMessage(detail: RegExp) {
  return (error: unknown) => {
    isCode(ProtocolError, "bad_room_message", "decode_error")(error);
    ok(error instanceof Error);
    ok(
      error.message.startsWith("peer sent a malformed room message: "),
      `message shape: ${error.message}`,
    );
    ok(detail.test(error.message), `${detail} in ${error.message}`);
    return true;
  };
}

async function signed(overrides: Partial<Omit<SignedChat, "signature">> = {}): Promise<SignedChat> {
  return await signChat(alice, ROOM, {
    author: authorOf(alice.fingerprint),
    counter: 42n,
    timestamp: 1_700_000_000_123,
    kind: CHAT_KIND.text,
    recipient: ZERO32,
    text: "hello, room",
    ...overrides,
  });
}

// --- constants ---

Deno.test("room message constants match PROTOCOL.md 13.1 and 13.2", () => {
  deepStrictEqual(ROOM_MESSAGE, {
    welcome: 0x01,
    joined: 0x02,
    left: 0x03,
    chat: 0x10,
    notice: 0x20,
  });
  deepStrictEqual(JOINED_FLAG, { host: 0x01, present: 0x02, you: 0x04 });
  deepStrictEqual(CHAT_KIND, { text: 1, action: 2, private: 3 });
  strictEqual(ROOM_SIGNATURE_CONTEXT, "securechat/1 room message");
  strictEqual(ROOM_ID_LENGTH, 16);
  strictEqual(AUTHOR_LENGTH, 32);
  strictEqual(MAX_TEXT_BYTES, 4096);
  strictEqual(MAX_NOTICE_BYTES, 512);
  strictEqual(MAX_ROOM_NAME_BYTES, 64);
});

// --- layouts and round trips ---

Deno.test("encodeWelcome() writes the 13.1 layout and round-trips", () => {
  const bytes = encodeWelcome(ROOM, "älice");
  deepStrictEqual([...bytes], welcomeBytes(ROOM, encoder.encode("älice")));
  deepStrictEqual(decodeRoomMessage(bytes), { type: "welcome", roomId: ROOM, name: "älice" });
});

Deno.test("encodeJoined() writes the 13.1 layout and round-trips", () => {
  const flags = JOINED_FLAG.present | JOINED_FLAG.host;
  const bytes = encodeJoined(flags, "bob", bob.spki);
  deepStrictEqual([...bytes], [
    0x02,
    flags,
    3,
    ...encoder.encode("bob"),
    ...be16(bob.spki.length),
    ...bob.spki,
  ]);
  deepStrictEqual(decodeRoomMessage(bytes), { type: "joined", flags, name: "bob", spki: bob.spki });
});

Deno.test("encodeLeft() writes the 13.1 layout and round-trips", () => {
  const bytes = encodeLeft(AUTHOR, "left the room");
  deepStrictEqual([...bytes], [0x03, ...AUTHOR, 13, ...encoder.encode("left the room")]);
  deepStrictEqual(decodeRoomMessage(bytes), {
    type: "left",
    author: AUTHOR,
    reason: "left the room",
  });
  deepStrictEqual(decodeRoomMessage(encodeLeft(AUTHOR, "")), {
    type: "left",
    author: AUTHOR,
    reason: "",
  });
});

Deno.test("encodeNotice() writes the 13.1 layout and round-trips each level", () => {
  for (const level of [0, 1, 2] as const) {
    const bytes = encodeNotice(level, "slow down");
    deepStrictEqual([...bytes], [0x20, level, 0, 9, ...encoder.encode("slow down")]);
    deepStrictEqual(decodeRoomMessage(bytes), { type: "notice", level, text: "slow down" });
  }
});

Deno.test("encodeChat() writes the 13.2 layout and round-trips", async () => {
  const chat = await signed({ kind: CHAT_KIND.private, recipient: authorOf(bob.fingerprint) });
  const bytes = encodeChat(chat);
  deepStrictEqual(
    bytes,
    chatBytes({
      author: authorOf(alice.fingerprint),
      counter: 42n,
      timestamp: 1_700_000_000_123n,
      kind: 3,
      recipient: authorOf(bob.fingerprint),
      text: encoder.encode("hello, room"),
      signature: chat.signature,
    }),
  );
  deepStrictEqual(decodeRoomMessage(bytes), { type: "chat", message: chat });
});

Deno.test("decodeRoomMessage() keeps the full u64 range of a chat counter", () => {
  const decoded = decodeRoomMessage(rawChat({ counter: 2n ** 64n - 1n }));
  strictEqual(decoded.type === "chat" && decoded.message.counter, 2n ** 64n - 1n);
});

Deno.test("decodeRoomMessage() accepts a chat text of exactly 4096 bytes and a 64-byte name", () => {
  const text = "é".repeat(2048);
  const decoded = decodeRoomMessage(rawChat({ text: encoder.encode(text) }));
  strictEqual(decoded.type === "chat" && decoded.message.text, text);
  const name = "n".repeat(64);
  deepStrictEqual(decodeRoomMessage(encodeWelcome(ROOM, name)), {
    type: "welcome",
    roomId: ROOM,
    name,
  });
});

// --- signatures ---

Deno.test("signChat() signs context || 0x00 || room_id || fields (13.2)", async () => {
  const chat = await signed();
  const content = Uint8Array.from([
    ...encoder.encode("securechat/1 room message"),
    0,
    ...ROOM,
    ...chatFieldBytes({
      author: chat.author,
      counter: chat.counter,
      timestamp: BigInt(chat.timestamp),
      kind: chat.kind,
      recipient: chat.recipient,
      text: encoder.encode(chat.text),
    }),
  ]);
  ok(
    await crypto.subtle.verify("Ed25519", alice.publicKey, own(chat.signature), content),
    "the signature covers exactly the spec's bytes",
  );
  strictEqual(await verifyChat(alice, ROOM, chat), true);
});

Deno.test("verifyChat() fails for another room, another key, or any altered field", async () => {
  const chat = await signed();
  const otherRoom = ROOM.slice();
  otherRoom[15]! ^= 1;
  strictEqual(await verifyChat(alice, otherRoom, chat), false);
  strictEqual(await verifyChat(bob, ROOM, chat), false);
  const altered: SignedChat[] = [
    { ...chat, author: authorOf(bob.fingerprint) },
    { ...chat, counter: 43n },
    { ...chat, timestamp: chat.timestamp - 1 },
    { ...chat, kind: CHAT_KIND.action },
    { ...chat, recipient: new Uint8Array(32).fill(1) },
    { ...chat, text: "hello, room!" },
    { ...chat, signature: chat.signature.map((b, i) => i === 63 ? b ^ 0x80 : b) },
  ];
  for (const message of altered) strictEqual(await verifyChat(alice, ROOM, message), false);
});

Deno.test("verifyChat() returns false, never throws, on garbage", async () => {
  const chat = await signed();
  strictEqual(await verifyChat(alice, ROOM, { ...chat, signature: new Uint8Array(0) }), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, signature: new Uint8Array(1000) }), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, text: "x".repeat(5000) }), false);
  strictEqual(await verifyChat(alice, ROOM, { ...chat, counter: -1n }), false);
});

// --- author ids ---

Deno.test("authorOf() and fingerprintOfAuthor() convert between fingerprints and 32-byte ids", () => {
  const author = authorOf(alice.fingerprint);
  strictEqual(author.length, 32);
  strictEqual(fingerprintOfAuthor(author), alice.fingerprint);
  strictEqual(fingerprintOfAuthor(ZERO32), "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
});

// --- encoders refuse what does not fit ---

Deno.test("encoders refuse empty or oversized names, and oversized reasons, notices and texts, with RangeError", async () => {
  throws(() => encodeWelcome(ROOM, "n".repeat(MAX_ROOM_NAME_BYTES + 1)), RangeError);
  throws(() => encodeJoined(0, "é".repeat(33), bob.spki), RangeError);
  throws(() => encodeWelcome(ROOM, ""), RangeError, "names are 1 to 64 bytes");
  throws(() => encodeJoined(0, "", bob.spki), RangeError);
  throws(() => encodeLeft(AUTHOR, "r".repeat(256)), RangeError);
  throws(() => encodeNotice(1, "t".repeat(MAX_NOTICE_BYTES + 1)), RangeError);
  const chat = await signed();
  throws(() => encodeChat({ ...chat, text: "t".repeat(MAX_TEXT_BYTES + 1) }), RangeError);
  throws(() => encodeChat({ ...chat, counter: 2n ** 64n }), RangeError);
});

// --- strict decoding ---

const VALID: [string, Uint8Array][] = [
  ["Welcome", encodeWelcome(ROOM, "alice")],
  ["Joined", encodeJoined(JOINED_FLAG.you, "bob", bob.spki)],
  ["Left", encodeLeft(AUTHOR, "bye")],
  ["Chat", rawChat()],
  ["Notice", encodeNotice(2, "closing")],
];

Deno.test("decodeRoomMessage() rejects every truncation of each message type", () => {
  for (const [name, bytes] of VALID) {
    for (let length = 0; length < bytes.length; length++) {
      throws(
        () => decodeRoomMessage(bytes.subarray(0, length)),
        isBadRoomMessage(/cut short/),
        `${name}[0..${length}]`,
      );
    }
  }
});

Deno.test("decodeRoomMessage() rejects trailing bytes after each message type", () => {
  for (const [name, bytes] of VALID) {
    for (const extra of [[0], [0xff, 0xff, 0xff]]) {
      throws(
        () => decodeRoomMessage(Uint8Array.from([...bytes, ...extra])),
        isBadRoomMessage(/trailing bytes/),
        `${name} + ${extra.length}`,
      );
    }
  }
});

Deno.test("decodeRoomMessage() rejects unknown message types", () => {
  for (const type of [0x00, 0x04, 0x11, 0x21, 0x30, 0xff]) {
    throws(
      () => decodeRoomMessage(Uint8Array.of(type, 0, 0, 0)),
      isBadRoomMessage(new RegExp(`unknown message type 0x${type.toString(16)}$`)),
    );
  }
});

Deno.test("decodeRoomMessage() rejects unknown chat kinds 0 and 4+", () => {
  for (const kind of [0, 4, 0xff]) {
    throws(
      () => decodeRoomMessage(rawChat({ kind })),
      isBadRoomMessage(new RegExp(`unknown chat kind ${kind}`)),
    );
  }
});

Deno.test("decodeRoomMessage() rejects an empty chat text", () => {
  throws(
    () => decodeRoomMessage(rawChat({ text: new Uint8Array(0) })),
    isBadRoomMessage(/empty text/),
  );
});

Deno.test("decodeRoomMessage() rejects a chat text over 4096 bytes, or over maxTextBytes", () => {
  const long = encoder.encode("x".repeat(MAX_TEXT_BYTES + 1));
  throws(
    () => decodeRoomMessage(rawChat({ text: long })),
    isBadRoomMessage(/text longer than 4096 bytes/),
  );
  // The length is checked before the bytes are needed.
  throws(
    () => decodeRoomMessage(rawChat({ text: new Uint8Array(0), textLength: 0xffff })),
    isBadRoomMessage(/text longer than 4096 bytes/),
  );
  const small = encoder.encode("x".repeat(101));
  throws(
    () => decodeRoomMessage(rawChat({ text: small }), { maxTextBytes: 100 }),
    isBadRoomMessage(/text longer than 100 bytes/),
  );
  const decoded = decodeRoomMessage(rawChat({ text: small.subarray(0, 100) }), {
    maxTextBytes: 100,
  });
  strictEqual(decoded.type === "chat" && decoded.message.text.length, 100);
});

Deno.test("decodeRoomMessage() rejects a timestamp beyond Number.MAX_SAFE_INTEGER", () => {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  const decoded = decodeRoomMessage(rawChat({ timestamp: max }));
  strictEqual(decoded.type === "chat" && decoded.message.timestamp, Number.MAX_SAFE_INTEGER);
  throws(
    () => decodeRoomMessage(rawChat({ timestamp: max + 1n })),
    isBadRoomMessage(/timestamp out of range/),
  );
});

Deno.test("decodeRoomMessage() rejects text that is not UTF-8", () => {
  const bad = Uint8Array.of(0x68, 0xc3, 0x28);
  throws(() => decodeRoomMessage(rawChat({ text: bad })), isBadRoomMessage(/text is not UTF-8/));
  throws(
    () => decodeRoomMessage(Uint8Array.from(welcomeBytes(ROOM, Uint8Array.of(0xff)))),
    isBadRoomMessage(/name is not UTF-8/),
  );
  throws(
    () => decodeRoomMessage(Uint8Array.of(0x20, 0, 0, 2, 0xed, 0xa0)),
    isBadRoomMessage(/text is not UTF-8/),
  );
  throws(
    () => decodeRoomMessage(Uint8Array.of(0x20, 0, 0, 3, 0xed, 0xa0, 0x80)),
    isBadRoomMessage(/text is not UTF-8/),
    "a lone surrogate",
  );
});

Deno.test("decodeRoomMessage() rejects names over 64 bytes and notices over 512", () => {
  throws(
    () => decodeRoomMessage(Uint8Array.from(welcomeBytes(ROOM, encoder.encode("n".repeat(65))))),
    isBadRoomMessage(/name longer than 64 bytes/),
  );
  throws(
    () =>
      decodeRoomMessage(Uint8Array.from([0x02, 0, 65, ...encoder.encode("n".repeat(65)), 0, 0])),
    isBadRoomMessage(/name longer than 64 bytes/),
  );
  throws(
    () =>
      decodeRoomMessage(
        Uint8Array.from([0x20, 1, ...be16(513), ...new Uint8Array(513).fill(0x61)]),
      ),
    isBadRoomMessage(/text longer than 512 bytes/),
  );
});

Deno.test("decodeRoomMessage() rejects unknown notice levels", () => {
  for (const level of [3, 0xff]) {
    throws(
      () => decodeRoomMessage(Uint8Array.of(0x20, level, 0, 1, 0x61)),
      isBadRoomMessage(new RegExp(`unknown notice level ${level}`)),
    );
  }
});

Deno.test("decodeRoomMessage() rejects a signature length past the end", () => {
  throws(
    () => decodeRoomMessage(rawChat({ sigLength: 65 })),
    isBadRoomMessage(/signature is cut short/),
  );
  throws(() => decodeRoomMessage(rawChat({ sigLength: 63 })), isBadRoomMessage(/trailing bytes/));
});

Deno.test("decodeRoomMessage() copies its fields out of the input", () => {
  const bytes = rawChat();
  const decoded = decodeRoomMessage(bytes);
  bytes.fill(0);
  ok(decoded.type === "chat");
  deepStrictEqual(decoded.message.author, AUTHOR);
  deepStrictEqual(decoded.message.signature, new Uint8Array(64).fill(0x5a));
});

// Regression: the decoder checked only the upper bound and accepted a zero-length name.
Deno.test({
  name: "decodeRoomMessage() rejects an empty name in a Welcome or a Joined (13.1: 1 to 64 bytes)",
  fn() {
    throws(
      () => decodeRoomMessage(Uint8Array.from(welcomeBytes(ROOM, new Uint8Array(0)))),
      isBadRoomMessage(/name/),
    );
    throws(
      () => decodeRoomMessage(Uint8Array.from([0x02, 0, 0, ...be16(bob.spki.length), ...bob.spki])),
      isBadRoomMessage(/name/),
    );
  },
});

Deno.test("decodeRoomMessage() rejects an empty record's content as malformed (PROTOCOL.md 12)", () => {
  throws(() => decodeRoomMessage(new Uint8Array(0)), isBadRoomMessage(/./));
});
