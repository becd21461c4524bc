/**
 * One room as a clustered relay serves it: the connections this relay holds, and its copy of the
 * room's state, moved on only by applying the room log. A member's messages are checked here
 * (13.4 "What the relay checks", the limits of 13.8, per connection: violations never reach the
 * log) and published as entries; every entry applied yields messages, of which this relay sends
 * those for its own connections, each member's followed by a Position. For members it behaves
 * like lib/room/relay.ts, plus Position and resuming.
 *
 * Also: the 15-second grace of a broken connection before its Left, Left for the connections of
 * relays gone silent, the Snapshots the lowest serving relay publishes, and holding a connection
 * until the log has caught up with its Joined.
 *
 * What it does not do: keep rooms by token or send the rendezvous answer
 * (lib/cluster/cluster_rooms.ts), decide (lib/cluster/room_state.ts), or read NATS directly
 * (lib/cluster/room_log.ts).
 *
 * Mirrors: docs/PROTOCOL.md sections 16.2, 16.3, 16.4, and 13.4 / 13.8 as lib/room/relay.ts.
 *
 * @module
 */

import { sha256, toHex } from "../core/bytes.ts";
import { replaceUnsafe } from "../core/text.ts";
import {
  decodeToRelay,
  encodeFromRelay,
  type FromRelay,
  NOTICE_LEVEL,
  type ToRelay,
} from "../chat/relay_messages.ts";
import { MemberOutbox } from "../room/delivery.ts";
import {
  DEFAULT_DIRECT_BURST_BYTES,
  DEFAULT_DIRECT_BYTES_PER_SECOND,
  DEFAULT_GROUP_BURST,
  DEFAULT_GROUP_RATE,
  MAX_RELAY_MESSAGE_BYTES,
  TokenBucket,
  Violations,
} from "../room/limits.ts";
import { checkPrivate, describe, headerOf } from "../room/relay_checks.ts";
import type { RelayOptions } from "../room/relay.ts";
import type { RoomConnection } from "../room/room_connection.ts";
import { exchangeSessionHello } from "../transport/session_hello.ts";
import type { ClusterLink } from "./nats_link.ts";
import type { RoomEntry } from "./room_entries.ts";
import { type Following, RoomLog } from "./room_log.ts";
import { type Applied, RoomState } from "./room_state.ts";

/** Section 16.4: how long a broken connection may take to resume before its Left. */
export const RESUME_GRACE_MS = 15_000;
/** Section 16.3: a Snapshot every this many entries, and at least this often. */
export const SNAPSHOT_EVERY_ENTRIES = 256n;
export const SNAPSHOT_EVERY_MS = 5 * 60 * 1000;
/** The most bytes of a peer-chosen name a log line shows. */
const MAX_LOGGED_NAME = 64;

/** Options of a {@linkcode ClusterRoom}. */
export interface ClusterRoomOptions {
  link: ClusterLink;
  token: Uint8Array;
  /** Limits of 13.8; every relay of a cluster must use the same maxMembers. */
  room: Omit<RelayOptions, "log" | "now"> | undefined;
  now: () => number;
  log: (line: string) => void;
  /** RESUME_GRACE_MS, shorter in tests. */
  graceMs: number;
  /** Called when the room holds no connection and no grace any more. */
  onIdle: () => void;
}

/** One connection this relay serves. */
interface Local {
  connection: RoomConnection;
  id: Uint8Array;
  idHex: string;
  author: Uint8Array;
  authorHex: string;
  label: string;
  outbox: MemberOutbox;
  groupBucket: TokenBucket;
  directBucket: TokenBucket;
  violations: Violations;
  /** Entries published for it so far: the message id's counter (16.1). */
  counter: number;
  keyPackageSent: boolean;
  /** Resolves once its Joined or Resumed was applied: true when it is now in the room. */
  admitted: Promise<boolean>;
  admit: (inRoom: boolean) => void;
  /** Its connection ended: nothing more is published for it but its Left. */
  ended: boolean;
}

/** The relay disconnects a member: its final Notice is already on its way. */
class Ejection extends Error {}

/** A clustered room on one relay. */
export class ClusterRoom {
  #options: ClusterRoomOptions;
  #log: RoomLog;
  #state: RoomState;
  #position = 0n;
  #locals = new Map<string, Local>();
  #graces = new Set<ReturnType<typeof setTimeout>>();
  #ready: Promise<void>;
  #following: Following | undefined;
  #watch: ReturnType<typeof setInterval> | undefined;
  /** Connections of gone relays whose Left this relay already published. */
  #buried = new Set<string>();
  #snapshotAt = 0n;
  #snapshotTime: number;
  #closed = false;
  /** Set by stop(): the room has no connection here any more. */
  #stopped = false;

