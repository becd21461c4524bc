/**
 * The byte budget of a rendezvous relay's splices: bytes a second per source address (by
 * `addressPrefix()`: an IPv4 address, an IPv6 /64), both ways, shared by every splice of that
 * address. Going over never drops a byte: the copy is told how long to wait first (back-pressure;
 * TCP then slows the sender down).
 *
 * A bucket holds up to `burstBytes` and fills at `bytesPerSecond`. Taking more than it holds
 * leaves it in debt, and the wait returned is the time the debt takes to fill: concurrent copies
 * of one address queue behind each other's debt, so together they get the rate, not each.
 *
 * Pure: no socket and no timer; the clock is injected. The splice (lib/rendezvous/splice.ts)
 * does the waiting. A bucket is forgotten once no splice of its address holds it.
 *
 * Mirrors: docs/PROTOCOL.md section 15.6 ("bytes a second spliced for one address, both ways").
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { ByteBudgets } from "./byte_budget.ts";
 * let now = 0;
 * const budgets = new ByteBudgets({ bytesPerSecond: 1000, burstBytes: 1000, now: () => now });
 * const budget = budgets.acquire("192.0.2.1");
 * strictEqual(budget.take(1000), 0); // within the burst
 * strictEqual(budget.take(500), 500); // 500 bytes of debt: wait half a second
 * budget.release();
 * ```
 *
 * @module
 */

import { addressPrefix } from "../transport/listener.ts";

/** Options of {@linkcode ByteBudgets}. */
export interface ByteBudgetOptions {
  /** Sustained bytes a second per address. */
  bytesPerSecond: number;
  /** What a bucket holds when full (default: one second's worth). */
  burstBytes?: number;
  /** Milliseconds clock (default `Date.now`). */
  now?: () => number;
}

/** One address's budget, held by a splice until it ends. */
export interface AddressBudget {
  /** `addressPrefix()` of the address. */
  readonly prefix: string;
  /**
   * Charges `bytes` to the address.
   *
   * @returns milliseconds to wait before passing them on (0: at once)
   */
  take(bytes: number): number;
  /** Gives the budget back; the second call does nothing. */
  release(): void;
}

/** A bucket with its holders. */
interface Bucket {
  tokens: number;
  last: number;
  holders: number;
}

/** The byte budgets of every address with a splice. */
export class ByteBudgets {
  #buckets = new Map<string, Bucket>();
  #rate: number;
  #burst: number;
  #now: () => number;
  #waits = 0;

  /** @throws {RangeError} on a rate or burst that is not positive */
  constructor(options: ByteBudgetOptions) {
    this.#rate = options.bytesPerSecond;
    this.#burst = options.burstBytes ?? options.bytesPerSecond;
    if (!(this.#rate > 0) || !(this.#burst > 0)) {
      throw new RangeError("a byte budget needs a positive rate and burst");
    }
    this.#now = options.now ?? Date.now;
  }

  /** Addresses with a bucket now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** How many times a copy was told to wait, for tests and operators. */
  get waits(): number {
    return this.#waits;
  }

  /** The budget of `address`'s prefix, shared with the other splices of that prefix. */
  acquire(address: string): AddressBudget {
    const prefix = addressPrefix(address);
    let bucket = this.#buckets.get(prefix);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, last: this.#now(), holders: 0 };
      this.#buckets.set(prefix, bucket);
    }
    bucket.holders++;
    const held = bucket;
    let released = false;
    return {
      prefix,
      take: (bytes) => this.#take(held, bytes),
      release: () => {
        if (released) return;
        released = true;
        if (--held.holders === 0) this.#buckets.delete(prefix);
      },
    };
  }

  #take(bucket: Bucket, bytes: number): number {
    const now = this.#now();
    const elapsed = Math.max(0, now - bucket.last);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (elapsed / 1000) * this.#rate);
    bucket.last = now;
    bucket.tokens -= bytes;
    if (bucket.tokens >= 0) return 0;
    this.#waits++;
    return Math.ceil((-bucket.tokens / this.#rate) * 1000);
  }
}
