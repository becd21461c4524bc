/**
 * Paces the Directs a member sends so they stay under the relay's Direct rate (docs/PROTOCOL.md
 * 13.8: 256 MiB a second, in bursts of 64 MiB), which drops what exceeds it: a dropped Data slice
 * ends the file transfer it belongs to (14.4). Without pacing, a sender on a fast link (loopback,
 * a LAN) outran the relay and every large transfer failed with "file data was dropped or replayed
 * on the way".
 *
 * The pace is three quarters of the relay's sustained rate, in bursts of a quarter of its burst:
 * the relay measures when bytes arrive, and bytes sent evenly can arrive bunched (a socket that
 * stalled, then drained), so the margin absorbs up to 48 MiB of bunching (250 ms of Directs at the
 * pace).
 *
 * What it does not do: pace Group messages (they are few; a file's control messages are bounded
 * by its window) or know the relay's actual settings (13.8 fixes them).
 *
 * Mirrors: docs/PROTOCOL.md section 13.8.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { DirectPacer } from "./direct_pacer.ts";
 * let now = 0;
 * const pacer = new DirectPacer({
 *   rate: 1000,
 *   burst: 100,
 *   now: () => now,
 *   sleep: (ms) => Promise.resolve(void (now += ms)),
 * });
 * await pacer.wait(100); // the burst: at once
 * await pacer.wait(100); // 100 more bytes at 1000 a second: 100 ms later
 * strictEqual(now, 100);
 * ```
 *
 * @module
 */

import {
  DEFAULT_DIRECT_BURST_BYTES,
  DEFAULT_DIRECT_BYTES_PER_SECOND,
  TokenBucket,
} from "./limits.ts";

/** The pace a member keeps: below the relay's Direct rate and burst (see the module doc). */
export const DIRECT_PACE_BYTES_PER_SECOND = DEFAULT_DIRECT_BYTES_PER_SECOND * 3 / 4;
export const DIRECT_PACE_BURST_BYTES = DEFAULT_DIRECT_BURST_BYTES / 4;

/** Options of a {@linkcode DirectPacer}; the defaults are the pace above on the real clock. */
export interface DirectPacerOptions {
  /** Bytes a second, sustained. */
  rate?: number;
  /** Bytes at once. */
  burst?: number;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** Waits `ms` milliseconds. */
  sleep?: (ms: number) => Promise<void>;
}

/** Lets Directs go at a sustained rate, in order. */
export class DirectPacer {
  #bucket: TokenBucket;
  #now: () => number;
  #sleep: (ms: number) => Promise<void>;
  /** The last Direct's turn: each waits for the one before, so Directs keep their order. */
  #turn: Promise<void> = Promise.resolve();

  constructor(options: DirectPacerOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ??
      ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#bucket = new TokenBucket(
      options.rate ?? DIRECT_PACE_BYTES_PER_SECOND,
      options.burst ?? DIRECT_PACE_BURST_BYTES,
      this.#now(),
    );
  }

  /**
   * Resolves when `bytes` more may be sent, after the Directs that asked before.
   *
   * @throws {RangeError} for more bytes than the burst (they could never go)
   */
  wait(bytes: number): Promise<void> {
    if (bytes > this.#bucket.burst) {
      return Promise.reject(new RangeError(`a Direct of ${bytes} bytes exceeds the burst`));
    }
    const turn = this.#turn.then(async () => {
      while (!this.#bucket.take(this.#now(), bytes)) {
        await this.#sleep(Math.max(1, Math.ceil((bytes / this.#bucket.rate) * 1000)));
      }
    });
    this.#turn = turn;
    return turn;
  }
}
