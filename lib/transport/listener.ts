/**
 * The listener's accept loop and admission policy, apart from any command: `acceptLoop()` keeps
 * accepting whatever one connection or the system throws at it; `PendingHandshakes` decides which
 * handshake in progress to give up when too many wait at once; `KexBudget` caps the expensive key
 * agreements (ffdhe3072) each source address may have running; `WaitingLine` caps the admitted
 * peers a one-at-a-time listener keeps waiting. All three count per `addressPrefix()` (an IPv4
 * address, an IPv6 /64). The policy classes are pure (no sockets, no clock), so tests drive them
 * directly; lib/cli/listen.ts only wires flags to them.
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

/**
 * Admitted peers a pipe listener with --keep-open keeps waiting for their turn; at most half of
 * them (rounded up) from one address. Past either, a peer is refused as busy.
 */
export const DEFAULT_MAX_WAITING = 8;

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

/**
 * What the admission budgets count by: an IPv4 address as it is; an IPv6 address by its /64 (a
 * host is commonly given a whole /64, so addresses within it cost an attacker nothing); an
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a dual-stack socket's view of an IPv4 peer) as
 * the IPv4 address it carries. A zone (`%eth0`) is dropped; anything that is not an IP address is
 * its own key.
 *
 * @example
 * ```ts
 * addressPrefix("2001:db8:1:2:aaaa::1"); // "2001:db8:1:2::/64"
 * addressPrefix("::ffff:192.0.2.1"); // "192.0.2.1"
 * addressPrefix("192.0.2.1"); // "192.0.2.1"
 * ```
 */
