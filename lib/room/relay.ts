/**
 * The relay of a room: the untrusted delivery service of an MLS group. It admits connections,
 * tells each whether to create the group or wait to be admitted (Start), orders commits (exactly
 * one per epoch: the first for the room's current epoch wins, the committer hears Accepted,
 * later ones Refused), fans out opaque MLS messages, routes Direct bytes, passes newcomers'
 * KeyPackages to the group as Knocks, hands Welcomes to the newcomers a commit lists, announces
 * departures (Left), and applies the limits of 13.8, so that one member's misbehaviour or
 * slowness never touches the others.
 *
 * What it never does: hold a group secret or plaintext, or import an MLS library. All it reads of
 * an MLS message is its clear header (lib/room/mls_header.ts): wire format, group id, epoch,
 * content type. It cannot add, remove or rename anyone: members decide that among themselves.
 * It knows no host either: the person at the listener joins as an ordinary member, through an
 * in-memory pair (lib/room/room_connection.ts).
 *
 * `join()` runs the SessionHello exchange (section 12) itself, on a SecureConnection as on the
 * host's in-memory link, and serves the connection until it ends. The relay never prints: `log`
 * receives one line per event worth telling an operator (joins, leaves, violations, accepted
 * commits), with names and fingerprints but no content.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.4 (relay messages, Start, order, fan-out, checks) and
 * 13.8 (limits). Each member's outgoing queue is lib/room/delivery.ts; the limits are counted in
 * lib/room/limits.ts.
 *
 * @module
 */

import { constantTimeEqual, sha256, toHex } from "../core/bytes.ts";
import { SecurechatError } from "../core/errors.ts";
import { replaceUnsafe } from "../core/text.ts";
import {
  decodeToRelay,
  encodeFromRelay,
  type FromRelay,
  NOTICE_LEVEL,
  type ToRelay,
} from "../chat/relay_messages.ts";
import { exchangeSessionHello } from "../transport/session_hello.ts";
import { MemberOutbox } from "./delivery.ts";
import {
  DEFAULT_DIRECT_BURST_BYTES,
  DEFAULT_DIRECT_BYTES_PER_SECOND,
  DEFAULT_GROUP_BURST,
  DEFAULT_GROUP_RATE,
  DEFAULT_MAX_MEMBERS,
  MAX_RELAY_MESSAGE_BYTES,
  TokenBucket,
  Violations,
} from "./limits.ts";
import { checkPrivate, describe, headerOf } from "./relay_checks.ts";
import type { RoomConnection } from "./room_connection.ts";

/** Options of a relay; every limit defaults to section 13.8. */
export interface RelayOptions {
  /** Connections admitted at once, waiting newcomers included. */
  maxMembers?: number;
  /** Group messages a second per member, sustained, and in a burst. */
  groupRate?: number;
  groupBurst?: number;
  /** Direct bytes a second per member, sustained, and in a burst. */
  directBytesPerSecond?: number;
  directBurstBytes?: number;
  /** Milliseconds clock, injectable for tests. */
  now?: () => number;
  /** Operator log lines (stderr in the CLI). */
  log?: (line: string) => void;
}

/** One connection, as the relay sees it. */
interface Connected {
  connection: RoomConnection;
  /** The raw SHA-256 of its identity's SPKI: `sender` and `recipient` on the wire. */
  author: Uint8Array;
  /** `"name" SHA256:...`, for log lines. */
  label: string;
  /** In the group (it created it, or was handed a Welcome), or waiting to be admitted. */
  role: "member" | "waiting";
  /** Order of arrival: the longest-waiting newcomer creates the group when it empties. */
  arrival: number;
  /** Its KeyPackage while it waits (at most one, 13.8): handed as a Knock to each new member. */
  keyPackage: Uint8Array | undefined;
  groupBucket: TokenBucket;
  directBucket: TokenBucket;
  violations: Violations;
  outbox: MemberOutbox;
}

/** The relay disconnects a member: its final Notice is already on its way. */
class Ejection extends Error {}

/** The most bytes of a peer-chosen name a log line shows. */
const MAX_LOGGED_NAME = 64;

