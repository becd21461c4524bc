/**
 * The relay's per-member limits: how many connections a room admits, how large a relay message
 * may be, how fast one member may send (token buckets on an injected clock: Group messages by
 * count, Direct messages by bytes), and how many violations within a window get it disconnected.
 * Pure bookkeeping: the relay (lib/room/relay.ts) decides what a violation costs and tells the
 * member.
 *
 * Mirrors: docs/PROTOCOL.md section 13.8.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { TokenBucket } from "./limits.ts";
 * const bucket = new TokenBucket(1, 2, 0);
 * deepStrictEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(1000)], [
 *   true, true, false, true,
 * ]);
 * ```
 *
 * @module
 */

/** Section 13.8: connections a room admits, waiting newcomers included. */
export const DEFAULT_MAX_MEMBERS = 256;
/** Section 13.8: the largest relay message a member may send (a Commit with its Welcome). */
export { MAX_RELAY_MESSAGE_BYTES } from "../chat/relay_messages.ts";
/** Section 13.8: Group messages a second, sustained, and in a burst. */
export const DEFAULT_GROUP_RATE = 20;
export const DEFAULT_GROUP_BURST = 100;
/**
 * Section 13.8: Direct bytes a second, sustained, and in a burst. 64 MiB/s (with the pace at 48)
 * held a loopback `dial --send` of 128 MiB to 3.5 s where 256 MiB/s lets it finish in 2.1 s on the
 * 2-core bench machine (issue 16). What a relay spends on them: one record opened and one sealed
 * per Direct, ChaCha20-Poly1305 on the synchronous path at about 1,678 MB/s each
 * (lib/crypto/chacha20_poly1305.ts), so a member at the full rate costs the relay about a third of
 * a core. The burst is not memory: Directs are forwarded at once, and a recipient's queue is bounded
 * on its own (MAX_PENDING_BYTES in delivery.ts).
 */
export const DEFAULT_DIRECT_BYTES_PER_SECOND = 256 * 1024 * 1024;
export const DEFAULT_DIRECT_BURST_BYTES = 64 * 1024 * 1024;
/** Violations within VIOLATION_WINDOW_MS that get a member disconnected. */
export const MAX_VIOLATIONS = 3;
export const VIOLATION_WINDOW_MS = 60_000;

/** A token bucket: `rate` tokens a second, at most `burst`. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(readonly rate: number, readonly burst: number, now: number) {
    this.#tokens = burst;
    this.#last = now;
  }
  /**
   * Takes `count` tokens if there are that many; otherwise takes none.
   *
   * @param now milliseconds, from the caller's clock
   * @param count tokens wanted (1 for a message; its length for bytes)
   */
  take(now: number, count = 1): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    if (this.#tokens < count) return false;
    this.#tokens -= count;
    return true;
  }
}

/** One member's recent violations; older ones than VIOLATION_WINDOW_MS are forgotten. */
export class Violations {
  #times: number[] = [];
  /**
   * Records a violation at `now`.
   *
   * @returns true when it makes MAX_VIOLATIONS within the window: the member is to be disconnected
   */
  add(now: number): boolean {
    this.#times = this.#times.filter((t) => now - t < VIOLATION_WINDOW_MS);
    this.#times.push(now);
    return this.#times.length >= MAX_VIOLATIONS;
  }
}
