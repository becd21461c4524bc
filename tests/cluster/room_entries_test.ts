import { deepStrictEqual, throws } from "node:assert/strict";
import { concat, u8 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  decodeRoomEntry,
  encodeRoomEntry,
  ROOM_ENTRY,
  type RoomEntry,
} from "../../lib/cluster/room_entries.ts";
import { keyPackage, privateMessage, random, welcome } from "../_helpers/mls_messages.ts";

const author = random(32);
const connection = random(16);
const relay = random(16);
const commit = privateMessage({ groupId: random(8), epoch: 3n, contentType: "commit" });

const entries: RoomEntry[] = [
  { type: "joined", author, connection, relay },
  {
    type: "message",
    author,
    connection,
    message: { type: "key_package", keyPackage: keyPackage() },
  },
  {
    type: "message",
    author,
    connection,
    message: { type: "commit", commit, welcome: welcome(), recipients: [random(32), random(32)] },
  },
  { type: "message", author, connection, message: { type: "commit", commit, recipients: [] } },
  { type: "message", author, connection, message: { type: "group", message: commit } },
  {
    type: "message",
    author,
    connection,
    message: { type: "direct", recipient: random(32), bytes: random(100) },
  },
  { type: "left", author, connection },
  { type: "resumed", author, connection, relay, position: 0xfedcba9876543210n },
  { type: "snapshot", position: 77n, state: random(40) },
];

Deno.test("encodeRoomEntry() and decodeRoomEntry() round-trip every entry type", () => {
  for (const entry of entries) deepStrictEqual(decodeRoomEntry(encodeRoomEntry(entry)), entry);
});

Deno.test("encodeRoomEntry() puts the type of 16.1 first and author || connection next", () => {
  const types = entries.map((entry) => encodeRoomEntry(entry)[0]);
  deepStrictEqual(types, [1, 2, 3, 3, 4, 5, 6, 7, 8]);
  deepStrictEqual(
    encodeRoomEntry({ type: "left", author, connection }),
    concat(u8(ROOM_ENTRY.left), author, connection),
  );
});

Deno.test("decodeRoomEntry() refuses malformed entries with decode_error", () => {
  const bad = [
    new Uint8Array(0),
    Uint8Array.of(0x09, ...author, ...connection),
    Uint8Array.of(0x00, ...author, ...connection),
    concat(u8(ROOM_ENTRY.joined), author, connection, relay.subarray(1)),
    concat(u8(ROOM_ENTRY.joined), author, connection, relay, u8(0)),
    concat(u8(ROOM_ENTRY.left), author, connection.subarray(2)),
    concat(u8(ROOM_ENTRY.left), author, connection, u8(1)),
    concat(u8(ROOM_ENTRY.group), author, connection),
    concat(u8(ROOM_ENTRY.direct), author, connection, random(32)),
    concat(u8(ROOM_ENTRY.commit), author, connection, Uint8Array.of(0, 0, 0, 9, 1)),
    concat(u8(ROOM_ENTRY.resumed), author, connection, relay, Uint8Array.of(1, 2, 3)),
    Uint8Array.of(ROOM_ENTRY.snapshot, 0, 0, 0),
  ];
  for (const bytes of bad) {
    throws(
      () => decodeRoomEntry(bytes),
      (error) => error instanceof ProtocolError && error.code === "decode_error",
    );
  }
});

Deno.test("encodeRoomEntry() refuses ids of the wrong length", () => {
  throws(() => encodeRoomEntry({ type: "left", author: random(31), connection }), RangeError);
  throws(
    () => encodeRoomEntry({ type: "joined", author, connection, relay: random(15) }),
    RangeError,
  );
});
