/**
 * The state machine of a clustered room: every relay serving the room applies the room log's
 * entries in order to its own copy of this state and so reaches the same decisions as the others
 * (who creates the group, which commit wins an epoch, who is admitted, who hears what). Applying
 * an entry yields deliveries: the messages of 13.4 it means for each connection, followed by a
 * Position for each member of the group that got any. A relay sends those addressed to the
 * connections it serves.
 *
 * It is pure and deterministic: no clock, no randomness, no I/O. What it does not do: check a
 * member's messages for violations and limits (the relay that took the connection does, before
 * publishing, lib/room/relay_checks.ts), or replay the log for a resuming member
 * (lib/cluster/cluster_room.ts, which uses `encode()`/`decodeRoomState()` and `apply()`).
 *
 * Mirrors: docs/PROTOCOL.md sections 16.2 (applying the log), 13.4 (Start, order, fan-out), and
 * 16.3 (the snapshot's state).
 *
 * @module
 */

import { concat, constantTimeEqual, toHex, u16, u32, u64, u8 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";
import {
  AUTHOR_ID_LENGTH,
  type FromRelay,
  NOTICE_LEVEL,
  type ToRelay,
} from "../chat/relay_messages.ts";
import { DEFAULT_MAX_MEMBERS } from "../room/limits.ts";
import { type MlsHeader, readMlsHeader } from "../room/mls_header.ts";
import { CONNECTION_ID_LENGTH, RELAY_ID_LENGTH, type RoomEntry } from "./room_entries.ts";

/** An author present in the room. */
export interface Presence {
  readonly author: Uint8Array;
  /** Its current connection and the relay serving it. */
  connection: Uint8Array;
  relay: Uint8Array;
  role: "member" | "waiting";
  /** The position of its Joined: the longest-waiting newcomer creates the group when it empties. */
  readonly arrival: bigint;
  /** Its KeyPackage while it waits: handed as a Knock to each new member. */
  keyPackage: Uint8Array | undefined;
}

/** One message for one connection. */
export interface Delivery {
  /** The author and the connection, in hex. */
  author: string;
  connection: string;
  message: FromRelay;
  /** The message is a final Notice: the relay closes the connection after it. */
  close?: boolean;
}

/** What applying an entry yields. */
export interface Applied {
  deliveries: Delivery[];
  /**
   * A Resumed was applied: the relay serving `connection` sends it the deliveries (Start
   * "resume"), then what the log yielded for `previous` after `position`, then a Position.
   */
  resume?: { author: string; connection: string; previous: string; position: bigint };
  /** What an operator may be told, without content. */
  events: string[];
}

/** Options shared by every relay of a cluster (they must agree, or their decisions differ). */
export interface RoomStateOptions {
  /** Section 13.8: authors present at once, waiting newcomers included. */
  maxMembers?: number | undefined;
}

const LAST_EPOCH = 0xffffffffffffffffn;

/** The state of one room (docs/PROTOCOL.md 16.2). */
export class RoomState {
  #maxMembers: number;
  /** The room's group id and current epoch: unknown until a Commit is applied. */
  groupId: Uint8Array | undefined;
  epoch: bigint | undefined;
  /** Authors present, by author id in hex, in order of arrival. */
  readonly present = new Map<string, Presence>();

  constructor(options: RoomStateOptions = {}) {
    this.#maxMembers = options.maxMembers ?? DEFAULT_MAX_MEMBERS;
  }

  /** The author's presence, when `connection` is its current connection. */
  current(author: Uint8Array | string, connection: Uint8Array | string): Presence | undefined {
    const presence = this.present.get(typeof author === "string" ? author : toHex(author));
    const hex = typeof connection === "string" ? connection : toHex(connection);
    return presence !== undefined && toHex(presence.connection) === hex ? presence : undefined;
  }

  #members(): Presence[] {
    return [...this.present.values()].filter((p) => p.role === "member");
  }

  /**
   * Applies the entry at `position` of the log.
   *
   * @returns the messages it means for each connection, in order, with a Position after them for
   *   each member of the group that got any
   */
  apply(position: bigint, entry: RoomEntry): Applied {
    const out: Applied = { deliveries: [], events: [] };
    switch (entry.type) {
      case "joined":
        this.#joined(position, entry, out);
        break;
      case "message": {
        const self = this.current(entry.author, entry.connection);
        if (self !== undefined) this.#message(self, entry.message, out);
        break;
      }
      case "left": {
        const self = this.current(entry.author, entry.connection);
        if (self !== undefined) this.#left(self, out);
        break;
      }
      case "resumed":
        this.#resumed(entry, out);
        return out;
      case "snapshot":
        // A relay that has the state ignores Snapshots (16.3).
        return out;
    }
    this.#positions(position, out);
    return out;
  }

  #send(out: Applied, to: Presence, message: FromRelay): void {
    out.deliveries.push({ author: toHex(to.author), connection: toHex(to.connection), message });
  }

  #toGroup(out: Applied, message: FromRelay, except?: Presence): void {
    for (const member of this.#members()) if (member !== except) this.#send(out, member, message);
  }

  /** Section 16.4: after its messages, each member that got any hears the position. */
  #positions(position: bigint, out: Applied): void {
    const told = new Set<string>();
    for (const delivery of [...out.deliveries]) {
      if (delivery.close || told.has(delivery.connection)) continue;
      told.add(delivery.connection);
      const presence = this.current(delivery.author, delivery.connection);
      if (presence?.role === "member") {
        this.#send(out, presence, { type: "position", position });
      }
    }
  }

  #refuse(out: Applied, entry: { author: Uint8Array; connection: Uint8Array }, text: string) {
    out.deliveries.push({
      author: toHex(entry.author),
      connection: toHex(entry.connection),
      message: { type: "notice", level: NOTICE_LEVEL.final, text },
      close: true,
    });
  }

  #joined(position: bigint, entry: RoomEntry & { type: "joined" }, out: Applied): void {
    const key = toHex(entry.author);
    if (this.present.has(key)) {
      out.events.push(`${key} refused: its key is already in the room`);
      return this.#refuse(out, entry, "your key is already in the room");
    }
    if (this.present.size >= this.#maxMembers) {
      out.events.push(`${key} refused: the room is full (${this.#maxMembers} members)`);
      return this.#refuse(out, entry, `the room is full (${this.#maxMembers} members)`);
    }
    const joiner: Presence = {
      author: entry.author,
      connection: entry.connection,
      relay: entry.relay,
      role: this.#members().length === 0 ? "member" : "waiting",
      arrival: position,
      keyPackage: undefined,
    };
    this.present.set(key, joiner);
    if (joiner.role === "member") {
      this.#startGroup(joiner, out);
      out.events.push(`${key} joined and creates the group (${this.present.size} present)`);
    } else {
      this.#send(out, joiner, { type: "start", role: "wait" });
      out.events.push(`${key} joined and waits to be admitted (${this.present.size} present)`);
    }
  }

  /** Section 13.4 Start: `creator` makes a new group; the room forgets the old id and epoch. */
  #startGroup(creator: Presence, out: Applied): void {
    this.groupId = undefined;
    this.epoch = undefined;
    creator.role = "member";
    creator.keyPackage = undefined;
    this.#send(out, creator, { type: "start", role: "create" });
    this.#handKnocks(creator, out);
  }

  /** Section 13.4: a new member of the group gets the Knocks of everyone still waiting. */
  #handKnocks(member: Presence, out: Applied): void {
    for (const other of this.present.values()) {
      if (other.role === "waiting" && other.keyPackage !== undefined) {
        this.#send(out, member, {
          type: "knock",
          sender: other.author,
          keyPackage: other.keyPackage,
        });
      }
    }
  }

  #left(gone: Presence, out: Applied): void {
    const key = toHex(gone.author);
    this.present.delete(key);
    this.#toGroup(out, { type: "left", sender: gone.author });
    out.events.push(`${key} left (${this.present.size} present)`);
    if (gone.role !== "member" || this.#members().length > 0) return;
    let next: Presence | undefined;
    for (const p of this.present.values()) if (!next || p.arrival < next.arrival) next = p;
    if (next === undefined) {
      this.groupId = undefined;
      this.epoch = undefined;
      return;
    }
    this.#startGroup(next, out);
    out.events.push(`the group is empty: ${toHex(next.author)} creates a new one`);
  }

  #resumed(entry: RoomEntry & { type: "resumed" }, out: Applied): void {
    const key = toHex(entry.author);
    const self = this.present.get(key);
    if (self?.role !== "member") {
      out.events.push(`${key} refused: nothing to resume`);
      return this.#refuse(out, entry, "nothing to resume: join the room again");
    }
    const previous = toHex(self.connection);
    self.connection = entry.connection;
    self.relay = entry.relay;
    this.#send(out, self, { type: "start", role: "resume" });
    out.resume = {
      author: key,
      connection: toHex(entry.connection),
      previous,
      position: entry.position,
    };
    out.events.push(`${key} resumed after position ${entry.position}`);
  }

  /**
   * KeyPackage, Commit, Group, Direct from the author's current connection. The relay that
   * published it checked it against its own view (13.4 "What the relay checks"); what depends on
   * the state is decided here, in log order, so every relay decides alike.
   */
  #message(self: Presence, message: ToRelay, out: Applied): void {
    switch (message.type) {
      case "key_package":
        // A member's (a newcomer made creator while its KeyPackage was on its way) is dropped.
        if (self.role === "member" || self.keyPackage !== undefined) return;
        self.keyPackage = message.keyPackage;
        this.#toGroup(out, { type: "knock", sender: self.author, keyPackage: message.keyPackage });
        out.events.push(`${toHex(self.author)} asks to be admitted`);
        return;
      case "commit":
        return this.#commit(self, message, out);
      case "group": {
        if (self.role !== "member") return;
        const header = headerOf(message.message);
        if (header === undefined || !this.#isOurGroup(header.groupId)) return;
        this.#toGroup(out, { type: "group", sender: self.author, message: message.message }, self);
        return;
      }
      case "direct": {
        if (self.role !== "member") return;
        const target = this.present.get(toHex(message.recipient));
        if (target?.role !== "member") {
          // Not a violation: the recipient may have left while the message was on its way.
          return this.#send(out, self, {
            type: "notice",
            level: NOTICE_LEVEL.info,
            text: "no such member in the group: the direct message was not delivered",
          });
        }
        this.#send(out, target, { type: "direct", sender: self.author, bytes: message.bytes });
        return;
      }
    }
  }

  #isOurGroup(groupId: Uint8Array): boolean {
    return this.groupId === undefined || constantTimeEqual(groupId, this.groupId);
  }

  /**
   * Section 16.2: the first Commit in the log for the room's group and current epoch is the
   * room's; every other gets Refused with the room's epoch.
   */
  #commit(self: Presence, message: ToRelay & { type: "commit" }, out: Applied): void {
    if (self.role !== "member") return;
    const header = headerOf(message.commit);
    if (header === undefined) return;
    if (this.epoch !== undefined && this.groupId !== undefined) {
      if (!constantTimeEqual(header.groupId, this.groupId) || header.epoch !== this.epoch) {
        return this.#send(out, self, { type: "refused", epoch: this.epoch });
      }
    }
    if (header.epoch === LAST_EPOCH) return;
    this.groupId = header.groupId;
    this.epoch = header.epoch + 1n;
    this.#send(out, self, { type: "accepted", epoch: header.epoch });
    this.#toGroup(out, { type: "commit", sender: self.author, commit: message.commit }, self);
    const welcomed: Presence[] = [];
    for (const recipient of message.recipients) {
      const newcomer = this.present.get(toHex(recipient));
      if (newcomer?.role !== "waiting" || message.welcome === undefined) continue;
      newcomer.role = "member";
      newcomer.keyPackage = undefined;
      this.#send(out, newcomer, { type: "welcome", sender: self.author, welcome: message.welcome });
      welcomed.push(newcomer);
    }
    // After every Welcome: a newcomer admitted by the same commit is no longer waiting.
    for (const newcomer of welcomed) this.#handKnocks(newcomer, out);
    out.events.push(`${toHex(self.author)} committed epoch ${header.epoch}`);
  }

  /** Section 16.3: the state as a Snapshot carries it. */
  encode(): Uint8Array {
    const parts: Uint8Array[] = [];
    if (this.groupId !== undefined && this.epoch !== undefined) {
      parts.push(u8(1), u16(this.groupId.length), this.groupId, u64(this.epoch));
    } else {
      parts.push(u8(0));
    }
    parts.push(u32(this.present.size));
    for (const p of this.present.values()) {
      const keyPackage = p.keyPackage ?? new Uint8Array(0);
      parts.push(
        p.author,
        p.connection,
        p.relay,
        u8(p.role === "member" ? 1 : 2),
        u64(p.arrival),
        u32(keyPackage.length),
        keyPackage,
      );
    }
    return concat(...parts);
  }
}

