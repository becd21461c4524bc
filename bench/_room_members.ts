/**
 * Members of the room fan-out benchmark: pools of room members that dial the relay
 * (`_room_relay.ts`) through the real handshake and join with `joinRoom()` (real MLS, X-Wing). A
 * pool runs in this thread ({@linkcode MemberPool}) or in a process of its own
 * ({@linkcode ProcessPool}, script `_room_member_process.ts`), so the members' decryption does
 * not share a process, its event loop or its garbage collector with the relay or with each
 * other; both answer the same {@linkcode Pool} calls.
 *
 * The room's first member (index 0) makes the group and admits everyone who knocks, as the host
 * of a listener does; the others join by its commits, `batch` at a time, each batch admitted
 * before the next one dials.
 *
 * A member "has" a message when its Participant emits the `message` event: MLS decrypted and
 * authenticated it (PROTOCOL.md 13.5). Times are wall-clock milliseconds (`performance.timeOrigin
 * + performance.now()`), corrected by a measured offset for each process.
 *
 * @module
 */

import type { ChatEvent, Participant } from "../lib/chat/chat_events.ts";
import { runInitiator } from "../lib/transport/connection.ts";
import { generateIdentity, type Identity } from "../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../lib/protocol/record.ts";
import { joinRoom } from "../lib/room/member.ts";
import { ChildRpc } from "./_rpc.ts";

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Where a pool's members dial, and how many it has. */
export interface PoolOptions {
  port: number;
  /** Members in this pool. */
  count: number;
  /** Number of the first member (names are `m<index>`); member 0 makes the group. */
  firstIndex: number;
  /** Members that dial at the same time while joining. */
  batch: number;
}

/** A set of members, in this thread or in a process. Indexes are local to the pool. */
export interface Pool {
  readonly size: number;
  /** The process the members run in. */
  readonly pid: number;
  /** Resolves when every member sees at least `total` members in its roster (itself included). */
  waitRoster(total: number, timeoutMs: number): Promise<void>;
  /**
   * Member `index` sends `text` to the room.
   *
   * @returns the wall-clock time just before the send
   */
  send(index: number, text: string): Promise<number>;
  /**
   * Resolves with the wall-clock times at which `expected` members of the pool had `text`.
   *
   * @throws {Error} after `timeoutMs`, naming how many had it
   */
  arrivals(text: string, expected: number, timeoutMs: number): Promise<number[]>;
  /** Forgets the arrival times of `text`. */
  forget(text: string): Promise<void>;
  /** Messages from others that members of the pool have, in all. */
  delivered(): Promise<number>;
  /** Ends every session (after the relay stopped) and releases the pool. */
  close(): Promise<void>;
}

interface Watcher {
  expected: number;
  resolve: (times: number[]) => void;
}

/** Members in this thread. */
export class MemberPool implements Pool {
  readonly pid = Deno.pid;
  #sessions: Participant[] = [];
  #rosterSizes: number[] = [];
  #arrivals = new Map<string, number[]>();
  #watchers = new Map<string, Watcher>();
  #rosterWaiter: (() => void) | undefined;
  #delivered = 0;
  #problems: string[] = [];
  /** The first error a member reported: the room cannot go on as measured. */
  #fatal: string | undefined;

  private constructor() {}

  /**
   * Makes `options.count` Ed25519 identities and joins them to the room, `batch` at a time; the
   * room's first member alone first, so that it makes the group.
   */
  static async create(options: PoolOptions): Promise<MemberPool> {
    const pool = new MemberPool();
    const identities = await Promise.all(
      Array.from(
        { length: options.count },
        (_, i) => generateIdentity({ type: "ed25519", comment: `m${options.firstIndex + i}` }),
      ),
    );
    let start = 0;
    if (options.firstIndex === 0) {
      pool.#watch(await pool.#join(identities[0]!.identity, options, true));
      await pool.waitRoster(1, 60_000);
      start = 1;
    }
    for (let i = start; i < identities.length; i += options.batch) {
      const slice = identities.slice(i, i + options.batch);
      const sessions = await Promise.all(
        slice.map(({ identity }) => pool.#join(identity, options, false)),
      );
      for (const session of sessions) pool.#watch(session);
      // Admitted before the next batch knocks: the admin's commits add at most `batch` each,
      // which bounds their size (each newcomer adds its KeyPackage and group secrets).
      await pool.waitRoster(options.firstIndex + i + slice.length, 3_600_000);
    }
    return pool;
  }

  async #join(identity: Identity, options: PoolOptions, admin: boolean): Promise<Participant> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
    const secure = await runInitiator(conn, {
      identity,
      suites: ["x25519"],
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
      timeoutMs: 300_000,
      checkPeer: () => Promise.resolve(),
    });
    return await joinRoom(secure, { identity, admitsAtOnce: () => admin });
  }

