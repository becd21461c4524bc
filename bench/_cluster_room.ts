/**
 * The relays and rooms of the cluster benchmark: relay processes (`_cluster_relay_process.ts`,
 * clustered over NATS or single) sharing one key, and a room whose members, in processes of their
 * own (`_cluster_members.ts`), each dial a chosen relay. Times from every process come back in
 * this process's wall clock (an offset measured per process).
 *
 * @module
 */

import { toHex } from "../lib/core/bytes.ts";
import { generateIdentity } from "../lib/keys/identity.ts";
import { writeIdentity } from "../lib/keys/identity_file.ts";
import { roomToken } from "../lib/rendezvous/tokens.ts";
import { type Arrival, type Burst, clockOffset, ClusterProcessPool } from "./_cluster_members.ts";
import type { ClusterRelayOptions, Deliveries, MessageTiming } from "./_cluster_relay_process.ts";
import { processCpuMs } from "./_room_relay.ts";
import { ChildRpc } from "./_rpc.ts";

/** A relay process. */
export interface BenchRelay {
  readonly port: number;
  readonly pid: number;
  cpuMs(): Promise<number>;
  /** Records of Group messages written since the last call; times in our clock. */
  deliveries(): Promise<Deliveries>;
  /** Starts (or stops) noting per-message times; forgets those noted. */
  track(on: boolean): Promise<void>;
  /** Per message key, what this relay noted; times in our clock. Forgets them. */
  timings(): Promise<Record<string, MessageTiming>>;
  tail(): string;
  stop(): Promise<void>;
}

/** The relays' shared key (16: one key for the cluster), written to `folder`. */
export async function relayKey(folder: string): Promise<{ file: string; fingerprint: string }> {
  const { identity, pkcs8 } = await generateIdentity({ type: "ed25519", comment: "relay" });
  const file = `${folder}/relay_key`;
  await writeIdentity(file, pkcs8, identity, { force: true });
  pkcs8.fill(0);
  return { file, fingerprint: identity.fingerprint };
}

/** Starts a relay process; resolves once it listens (and, clustered, has joined NATS). */
export async function startBenchRelay(options: ClusterRelayOptions): Promise<BenchRelay> {
  const rpc = ChildRpc.spawn("_cluster_relay_process.ts", [JSON.stringify(options)]);
  let port: number;
  let offset: number;
  try {
    port = await rpc.call({ call: "port" }) as number;
    offset = await clockOffset(rpc);
  } catch (error) {
    await rpc.close();
    throw new Error(`a relay did not start: ${(error as Error).message}\n${rpc.tail()}`);
  }
  let stopped = false;
  return {
    port,
    pid: rpc.pid,
    cpuMs: () => processCpuMs(rpc.pid),
    async deliveries() {
      const got = await rpc.call({ call: "deliveries" }) as Deliveries;
      return { count: got.count, firstAt: got.firstAt - offset, lastAt: got.lastAt - offset };
    },
    async track(on) {
      await rpc.call({ call: "track", on });
    },
    async timings() {
      const got = await rpc.call({ call: "timings" }) as Record<string, MessageTiming>;
      for (const timing of Object.values(got)) {
        if (timing.inAt !== undefined) timing.inAt -= offset;
        if (timing.lastOutAt !== undefined) timing.lastOutAt -= offset;
      }
      return got;
    },
    tail: () => rpc.tail(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await rpc.call({ call: "close" }).catch(() => {});
      await rpc.close();
    },
  };
}

/** A room on the relays: its members, spread over processes. */
export class BenchRoom {
  readonly pools: ClusterProcessPool[];
  /** The relay (index into the relays given) each member dials. */
  readonly relayOf: number[];

  private constructor(pools: ClusterProcessPool[], relayOf: number[]) {
    this.pools = pools;
    this.relayOf = relayOf;
  }

