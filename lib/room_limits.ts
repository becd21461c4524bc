/**
 * The relay's per-member limits: how many members a room admits, how fast one member may send (a
 * token bucket on an injected clock), and how many violations within a window get it
 * disconnected. Pure bookkeeping: the relay (lib/room.ts) decides what a violation costs and
 * tells the member.
 *
 * Mirrors: docs/PROTOCOL.md section 13.4.
 *
 * @module
 */

/** Section 13.4 defaults. */
export const DEFAULT_MAX_MEMBERS = 256;
export const DEFAULT_RATE_PER_SECOND = 5;
export const DEFAULT_BURST = 20;
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
  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
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