  #watch(session: Participant): void {
    const slot = this.#sessions.length;
    this.#sessions.push(session);
    this.#rosterSizes.push(0);
    session.onEvent((event: ChatEvent) => {
      switch (event.type) {
        case "message": {
          if (event.from.self) return;
          const time = wallNow();
          this.#delivered++;
          let times = this.#arrivals.get(event.text);
          if (times === undefined) this.#arrivals.set(event.text, times = []);
          times.push(time);
          const watcher = this.#watchers.get(event.text);
          if (watcher && times.length >= watcher.expected) {
            this.#watchers.delete(event.text);
            watcher.resolve(times);
          }
          return;
        }
        case "roster":
          this.#rosterSizes[slot] = event.members.length;
          return this.#rosterWaiter?.();
        case "join":
          this.#rosterSizes[slot]! += 1;
          return this.#rosterWaiter?.();
        case "leave":
          this.#rosterSizes[slot]! -= 1;
          return;
        case "error":
        case "rejected":
          if (event.type === "error") this.#fatal ??= `m${slot}: ${event.message}`;
          if (this.#problems.length < 20) {
            this.#problems.push(`m${slot}: ${event.type}: ${JSON.stringify(event)}`);
          }
          this.#rosterWaiter?.();
          return;
      }
    });
  }

  get size(): number {
    return this.#sessions.length;
  }

  async waitRoster(total: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#rosterSizes.some((size) => size < total)) {
      if (this.#fatal !== undefined) throw new Error(`a member failed: ${this.#fatal}`);
      if (Date.now() > deadline) {
        const behind = this.#rosterSizes.filter((size) => size < total).length;
        throw new Error(
          `${behind} members do not see ${total} members after ${timeoutMs} ms; ${this.#report()}`,
        );
      }
      // Woken by roster events, or every second to check the deadline.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#rosterWaiter = () => {
          clearTimeout(timer);
          this.#rosterWaiter = undefined;
          resolve();
        };
      });
    }
  }

  async send(index: number, text: string): Promise<number> {
    const session = this.#sessions[index];
    if (session === undefined) throw new RangeError(`no member ${index} in this pool`);
    const t0 = wallNow();
    await session.sendText(text);
    return t0;
  }

  arrivals(text: string, expected: number, timeoutMs: number): Promise<number[]> {
    const times = this.#arrivals.get(text) ?? [];
    if (times.length >= expected) return Promise.resolve(times);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#watchers.delete(text);
        const had = this.#arrivals.get(text)?.length ?? 0;
        reject(
          new Error(
            `"${text}": ${had} of ${expected} members had it after ${timeoutMs} ms; ${this.#report()}`,
          ),
        );
      }, timeoutMs);
      this.#watchers.set(text, {
        expected,
        resolve: (times) => {
          clearTimeout(timer);
          resolve(times);
        },
      });
    });
  }

  forget(text: string): Promise<void> {
    this.#arrivals.delete(text);
    return Promise.resolve();
  }

  delivered(): Promise<number> {
    return Promise.resolve(this.#delivered);
  }

  #report(): string {
    return this.#problems.length === 0 ? "no errors seen" : this.#problems.join("\n");
  }

  async close(): Promise<void> {
    // The relay is gone or going: each session ends on its own; close() waits for that.
    await Promise.all(this.#sessions.map((session) => session.close().catch(() => {})));
    this.#sessions = [];
  }
}

/** A request to a member process; `_room_member_process.ts` answers it with a MemberPool. */
export type PoolRequest =
  | { call: "create"; options: PoolOptions }
  | { call: "clock" }
  | { call: "waitRoster"; total: number; timeoutMs: number }
  | { call: "send"; index: number; text: string }
  | { call: "arrivals"; text: string; expected: number; timeoutMs: number }
  | { call: "forget"; text: string }
  | { call: "delivered" }
  | { call: "close" };

/** Members in a process of their own running `_room_member_process.ts`. */
export class ProcessPool implements Pool {
  #rpc: ChildRpc;
  /** The process's clock minus ours, in milliseconds. */
  #offset = 0;
  readonly size: number;

  private constructor(rpc: ChildRpc, size: number) {
    this.#rpc = rpc;
    this.size = size;
  }

  get pid(): number {
    return this.#rpc.pid;
  }

