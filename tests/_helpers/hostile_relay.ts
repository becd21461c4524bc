/**
 * A hostile relay for tests: it speaks the room protocol of docs/PROTOCOL.md 13.4 to real
 * members (`joinRoom()` over real loopback SecureConnections, the real handshake and
 * SessionHello), and lets the test decide what becomes of every message it would deliver:
 * forward, drop, alter, replay, reorder, send elsewhere (`route`), or make up its own
 * (`inject`). Left alone it behaves as an honest relay: Start, Knocks, one accepted Commit per
 * epoch (Accepted, the Commit to the others, the Welcome to the listed newcomers), fan-out of
 * Group messages, Directs, Left.
 *
 * It serves several rooms at once (`room` in `join()`), each with its own group, so a test can
 * carry one room's messages into another; `acceptEveryCommit` makes it accept two commits for
 * one epoch, the first step of splitting a room into two groups; `neverCreate` tells everyone to
 * wait, so that it can make a room of its own around their KeyPackages. It also keeps every message
 * members sent it (`heard`), for the test to replay or alter later.
 *
 * What it does not do: apply the limits of 13.8 or the checks of the real relay
 * (lib/room/relay.ts): it is as lax as an attacker's relay would be. It holds no group secret;
 * what a relay can make with MLS on its own (a group of its own, a look-alike of the room's)
 * is in `tests/adversary/malicious_relay_test.ts`.
 *
 * @module
 */

import { constantTimeEqual, sha256 } from "../../lib/core/bytes.ts";
import {
  decodeToRelay,
  encodeFromRelay,
  type FromRelay,
  type ToRelay,
} from "../../lib/chat/relay_messages.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { type JoinOptions, joinRoom } from "../../lib/room/member.ts";
import { readMlsHeader } from "../../lib/room/mls_header.ts";
import type { RoomConnection } from "../../lib/room/room_connection.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import { RelayPeer, securePairFor } from "./relay_peers.ts";
import { type TestMember, watch } from "./room.ts";

/** A connection as the hostile relay sees it. */
export interface End {
  /** The name the member asked to be shown as (what tests route by). */
  readonly name: string;
  readonly identity: Identity;
  /** The raw SHA-256 of its SPKI: `sender` and `recipient` on the wire. */
  readonly author: Uint8Array;
  /** The room it joined. */
  readonly room: string;
  /** In the group (it created it, or was handed a Welcome), or waiting to be admitted. */
  role: "member" | "waiting";
  /** Its KeyPackage while it waits. */
  keyPackage: Uint8Array | undefined;
}

/** One message the relay is about to deliver. */
export interface Delivery {
  to: End;
  /** Whose message it carries (Knock, Welcome, Commit, Group, Direct, Left), if anyone's. */
  from: End | undefined;
  message: FromRelay;
}

/**
 * What the test does with a delivery: the messages to send instead (none drops it, two replay
 * it, an altered copy alters it), or undefined to forward it unchanged.
 */
export type Route = (delivery: Delivery) => FromRelay[] | undefined;

/** A message a member sent the relay. */
export interface Heard {
  from: End;
  message: ToRelay;
}

/** What the relay read of a room's group from the clear headers of its commits. */
export interface RoomGroupHeader {
  groupId: Uint8Array;
  epoch: bigint;
}

interface Served extends End {
  connection: RoomConnection;
  /** Sends in call order. */
  sending: Promise<void>;
}

interface Room {
  group: RoomGroupHeader | undefined;
  ends: Served[];
}

/** An attacker's relay (see the module comment). */
export class HostileRelay {
  readonly identity: Identity;
  /** Every message members sent, in the order the relay read them. */
  readonly heard: Heard[] = [];
  /** The test's say over every delivery; unset, everything is forwarded. */
  route: Route | undefined;
  /** Accept every commit, not only the first for the room's epoch (to split a room). */
  acceptEveryCommit = false;
  /** Tells each newcomer to wait, even the first in an empty room (to make a room of its own). */
  neverCreate = false;
  #rooms = new Map<string, Room>();
  #waiters: (() => void)[] = [];
  #serving: Promise<void>[] = [];

