/**
 * The entries of a room log: what relays publish for their connections, and the snapshots of a
 * room's state, as bytes on `securechat.room.<token>.log` and `.snapshot`. The bodies of
 * KeyPackage, Commit, Group and Direct are those of the member's relay message (13.4) after the
 * author and connection, so they are encoded and decoded by the same code as the member's
 * message. The decoder is strict: anything malformed or trailing is a ProtocolError
 * `decode_error`.
 *
 * What it does not do: apply entries (lib/cluster/room_state.ts) or publish them
 * (lib/cluster/room_log.ts).
 *
 * Mirrors: docs/PROTOCOL.md section 16.1.
 *
 * @module
 */

import { concat, u64, u8 } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import { FieldReader } from "../core/field_reader.ts";
import {
  AUTHOR_ID_LENGTH,
  decodeToRelay,
  encodeToRelay,
  RELAY_MESSAGE,
  type ToRelay,
} from "../chat/relay_messages.ts";

/** Section 16.1 entry types. */
export const ROOM_ENTRY = {
  joined: 0x01,
  keyPackage: 0x02,
  commit: 0x03,
  group: 0x04,
  direct: 0x05,
  left: 0x06,
  resumed: 0x07,
  snapshot: 0x08,
} as const;

/** Length of a connection id and of a relay id: 16 random bytes. */
export const CONNECTION_ID_LENGTH = 16;
export const RELAY_ID_LENGTH = 16;

/** Who an entry comes from: an author (13.4) and the connection it spoke on. */
interface From {
  author: Uint8Array;
  connection: Uint8Array;
}

/** One entry of a room log. */
export type RoomEntry =
  | From & { type: "joined"; relay: Uint8Array }
  /** KeyPackage, Commit, Group or Direct: a member's relay message (13.4), as it sent it. */
  | From & { type: "message"; message: ToRelay }
  | From & { type: "left" }
  | From & { type: "resumed"; relay: Uint8Array; position: bigint }
  | { type: "snapshot"; position: bigint; state: Uint8Array };

/** A member's message type on the wire, for each entry type that carries one. */
const CARRIED: Record<number, number> = {
  [ROOM_ENTRY.keyPackage]: RELAY_MESSAGE.keyPackage,
  [ROOM_ENTRY.commit]: RELAY_MESSAGE.commit,
  [ROOM_ENTRY.group]: RELAY_MESSAGE.group,
  [ROOM_ENTRY.direct]: RELAY_MESSAGE.direct,
};

const ENTRY_OF_MESSAGE: Record<ToRelay["type"], number> = {
  "key_package": ROOM_ENTRY.keyPackage,
  commit: ROOM_ENTRY.commit,
  group: ROOM_ENTRY.group,
  direct: ROOM_ENTRY.direct,
};

function sized(bytes: Uint8Array, length: number, field: string): Uint8Array {
  if (bytes.length !== length) {
    throw new RangeError(`${field} must be ${length} bytes, not ${bytes.length}`);
  }
  return bytes;
}

function from(entry: From): Uint8Array {
  return concat(
    sized(entry.author, AUTHOR_ID_LENGTH, "author"),
    sized(entry.connection, CONNECTION_ID_LENGTH, "connection"),
  );
}

/**
 * Encodes an entry.
 *
 * @throws {RangeError} on a field the entry cannot carry (ids of the wrong length, what
 *   `encodeToRelay` refuses)
 */
export function encodeRoomEntry(entry: RoomEntry): Uint8Array {
  switch (entry.type) {
    case "joined":
      return concat(
        u8(ROOM_ENTRY.joined),
        from(entry),
        sized(entry.relay, RELAY_ID_LENGTH, "relay"),
      );
    case "message":
      return concat(
        u8(ENTRY_OF_MESSAGE[entry.message.type]),
        from(entry),
        encodeToRelay(entry.message).subarray(1),
      );
    case "left":
      return concat(u8(ROOM_ENTRY.left), from(entry));
    case "resumed":
      return concat(
        u8(ROOM_ENTRY.resumed),
        from(entry),
        sized(entry.relay, RELAY_ID_LENGTH, "relay"),
        u64(entry.position),
      );
    case "snapshot":
      return concat(u8(ROOM_ENTRY.snapshot), u64(entry.position), entry.state);
  }
}

/**
 * Decodes an entry.
 *
 * @throws {ProtocolError} `decode_error` on an unknown type, a field cut short, a carried member
 *   message that does not decode (13.4), or trailing bytes
 */
export function decodeRoomEntry(bytes: Uint8Array): RoomEntry {
  const reader = new FieldReader(bytes, "room log entry", "decode_error");
  const type = reader.u8("type");
  if (type === ROOM_ENTRY.snapshot) {
    return { type: "snapshot", position: reader.u64big("position"), state: reader.rest() };
  }
  const author = reader.take(AUTHOR_ID_LENGTH, "author");
  const connection = reader.take(CONNECTION_ID_LENGTH, "connection");
  let entry: RoomEntry;
  const carried = CARRIED[type];
  if (carried !== undefined) {
    const body = reader.rest();
    let message: ToRelay;
    try {
      message = decodeToRelay(concat(u8(carried), body));
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new ProtocolError("decode_error", `a malformed room log entry: ${detail}`);
    }
    return { type: "message", author, connection, message };
  }
  switch (type) {
    case ROOM_ENTRY.joined:
      entry = { type: "joined", author, connection, relay: reader.take(RELAY_ID_LENGTH, "relay") };
      break;
    case ROOM_ENTRY.left:
      entry = { type: "left", author, connection };
      break;
    case ROOM_ENTRY.resumed: {
      const relay = reader.take(RELAY_ID_LENGTH, "relay");
      entry = { type: "resumed", author, connection, relay, position: reader.u64big("position") };
      break;
    }
    default:
      return reader.fail(`unknown entry type ${type}`);
  }
  reader.end();
  return entry;
}
