/**
 * The listener's accept loop and admission policy, apart from any command: `acceptLoop()` keeps
 * accepting whatever one connection or the system throws at it; `PendingHandshakes` decides which
 * handshake in progress to give up when too many wait at once; `KexBudget` caps the expensive key
 * agreements (ffdhe3072) each source address may have running. The policy classes are pure (no
 * sockets, no clock), so tests drive them directly; lib/cli/listen.ts only wires flags to them.
 *
 * Mirrors: docs/PROTOCOL.md section 6.3 (deadlines and admission) and 4.3 (ffdhe3072 on a listener).
 *
 * @module
 */

import type { SuiteName } from "../crypto/kex.ts";

/** Handshakes in progress at once, from all addresses; a new one evicts the oldest beyond it. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 256;

/** Handshakes in progress at once from one address; a new one evicts that address's oldest. */
export const DEFAULT_MAX_PENDING_PER_ADDRESS = 32;

/** Expensive key agreements (ffdhe3072) running at once from one address, and in all. */
export const DEFAULT_EXPENSIVE_KEX_PER_ADDRESS = 1;
export const DEFAULT_EXPENSIVE_KEX_TOTAL = 2;

/** Suites whose responder work costs far more than a hello costs to send (section 4.3). */
export const EXPENSIVE_SUITES: readonly SuiteName[] = ["ffdhe3072"];

/** Longest pause between accept attempts while the system is out of sockets or memory. */
const MAX_BACKOFF_MS = 1000;

/** Errors that concern one connection only (it reset or vanished before or while accepted). */
const CONNECTION_ERRORS = [
  Deno.errors.NotConnected,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.ConnectionRefused,
  Deno.errors.BrokenPipe,
  Deno.errors.TimedOut,
];

/** Where a connection comes from: `address` for budgets, `from` (with the port) for messages. */
export interface Source {
  address: string;
  from: string;
}

/** The peer's address, or undefined when the socket already reset (NotConnected). */
export function sourceOf(conn: Deno.Conn): Source | undefined {
  try {
    const remote = conn.remoteAddr as Deno.NetAddr;
    return { address: remote.hostname, from: `${remote.hostname}:${remote.port}` };
  } catch {
    return undefined;
  }
}

/**
 * Accepts connections until the listener is closed, handing each to `serve` with its source. A
 * connection that fails while being accepted is skipped; when the system runs out of file
 * descriptors (EMFILE, ENFILE) or memory the loop waits, doubling the pause up to 1 s, and tries
 * again instead of ending. `serve` must not throw; a rejection it returns is reported.
 *
 * @returns when the listener is closed
 */
export async function acceptLoop(
  listener: Deno.Listener,
  serve: (conn: Deno.Conn, source: Source) => Promise<void>,
  report: (line: string) => void,
): Promise<void> {
  let backoffMs = 0;
  let lastReport = 0;
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (error instanceof Deno.errors.BadResource) return; // the listener was closed
      if (CONNECTION_ERRORS.some((kind) => error instanceof kind)) continue;
      // Out of descriptors or memory, or an error we do not know: the next accept may work once
      // sessions end, so wait instead of spinning or giving up the listener.
      backoffMs = Math.min(Math.max(backoffMs * 2, 10), MAX_BACKOFF_MS);
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        const message = error instanceof Error ? error.message : String(error);
        report(`cannot accept a connection: ${message}; trying again`);
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      continue;
    }
    backoffMs = 0;
    const source = sourceOf(conn);
    if (source === undefined) {
      closeQuietly(conn);
      continue;
    }
    serve(conn, source).catch((error) => {
      report(`connection from ${source.from} failed: ${(error as Error).message}`);
    });
  }
}

/** Closes a connection that may already be closed. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** One handshake in `PendingHandshakes`. */
export interface PendingEntry<T> {
  readonly address: string;
  readonly value: T;
  /** Whether its first flight (magic and ClientHello) arrived: such entries are evicted last. */
  firstFlightDone: boolean;
}