/** The delivery service of one room (docs/PROTOCOL.md 13.4). */
export class Relay {
  #options: RelayOptions;
  #now: () => number;
  #log: (line: string) => void;
  /** Every connection the relay serves, by author id (hex). */
  #connections = new Map<string, Connected>();
  #arrivals = 0;
  /** The room's group id and current epoch: unknown until the first commit is accepted. */
  #groupId: Uint8Array | undefined;
  #epoch: bigint | undefined;
  #closed = false;
  #resolveClosed: () => void = () => {};
  /** Resolves once `close()` has said goodbye to everyone. */
  readonly closed: Promise<void> = new Promise((resolve) => this.#resolveClosed = resolve);

  constructor(options: RelayOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
  }

  /** Connections served now: members of the group and newcomers waiting to be admitted. */
  get memberCount(): number {
    return this.#connections.size;
  }

  #members(): Connected[] {
    return [...this.#connections.values()].filter((c) => c.role === "member");
  }

  #send(to: Connected, message: FromRelay): void {
    to.outbox.deliver(encodeFromRelay(message));
  }

  /** Sends one encoding of `message` to every member of the group but `except`. */
  #toGroup(message: FromRelay, except?: Connected): void {
    const bytes = encodeFromRelay(message);
    for (const member of this.#members()) if (member !== except) member.outbox.deliver(bytes);
  }

