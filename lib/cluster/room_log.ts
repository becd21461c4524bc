/**
 * One room's log on the cluster's stream: publishing entries (one at a time for the whole room,
 * each with its message id, retried until stored or no longer wanted), following the log in
 * order from a position, reading the last Snapshot, and rebuilding the room's state at a past
 * position for a member that resumes.
 *
 * What it does not do: decide anything (lib/cluster/room_state.ts) or talk to members
 * (lib/cluster/cluster_room.ts). An entry that does not decode (NATS is as untrusted as a relay)
 * is skipped with a log line by every relay alike.
 *
 * Every read goes to the stream's leader (16.1). A replica's direct get answers from its own copy,
 * and on a node cut off from the others that copy lags the log: reading it, as relays did before,
 * gave two entries of four with no error (tests/cluster/room_log_test.ts). A state rebuilt from it
 * would send a resuming member less than the log holds and tell it that was everything.
 *
 * Mirrors: docs/PROTOCOL.md sections 16.1 (subjects, positions, message ids, publishing one at a
 * time, reads), 16.3 (snapshots) and 16.4 (the state at a position).
 *
 * @module
 */

import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamPublishOptions,
  type MsgRequest,
  type StoredMsg,
} from "@nats-io/jetstream";
import { toHex } from "../core/bytes.ts";
import { type ClusterLink, ROOM_STREAM } from "./nats_link.ts";
import { decodeRoomEntry, encodeRoomEntry, type RoomEntry } from "./room_entries.ts";
import { decodeRoomState, RoomState, type RoomStateOptions } from "./room_state.ts";

/** Section 16.1: the subjects of a room's log and snapshots. */
export function logSubject(token: Uint8Array): string {
  return `securechat.room.${toHex(token)}.log`;
}
export function snapshotSubject(token: Uint8Array): string {
  return `securechat.room.${toHex(token)}.snapshot`;
}

/** How long one publish waits for its acknowledgement, and between retries. */
const PUBLISH_TIMEOUT_MS = 5_000;
const RETRY_MS = 250;
/**
 * How long a consumer's pull waits (its idle heartbeats come at half of it), and how long the log
 * may be ahead of what was delivered before it is followed again.
 */
const CONSUME_EXPIRES_MS = 5_000;
const STALL_MS = 3_000;

/**
 * One message of the stream, read from the stream's leader: by sequence, the next on a subject
 * from a sequence, or the last on a subject. nats-server (2.9 and later) takes `next_by_subj` on
 * this request too; the client's type lists it only for direct gets, hence the cast.
 */
type LeaderQuery = { seq: number; next_by_subj: string } | { last_by_subj: string };

/** A log being followed: stop it when the room is no longer served. */
export interface Following {
  stop(): void;
  /** Resolves when following ended (stopped, or the link closed). */
  readonly done: Promise<void>;
}

/** One room's log. */
export class RoomLog {
  readonly link: ClusterLink;
  readonly subject: string;
  readonly snapshots: string;
  #log: (line: string) => void;
  /** The tail of the room's publishing queue: entries go out one at a time (16.1). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(link: ClusterLink, token: Uint8Array, log: (line: string) => void) {
    this.link = link;
    this.subject = logSubject(token);
    this.snapshots = snapshotSubject(token);
    this.#log = log;
  }

  /**
   * Publishes `entry` after every entry published before it, with message id `msgID` (a retried
   * publish is stored once), retrying until it is stored or `wanted()` turns false.
   *
   * @returns its position, or undefined when it was given up
   */
  publish(entry: RoomEntry, msgID: string, wanted: () => boolean): Promise<bigint | undefined> {
    const bytes = encodeRoomEntry(entry);
    const published = this.#queue.then(() => this.#publishOne(this.subject, bytes, msgID, wanted));
    this.#queue = published.catch(() => {});
    return published;
  }