  constructor(identity: Identity) {
    this.identity = identity;
  }

  /**
   * Joins `identity` to `room` with `joinRoom()` over a real loopback SecureConnection.
   *
   * @param options the member's join options, and the room (default "1")
   */
  async join(
    identity: Identity,
    options: Omit<JoinOptions, "identity"> & { room?: string } = {},
  ): Promise<TestMember> {
    const { room = "1", ...joinOptions } = options;
    const { memberSide, relaySide } = await securePairFor(identity, this.identity);
    this.#serving.push(this.#serve(relaySide, identity, joinOptions.name, room));
    const session = await joinRoom(memberSide, { identity, ...joinOptions });
    return Object.assign(watch(identity, session), { connection: memberSide });
  }

  /**
   * Connects `identity` to `room` as a client driven by hand (a member's modified client): the
   * SessionHello is exchanged, and everything the relay sends lands in the peer's inbox, Start
   * first.
   */
  async connect(identity: Identity, name: string, room = "1"): Promise<RelayPeer> {
    const { memberSide, relaySide } = await securePairFor(identity, this.identity);
    const served = this.#serve(relaySide, identity, name, room);
    this.#serving.push(served);
    await exchangeSessionHello(memberSide, "chat");
    return new RelayPeer(identity, await sha256(identity.spki), memberSide, served)
      .startReading();
  }

  /** The connection of the member called `name` (the name it joined with). */
  end(name: string): End {
    for (const room of this.#rooms.values()) {
      const found = room.ends.find((end) => end.name === name);
      if (found) return found;
    }
    throw new Error(`no connection called "${name}"`);
  }

  /** The group of `room` as its commits' clear headers showed it. */
  group(room = "1"): RoomGroupHeader {
    const group = this.#rooms.get(room)?.group;
    if (!group) throw new Error(`room "${room}" has no accepted commit yet`);
    return group;
  }

  /** Sends `message` to `to` as it is, past `route`: the relay's own making. */
  inject(to: End, message: FromRelay): void {
    this.#send(to as Served, message);
  }

