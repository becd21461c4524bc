/**
 * Room messages (Welcome, Joined, Left, Chat, Notice) and the signatures that make a chat message
 * unforgeable by the relay: encoders, strict decoders, and sign/verify over the canonical form.
 *
 * It does not keep state (rosters, counters, limits): room_roster.ts, chat_signer.ts and
 * lib/room/relay.ts do.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.1 and 13.2.
 *
 * @module
 */

import { concat, fromBase64, toBase64, u16, u64, u8, utf8 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";
import {
  type Identity,
  type PublicIdentity,
  signTranscript,
  verifyTranscript,
} from "../keys/identity.ts";

/** Section 13.1 message types. */
export const ROOM_MESSAGE = {
  welcome: 0x01,
  joined: 0x02,
  left: 0x03,
  chat: 0x10,
  notice: 0x20,
} as const;

/** Section 13.1 Joined flags. */
export const JOINED_FLAG = { host: 0x01, present: 0x02, you: 0x04 } as const;

/** Section 13.2 chat kinds. */
export const CHAT_KIND = { text: 1, action: 2, private: 3 } as const;

/** A chat kind's number on the wire. */
export type ChatKind = (typeof CHAT_KIND)[keyof typeof CHAT_KIND];

/** The name each chat kind has in events and `--json` output (`ChatEvent` "message"). */
export const CHAT_KIND_NAME: Readonly<Record<ChatKind, "text" | "action" | "private">> = {
  [CHAT_KIND.text]: "text",
  [CHAT_KIND.action]: "action",
  [CHAT_KIND.private]: "private",
};

/** Section 13.1 Notice levels: information, a warning, or the last word before a disconnect. */
export const NOTICE_LEVEL = { info: 0, warning: 1, final: 2 } as const;

/** A notice level's number on the wire. */
export type NoticeLevel = (typeof NOTICE_LEVEL)[keyof typeof NOTICE_LEVEL];

/** Section 13.2: signature context. */
export const ROOM_SIGNATURE_CONTEXT = "securechat/1 room message";

/** Section 13.1 limits. */
export const ROOM_ID_LENGTH = 16;
export const MAX_TEXT_BYTES = 4096;
export const MAX_NOTICE_BYTES = 512;
export const MAX_ROOM_NAME_BYTES = 64;
export const AUTHOR_LENGTH = 32;

/** A decoded room message. */
export type RoomMessage =
  | { type: "welcome"; roomId: Uint8Array; name: string }
  | { type: "joined"; flags: number; name: string; spki: Uint8Array }
  | { type: "left"; author: Uint8Array; reason: string }
  | { type: "chat"; message: SignedChat }
  | { type: "notice"; level: NoticeLevel; text: string };

/** Section 13.2: a chat message with its signature. */
export interface SignedChat {
  author: Uint8Array;
  counter: bigint;
  timestamp: number;
  kind: ChatKind;
  recipient: Uint8Array;
  text: string;
  signature: Uint8Array;
}

function shortText(text: string, max: number): Uint8Array {
  const bytes = utf8(text);
  if (bytes.length > max) throw new RangeError(`text longer than ${max} bytes`);
  return bytes;
}

/** Section 13.1: names are 1 to 64 bytes (the relay never hands out an empty one). */
function encodeName(name: string): Uint8Array {
  const bytes = shortText(name, MAX_ROOM_NAME_BYTES);
  if (bytes.length === 0) throw new RangeError("a name must not be empty");
  return bytes;
}

function readName(r: FieldReader): string {
  const length = r.u8("name_length");
  if (length === 0) r.fail("empty name");
  return r.text(length, MAX_ROOM_NAME_BYTES, "name");
}

/** Encodes a Welcome. */
export function encodeWelcome(roomId: Uint8Array, name: string): Uint8Array {
  const encoded = encodeName(name);
  return concat(u8(ROOM_MESSAGE.welcome), roomId, u8(encoded.length), encoded);
}

/** Encodes a Joined. */
export function encodeJoined(flags: number, name: string, spki: Uint8Array): Uint8Array {
  const encoded = encodeName(name);
  return concat(
    u8(ROOM_MESSAGE.joined),
    u8(flags),
    u8(encoded.length),
    encoded,
    u16(spki.length),
    spki,
  );
}

/** Encodes a Left. */
export function encodeLeft(author: Uint8Array, reason: string): Uint8Array {
  const reasonBytes = shortText(reason, 255);
  return concat(u8(ROOM_MESSAGE.left), author, u8(reasonBytes.length), reasonBytes);
}

/** Encodes a Notice. */
export function encodeNotice(level: NoticeLevel, text: string): Uint8Array {
  const textBytes = shortText(text, MAX_NOTICE_BYTES);
  return concat(u8(ROOM_MESSAGE.notice), u8(level), u16(textBytes.length), textBytes);
}

/** The signed part of a chat message (section 13.2), without context and room. */
function chatFields(chat: Omit<SignedChat, "signature">): Uint8Array {
  const text = shortText(chat.text, MAX_TEXT_BYTES);
  return concat(
    chat.author,
    u64(chat.counter),
    u64(BigInt(chat.timestamp)),
    u8(chat.kind),
    chat.recipient,
    u16(text.length),
    text,
  );
}

function signedContent(roomId: Uint8Array, chat: Omit<SignedChat, "signature">): Uint8Array {
  return concat(utf8(ROOM_SIGNATURE_CONTEXT), u8(0), roomId, chatFields(chat));
}

/** Signs a chat message with our identity (section 13.2). */
export async function signChat(
  identity: Identity,
  roomId: Uint8Array,
  chat: Omit<SignedChat, "signature">,
): Promise<SignedChat> {
  const signature = await signTranscript(identity, signedContent(roomId, chat));
  return { ...chat, signature };
}

/** Verifies a chat message against its claimed author's key. Never throws on bad input. */
export async function verifyChat(
  author: PublicIdentity,
  roomId: Uint8Array,
  chat: SignedChat,
): Promise<boolean> {
  try {
    return await verifyTranscript(author, signedContent(roomId, chat), chat.signature);
  } catch {
    return false;
  }
}

/** Encodes a Chat message. */
export function encodeChat(chat: SignedChat): Uint8Array {
  return concat(
    u8(ROOM_MESSAGE.chat),
    chatFields(chat),
    u16(chat.signature.length),
    chat.signature,
  );
}

/** Decodes one room message. @throws {ProtocolError} `bad_room_message` */
export function decodeRoomMessage(
  bytes: Uint8Array,
  options: { maxTextBytes?: number } = {},
): RoomMessage {
  const r = new FieldReader(bytes, "room message", "bad_room_message");
  const type = r.u8("type");
  let message: RoomMessage;
  switch (type) {
    case ROOM_MESSAGE.welcome: {
      const roomId = r.take(ROOM_ID_LENGTH, "room_id");
      message = { type: "welcome", roomId, name: readName(r) };
      break;
    }
    case ROOM_MESSAGE.joined: {
      const flags = r.u8("flags");
      const name = readName(r);
      const spki = r.take(r.u16("spki_length"), "spki");
      message = { type: "joined", flags, name, spki };
      break;
    }
    case ROOM_MESSAGE.left: {
      const author = r.take(AUTHOR_LENGTH, "author");
      message = { type: "left", author, reason: r.text(r.u8("reason_length"), 255, "reason") };
      break;
    }
    case ROOM_MESSAGE.chat: {
      const author = r.take(AUTHOR_LENGTH, "author");
      const counter = r.u64big("counter");
      const timestamp = r.u64big("timestamp");
      const kind = r.u8("kind");
      if (kind < 1 || kind > 3) r.fail(`unknown chat kind ${kind}`);
      const recipient = r.take(AUTHOR_LENGTH, "recipient");
      const textLength = r.u16("text_length");
      if (textLength === 0) r.fail("empty text");
      const text = r.text(textLength, options.maxTextBytes ?? MAX_TEXT_BYTES, "text");
      const signature = r.take(r.u16("sig_length"), "signature");
      if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) r.fail("timestamp out of range");
      message = {
        type: "chat",
        message: {
          author,
          counter,
          timestamp: Number(timestamp),
          kind: kind as ChatKind,
          recipient,
          text,
          signature,
        },
      };
      break;
    }
    case ROOM_MESSAGE.notice: {
      const level = r.u8("level");
      if (level > NOTICE_LEVEL.final) r.fail(`unknown notice level ${level}`);
      const text = r.text(r.u16("text_length"), MAX_NOTICE_BYTES, "text");
      message = { type: "notice", level: level as NoticeLevel, text };
      break;
    }
    default:
      return r.fail(`unknown message type 0x${type.toString(16)}`);
  }
  r.end();
  return message;
}

/** The raw 32-byte author id of a fingerprint ("SHA256:" + base64). */
export function authorOf(fingerprint: string): Uint8Array {
  return fromBase64(fingerprint.slice("SHA256:".length));
}

/** The fingerprint of a raw 32-byte author id. */
export function fingerprintOfAuthor(author: Uint8Array): string {
  return "SHA256:" + toBase64(author).replace(/=+$/, "");
}
