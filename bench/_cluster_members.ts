/**
 * Members of the cluster benchmark: room members that reach a room the way `dial RELAY --room
 * NAME` does (PROTOCOL.md 15.5): each dials a rendezvous relay with its own Ed25519 key
 * (connectToRelay, the relay's key pinned), asks Room with the room's token (enterRoomAt), then
 * joins with joinRoom (real MLS, X-Wing). Each member is given the relay it dials, so a room can
 * span the relays of a cluster. A pool of members runs in this thread ({@linkcode ClusterPool})
 * or in a process of its own ({@linkcode ClusterProcessPool}, `_cluster_member_process.ts`).
 *
 * Not bench/_room_members.ts: those dial a room relay's port directly, without the Room request a
 * rendezvous relay needs. The shape follows it: the room's member 0 makes the group and admits
 * everyone who knocks; a member "has" a message when its Participant shows it (MLS decrypted and
 * authenticated it); times are wall-clock milliseconds corrected by each process's offset.
 *
 * @module
 */

import type { ChatEvent, Participant } from "../lib/chat/chat_events.ts";
import { fromHex } from "../lib/core/bytes.ts";
import { generateIdentity, type Identity } from "../lib/keys/identity.ts";
import { connectToRelay, enterRoomAt } from "../lib/rendezvous/rendezvous_client.ts";
import { joinRoom } from "../lib/room/member.ts";
import { sleep, wallNow } from "./_room_members.ts";
import { ChildRpc } from "./_rpc.ts";

/** Where a pool's members go. */
export interface ClusterPoolOptions {
  /** The room token (15.3), hex. */
  token: string;
  /** The relays' shared key, pinned by every member. */
  relayFingerprint: string;
  /** Room-wide index and relay port of each member of the pool; room member 0 makes the group. */
  members: { index: number; port: number }[];
  /** Members that dial at the same time while joining. */
  batch: number;
}

/** One member having one message. */
export interface Arrival {
  /** Room-wide index of the member. */
  member: number;
  /** Wall-clock milliseconds. */
  time: number;
}

/** Messages a member process sends at once: each sender its texts, one after the other. */
export type Burst = { index: number; texts: string[] }[];

/** A request to a member process; `_cluster_member_process.ts` answers it with a ClusterPool. */
export type ClusterPoolRequest =
  | { call: "create"; options: ClusterPoolOptions }
  | { call: "clock" }
  | { call: "waitRoster"; total: number; timeoutMs: number }
  | { call: "send"; index: number; text: string }
  | { call: "burst"; burst: Burst }
  | { call: "arrivals"; text: string; expected: number; timeoutMs: number }
  | { call: "waitDelivered"; total: number; timeoutMs: number }
  | { call: "close" };

/** Members in this thread. Indexes in calls are room-wide. */
export class ClusterPool {
  #sessions = new Map<number, Participant>();
  #rosterSizes = new Map<number, number>();
  #arrivals = new Map<string, Arrival[]>();
  #watchers = new Map<string, { expected: number; resolve: (list: Arrival[]) => void }>();
  #wake: (() => void) | undefined;
  #delivered = 0;
  #lastDelivery = 0;
  #fatal: string | undefined;

  private constructor() {}

