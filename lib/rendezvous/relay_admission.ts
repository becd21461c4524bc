/**
 * The handshake a rendezvous relay runs with each accepted connection: the responder handshake
 * with any client key (clients come with throwaway keys, 15.1), behind the listener's defences of
 * section 6.3: a table of pending handshakes that evicts the oldest of an address (or of the
 * busiest) instead of refusing a newcomer, a shorter deadline for the first flight, and the
 * ffdhe3072 budget.
 *
 * What it does not do: read the request (the relay does), or count connections past the
 * handshake (the relay's per-address cap).
 *
 * Mirrors: docs/PROTOCOL.md sections 6.3 and 15.6 ("the handshake itself is the listener's").
 *
 * @module
 */

import type { SuiteName } from "../crypto/kex.ts";
import type { Identity } from "../keys/identity.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../protocol/record.ts";
import { runResponder } from "../transport/connection.ts";
import {
  closeQuietly,
  DEFAULT_EXPENSIVE_KEX_PER_ADDRESS,
  DEFAULT_EXPENSIVE_KEX_TOTAL,
  KexBudget,
  PendingHandshakes,
  type Source,
} from "../transport/listener.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";

/** Options of {@linkcode RelayAdmission}. */
export interface RelayAdmissionOptions {
  identity: Identity;
  name: string | undefined;
  suites: readonly SuiteName[];
  handshakeTimeoutMs: number | undefined;
  firstFlightTimeoutMs: number | undefined;
  maxPending: number;
  maxPendingPerAddress: number;
  log: (line: string) => void;
}

/** How long the "too many handshakes" line stays quiet after it was logged. */
const FLOOD_REPORT_EVERY_MS = 5000;

/** The relay's handshakes in progress. */
export class RelayAdmission {
  #options: RelayAdmissionOptions;
  #pending: PendingHandshakes<Deno.Conn>;
  #evicted = new WeakSet<Deno.Conn>();
  /** The sockets of the handshakes in progress, for `close()`. */
  #handshaking = new Set<Deno.Conn>();
  #kex = new KexBudget({
    perAddress: DEFAULT_EXPENSIVE_KEX_PER_ADDRESS,
    total: DEFAULT_EXPENSIVE_KEX_TOTAL,
  });
  #lastFloodReport = 0;
  #closed = false;

  constructor(options: RelayAdmissionOptions) {
    this.#options = options;
    this.#pending = new PendingHandshakes({
      maxPending: options.maxPending,
      maxPerAddress: options.maxPendingPerAddress,
    });
  }

  /**
   * Runs the handshake with one accepted connection.
   *
   * @returns the connection, or undefined when the handshake failed or was evicted (logged, and
   *   the socket closed)
   */
  async admit(conn: Deno.Conn, source: Source): Promise<SecureConnection | undefined> {
    const { entry, evicted } = this.#pending.add(source.address, conn);
    for (const old of evicted) {
      this.#evicted.add(old);
      closeQuietly(old);
    }
    if (evicted.length > 0 && Date.now() - this.#lastFloodReport > FLOOD_REPORT_EVERY_MS) {
      this.#lastFloodReport = Date.now();
      this.#options.log(`too many handshakes pending (${this.#pending.size}): dropping the oldest`);
    }
    const { identity, name, suites, handshakeTimeoutMs, firstFlightTimeoutMs } = this.#options;
    this.#handshaking.add(conn);
    try {
      return await runResponder(conn, {
        identity,
        ...(name === undefined ? {} : { name }),
        suites,
        maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
        ...(handshakeTimeoutMs === undefined ? {} : { timeoutMs: handshakeTimeoutMs }),
        ...(firstFlightTimeoutMs === undefined ? {} : { firstFlightTimeoutMs }),
        onFirstFlight: () => entry.firstFlightDone = true,
        reserveKex: (suite) => this.#kex.reserve(source.address, suite),
        authorize: () => Promise.resolve(),
      });
    } catch (error) {
      if (!this.#evicted.has(conn) && !this.#closed) {
        const message = error instanceof Error ? error.message : String(error);
        this.#options.log(`connection from ${source.from} refused: ${message}`);
      }
      return undefined;
    } finally {
      this.#pending.remove(entry);
      this.#handshaking.delete(conn);
    }
  }

  /** Ends every handshake in progress (their sockets close), quietly. */
  close(): void {
    this.#closed = true;
    for (const conn of this.#handshaking) closeQuietly(conn);
  }
}