  /**
   * Joins `count` members to a fresh room (a random name), member `i` through relay
   * `place(i)`; pools of consecutive members, one process each, joined pool by pool.
   */
  static async join(
    relays: BenchRelay[],
    options: {
      count: number;
      processes: number;
      batch: number;
      fingerprint: string;
      place: (member: number) => number;
    },
  ): Promise<BenchRoom> {
    const token = toHex(await roomToken(`bench ${crypto.randomUUID()}`));
    const relayOf = Array.from({ length: options.count }, (_, i) => options.place(i));
    const pools: ClusterProcessPool[] = [];
    try {
      let first = 0;
      const parts = Math.max(1, Math.min(options.processes, options.count));
      for (let part = 0; part < parts; part++) {
        const size = Math.floor(options.count / parts) + (part < options.count % parts ? 1 : 0);
        const members = Array.from({ length: size }, (_, i) => ({
          index: first + i,
          port: relays[relayOf[first + i]!]!.port,
        }));
        pools.push(
          await ClusterProcessPool.create({
            token,
            relayFingerprint: options.fingerprint,
            members,
            batch: options.batch,
          }),
        );
        first += size;
      }
      await Promise.all(pools.map((pool) => pool.waitRoster(options.count, 600_000)));
    } catch (error) {
      await Promise.all(pools.map((pool) => pool.close()));
      const tails = relays.map((relay) => relay.tail()).join("\n");
      throw new Error(`${(error as Error).message}\nrelays:\n${tails}`);
    }
    return new BenchRoom(pools, relayOf);
  }

  get size(): number {
    return this.relayOf.length;
  }

  #poolOf(member: number): ClusterProcessPool {
    const pool = this.pools.find((candidate) => candidate.members.includes(member));
    if (pool === undefined) throw new RangeError(`no member ${member}`);
    return pool;
  }

  /** Member `member` sends `text`; returns the time just before. */
  send(member: number, text: string): Promise<number> {
    return this.#poolOf(member).send(member, text);
  }

  /** Who had `text` when: every member but `sender`. Start waiting before sending. */
  async arrivals(text: string, sender: number, timeoutMs: number): Promise<Arrival[]> {
    const parts = await Promise.all(this.pools.map((pool) => {
      const expected = pool.members.filter((member) => member !== sender).length;
      return pool.arrivals(text, expected, timeoutMs);
    }));
    return parts.flat();
  }

  /**
   * Every member in `senders` sends `perSender` messages at once; resolves when every other
   * member has all of them: the time of the first send and of the last arrival.
   */
  async burst(
    senders: number[],
    perSender: number,
    timeoutMs: number,
  ): Promise<{ startedAt: number; lastAt: number; messages: number; deliveries: number }> {
    const texts = (member: number) =>
      Array.from({ length: perSender }, (_, i) => `burst-${member}-${i}`);
    const messages = senders.length * perSender;
    // Each pool's members get every message but their own.
    const expected = this.pools.map((pool) =>
      pool.members.reduce(
        (sum, member) => sum + messages - (senders.includes(member) ? perSender : 0),
        0,
      )
    );
    const bursts: Burst[] = this.pools.map((pool) =>
      senders.filter((member) => pool.members.includes(member))
        .map((index) => ({ index, texts: texts(index) }))
    );
    const arriving = this.pools.map((pool, p) => pool.waitDelivered(expected[p]!, timeoutMs));
    const started = await Promise.all(
      this.pools.map((pool, p) => bursts[p]!.length === 0 ? Infinity : pool.burst(bursts[p]!)),
    );
    const lasts = await Promise.all(arriving);
    return {
      startedAt: Math.min(...started),
      lastAt: Math.max(...lasts),
      messages,
      deliveries: expected.reduce((sum, count) => sum + count, 0),
    };
  }

  /** CPU milliseconds of every member process so far. */
  async cpuMs(): Promise<number> {
    const times = await Promise.all(this.pools.map((pool) => processCpuMs(pool.pid)));
    return times.reduce((sum, ms) => sum + ms, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.close()));
  }
}