export function addressPrefix(address: string): string {
  const groups = ipv6Groups(address);
  if (groups === undefined) return address;
  const [g6, g7] = [groups[6]!, groups[7]!];
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`;
  }
  const network = groups.slice(0, 4);
  while (network.at(-1) === 0) network.pop(); // the zeros join the "::" (RFC 5952)
  return `${network.map((group) => group.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address in text form, or undefined when it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  const text = address.replace(/%.*$/, "");
  if (!text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (half: string): number[] | undefined => {
    if (half === "") return [];
    const groups: number[] = [];
    const parts = half.split(":");
    for (const [index, part] of parts.entries()) {
      const dotted = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(part);
      if (dotted !== null && index === parts.length - 1) {
        const bytes = dotted.slice(1).map(Number);
        if (bytes.some((byte) => byte > 255)) return undefined;
        groups.push((bytes[0]! << 8) | bytes[1]!, (bytes[2]! << 8) | bytes[3]!);
      } else if (/^[0-9a-f]{1,4}$/i.test(part)) {
        groups.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
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

/** An entry with what the table orders and groups it by. */
interface Slot<T> extends PendingEntry<T> {
  /** `addressPrefix(address)`. */
  readonly prefix: string;
  /** Arrival order: lower is older. */
  readonly order: number;
}

/**
 * Handshakes in progress, oldest first, grouped by `addressPrefix()`. Adding one beyond the
 * per-address cap evicts that address's oldest. Beyond the global cap it evicts from the address
 * holding the most slots (of those, the one whose oldest entry is oldest), so a flood from many
 * addresses evicts its own handshakes and not a lone dialer's, unless every address holds as few.
 * Within an address, entries still waiting for their first flight go before those already doing
 * the key agreement, so connections that only hold a slot make room for a dialer that talks.
 * Admitted sessions never enter the table.
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
  #size = 0;
  #order = 0;
  #byPrefix = new Map<string, Set<Slot<T>>>();
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
    return this.#size;
  }

  /** Handshakes in progress from `address`'s prefix (`addressPrefix()`). */
  countOf(address: string): number {
    return this.#byPrefix.get(addressPrefix(address))?.size ?? 0;
  }

  /**
   * Registers a new handshake, making room first.
   *
   * @returns its entry, and the values of the entries evicted for it (the caller closes those)
   */
  add(address: string, value: T): { entry: PendingEntry<T>; evicted: T[] } {
    const evicted: T[] = [];
    const prefix = addressPrefix(address);
    const own = this.#byPrefix.get(prefix);
    if (own !== undefined && own.size >= this.#maxPerAddress) {
      evicted.push(this.#evict(own));
    }
    if (this.#size >= this.#maxPending) evicted.push(this.#evict(this.#heaviest()));
    const entry: Slot<T> = { address, prefix, value, firstFlightDone: false, order: this.#order++ };
    let set = this.#byPrefix.get(prefix);
    if (set === undefined) this.#byPrefix.set(prefix, set = new Set());
    set.add(entry);
    this.#size++;
    return { entry, evicted };
  }

  /** Removes an entry (its handshake finished or failed); removing twice does nothing. */
  remove(entry: PendingEntry<T>): void {
    const { prefix } = entry as Slot<T>;
    const set = this.#byPrefix.get(prefix);
    if (set === undefined || !set.delete(entry as Slot<T>)) return;
    this.#size--;
    if (set.size === 0) this.#byPrefix.delete(prefix);
  }

  /**
   * The entries of the address holding the most; on a tie, of the one whose oldest is oldest.
   * A scan over the addresses present: at most `maxPending` of them.
   */
  #heaviest(): Set<Slot<T>> {
    let heaviest: Set<Slot<T>> | undefined;
    for (const set of this.#byPrefix.values()) {
      if (
        heaviest === undefined || set.size > heaviest.size ||
        (set.size === heaviest.size && oldest(set).order < oldest(heaviest).order)
      ) {
        heaviest = set;
      }
    }
    return heaviest!;
  }

  /** Removes and returns the oldest entry of `scope` still waiting for its first flight, else the oldest. */
  #evict(scope: Set<Slot<T>>): T {
    let victim: Slot<T> | undefined;
    for (const entry of scope) {
      if (!entry.firstFlightDone) {
        victim = entry;
        break;
      }
    }
    victim ??= oldest(scope);
    this.remove(victim);
    return victim.value;
  }
}

/** The first (oldest) entry of a non-empty set kept in arrival order. */
function oldest<T>(set: Set<Slot<T>>): Slot<T> {
  return set.values().next().value!;
}

/**
 * Caps the expensive key agreements (`EXPENSIVE_SUITES`) running at once, per source address (by
 * `addressPrefix()`) and in all, so a flood of ffdhe3072 hellos queues no more than a few exponentiations.
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
    address = addressPrefix(address);
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

/**
 * The admitted peers waiting for their turn at a listener that serves one at a time: at most
 * `max` in all and `maxPerAddress` per `addressPrefix()`. Such peers have left the pending
 * handshakes, so without this cap anyone admitted could hold connections until the listener runs
 * out of file descriptors.
 *
 * @example
 * ```ts
 * const line = new WaitingLine({ max: 2, maxPerAddress: 1 });
 * const leave = line.enter("10.0.0.1"); // a function
 * line.enter("10.0.0.1"); // undefined: that address already waits
 * leave!();
 * ```
 */
export class WaitingLine {
  #waiting = new Map<string, number>();
  #size = 0;
  #max: number;
  #maxPerAddress: number;

  constructor(options: { max: number; maxPerAddress: number }) {
    this.#max = options.max;
    this.#maxPerAddress = options.maxPerAddress;
  }

  /** Peers waiting. */
  get size(): number {
    return this.#size;
  }

  /**
   * Takes a place in the line for a peer from `address`.
   *
   * @returns the function that gives the place back (call it when the peer's turn comes or it
   *   leaves), or undefined when the line is full in all or for that address
   */
  enter(address: string): (() => void) | undefined {
    const prefix = addressPrefix(address);
    const own = this.#waiting.get(prefix) ?? 0;
    if (own >= this.#maxPerAddress || this.#size >= this.#max) return undefined;
    this.#waiting.set(prefix, own + 1);
    this.#size++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#size--;
      const remaining = this.#waiting.get(prefix)! - 1;
      if (remaining === 0) this.#waiting.delete(prefix);
      else this.#waiting.set(prefix, remaining);
    };
  }
}