  constructor(options: ClusterRoomOptions) {
    this.#options = options;
    this.#state = new RoomState({ maxMembers: options.room?.maxMembers });
    this.#log = new RoomLog(options.link, options.token, options.log);
    this.#snapshotTime = options.now();
    this.#ready = this.#start();
    this.#ready.catch(() => {});
  }

  /** Connections held, and broken ones still within their grace. */
  get busy(): boolean {
    return this.#locals.size > 0 || this.#graces.size > 0;
  }

  /** Section 16.3: the last Snapshot, then the log after it. */
  async #start(): Promise<void> {
    const snapshot = await this.#log.lastSnapshot(
      { maxMembers: this.#options.room?.maxMembers },
      () => !this.#closed && !this.#stopped,
    );
    if (snapshot !== undefined) {
      this.#state = snapshot.state;
      this.#position = this.#snapshotAt = snapshot.position;
    }
    this.#following = this.#log.follow(
      this.#position + 1n,
      (position, entry) => this.#apply(position, entry),
    );
    const interval = Math.max(100, Math.min(1_000, this.#options.graceMs / 4));
    this.#watch = setInterval(() => this.#buryGoneRelays(), interval);
  }

  /**
   * Serves a connection on which nothing room-related was sent yet: the SessionHello exchange,
   * then Joined (or Resumed after `resumeAfter`) into the log, and its messages until it ends.
   * Resolves when it ended (its grace, if any, goes on); never throws.
   */
  async serve(connection: RoomConnection, resumeAfter?: bigint): Promise<void> {
    const label = `"${
      replaceUnsafe(connection.peer.name).slice(0, MAX_LOGGED_NAME)
    }" ${connection.peer.identity.fingerprint}`;
    try {
      await exchangeSessionHello(connection, "chat");
    } catch (error) {
      this.#options.log(`${label} refused: ${messageOf(error)}`);
      connection.close();
      return this.#checkIdle();
    }
    const author = await sha256(connection.peer.identity.spki);
    const id = crypto.getRandomValues(new Uint8Array(16));
    const now = this.#options.now();
    const limits = this.#options.room ?? {};
    let admit: (inRoom: boolean) => void = () => {};
    const local: Local = {
      connection,
      id,
      idHex: toHex(id),
      author,
      authorHex: toHex(author),
      label,
      outbox: new MemberOutbox(connection, label, this.#options.log),
      groupBucket: new TokenBucket(
        limits.groupRate ?? DEFAULT_GROUP_RATE,
        limits.groupBurst ?? DEFAULT_GROUP_BURST,
        now,
      ),
      directBucket: new TokenBucket(
        limits.directBytesPerSecond ?? DEFAULT_DIRECT_BYTES_PER_SECOND,
        limits.directBurstBytes ?? DEFAULT_DIRECT_BURST_BYTES,
        now,
      ),
      violations: new Violations(),
      counter: 0,
      keyPackageSent: false,
      admitted: new Promise((resolve) => admit = resolve),
      admit: (inRoom) => admit(inRoom),
      ended: false,
    };
    this.#locals.set(local.idHex, local);
    try {
      await this.#ready;
      if (this.#closed) throw new Error("the relay is closing");
      const relay = this.#options.link.relayId;
      if (resumeAfter !== undefined && resumeAfter + 1n < await this.#log.firstKept()) {
        this.#send(local, {
          type: "notice",
          level: NOTICE_LEVEL.final,
          text: "too late to resume: join the room again",
        });
        local.admit(false);
      } else {
        const entry: RoomEntry = resumeAfter === undefined
          ? { type: "joined", author, connection: id, relay }
          : { type: "resumed", author, connection: id, relay, position: resumeAfter };
        await this.#publish(local, entry);
      }
    } catch (error) {
      this.#options.log(`${label} could not enter the room: ${messageOf(error)}`);
      local.admit(false);
    }
    if (!await local.admitted) {
      this.#locals.delete(local.idHex);
      await local.outbox.farewell(true);
      connection.close();
      return this.#checkIdle();
    }
    await this.#read(local);
  }

  /** Publishes an entry of `local`'s, while its connection lasts. */
  #publish(local: Local, entry: RoomEntry): Promise<bigint | undefined> {
    const msgID = `${local.idHex}.${local.counter++}`;
    return this.#log.publish(entry, msgID, () => !local.ended && !this.#closed);
  }

  /** Section 16.4: a connection's Left; the same message id whichever relay publishes it. */
  #publishLeft(author: Uint8Array, connection: Uint8Array): Promise<bigint | undefined> {
    const entry: RoomEntry = { type: "left", author, connection };
    return this.#log.publish(entry, `${toHex(connection)}.left`, () => true);
  }

  async #read(local: Local): Promise<void> {
    const { connection } = local;
    let broken = false;
    let reason: string | undefined;
    let ejected = false;
    try {
      while (true) {
        const data = await connection.receive().catch((error) => {
          broken = true;
          throw error;
        });
        if (data === null) break;
        if (data.length > MAX_RELAY_MESSAGE_BYTES) {
          this.#violation(local, `a relay message over ${MAX_RELAY_MESSAGE_BYTES} bytes`);
          continue;
        }
        const message = decodeToRelay(data);
        if (this.#check(local, message)) {
          await this.#publish(local, {
            type: "message",
            author: local.author,
            connection: local.id,
            message,
          });
        }
      }
    } catch (error) {
      ejected = error instanceof Ejection;
      reason = ejected ? (error as Error).message : local.outbox.lost ?? messageOf(error);
      // Dropped for not keeping up (13.8) is the relay's decision, not a break: no grace.
      if (local.outbox.lost?.startsWith("dropped")) broken = false;
      if (!ejected && !broken) await connection.abort(error);
    }
    local.ended = true;
    this.#locals.delete(local.idHex);
    if (broken && !this.#closed) {
      this.#startGrace(local);
    } else if (!this.#closed) {
      this.#publishLeft(local.author, local.id).catch(() => {});
    }
    if (reason === undefined || ejected) await local.outbox.farewell(ejected);
    local.outbox.gone = true;
    connection.close();
    const verb = reason === undefined ? "left" : `disconnected: ${reason}`;
    this.#options.log(`${local.label} ${verb}`);
    this.#checkIdle();
  }

  /** Section 16.4: a broken connection's Left, unless it was replaced within the grace. */
  #startGrace(local: Local): void {
    const timer = setTimeout(async () => {
      if (this.#state.current(local.authorHex, local.idHex) !== undefined && !this.#closed) {
        await this.#publishLeft(local.author, local.id);
      }
      this.#graces.delete(timer);
      this.#checkIdle();
    }, this.#options.graceMs);
    this.#graces.add(timer);
  }

  #checkIdle(): void {
    if (!this.busy) this.#options.onIdle();
  }

  /**
   * Section 16.4: Left for every connection the state places on a relay silent for the grace
   * since its last heartbeat.
   */
  #buryGoneRelays(): void {
    const link = this.#options.link;
    for (const presence of this.#state.present.values()) {
      const key = toHex(presence.connection);
      if (this.#buried.has(key) || !link.isGone(presence.relay)) continue;
      if (link.now() - link.lastHeard(presence.relay) < this.#options.graceMs) continue;
      this.#buried.add(key);
      this.#options.log(`a relay is gone: its connection ${key.slice(0, 8)} left`);
      this.#publishLeft(presence.author, presence.connection).catch(() => {});
    }
  }

  /** Applies one entry of the log, and sends what it yields to this relay's connections. */
  async #apply(position: bigint, entry: RoomEntry): Promise<void> {
    if (position <= this.#position) return;
    this.#position = position;
    const applied = this.#state.apply(position, entry);
    for (const event of applied.events) this.#options.log(event);
    if (applied.resume !== undefined) await this.#resume(position, applied);
    else this.#deliver(applied.deliveries);
    if (entry.type === "joined" || entry.type === "resumed") {
      const local = this.#locals.get(toHex(entry.connection));
      local?.admit(this.#state.current(local.authorHex, local.idHex) !== undefined);
    }
    this.#maybeSnapshot(position);
  }

  #deliver(deliveries: Applied["deliveries"]): void {
    for (const delivery of deliveries) {
      const local = this.#locals.get(delivery.connection);
      if (local !== undefined) local.outbox.deliver(encodeFromRelay(delivery.message));
    }
  }

  /**
   * Section 16.4: Start "resume", then what the log held for the member's previous connection
   * after the position it asked for, then a Position.
   */
  async #resume(position: bigint, applied: Applied): Promise<void> {
    const { connection, previous, position: after } = applied.resume!;
    const local = this.#locals.get(connection);
    this.#deliver(applied.deliveries);
    if (local === undefined) return;
    try {
      const options = { maxMembers: this.#options.room?.maxMembers };
      const past = await this.#log.stateAt(after, options);
      for await (const [at, entry] of this.#log.entries(after + 1n, position - 1n)) {
        for (const delivery of past.apply(at, entry).deliveries) {
          if (delivery.connection === previous) {
            local.outbox.deliver(encodeFromRelay(delivery.message));
          }
        }
      }
      this.#send(local, { type: "position", position });
    } catch (error) {
      this.#options.log(`${local.label} could not resume: ${messageOf(error)}`);
      local.connection.close();
    }
  }

  /** Section 16.3: the serving relay with the lowest id publishes Snapshots. */
  #maybeSnapshot(position: bigint): void {
    const now = this.#options.now();
    if (
      position - this.#snapshotAt < SNAPSHOT_EVERY_ENTRIES &&
      now - this.#snapshotTime < SNAPSHOT_EVERY_MS
    ) return;
    const own = toHex(this.#options.link.relayId);
    for (const presence of this.#state.present.values()) {
      const relay = toHex(presence.relay);
      if (relay < own && !this.#options.link.isGone(presence.relay)) return;
    }
    this.#snapshotAt = position;
    this.#snapshotTime = now;
    this.#log.publishSnapshot(position, this.#state);
  }

  #send(local: Local, message: FromRelay): void {
    local.outbox.deliver(encodeFromRelay(message));
  }

  /** Section 13.4 "What the relay checks" and 13.8, before publishing: true to publish. */
  #check(local: Local, message: ToRelay): boolean {
    const presence = this.#state.current(local.authorHex, local.idHex);
    const member = presence?.role === "member";
    const state = this.#state;
    const now = this.#options.now();
    switch (message.type) {
      case "key_package": {
        // Dropped without a warning: a newcomer made creator may have sent it before that Start.
        if (member) return false;
        if (local.keyPackageSent) {
          return this.#violation(local, "a second KeyPackage: one at a time, until admitted");
        }
        const wireFormat = headerOf(message.keyPackage)?.wireFormat;
        if (wireFormat !== "key_package") {
          return this.#violation(local, `a KeyPackage that is ${describe(wireFormat)}`);
        }
        local.keyPackageSent = true;
        return true;
      }
      case "commit": {
        if (!member) return this.#violation(local, "a Commit from outside the group");
        const checked = checkPrivate(message.commit, "commit", state.groupId);
        if ("problem" in checked) {
          return this.#violation(local, `a Commit that is ${checked.problem}`);
        }
        if (!local.groupBucket.take(now)) {
          if (state.epoch !== undefined) this.#send(local, { type: "refused", epoch: state.epoch });
          return this.#violation(local, "too many commits: slow down");
        }
        if (message.welcome !== undefined) {
          const wireFormat = headerOf(message.welcome)?.wireFormat;
          if (wireFormat !== "welcome") {
            return this.#violation(local, `a Commit whose Welcome is ${describe(wireFormat)}`);
          }
        }
        const { groupId, epoch } = checked.header;
        if (state.groupId !== undefined && state.epoch !== undefined) {
          if (toHex(groupId) !== toHex(state.groupId)) {
            this.#send(local, { type: "refused", epoch: state.epoch });
            return this.#violation(local, "a Commit for another group");
          }
        }
        if (epoch === 0xffffffffffffffffn) {
          return this.#violation(local, "a Commit for the last epoch there is");
        }
        return true;
      }
      case "group": {
        if (!member) return this.#violation(local, "a group message from outside the group");
        const checked = checkPrivate(message.message, "group", state.groupId);
        if ("problem" in checked) {
          return this.#violation(local, `a group message that is ${checked.problem}`);
        }
        if (!local.groupBucket.take(now)) {
          return this.#violation(local, "too many group messages: slow down");
        }
        return true;
      }
      case "direct":
        if (!member) return this.#violation(local, "a direct message from outside the group");
        if (!local.directBucket.take(now, message.bytes.length)) {
          return this.#violation(local, "too many direct bytes: slow down");
        }
        return true;
    }
  }

  /**
   * Section 13.8: a warning Notice and the message dropped; the third within a minute earns a
   * final Notice and a disconnect.
   *
   * @throws {Ejection} at the third
   */
  #violation(local: Local, text: string): false {
    if (local.violations.add(this.#options.now())) {
      this.#send(local, {
        type: "notice",
        level: NOTICE_LEVEL.final,
        text: `${text}: disconnected after repeated warnings`,
      });
      throw new Ejection(`repeated violations, the last: ${text}`);
    }
    this.#options.log(`warning ${local.label}: ${text}`);
    this.#send(local, { type: "notice", level: NOTICE_LEVEL.warning, text: `${text}: dropped` });
    return false;
  }

  /** Stops following the log (the room has no connection here any more). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#watch);
    for (const timer of this.#graces) clearTimeout(timer);
    this.#graces.clear();
    this.#following?.stop();
    this.#ready.then(() => this.#following?.stop(), () => {});
  }

  /**
   * Closes the room on this relay: a final Notice and close_notify to each connection, whose
   * Left is published (they ended cleanly); later connections are refused.
   */
  async close(reason: string): Promise<void> {
    if (this.#closed) return;
    const everyone = [...this.#locals.values()];
    const lefts = everyone.map((local) => this.#publishLeft(local.author, local.id));
    this.#closed = true;
    for (const local of everyone) {
      local.admit(false);
      this.#send(local, { type: "notice", level: NOTICE_LEVEL.final, text: reason });
    }
    await Promise.all([...everyone.map((local) => local.outbox.farewell()), ...lefts]);
    for (const local of everyone) local.connection.close();
    this.stop();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