  async #refuse(connection: RoomConnection, text: string): Promise<void> {
    const notice = encodeFromRelay({ type: "notice", level: NOTICE_LEVEL.final, text });
    await connection.send(notice).catch(() => {});
    await connection.closeWrite().catch(() => {});
    connection.close();
  }

  /**
   * Admits a connection to the room and serves it until it ends: exchanges SessionHellos (mode 3,
   * section 12), sends Start, then handles its relay messages. Resolves when the connection is
   * gone; never throws for the peer's faults (they are logged, and the others are served on).
   *
   * @param connection an authenticated connection (a SecureConnection, or the host's in-memory
   *   end) on which nothing was sent yet
   */
  async join(connection: RoomConnection): Promise<void> {
    const identity = connection.peer.identity;
    const label = `"${logName(connection.peer.name)}" ${identity.fingerprint}`;
    try {
      await exchangeSessionHello(connection, "chat");
    } catch (error) {
      this.#log(`${label} refused: ${messageOf(error)}`);
      connection.close();
      return;
    }
    const author = await sha256(identity.spki);
    const key = toHex(author);
    if (this.#closed) return await this.#refuse(connection, "the relay is closing");
    if (this.#connections.has(key)) {
      this.#log(`${label} refused: its key is already in the room`);
      return await this.#refuse(connection, "your key is already in the room");
    }
    const max = this.#options.maxMembers ?? DEFAULT_MAX_MEMBERS;
    if (this.#connections.size >= max) {
      this.#log(`${label} refused: the room is full (${max} members)`);
      return await this.#refuse(connection, `the room is full (${max} members)`);
    }
    const now = this.#now();
    const joiner: Connected = {
      connection,
      author,
      label,
      role: this.#members().length === 0 ? "member" : "waiting",
      arrival: this.#arrivals++,
      keyPackage: undefined,
      groupBucket: new TokenBucket(
        this.#options.groupRate ?? DEFAULT_GROUP_RATE,
        this.#options.groupBurst ?? DEFAULT_GROUP_BURST,
        now,
      ),
      directBucket: new TokenBucket(
        this.#options.directBytesPerSecond ?? DEFAULT_DIRECT_BYTES_PER_SECOND,
        this.#options.directBurstBytes ?? DEFAULT_DIRECT_BURST_BYTES,
        now,
      ),
      violations: new Violations(),
      outbox: new MemberOutbox(connection, logName(connection.peer.name), this.#log),
    };
    this.#connections.set(key, joiner);
    if (joiner.role === "member") {
      this.#startGroup(joiner);
      this.#log(`${label} joined and creates the group (${this.#connections.size} connected)`);
    } else {
      this.#send(joiner, { type: "start", role: "wait" });
      this.#log(`${label} joined and waits to be admitted (${this.#connections.size} connected)`);
    }
    await this.#serve(joiner, key);
  }

  /** Section 13.4 Start: `creator` makes a new group; the room forgets the old one's id and epoch. */
  #startGroup(creator: Connected): void {
    this.#groupId = undefined;
    this.#epoch = undefined;
    creator.role = "member";
    creator.keyPackage = undefined;
    this.#send(creator, { type: "start", role: "create" });
    this.#handKnocks(creator);
  }

  /** Section 13.4: a new member of the group gets the Knocks of everyone still waiting. */
  #handKnocks(member: Connected): void {
    for (const other of this.#connections.values()) {
      if (other.role === "waiting" && other.keyPackage !== undefined) {
        this.#send(member, { type: "knock", sender: other.author, keyPackage: other.keyPackage });
      }
    }
  }

  async #serve(self: Connected, key: string): Promise<void> {
    const { connection } = self;
    let reason: string | undefined;
    let ejected = false;
    try {
      while (true) {
        const data = await connection.receive();
        if (data === null) break;
        if (data.length > MAX_RELAY_MESSAGE_BYTES) {
          this.#violation(self, `a relay message over ${MAX_RELAY_MESSAGE_BYTES} bytes`);
          continue;
        }
        this.#handle(self, decodeToRelay(data));
      }
    } catch (error) {
      reason = error instanceof Ejection ? error.message : self.outbox.lost ?? messageOf(error);
      ejected = error instanceof Ejection;
      if (!ejected) await connection.abort(error);
    }
    // Gone from the room at once, so nothing more is routed to it while it is said goodbye to.
    this.#connections.delete(key);
    if (!this.#closed) this.#departed(self);
    // A member that said goodbye gets ours once it has everything, so it ends cleanly too; an
    // ejected one gets its final Notice first.
    if (reason === undefined || ejected) await self.outbox.farewell(ejected);
    self.outbox.gone = true;
    connection.close();
    const verb = reason === undefined ? "left" : `disconnected: ${reason}`;
    this.#log(`${self.label} ${verb} (${this.#connections.size} connected)`);
  }

  /**
   * Section 13.4: everyone in the group hears that a connection ended (a member's, or a
   * newcomer's whose Knock is thereby withdrawn). When the last member of the group is gone, the
   * longest-waiting newcomer creates a new group.
   */
  #departed(gone: Connected): void {
    this.#toGroup({ type: "left", sender: gone.author });
    if (gone.role !== "member" || this.#members().length > 0) return;
    let next: Connected | undefined;
    for (const c of this.#connections.values()) if (!next || c.arrival < next.arrival) next = c;
    if (next === undefined) {
      this.#groupId = undefined;
      this.#epoch = undefined;
      return;
    }
    this.#startGroup(next);
    this.#log(`the group is empty: ${next.label} creates a new one`);
  }

  #handle(self: Connected, message: ToRelay): void {
    switch (message.type) {
      case "key_package":
        return this.#keyPackage(self, message.keyPackage);
      case "commit":
        return this.#commit(self, message);
      case "group":
        return this.#group(self, message.message);
      case "direct":
        return this.#direct(self, message.recipient, message.bytes);
    }
  }

  /** KeyPackage: a newcomer asks to be admitted; every member of the group gets the Knock. */
  #keyPackage(self: Connected, keyPackage: Uint8Array): void {
    // Dropped without a warning: a newcomer that the relay made the group's creator (the group
    // emptied) may have sent its KeyPackage before it read that Start.
    if (self.role === "member") return;
    if (self.keyPackage !== undefined) {
      return this.#violation(self, "a second KeyPackage: one at a time, until admitted");
    }
    const wireFormat = headerOf(keyPackage)?.wireFormat;
    if (wireFormat !== "key_package") {
      return this.#violation(self, `a KeyPackage that is ${describe(wireFormat)}`);
    }
    self.keyPackage = keyPackage;
    this.#toGroup({ type: "knock", sender: self.author, keyPackage });
    this.#log(`${self.label} asks to be admitted`);
  }

  /**
   * Commit: accepted only for the room's group and current epoch, then the room moves to the next
   * epoch, the committer hears Accepted, the rest of the group gets the commit, and each listed
   * newcomer still waiting gets the Welcome and joins the group.
   */
  #commit(self: Connected, message: ToRelay & { type: "commit" }): void {
    if (self.role !== "member") {
      return this.#violation(self, "a Commit from outside the group");
    }
    const checked = checkPrivate(message.commit, "commit", this.#groupId);
    if ("problem" in checked) {
      return this.#violation(self, `a Commit that is ${checked.problem}`);
    }
    // A commit costs every member a state change: it counts like a group message (13.8). Refused,
    // so that the committer does not wait for an answer that never comes.
    if (!self.groupBucket.take(this.#now())) {
      if (this.#epoch !== undefined) this.#send(self, { type: "refused", epoch: this.#epoch });
      return this.#violation(self, "too many commits: slow down");
    }
    if (message.welcome !== undefined) {
      const wireFormat = headerOf(message.welcome)?.wireFormat;
      if (wireFormat !== "welcome") {
        return this.#violation(self, `a Commit whose Welcome is ${describe(wireFormat)}`);
      }
    }
    const { epoch, groupId } = checked.header;
    if (this.#epoch !== undefined && this.#groupId !== undefined) {
      if (!constantTimeEqual(groupId, this.#groupId)) {
        this.#send(self, { type: "refused", epoch: this.#epoch });
        return this.#violation(self, "a Commit for another group");
      }
      if (epoch !== this.#epoch) {
        this.#send(self, { type: "refused", epoch: this.#epoch });
        return;
      }
    }
    if (epoch === 0xffffffffffffffffn) {
      return this.#violation(self, "a Commit for the last epoch there is");
    }
    this.#groupId = groupId;
    this.#epoch = epoch + 1n;
    this.#send(self, { type: "accepted", epoch });
    this.#toGroup({ type: "commit", sender: self.author, commit: message.commit }, self);
    const welcomed: Connected[] = [];
    // One encoding for every newcomer, as for a fan-out: a Welcome carries the ratchet tree (up to
    // 1 MiB), and a copy per newcomer of a commit admitting 25 was 25 MiB the relay's allocator
    // kept after they were sent.
    const welcome = message.welcome === undefined
      ? undefined
      : encodeFromRelay({ type: "welcome", sender: self.author, welcome: message.welcome });
    for (const recipient of message.recipients) {
      const newcomer = this.#connections.get(toHex(recipient));
      if (newcomer?.role !== "waiting" || welcome === undefined) continue;
      newcomer.role = "member";
      newcomer.keyPackage = undefined;
      newcomer.outbox.deliver(welcome);
      welcomed.push(newcomer);
    }
    // After every Welcome: a newcomer admitted by the same commit is no longer waiting.
    for (const newcomer of welcomed) this.#handKnocks(newcomer);
    const names = welcomed.map((c) => c.label).join(", ");
    this.#log(
      `${self.label} committed epoch ${epoch}${welcomed.length ? `, welcoming ${names}` : ""}`,
    );
  }

  /** Group: an application message or proposal, for every other member of the group. */
  #group(self: Connected, message: Uint8Array): void {
    if (self.role !== "member") {
      return this.#violation(self, "a group message from outside the group");
    }
    const checked = checkPrivate(message, "group", this.#groupId);
    if ("problem" in checked) {
      return this.#violation(self, `a group message that is ${checked.problem}`);
    }
    if (!self.groupBucket.take(this.#now())) {
      return this.#violation(self, "too many group messages: slow down");
    }
    this.#toGroup({ type: "group", sender: self.author, message }, self);
  }

  /** Direct: opaque bytes from one member of the group to another. */
  #direct(self: Connected, recipient: Uint8Array, bytes: Uint8Array): void {
    if (self.role !== "member") {
      return this.#violation(self, "a direct message from outside the group");
    }
    if (!self.directBucket.take(this.#now(), bytes.length)) {
      return this.#violation(self, "too many direct bytes: slow down");
    }
    const target = this.#connections.get(toHex(recipient));
    if (target?.role !== "member") {
      // Not a violation: the recipient may have left while the message was on its way.
      return this.#send(self, {
        type: "notice",
        level: NOTICE_LEVEL.info,
        text: "no such member in the group: the direct message was not delivered",
      });
    }
    this.#send(target, { type: "direct", sender: self.author, bytes });
  }

  /**
   * Section 13.8: a warning Notice and the message dropped; the third within a minute earns a
   * final Notice and a disconnect.
   *
   * @throws {Ejection} at the third
   */
  #violation(self: Connected, text: string): void {
    if (self.violations.add(this.#now())) {
      this.#send(self, {
        type: "notice",
        level: NOTICE_LEVEL.final,
        text: `${text}: disconnected after repeated warnings`,
      });
      throw new Ejection(`repeated violations, the last: ${text}`);
    }
    this.#log(`warning ${self.label}: ${text}`);
    this.#send(self, { type: "notice", level: NOTICE_LEVEL.warning, text: `${text}: dropped` });
  }

  /**
   * Closes the room: a final Notice and close_notify to every connection; later joins are
   * refused.
   *
   * @param reason the final Notice's text
   */
  async close(reason = "the relay is shutting down"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const everyone = [...this.#connections.values()];
    for (const c of everyone) {
      this.#send(c, { type: "notice", level: NOTICE_LEVEL.final, text: reason });
    }
    await Promise.all(everyone.map((c) => c.outbox.farewell()));
    for (const c of everyone) c.connection.close();
    this.#log(`room closed: ${reason}`);
    this.#resolveClosed();
  }
}

function messageOf(error: unknown): string {
  return error instanceof SecurechatError || error instanceof Error ? error.message : String(error);
}

/** A peer-chosen name made safe for one log line. */
function logName(name: string): string {
  return replaceUnsafe(name).slice(0, MAX_LOGGED_NAME);
}
