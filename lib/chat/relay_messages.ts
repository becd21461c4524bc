/**
 * The relay messages of a room: what a member and the relay say to each other, one message per
 * application record, `type u8 || body`. MLS messages travel inside them as opaque bytes: this
 * codec frames and bounds them, it does not read them (the relay reads their clear header with
 * lib/room/mls_header.ts; members hand them to MLS).
 *
 * Every decoder is strict: a known type in the wrong direction, a field cut short, a length out of
 * bounds or a trailing byte is a `ProtocolError` with alert `decode_error`, which ends the session
 * (section 12: every record carries exactly one relay message).
 *
 * Mirrors: docs/PROTOCOL.md section 13.4.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeToRelay, encodeToRelay } from "./relay_messages.ts";
 * const message = { type: "group", message: Uint8Array.of(0, 1, 0, 2, 9) } as const;
 * deepStrictEqual(decodeToRelay(encodeToRelay(message)), message);
 * ```
 *
 * @module
 */

import { concat, u16, u32, u64, u8 } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import { FieldReader } from "../core/field_reader.ts";

/** Section 13.4 message types, both directions. */
export const RELAY_MESSAGE = {
  start: 0x01,
  notice: 0x20,
  keyPackage: 0x40,
  commit: 0x41,
  group: 0x42,
  direct: 0x43,
  knock: 0x50,
  welcome: 0x51,
  commitFromRelay: 0x52,
  accepted: 0x53,
  refused: 0x54,
  groupFromRelay: 0x55,
  directFromRelay: 0x56,
  left: 0x57,
  position: 0x58,
} as const;

/** Notice levels: `final` comes just before the relay closes the connection. */
export const NOTICE_LEVEL = { info: 0, warning: 1, final: 2 } as const;

/** Section 13.4 Start roles, as on the wire; `resume` is a clustered relay's (16.4). */
const START_ROLE = { create: 1, wait: 2, resume: 3 } as const;

/** Length of an author id (`sender`, `recipient`): the raw SHA-256 of an SPKI. */
export const AUTHOR_ID_LENGTH = 32;

/**
 * Section 13.4: the most bytes a Direct carries (opaque to the relay). 256 KiB since issue 16 (64
 * KiB before): a file's Data travels in Directs, and each one costs every layer a fixed amount
 * (seals, relay messages, promise hops); 4x fewer of them took a 128 MiB loopback `dial --send`
 * from 2.48 s to 2.38 s of CPU, both ends, 1.74 s to 1.61 s wall clock (medians of 5 interleaved
 * runs, 2-core machine under load). A Direct still fits one record (2^20, section 8.3).
 */
export const MAX_DIRECT_BYTES = 262144;

/**
 * Section 13.8: the largest relay message a member may send, 1 MiB less 32 bytes, so that what
 * the relay forwards, which adds the sender's 32-byte id, still fits one record of 2^20 bytes
 * (section 8.3). Members keep their MLS messages within it; the relay drops a larger one.
 */
export const MAX_RELAY_MESSAGE_BYTES = 2 ** 20 - 32;

/** Longest Notice text (its length is a u16). */
export const MAX_NOTICE_BYTES = 0xffff;

/** A message from a member to the relay. */
export type ToRelay =
  | { type: "key_package"; keyPackage: Uint8Array }
  | { type: "commit"; commit: Uint8Array; welcome?: Uint8Array; recipients: Uint8Array[] }
  | { type: "group"; message: Uint8Array }
  | { type: "direct"; recipient: Uint8Array; bytes: Uint8Array };

/** A message from the relay to a member. */
export type FromRelay =
  | { type: "start"; role: "create" | "wait" | "resume" }
  | { type: "notice"; level: number; text: string }
  | { type: "knock"; sender: Uint8Array; keyPackage: Uint8Array }
  | { type: "welcome"; sender: Uint8Array; welcome: Uint8Array }
  | { type: "commit"; sender: Uint8Array; commit: Uint8Array }
  | { type: "accepted"; epoch: bigint }
  | { type: "refused"; epoch: bigint }
  | { type: "group"; sender: Uint8Array; message: Uint8Array }
  | { type: "direct"; sender: Uint8Array; bytes: Uint8Array }
  | { type: "left"; sender: Uint8Array }
  /** Section 16.4, from a clustered relay only: all the room log held for you up to here was sent. */
  | { type: "position"; position: bigint };

function authorId(id: Uint8Array, field: string): Uint8Array {
  if (id.length !== AUTHOR_ID_LENGTH) {
    throw new RangeError(`${field} must be ${AUTHOR_ID_LENGTH} bytes, not ${id.length}`);
  }
  return id;
}

function mlsMessage(bytes: Uint8Array, field: string): Uint8Array {
  if (bytes.length === 0) throw new RangeError(`${field} must not be empty`);
  return bytes;
}

function directBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 1 || bytes.length > MAX_DIRECT_BYTES) {
    throw new RangeError(`a Direct carries 1 to ${MAX_DIRECT_BYTES} bytes, not ${bytes.length}`);
  }
  return bytes;
}

/**
 * Encodes a message for the relay.
 *
 * @throws {RangeError} on a field the protocol cannot carry (an author id not 32 bytes, an empty
 *   MLS message, a Direct of 0 or more than MAX_DIRECT_BYTES bytes, recipients without a Welcome)
 */
export function encodeToRelay(message: ToRelay): Uint8Array {
  switch (message.type) {
    case "key_package":
      return concat(u8(RELAY_MESSAGE.keyPackage), mlsMessage(message.keyPackage, "keyPackage"));
    case "commit": {
      const welcome = message.welcome ?? new Uint8Array(0);
      if (message.welcome !== undefined) mlsMessage(welcome, "welcome");
      if (message.welcome === undefined && message.recipients.length > 0) {
        throw new RangeError("a Commit lists recipients only with a Welcome");
      }
      return concat(
        u8(RELAY_MESSAGE.commit),
        u32(mlsMessage(message.commit, "commit").length),
        message.commit,
        u32(welcome.length),
        welcome,
        u16(message.recipients.length),
        ...message.recipients.map((id) => authorId(id, "recipient")),
      );
    }
    case "group":
      return concat(u8(RELAY_MESSAGE.group), mlsMessage(message.message, "message"));
    case "direct":
      return concat(
        u8(RELAY_MESSAGE.direct),
        authorId(message.recipient, "recipient"),
        directBytes(message.bytes),
      );
  }
}

/** A member's MLS message as the relay passes it on: `type || sender || MLSMessage` (13.4). */
function senderAndMls(
  type: number,
  sender: Uint8Array,
  mls: Uint8Array,
  field: string,
): Uint8Array {
  return concat(u8(type), authorId(sender, "sender"), mlsMessage(mls, field));
}

/**
 * Encodes a message from the relay.
 *
 * @throws {RangeError} on a field the protocol cannot carry (as `encodeToRelay`, and a Notice
 *   text over MAX_NOTICE_BYTES, a level or epoch out of range)
 */
export function encodeFromRelay(message: FromRelay): Uint8Array {
  switch (message.type) {
    case "start":
      return Uint8Array.of(RELAY_MESSAGE.start, START_ROLE[message.role]);
    case "notice": {
      const text = new TextEncoder().encode(message.text);
      if (text.length > MAX_NOTICE_BYTES) throw new RangeError("notice text too long");
      return concat(u8(RELAY_MESSAGE.notice), u8(message.level), u16(text.length), text);
    }
    case "knock":
      return senderAndMls(RELAY_MESSAGE.knock, message.sender, message.keyPackage, "keyPackage");
    case "welcome":
      return senderAndMls(RELAY_MESSAGE.welcome, message.sender, message.welcome, "welcome");
    case "commit":
      return senderAndMls(RELAY_MESSAGE.commitFromRelay, message.sender, message.commit, "commit");
    case "accepted":
      return concat(u8(RELAY_MESSAGE.accepted), u64(message.epoch));
    case "refused":
      return concat(u8(RELAY_MESSAGE.refused), u64(message.epoch));
    case "group":
      return senderAndMls(RELAY_MESSAGE.groupFromRelay, message.sender, message.message, "message");
    case "direct":
      return concat(
        u8(RELAY_MESSAGE.directFromRelay),
        authorId(message.sender, "sender"),
        directBytes(message.bytes),
      );
    case "left":
      return concat(u8(RELAY_MESSAGE.left), authorId(message.sender, "sender"));
    case "position":
      return concat(u8(RELAY_MESSAGE.position), u64(message.position));
  }
}

/** The rest of the body as an MLS message, which must not be empty. */
function readMlsMessage(reader: FieldReader, field: string): Uint8Array {
  const bytes = reader.rest();
  if (bytes.length === 0) reader.fail(`${field} is empty`);
  return bytes;
}

function readDirectBytes(reader: FieldReader): Uint8Array {
  const bytes = reader.rest();
  if (bytes.length === 0) reader.fail("the Direct is empty");
  if (bytes.length > MAX_DIRECT_BYTES) reader.fail(`the Direct is over ${MAX_DIRECT_BYTES} bytes`);
  return bytes;
}

function typeOf(bytes: Uint8Array, reader: FieldReader): number {
  if (bytes.length === 0) reader.fail("empty record");
  return reader.u8("type");
}

function wrongDirection(type: number, who: string): never {
  const hex = `0x${type.toString(16).padStart(2, "0")}`;
  throw new ProtocolError(
    "decode_error",
    `peer sent a malformed relay message: type ${hex} is not one ${who} sends`,
  );
}

