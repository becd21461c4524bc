/**
 * Members of the room fan-out benchmark: pools of room members that dial the relay
 * (`_room_relay.ts`) through the real handshake and join with `joinRoom()`. A pool runs in this
 * thread ({@linkcode MemberPool}) or in a Worker ({@linkcode WorkerPool}, script
 * `_room_worker.ts`); both answer the same {@linkcode Pool} calls.
 *
 * A member "has" a message when its Participant emits the `message` event: the record was
 * decrypted, and the author's signature and counter were checked against the roster (PROTOCOL.md
 * 13.2 "Recipients"). Times are wall-clock milliseconds (`performance.timeOrigin +
 * performance.now()`), corrected by a measured offset for each Worker.
 *
 * @module
 */

import type { ChatEvent, Participant } from "../lib/chat/chat_events.ts";
import { runInitiator } from "../lib/transport/connection.ts";
import { generateIdentity, type Identity } from "../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT } from "../lib/protocol/record.ts";
import { joinRoom } from "../lib/room/member.ts";

/** Wall-clock milliseconds with sub-millisecond precision, comparable across Workers. */
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
  /** Number of the first member (names are `m<index>`), so names are unique across pools. */
  firstIndex: number;
  /** Members that dial at the same time while joining. */
  batch: number;
  /** The handshake suite the members offer. */
  suite: "x25519" | "x25519-mlkem768";
}

/** A set of members, in this thread or in a Worker. Indexes are local to the pool. */
export interface Pool {
  readonly size: number;
  /** Resolves when every member sees at least `total` members in its roster (itself included). */
  waitRoster(total: number, timeoutMs: number): Promise<void>;
  /**
   * Member `index` signs and sends `text` to the room.
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
  #sessions: Participant[] = [];
  #rosterSizes: number[] = [];
  #arrivals = new Map<string, number[]>();
  #watchers = new Map<string, Watcher>();
  #rosterWaiter: (() => void) | undefined;
  #delivered = 0;
  #problems: string[] = [];

  private constructor() {}

  /** Makes `options.count` Ed25519 identities and joins them to the room, `batch` at a time. */
  static async create(options: PoolOptions): Promise<MemberPool> {
    const pool = new MemberPool();
    const identities = await Promise.all(
      Array.from(
        { length: options.count },
        (_, i) => generateIdentity({ type: "ed25519", comment: `m${options.firstIndex + i}` }),
      ),
    );
    for (let i = 0; i < identities.length; i += options.batch) {
      const slice = identities.slice(i, i + options.batch);
      const sessions = await Promise.all(
        slice.map(({ identity }) => pool.#join(identity, options)),
      );
      for (const session of sessions) pool.#watch(session);
    }
    return pool;
  }

  async #join(identity: Identity, options: PoolOptions): Promise<Participant> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
    const secure = await runInitiator(conn, {
      identity,
      suites: [options.suite],
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
      timeoutMs: 300_000,
      checkPeer: () => Promise.resolve(),
    });
    return await joinRoom(secure, { identity });
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
        case "rejected":
        case "error":
        case "notice":
          if (this.#problems.length < 20) {
            this.#problems.push(`m${slot}: ${event.type}: ${JSON.stringify(event)}`);
          }
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

/** A request to a pool Worker; `id` pairs it with its reply. */
export type PoolRequest =
  | { id: number; call: "create"; options: PoolOptions }
  | { id: number; call: "clock" }
  | { id: number; call: "waitRoster"; total: number; timeoutMs: number }
  | { id: number; call: "send"; index: number; text: string }
  | { id: number; call: "arrivals"; text: string; expected: number; timeoutMs: number }
  | { id: number; call: "forget"; text: string }
  | { id: number; call: "delivered" }
  | { id: number; call: "close" };

/** A request without its `id` (Omit on each member of the union). */
type PoolCall = PoolRequest extends infer R ? R extends PoolRequest ? Omit<R, "id"> : never : never;

/** A pool Worker's reply: the call's result, or its error message. */
export type PoolReply = { id: number; value: unknown } | { id: number; error: string };

/** Members in a Worker running `_room_worker.ts`. */
export class WorkerPool implements Pool {
  #worker: Worker;
  #nextId = 0;
  #pending = new Map<number, { resolve: (value: unknown) => void; reject: (e: Error) => void }>();
  /** Worker clock minus ours, in milliseconds. */
  #offset = 0;
  readonly size: number;

  private constructor(worker: Worker, size: number) {
    this.#worker = worker;
    this.size = size;
    worker.onmessage = (event: MessageEvent<PoolReply>) => {
      const reply = event.data;
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if ("error" in reply) pending.reject(new Error(reply.error));
      else pending.resolve(reply.value);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      for (const pending of this.#pending.values()) pending.reject(new Error(event.message));
      this.#pending.clear();
    };
  }

  /** Starts a Worker and joins `options.count` members to the room from it. */
  static async create(options: PoolOptions): Promise<WorkerPool> {
    const worker = new Worker(new URL("./_room_worker.ts", import.meta.url), { type: "module" });
    const pool = new WorkerPool(worker, options.count);
    try {
      await pool.#call({ call: "clock" }); // warm the channel before measuring the offset
      await pool.#measureOffset();
      await pool.#call({ call: "create", options });
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return pool;
  }

  #call(request: PoolCall): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id });
    });
  }

  /** The offset of the round trip with the least delay, of 20 (NTP's idea, in-process). */
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
    this.#worker.terminate();
  }
}

/**
 * A room of `count` members spread over `workers` pools (0: all in this thread), joined pool by
 * pool. Member `i` of the room is member `i - first` of the pool holding it.
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
   * @param options.workers Workers to spread members over; 0 keeps them in this thread
   */
  static async join(
    port: number,
    count: number,
    options: { workers: number; batch: number; suite: PoolOptions["suite"]; timeoutMs: number },
  ): Promise<Members> {
    const parts = Math.max(1, options.workers);
    const pools: Pool[] = [];
    try {
      let firstIndex = 0;
      for (let part = 0; part < parts; part++) {
        const size = Math.floor(count / parts) + (part < count % parts ? 1 : 0);
        if (size === 0) continue;
        const poolOptions = {
          port,
          count: size,
          firstIndex,
          batch: options.batch,
          suite: options.suite,
        };
        pools.push(
          options.workers === 0
            ? await MemberPool.create(poolOptions)
            : await WorkerPool.create(poolOptions),
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