  /** Starts a process and joins `options.count` members to the room from it. */
  static async create(options: PoolOptions): Promise<ProcessPool> {
    const pool = new ProcessPool(ChildRpc.spawn("_room_member_process.ts"), options.count);
    try {
      await pool.#call({ call: "clock" }); // the process is up before the offset is measured
      await pool.#measureOffset();
      await pool.#call({ call: "create", options });
    } catch (error) {
      await pool.#rpc.close();
      throw new Error(`${error instanceof Error ? error.message : error}\n${pool.#rpc.tail()}`);
    }
    return pool;
  }

  #call(request: PoolRequest): Promise<unknown> {
    return this.#rpc.call(request);
  }

  /** The offset of the round trip with the least delay, of 20 (NTP's idea, over a pipe). */
  async #measureOffset(): Promise<void> {
    let best = Infinity;
    for (let i = 0; i < 20; i++) {
      const before = wallNow();
      const theirs = await this.#call({ call: "clock" }) as number;
      const after = wallNow();
      if (after - before < best) {
        best = after - before;
        this.#offset = theirs - (before + after) / 2;
      }
    }
  }

  async waitRoster(total: number, timeoutMs: number): Promise<void> {
    await this.#call({ call: "waitRoster", total, timeoutMs });
  }

  async send(index: number, text: string): Promise<number> {
    return (await this.#call({ call: "send", index, text }) as number) - this.#offset;
  }

  async arrivals(text: string, expected: number, timeoutMs: number): Promise<number[]> {
    const times = await this.#call({ call: "arrivals", text, expected, timeoutMs }) as number[];
    return times.map((time) => time - this.#offset);
  }

  async forget(text: string): Promise<void> {
    await this.#call({ call: "forget", text });
  }

  async delivered(): Promise<number> {
    return await this.#call({ call: "delivered" }) as number;
  }

  async close(): Promise<void> {
    await this.#call({ call: "close" }).catch(() => {});
    await this.#rpc.close();
  }
}

/**
 * A room of `count` members spread over `processes` pools (0: all in this thread), joined pool
 * by pool. Member `i` of the room is member `i - first` of the pool holding it.
 */
export class Members {
  readonly pools: Pool[];
  readonly #first: number[];

  private constructor(pools: Pool[]) {
    this.pools = pools;
    let first = 0;
    this.#first = pools.map((pool) => (first += pool.size) - pool.size);
  }

  /**
   * Joins `count` members to the relay at `port` and waits until each sees all of them.
   *
   * @param options.processes processes to spread members over; 0 keeps them in this thread
   */
  static async join(
    port: number,
    count: number,
    options: { processes: number; batch: number; timeoutMs: number },
  ): Promise<Members> {
    const parts = Math.max(1, options.processes);
    const pools: Pool[] = [];
    try {
      let firstIndex = 0;
      for (let part = 0; part < parts; part++) {
        const size = Math.floor(count / parts) + (part < count % parts ? 1 : 0);
        if (size === 0) continue;
        const poolOptions = { port, count: size, firstIndex, batch: options.batch };
        pools.push(
          options.processes === 0
            ? await MemberPool.create(poolOptions)
            : await ProcessPool.create(poolOptions),
        );
        firstIndex += size;
      }
      await Promise.all(pools.map((pool) => pool.waitRoster(count, options.timeoutMs)));
    } catch (error) {
      await Promise.all(pools.map((pool) => pool.close()));
      throw error;
    }
    return new Members(pools);
  }

  /** Members in the room. */
  get size(): number {
    return this.pools.reduce((sum, pool) => sum + pool.size, 0);
  }

  #locate(member: number): { pool: Pool; index: number } {
    for (let p = this.pools.length - 1; p >= 0; p--) {
      if (member >= this.#first[p]!) {
        return { pool: this.pools[p]!, index: member - this.#first[p]! };
      }
    }
    throw new RangeError(`no member ${member}`);
  }

  /** Member `member` sends `text`; returns the wall-clock time just before. */
  send(member: number, text: string): Promise<number> {
    const { pool, index } = this.#locate(member);
    return pool.send(index, text);
  }

  /**
   * Resolves with the times at which every member but `sender` had `text`, and forgets them.
   * Start waiting before sending: arrivals are kept either way.
   */
  async arrivals(text: string, sender: number, timeoutMs: number): Promise<number[]> {
    const { pool: senderPool } = this.#locate(sender);
    const parts = await Promise.all(
      this.pools.map((pool) =>
        pool.arrivals(text, pool.size - (pool === senderPool ? 1 : 0), timeoutMs)
      ),
    );
    await Promise.all(this.pools.map((pool) => pool.forget(text)));
    return parts.flat();
  }

  /** Messages from others that members have, in all. */
  async delivered(): Promise<number> {
    const counts = await Promise.all(this.pools.map((pool) => pool.delivered()));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /** Ends every session; call after the relay stopped. */
  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.close()));
  }
}