  /** Resolves with the first message heard (now or later) that `predicate` picks. */
  async hear(predicate: (heard: Heard) => boolean, what = "a message"): Promise<Heard> {
    const deadline = Date.now() + 20_000;
    while (true) {
      const found = this.heard.find(predicate);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`the relay never heard ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Closes every connection (close_notify, then the socket) and waits for them to end. */
  async close(): Promise<void> {
    for (const room of this.#rooms.values()) {
      // A copy: each end leaves the list as its connection ends.
      for (const end of [...room.ends]) {
        await end.sending;
        await end.connection.closeWrite().catch(() => {});
      }
    }
    await Promise.all(this.#serving);
  }

  async #serve(
    connection: RoomConnection,
    identity: Identity,
    name: string | undefined,
    roomName: string,
  ): Promise<void> {
    try {
      await exchangeSessionHello(connection, "chat");
    } catch {
      connection.close();
      return;
    }
    let room = this.#rooms.get(roomName);
    if (!room) this.#rooms.set(roomName, room = { group: undefined, ends: [] });
    const creates = !this.neverCreate && !room.ends.some((end) => end.role === "member");
    const self: Served = {
      name: name ?? identity.comment,
      identity,
      author: await sha256(identity.spki),
      room: roomName,
      role: creates ? "member" : "waiting",
      keyPackage: undefined,
      connection,
      sending: Promise.resolve(),
    };
    room.ends.push(self);
    this.#send(self, { type: "start", role: creates ? "create" : "wait" });
    try {
      while (true) {
        const data = await connection.receive();
        if (data === null) break;
        const message = decodeToRelay(data);
        this.heard.push({ from: self, message });
        for (const wake of this.#waiters.splice(0)) wake();
        this.#handle(room, self, message);
      }
      await self.sending;
      await connection.closeWrite().catch(() => {});
    } catch {
      // The member failed (or aborted): nothing more to say to it.
    }
    room.ends.splice(room.ends.indexOf(self), 1);
    connection.close();
    for (const other of members(room)) this.#deliver(other, { type: "left", sender: self.author });
  }

  /** Section 13.4, as an honest relay would, but every delivery passes `route`. */
  #handle(room: Room, self: Served, message: ToRelay): void {
    switch (message.type) {
      case "key_package":
        if (self.role !== "member") {
          self.keyPackage = message.keyPackage;
          for (const member of members(room)) {
            const knock: FromRelay = {
              type: "knock",
              sender: self.author,
              keyPackage: message.keyPackage,
            };
            this.#deliver(member, knock, self);
          }
        }
        return;
      case "commit":
        return this.#commit(room, self, message);
      case "group":
        if (self.role !== "member") return;
        for (const member of members(room)) {
          if (member === self) continue;
          const group: FromRelay = { type: "group", sender: self.author, message: message.message };
          this.#deliver(member, group, self);
        }
        return;
      case "direct": {
        const target = room.ends.find((end) => constantTimeEqual(end.author, message.recipient));
        if (self.role !== "member" || target?.role !== "member") return;
        this.#deliver(target, { type: "direct", sender: self.author, bytes: message.bytes }, self);
        return;
      }
    }
  }

  #commit(room: Room, self: Served, message: ToRelay & { type: "commit" }): void {
    if (self.role !== "member") return;
    const header = readMlsHeader(message.commit);
    if (header.wireFormat !== "private_message") return;
    const { groupId, epoch } = header;
    const current = room.group;
    const wins = current === undefined || this.acceptEveryCommit ||
      (constantTimeEqual(current.groupId, groupId) && current.epoch === epoch);
    if (!wins) return this.#deliver(self, { type: "refused", epoch: current.epoch });
    room.group = { groupId, epoch: epoch + 1n };
    this.#deliver(self, { type: "accepted", epoch });
    for (const member of members(room)) {
      if (member === self) continue;
      this.#deliver(member, { type: "commit", sender: self.author, commit: message.commit }, self);
    }
    const welcomed: Served[] = [];
    for (const recipient of message.recipients) {
      const newcomer = room.ends.find((end) => constantTimeEqual(end.author, recipient));
      if (newcomer?.role !== "waiting" || message.welcome === undefined) continue;
      newcomer.role = "member";
      newcomer.keyPackage = undefined;
      this.#deliver(
        newcomer,
        { type: "welcome", sender: self.author, welcome: message.welcome },
        self,
      );
      welcomed.push(newcomer);
    }
    // Those still waiting knock again at each new member's door.
    for (const newcomer of welcomed) {
      for (const other of room.ends) {
        if (other.role !== "waiting" || other.keyPackage === undefined) continue;
        const knock: FromRelay = {
          type: "knock",
          sender: other.author,
          keyPackage: other.keyPackage,
        };
        this.#deliver(newcomer, knock, other);
      }
    }
  }

  #deliver(to: Served, message: FromRelay, from?: Served): void {
    for (const out of this.route?.({ to, from, message }) ?? [message]) this.#send(to, out);
  }

  #send(to: Served, message: FromRelay): void {
    const bytes = encodeFromRelay(message);
    to.sending = to.sending.then(() => to.connection.send(bytes)).catch(() => {});
  }
}

function members(room: Room): Served[] {
  return room.ends.filter((end) => end.role === "member");
}

/** A copy of `bytes` with the bit `mask` of byte `at` (negative: from the end) flipped. */
export function flip(bytes: Uint8Array, at = -1, mask = 0x01): Uint8Array {
  const copy = bytes.slice();
  const index = at < 0 ? copy.length + at : at;
  copy[index]! ^= mask;
  return copy;
}