/**
 * Section 16.3: a state from a Snapshot's bytes.
 *
 * @throws {ProtocolError} `decode_error` on anything malformed or trailing
 */
export function decodeRoomState(bytes: Uint8Array, options: RoomStateOptions = {}): RoomState {
  const reader = new FieldReader(bytes, "room snapshot", "decode_error");
  const state = new RoomState(options);
  const known = reader.u8("group_known");
  if (known === 1) {
    state.groupId = reader.take(reader.u16("group_id_length"), "group_id");
    state.epoch = reader.u64big("epoch");
  } else if (known !== 0) {
    reader.fail(`group_known must be 0 or 1, not ${known}`);
  }
  const count = reader.u32("count");
  for (let i = 0; i < count; i++) {
    const author = reader.take(AUTHOR_ID_LENGTH, "author");
    const connection = reader.take(CONNECTION_ID_LENGTH, "connection");
    const relay = reader.take(RELAY_ID_LENGTH, "relay");
    const role = reader.u8("role");
    if (role !== 1 && role !== 2) reader.fail(`unknown role ${role}`);
    const arrival = reader.u64big("arrival");
    const keyPackage = reader.take(reader.u32("key_package_length"), "key_package");
    const key = toHex(author);
    if (state.present.has(key)) reader.fail("an author listed twice");
    state.present.set(key, {
      author,
      connection,
      relay,
      role: role === 1 ? "member" : "waiting",
      arrival,
      keyPackage: keyPackage.length > 0 ? keyPackage : undefined,
    });
  }
  reader.end();
  return state;
}

type PrivateHeader = MlsHeader & { wireFormat: "private_message" };

/** A PrivateMessage's clear header; undefined for anything else (the publisher checked it). */
function headerOf(bytes: Uint8Array): PrivateHeader | undefined {
  try {
    const header = readMlsHeader(bytes);
    return header.wireFormat === "private_message" ? header : undefined;
  } catch {
    return undefined;
  }
}