/**
 * Handshakes in progress, oldest first. Adding one beyond the per-address cap evicts that
 * address's oldest; beyond the global cap, the oldest of all. Entries still waiting for their
 * first flight go before those already doing the key agreement, so connections that only hold a
 * slot make room for a dialer that talks. Admitted sessions never enter the table.
 *
 * @example
 * ```ts
 * const table = new PendingHandshakes<string>({ maxPending: 2, maxPerAddress: 1 });
 * table.add("10.0.0.1", "a");
 * const { evicted } = table.add("10.0.0.1", "b");
 * // evicted: ["a"]
 * ```
 */
export class PendingHandshakes<T> {
  #entries = new Set<PendingEntry<T>>();
  #byAddress = new Map<string, Set<PendingEntry<T>>>();
  #maxPending: number;
  #maxPerAddress: number;

  constructor(options: { maxPending: number; maxPerAddress: number }) {
    if (options.maxPending < 1 || options.maxPerAddress < 1) {
      throw new RangeError("pending handshake caps must be at least 1");
    }
    this.#maxPending = options.maxPending;
    this.#maxPerAddress = options.maxPerAddress;
  }

  /** Handshakes in progress. */
  get size(): number {
    return this.#entries.size;
  }

  /** Handshakes in progress from `address`. */
  countOf(address: string): number {
    return this.#byAddress.get(address)?.size ?? 0;
  }

  /**
   * Registers a new handshake, making room first.
   *
   * @returns its entry, and the values of the entries evicted for it (the caller closes those)
   */
  add(address: string, value: T): { entry: PendingEntry<T>; evicted: T[] } {
    const evicted: T[] = [];
    const own = this.#byAddress.get(address);
    if (own !== undefined && own.size >= this.#maxPerAddress) {
      evicted.push(this.#evict(own));
    }
    if (this.#entries.size >= this.#maxPending) evicted.push(this.#evict(this.#entries));
    const entry: PendingEntry<T> = { address, value, firstFlightDone: false };
    this.#entries.add(entry);
    let set = this.#byAddress.get(address);
    if (set === undefined) this.#byAddress.set(address, set = new Set());
    set.add(entry);
    return { entry, evicted };
  }

  /** Removes an entry (its handshake finished or failed); removing twice does nothing. */
  remove(entry: PendingEntry<T>): void {
    if (!this.#entries.delete(entry)) return;
    const set = this.#byAddress.get(entry.address)!;
    set.delete(entry);
    if (set.size === 0) this.#byAddress.delete(entry.address);
  }

  /** Removes and returns the oldest entry of `scope` still waiting for its first flight, else the oldest. */
  #evict(scope: Set<PendingEntry<T>>): T {
    let victim: PendingEntry<T> | undefined;
    for (const entry of scope) {
      if (!entry.firstFlightDone) {
        victim = entry;
        break;
      }
    }
    victim ??= scope.values().next().value!;
    this.remove(victim);
    return victim.value;
  }
}

/**
 * Caps the expensive key agreements (`EXPENSIVE_SUITES`) running at once, per source address and
 * in all, so a flood of ffdhe3072 hellos queues no more than a few exponentiations.
 *
 * @example
 * ```ts
 * const budget = new KexBudget({ perAddress: 1, total: 2 });
 * const release = budget.reserve("10.0.0.1", "ffdhe3072"); // a function
 * budget.reserve("10.0.0.1", "ffdhe3072"); // undefined: over this address's budget
 * release!();
 * ```
 */
export class KexBudget {
  #running = new Map<string, number>();
  #total = 0;
  #perAddress: number;
  #maxTotal: number;

  constructor(options: { perAddress: number; total: number }) {
    this.#perAddress = options.perAddress;
    this.#maxTotal = options.total;
  }

  /**
   * Reserves a key agreement of `suite` for `address`.
   *
   * @returns the function that gives it back (call it once the agreement is done), or undefined
   *   when an expensive suite is over budget; cheap suites always get one
   */
  reserve(address: string, suite: SuiteName): (() => void) | undefined {
    if (!EXPENSIVE_SUITES.includes(suite)) return () => {};
    const running = this.#running.get(address) ?? 0;
    if (running >= this.#perAddress || this.#total >= this.#maxTotal) return undefined;
    this.#running.set(address, running + 1);
    this.#total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const left = this.#running.get(address)! - 1;
      if (left === 0) this.#running.delete(address);
      else this.#running.set(address, left);
    };
  }
}