  /** Makes the members' identities and joins them, `batch` at a time (room member 0 alone first). */
  static async create(options: ClusterPoolOptions): Promise<ClusterPool> {
    const pool = new ClusterPool();
    const made = await Promise.all(
      options.members.map(({ index }) =>
        generateIdentity({ type: "ed25519", comment: `m${index}` })
      ),
    );
    const members = options.members.map((member, i) => ({ ...member, ...made[i]! }));
    let start = 0;
    if (members[0]?.index === 0) {
      await pool.#join(members[0].index, members[0].identity, members[0].port, options);
      await pool.waitRoster(1, 60_000);
      start = 1;
    }
    for (let i = start; i < members.length; i += options.batch) {
      const slice = members.slice(i, i + options.batch);
      await Promise.all(
        slice.map((member) => pool.#join(member.index, member.identity, member.port, options)),
      );
      // Admitted before the next batch knocks: the admin's commits stay small.
      await pool.waitRoster(slice.at(-1)!.index + 1, 600_000);
    }
    return pool;
  }

  async #join(
    index: number,
    identity: Identity,
    port: number,
    options: ClusterPoolOptions,
  ): Promise<void> {
    const relay = await connectToRelay({
      host: "127.0.0.1",
      port,
      identity,
      suites: ["x25519"],
      timeoutMs: 300_000,
      checkRelay: (peer) =>
        peer.identity.fingerprint === options.relayFingerprint
          ? Promise.resolve()
          : Promise.reject(new Error("not the bench's relay key")),
    });
    const secure = await enterRoomAt(relay, fromHex(options.token), { timeoutMs: 300_000 });
    const session = await joinRoom(secure, { identity, admitsAtOnce: () => index === 0 });
    this.#sessions.set(index, session);
    this.#rosterSizes.set(index, 0);
    session.onEvent((event: ChatEvent) => this.#onEvent(index, event));
  }

  #onEvent(index: number, event: ChatEvent): void {
    switch (event.type) {
      case "message": {
        if (event.from.self) return;
        const time = wallNow();
        this.#delivered++;
        this.#lastDelivery = time;
        let list = this.#arrivals.get(event.text);
        if (list === undefined) this.#arrivals.set(event.text, list = []);
        list.push({ member: index, time });
        const watcher = this.#watchers.get(event.text);
        if (watcher && list.length >= watcher.expected) {
          this.#watchers.delete(event.text);
          this.#arrivals.delete(event.text);
          watcher.resolve(list);
        }
        return this.#wake?.();
      }
      case "roster":
        this.#rosterSizes.set(index, event.members.length);
        return this.#wake?.();
      case "join":
        this.#rosterSizes.set(index, (this.#rosterSizes.get(index) ?? 0) + 1);
        return this.#wake?.();
      case "leave":
        this.#rosterSizes.set(index, (this.#rosterSizes.get(index) ?? 0) - 1);
        return;
      case "error":
        this.#fatal ??= `m${index}: ${event.message}`;
        return this.#wake?.();
    }
  }

  /** Resolves when `done()` holds, woken by events; throws after `timeoutMs` with `what`. */
  async #until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.#fatal !== undefined) throw new Error(`a member failed: ${this.#fatal}`);
      if (Date.now() > deadline) throw new Error(`${what()} after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }

  /** Resolves when every member of the pool sees at least `total` members. */
  waitRoster(total: number, timeoutMs: number): Promise<void> {
    const behind = () => [...this.#rosterSizes.values()].filter((size) => size < total).length;
    return this.#until(
      () => behind() === 0,
      timeoutMs,
      () => `${behind()} members do not see ${total} members`,
    );
  }

  #session(index: number): Participant {
    const session = this.#sessions.get(index);
    if (session === undefined) throw new RangeError(`no member ${index} in this pool`);
    return session;
  }

  /** Member `index` sends `text`; returns the wall-clock time just before. */
  async send(index: number, text: string): Promise<number> {
    const session = this.#session(index);
    const t0 = wallNow();
    await session.sendText(text);
    return t0;
  }

  /** Every sender of `burst` sends its texts at once; returns the time just before. */
  async burst(burst: Burst): Promise<number> {
    const t0 = wallNow();
    await Promise.all(burst.map(async ({ index, texts }) => {
      const session = this.#session(index);
      for (const text of texts) await session.sendText(text);
    }));
    return t0;
  }

  /** Resolves with who had `text` when, once `expected` members of the pool have it. */
  async arrivals(text: string, expected: number, timeoutMs: number): Promise<Arrival[]> {
    const had = this.#arrivals.get(text) ?? [];
    if (had.length >= expected) {
      this.#arrivals.delete(text);
      return had;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise<Arrival[]>((resolve, reject) => {
        timer = setTimeout(() => {
          this.#watchers.delete(text);
          const count = this.#arrivals.get(text)?.length ?? 0;
          reject(
            new Error(`"${text}": ${count} of ${expected} members had it after ${timeoutMs} ms`),
          );
        }, timeoutMs);
        this.#watchers.set(text, { expected, resolve });
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves once the pool's members have `total` more messages from others than when it was
   * called, with the time of the last one; throws with the count reached after `timeoutMs`.
   */
  async waitDelivered(total: number, timeoutMs: number): Promise<number> {
    const base = this.#delivered;
    await this.#until(
      () => this.#delivered - base >= total,
      timeoutMs,
      () => `${this.#delivered - base} of ${total} messages delivered`,
    );
    // Per-text arrivals are not kept for a burst: only the count and the last time matter.
    this.#arrivals.clear();
    return this.#lastDelivery;
  }