  async #publishOne(
    subject: string,
    bytes: Uint8Array,
    msgID: string,
    wanted: () => boolean,
  ): Promise<bigint | undefined> {
    const options: Partial<JetStreamPublishOptions> = { msgID, timeout: PUBLISH_TIMEOUT_MS };
    while (wanted() && !this.link.closed) {
      try {
        const ack = await this.link.js.publish(subject, bytes, options);
        return BigInt(ack.seq);
      } catch (error) {
        this.#log(`publishing to the room log failed, retrying: ${messageOf(error)}`);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
    return undefined;
  }

  /** Section 16.3: publishes the state after `position` as a Snapshot (best effort). */
  async publishSnapshot(position: bigint, state: RoomState): Promise<void> {
    const bytes = encodeRoomEntry({ type: "snapshot", position, state: state.encode() });
    await this.link.js.publish(this.snapshots, bytes, { msgID: `snapshot.${position}` })
      .catch((error) => this.#log(`publishing a snapshot failed: ${messageOf(error)}`));
  }

  /** Section 16.1: one message, from the stream's leader; null when there is none. */
  #read(query: LeaderQuery): Promise<StoredMsg | null> {
    return this.link.jsm.streams.getMessage(ROOM_STREAM, query as MsgRequest);
  }

  /** The position of the log's last entry; 0 when it is empty. */
  async lastPosition(): Promise<bigint> {
    const last = await this.#read({ last_by_subj: this.subject });
    return last === null ? 0n : BigInt(last.seq);
  }

  /** The stream's first position still kept: older entries and snapshots have expired. */
  async firstKept(): Promise<bigint> {
    const info = await this.link.jsm.streams.info(ROOM_STREAM);
    return BigInt(info.state.first_seq);
  }

  /**
   * Section 16.3: the last Snapshot's position and state, if there is one. Asked again until the
   * stream's leader answers or `wanted()` turns false: while NATS has no leader to ask (a node
   * died and an election runs, or our node is cut off) the read fails, and a relay about to serve
   * the room holds its connections rather than refusing them.
   */
  async lastSnapshot(
    options: RoomStateOptions,
    wanted: () => boolean,
  ): Promise<{ position: bigint; state: RoomState } | undefined> {
    while (true) {
      try {
        const last = await this.#read({ last_by_subj: this.snapshots });
        return last === null ? undefined : this.#snapshotOf(last.data, options);
      } catch (error) {
        if (!wanted() || this.link.closed) throw error;
        this.#log(`reading the room's last snapshot failed, retrying: ${messageOf(error)}`);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  #snapshotOf(
    data: Uint8Array,
    options: RoomStateOptions,
  ): { position: bigint; state: RoomState } | undefined {
    try {
      const entry = decodeRoomEntry(plain(data));
      if (entry.type !== "snapshot") throw new Error("not a Snapshot");
      return { position: entry.position, state: decodeRoomState(entry.state, options) };
    } catch (error) {
      this.#log(`a room snapshot was skipped: ${messageOf(error)}`);
      return undefined;
    }
  }

  /**
   * Section 16.4: the state after applying every entry up to `position`: the last Snapshot at or
   * before it, then the log.
   */
  async stateAt(position: bigint, options: RoomStateOptions): Promise<RoomState> {
    let best: { position: bigint; state: RoomState } | undefined;
    let seq = 1;
    while (true) {
      const next = await this.#read({
        seq,
        next_by_subj: this.snapshots,
      });
      if (next === null) break;
      seq = next.seq + 1;
      const snapshot = this.#snapshotOf(next.data, options);
      if (snapshot !== undefined && snapshot.position <= position) best = snapshot;
    }
    const state = best?.state ?? new RoomState(options);
    for await (const [at, entry] of this.entries((best?.position ?? 0n) + 1n, position)) {
      state.apply(at, entry);
    }
    return state;
  }

  /** The log's entries at positions `from` to `to`, both included, in order. */
  async *entries(from: bigint, to: bigint): AsyncGenerator<[bigint, RoomEntry]> {
    let seq = from;
    while (seq <= to) {
      const next = await this.#read({
        seq: Number(seq),
        next_by_subj: this.subject,
      });
      if (next === null || BigInt(next.seq) > to) return;
      seq = BigInt(next.seq) + 1n;
      const entry = this.#decode(next.data, next.seq);
      if (entry !== undefined) yield [BigInt(next.seq), entry];
    }
  }

  #decode(data: Uint8Array, seq: number): RoomEntry | undefined {
    try {
      return decodeRoomEntry(plain(data));
    } catch (error) {
      this.#log(`room log entry ${seq} was skipped: ${messageOf(error)}`);
      return undefined;
    }
  }

  /**
   * Follows the log from position `from` on, calling `onEntry` for each entry in order (the next
   * is read once the last call resolved), until stopped.
   *
   * The client's ordered consumer lives on one NATS node: when that node dies it can stall for
   * good (asking a consumer nobody serves). So a watchdog compares the log's last position with
   * what was delivered, and when the log is ahead and nothing arrived for STALL_MS, starts a new
   * consumer after the last entry delivered: nothing is skipped or delivered twice.
   */
  follow(
    from: bigint,
    onEntry: (position: bigint, entry: RoomEntry) => Promise<void>,
  ): Following {
    let next = from;
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    const run = async () => {
      while (!stopped && !this.link.closed) {
        try {
          const consumer = await this.link.js.consumers.get(ROOM_STREAM, {
            filter_subjects: this.subject,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: Number(next),
          });
          if (stopped) break;
          messages = await consumer.consume({ expires: CONSUME_EXPIRES_MS });
          if (stopped) messages.stop();
          for await (const message of messages) {
            const position = BigInt(message.seq);
            if (position < next) continue;
            next = position + 1n;
            const entry = this.#decode(message.data, message.seq);
            if (entry !== undefined) await onEntry(position, entry);
          }
        } catch (error) {
          this.#log(`following the room log failed, starting again: ${messageOf(error)}`);
        }
        messages = undefined;
        if (!stopped) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    };
    let seen = next;
    let stalledSince: number | undefined;
    const watch = setInterval(async () => {
      const last = await this.lastPosition().catch(() => undefined);
      if (messages === undefined || last === undefined || last < next || next !== seen) {
        seen = next;
        stalledSince = undefined;
        return;
      }
      const now = this.link.now();
      stalledSince ??= now;
      if (now - stalledSince < STALL_MS) return;
      this.#log(`the room log stalled at ${next - 1n} of ${last}: following it again`);
      stalledSince = undefined;
      messages.stop();
    }, STALL_MS / 3);
    const done = run().finally(() => clearInterval(watch));
    return {
      stop: () => {
        stopped = true;
        clearInterval(watch);
        messages?.stop();
      },
      done,
    };
  }
}

/**
 * A copy in a Uint8Array of its own: the client hands a Node Buffer, whose `slice()` is a view
 * into a shared pool, and the decoders read numbers through `.buffer`.
 */
function plain(data: Uint8Array): Uint8Array {
  return new Uint8Array(data);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
