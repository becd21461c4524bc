/**
 * What members say inside the group (PROTOCOL.md 13.5): Chat, Sealed and Private round trips,
 * and strict decoding of everything else.
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  decodeRoomContent,
  decodeSealedContent,
  encodeChat,
  encodePrivate,
  encodeSealed,
  MAX_TEXT_BYTES,
} from "../../lib/chat/room_content.ts";
import { ProtocolError } from "../../lib/core/errors.ts";

Deno.test("Chat round-trips its kind, time and text", () => {
  const chat = { kind: "action" as const, timestamp: 1_700_000_000_123, text: "waves ✋" };
  deepStrictEqual(decodeRoomContent(encodeChat(chat)), { type: "chat", ...chat });
  const bytes = encodeChat({ kind: "text", timestamp: 5, text: "hi" });
  deepStrictEqual([...bytes.subarray(0, 2)], [0x10, 1]);
  strictEqual(bytes.length, 1 + 1 + 8 + 2 + 2);
});

Deno.test("Sealed keeps its body whole and names the recipient from its first 32 bytes", () => {
  const body = crypto.getRandomValues(new Uint8Array(100));
  const decoded = decodeRoomContent(encodeSealed(body));
  deepStrictEqual(decoded, { type: "sealed", recipient: body.slice(0, 32), body });
});

Deno.test("Private and transfer messages come out of a Sealed plaintext", () => {
  deepStrictEqual(decodeSealedContent(encodePrivate(42, "psst")), {
    type: "private",
    timestamp: 42,
    text: "psst",
  });
  const transfer = Uint8Array.of(0x31, ...new Uint8Array(48));
  deepStrictEqual(decodeSealedContent(transfer), { type: "transfer", message: transfer });
});

Deno.test("room content decoders refuse anything malformed with decode_error", () => {
  const longest = encodeChat({ kind: "text", timestamp: 0, text: "x".repeat(MAX_TEXT_BYTES) });
  strictEqual(decodeRoomContent(longest).type, "chat");
  const bad: [string, Uint8Array, (bytes: Uint8Array) => unknown][] = [
    ["empty", new Uint8Array(0), decodeRoomContent],
    ["unknown type", Uint8Array.of(0x13), decodeRoomContent],
    ["a Private outside a Sealed", encodePrivate(1, "x"), decodeRoomContent],
    [
      "unknown chat kind",
      Uint8Array.of(0x10, 3, ...new Uint8Array(8), 0, 1, 0x41),
      decodeRoomContent,
    ],
    ["empty text", encodeChat({ kind: "text", timestamp: 0, text: "" }), decodeRoomContent],
    [
      "trailing bytes",
      Uint8Array.of(...encodeChat({ kind: "text", timestamp: 0, text: "a" }), 0),
      decodeRoomContent,
    ],
    [
      "cut short",
      encodeChat({ kind: "text", timestamp: 0, text: "abc" }).subarray(0, 13),
      decodeRoomContent,
    ],
    [
      "text over 4096 bytes",
      encodeChat({ kind: "text", timestamp: 0, text: "x".repeat(MAX_TEXT_BYTES + 1) }),
      decodeRoomContent,
    ],
    ["not UTF-8", Uint8Array.of(0x10, 1, ...new Uint8Array(8), 0, 1, 0xff), decodeRoomContent],
    [
      "a Sealed too short for its recipient",
      Uint8Array.of(0x11, ...new Uint8Array(31)),
      decodeRoomContent,
    ],
    [
      "a Chat inside a Sealed",
      encodeChat({ kind: "text", timestamp: 0, text: "a" }),
      decodeSealedContent,
    ],
    [
      "a Private with trailing bytes",
      Uint8Array.of(...encodePrivate(0, "a"), 1),
      decodeSealedContent,
    ],
  ];
  for (const [what, bytes, decode] of bad) {
    throws(() => decode(bytes), ProtocolError, what);
  }
});
