/**
 * What members say to each other inside the group: the plaintext of MLS application messages
 * (Chat, Sealed) and of Sealed envelopes (Private; transfer messages are section 14's). Encoders
 * and strict decoders only: MLS encrypts, authenticates and names the sender, lib/group seals to
 * one member, lib/room decides what to do with each.
 *
 * Mirrors: docs/PROTOCOL.md section 13.5.
 *
 * @module
 */

import { concat, u16, u64, u8, utf8 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";

/** Section 13.5: types of an application message's content and of a Sealed plaintext. */
export const ROOM_CONTENT = { chat: 0x10, sealed: 0x11, private: 0x12 } as const;

/** Section 13.5 chat kinds. */
export const CHAT_KIND = { text: 1, action: 2 } as const;

/** The longest chat or private text, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 4096;

/** A line to the whole room. */
export interface Chat {
  type: "chat";
  kind: "text" | "action";
  /** The author's clock, milliseconds since the epoch. */
  timestamp: number;
  text: string;
}

/** What an application message carries. */
export type RoomContent =
  | Chat
  /** `body` is what lib/group's seal() made: recipient, HPKE enc and ciphertext. */
  | { type: "sealed"; recipient: Uint8Array; body: Uint8Array };

/** What a Sealed envelope carries for its one recipient. */
export type SealedContent =
  | { type: "private"; timestamp: number; text: string }
  /** A section 14 transfer message, handed to the transfer layer as it is. */
  | { type: "transfer"; message: Uint8Array };

/** Transfer messages take types 0x30 to 0x39 (section 14.1). */
function isTransferType(type: number): boolean {
  return type >= 0x30 && type <= 0x39;
}

/** Encodes a Chat. */
export function encodeChat(chat: Omit<Chat, "type">): Uint8Array {
  const text = utf8(chat.text);
  return concat(
    u8(ROOM_CONTENT.chat),
    u8(CHAT_KIND[chat.kind]),
    u64(BigInt(chat.timestamp)),
    u16(text.length),
    text,
  );
}

/** Encodes a Sealed around what lib/group's seal() returned (it starts with the recipient). */
export function encodeSealed(sealedBody: Uint8Array): Uint8Array {
  return concat(u8(ROOM_CONTENT.sealed), sealedBody);
}

/** Encodes a private line, the plaintext of a Sealed. */
export function encodePrivate(timestamp: number, text: string): Uint8Array {
  const bytes = utf8(text);
  return concat(u8(ROOM_CONTENT.private), u64(BigInt(timestamp)), u16(bytes.length), bytes);
}

/**
 * Decodes an application message's content.
 *
 * @throws {ProtocolError} `decode_error` for an unknown type, a bad field or trailing bytes
 */
export function decodeRoomContent(bytes: Uint8Array): RoomContent {
  const reader = new FieldReader(bytes, "room message");
  const type = reader.u8("type");
  if (type === ROOM_CONTENT.chat) {
    const kindCode = reader.u8("kind");
    const kind = kindCode === CHAT_KIND.text
      ? "text"
      : kindCode === CHAT_KIND.action
      ? "action"
      : reader.fail(`unknown chat kind ${kindCode}`);
    const timestamp = reader.u64("timestamp");
    const text = readText(reader);
    reader.end();
    return { type: "chat", kind, timestamp, text };
  }
  if (type === ROOM_CONTENT.sealed) {
    const body = reader.rest();
    if (body.length < 32) reader.fail("recipient is cut short");
    return { type: "sealed", recipient: body.slice(0, 32), body };
  }
  return reader.fail(`unknown type 0x${type.toString(16).padStart(2, "0")}`);
}

/**
 * Decodes the plaintext of a Sealed envelope.
 *
 * @throws {ProtocolError} `decode_error` for an unknown type, a bad field or trailing bytes
 */
export function decodeSealedContent(bytes: Uint8Array): SealedContent {
  const reader = new FieldReader(bytes, "private message");
  const type = reader.u8("type");
  if (type === ROOM_CONTENT.private) {
    const timestamp = reader.u64("timestamp");
    const text = readText(reader);
    reader.end();
    return { type: "private", timestamp, text };
  }
  if (isTransferType(type)) return { type: "transfer", message: bytes };
  return reader.fail(`unknown type 0x${type.toString(16).padStart(2, "0")}`);
}

function readText(reader: FieldReader): string {
  const length = reader.u16("text_length");
  if (length === 0) reader.fail("text is empty");
  return reader.text(length, MAX_TEXT_BYTES, "text");
}