  /** Ends every session. */
  async close(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((s) => s.close().catch(() => {})));
    this.#sessions.clear();
  }
}

/**
 * The offset of another process's wall clock from ours (theirs minus ours): the round trip with
 * the least delay of 20 (NTP's idea, over a pipe).
 */
export async function clockOffset(rpc: ChildRpc): Promise<number> {
  let best = Infinity;
  let offset = 0;
  await rpc.call({ call: "clock" });
  for (let i = 0; i < 20; i++) {
    const before = wallNow();
    const theirs = await rpc.call({ call: "clock" }) as number;
    const after = wallNow();
    if (after - before < best) {
      best = after - before;
      offset = theirs - (before + after) / 2;
    }
  }
  return offset;
}

/** A {@linkcode ClusterPool} in a process of its own; times come back in our clock. */
export class ClusterProcessPool {
  readonly rpc: ChildRpc;
  readonly members: number[];
  #offset = 0;

  private constructor(rpc: ChildRpc, members: number[]) {
    this.rpc = rpc;
    this.members = members;
  }

  get pid(): number {
    return this.rpc.pid;
  }

  /** Starts the process and joins the pool's members from it. */
  static async create(options: ClusterPoolOptions): Promise<ClusterProcessPool> {
    const pool = new ClusterProcessPool(
      ChildRpc.spawn("_cluster_member_process.ts"),
      options.members.map((member) => member.index),
    );
    try {
      pool.#offset = await clockOffset(pool.rpc);
      await pool.#call({ call: "create", options });
    } catch (error) {
      await pool.rpc.close();
      throw new Error(`${error instanceof Error ? error.message : error}\n${pool.rpc.tail()}`);
    }
    return pool;
  }

  #call(request: ClusterPoolRequest): Promise<unknown> {
    return this.rpc.call(request);
  }

  async waitRoster(total: number, timeoutMs: number): Promise<void> {
    await this.#call({ call: "waitRoster", total, timeoutMs });
  }

  async send(index: number, text: string): Promise<number> {
    return (await this.#call({ call: "send", index, text }) as number) - this.#offset;
  }

  async burst(burst: Burst): Promise<number> {
    return (await this.#call({ call: "burst", burst }) as number) - this.#offset;
  }

  async arrivals(text: string, expected: number, timeoutMs: number): Promise<Arrival[]> {
    const list = await this.#call({ call: "arrivals", text, expected, timeoutMs }) as Arrival[];
    return list.map(({ member, time }) => ({ member, time: time - this.#offset }));
  }

  async waitDelivered(total: number, timeoutMs: number): Promise<number> {
    return (await this.#call({ call: "waitDelivered", total, timeoutMs }) as number) -
      this.#offset;
  }

  async close(): Promise<void> {
    await this.#call({ call: "close" }).catch(() => {});
    await this.rpc.close();
  }
}

export { sleep, wallNow };