/**
 * Decodes a message from a member (what the relay receives).
 *
 * @throws {ProtocolError} `decode_error` on anything malformed: an unknown type or one only the
 *   relay sends, a field cut short or out of bounds, trailing bytes
 */
export function decodeToRelay(bytes: Uint8Array): ToRelay {
  const reader = new FieldReader(bytes, "relay message", "decode_error");
  const type = typeOf(bytes, reader);
  let message: ToRelay;
  switch (type) {
    case RELAY_MESSAGE.keyPackage:
      message = { type: "key_package", keyPackage: readMlsMessage(reader, "the KeyPackage") };
      break;
    case RELAY_MESSAGE.commit: {
      const commit = reader.take(reader.u32("commit_length"), "commit");
      if (commit.length === 0) reader.fail("the commit is empty");
      const welcome = reader.take(reader.u32("welcome_length"), "welcome");
      const count = reader.u16("count");
      const recipients: Uint8Array[] = [];
      for (let i = 0; i < count; i++) recipients.push(reader.take(AUTHOR_ID_LENGTH, "recipient"));
      if (welcome.length === 0 && count > 0) reader.fail("recipients without a Welcome");
      message = welcome.length === 0
        ? { type: "commit", commit, recipients }
        : { type: "commit", commit, welcome, recipients };
      break;
    }
    case RELAY_MESSAGE.group:
      message = { type: "group", message: readMlsMessage(reader, "the group message") };
      break;
    case RELAY_MESSAGE.direct: {
      const recipient = reader.take(AUTHOR_ID_LENGTH, "recipient");
      message = { type: "direct", recipient, bytes: readDirectBytes(reader) };
      break;
    }
    default:
      return wrongDirection(type, "a member");
  }
  reader.end();
  return message;
}

/**
 * Decodes a message from the relay (what a member receives).
 *
 * @throws {ProtocolError} `decode_error` on anything malformed: an unknown type or one only
 *   members send, an unknown Start role, a field cut short or out of bounds, a Notice text that is
 *   not UTF-8, trailing bytes
 */
export function decodeFromRelay(bytes: Uint8Array): FromRelay {
  const reader = new FieldReader(bytes, "relay message", "decode_error");
  const type = typeOf(bytes, reader);
  let message: FromRelay;
  switch (type) {
    case RELAY_MESSAGE.start: {
      const role = reader.u8("role");
      if (role === START_ROLE.create) message = { type: "start", role: "create" };
      else if (role === START_ROLE.wait) message = { type: "start", role: "wait" };
      else if (role === START_ROLE.resume) message = { type: "start", role: "resume" };
      else return reader.fail(`unknown Start role ${role}`);
      break;
    }
    case RELAY_MESSAGE.notice: {
      const level = reader.u8("level");
      const text = reader.text(reader.u16("text_length"), MAX_NOTICE_BYTES, "text");
      message = { type: "notice", level, text };
      break;
    }
    case RELAY_MESSAGE.knock: {
      const sender = reader.take(AUTHOR_ID_LENGTH, "sender");
      message = { type: "knock", sender, keyPackage: readMlsMessage(reader, "the KeyPackage") };
      break;
    }
    case RELAY_MESSAGE.welcome: {
      const sender = reader.take(AUTHOR_ID_LENGTH, "sender");
      message = { type: "welcome", sender, welcome: readMlsMessage(reader, "the Welcome") };
      break;
    }
    case RELAY_MESSAGE.commitFromRelay: {
      const sender = reader.take(AUTHOR_ID_LENGTH, "sender");
      message = { type: "commit", sender, commit: readMlsMessage(reader, "the commit") };
      break;
    }
    case RELAY_MESSAGE.accepted:
      message = { type: "accepted", epoch: reader.u64big("epoch") };
      break;
    case RELAY_MESSAGE.refused:
      message = { type: "refused", epoch: reader.u64big("epoch") };
      break;
    case RELAY_MESSAGE.groupFromRelay: {
      const sender = reader.take(AUTHOR_ID_LENGTH, "sender");
      message = { type: "group", sender, message: readMlsMessage(reader, "the group message") };
      break;
    }
    case RELAY_MESSAGE.directFromRelay: {
      const sender = reader.take(AUTHOR_ID_LENGTH, "sender");
      message = { type: "direct", sender, bytes: readDirectBytes(reader) };
      break;
    }
    case RELAY_MESSAGE.left:
      message = { type: "left", sender: reader.take(AUTHOR_ID_LENGTH, "sender") };
      break;
    case RELAY_MESSAGE.position:
      message = { type: "position", position: reader.u64big("position") };
      break;
    default:
      return wrongDirection(type, "the relay");
  }
  reader.end();
  return message;
}
