/**
 * A listener's admission of one dialer: the responder handshake, authorized_keys, and the flood
 * defences of section 6.3 (pending handshakes evicted oldest first, ffdhe3072 within a budget).
 * Every way a dialer reaches `securechat listen` goes through it: a port of its own, or a
 * rendezvous relay (`--via`, docs/PROTOCOL.md 15.4).
 *
 * What it does not do: accept connections (lib/transport/listener.ts's accept loop or
 * lib/cli/listen_via.ts hand them over) or run the session (lib/cli/listen.ts).
 *
 * Mirrors: docs/PROTOCOL.md sections 6.3 (admission) and 9 (the access_denied alert).
 *
 * @module
 */

import { TrustError } from "../core/errors.ts";
import type { SuiteName } from "../crypto/kex.ts";
import type { RecordSuiteName } from "../crypto/record_suites.ts";
import type { Identity } from "../keys/identity.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import { runResponder } from "../transport/connection.ts";
import {
  addressPrefix,
  closeQuietly,
  DEFAULT_EXPENSIVE_KEX_PER_ADDRESS,
  DEFAULT_EXPENSIVE_KEX_TOTAL,
  KexBudget,
  PendingHandshakes,
  type Source,
} from "../transport/listener.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { type AuthorizedKey, findAuthorizedKey } from "../trust/authorized_keys.ts";

/** Options of {@linkcode makeAdmitter}. */
export interface AdmitterOptions {
  identity: Identity;
  name: string | undefined;
  suites: SuiteName[];
  recordSuites: RecordSuiteName[];
  maxRecordPlaintext: number;
  timeoutMs: number;
  keepaliveMs: number;
  maxPending: number;
  maxPendingPerAddress: number;
  authorized: AuthorizedKey[] | undefined;
  authorizedFile: string | undefined;
  report: (line: string) => void;
}

/** A peer that finished the handshake and was admitted. */
export interface Admitted {
  secure: SecureConnection;
  from: string;
  /** The name to show: authorized_keys name, else the peer's own. */
  name: string;
}

/**
 * Runs the handshake with one dialer and checks authorized_keys; reports refusals. Handshakes in
 * progress are kept in a `PendingHandshakes` table: a new connection evicts the oldest (of its
 * address, or of all) instead of being refused, and ffdhe3072 runs within a `KexBudget`.
 */
export function makeAdmitter(
  options: AdmitterOptions,
): (conn: Deno.Conn, source: Source) => Promise<Admitted | undefined> {
  const pending = new PendingHandshakes<Deno.Conn>({
    maxPending: options.maxPending,
    maxPerAddress: options.maxPendingPerAddress,
  });
  const budget = new KexBudget({
    perAddress: DEFAULT_EXPENSIVE_KEX_PER_ADDRESS,
    total: DEFAULT_EXPENSIVE_KEX_TOTAL,
  });
  const evictedConns = new WeakSet<Deno.Conn>();
  let lastFloodReport = 0;
  return async (conn: Deno.Conn, source: Source): Promise<Admitted | undefined> => {
    const { entry, evicted } = pending.add(source.address, conn);
    for (const old of evicted) {
      // Closing ends its pending reads; its handshake then fails and is not reported one by one.
      evictedConns.add(old);
      closeQuietly(old);
    }
    if (evicted.length > 0 && Date.now() - lastFloodReport > 5000) {
      lastFloodReport = Date.now();
      options.report(
        `too many handshakes pending (${pending.size} in all, ${
          pending.countOf(source.address)
        } from ${
          addressPrefix(source.address)
        }): dropping the oldest of the busiest address (--max-pending-handshakes, --max-pending-per-address)`,
      );
    }
    try {
      return await handshake(conn, source, () => entry.firstFlightDone = true);
    } catch (error) {
      if (!evictedConns.has(conn)) {
        const message = error instanceof Error ? error.message : String(error);
        options.report(`connection from ${source.from} refused: ${message}`);
      }
      return undefined;
    } finally {
      pending.remove(entry);
    }
  };

  async function handshake(
    conn: Deno.Conn,
    source: Source,
    onFirstFlight: () => void,
  ): Promise<Admitted> {
    let authorizedName: string | undefined;
    const authorize = (peer: VerifiedPeer): Promise<void> => {
      if (options.authorized === undefined) return Promise.resolve();
      const entry = findAuthorizedKey(options.authorized, peer.identity.fingerprint);
      if (entry === undefined) {
        throw new TrustError(
          "unauthorized_key",
          `key ${peer.identity.fingerprint} (calling itself "${peer.name}") is not in "${options.authorizedFile}"`,
          { alert: "access_denied" },
        );
      }
      authorizedName = entry.name;
      return Promise.resolve();
    };
    const secure = await runResponder(conn, {
      identity: options.identity,
      ...(options.name === undefined ? {} : { name: options.name }),
      suites: options.suites,
      recordSuites: options.recordSuites,
      maxRecordPlaintext: options.maxRecordPlaintext,
      timeoutMs: options.timeoutMs,
      onFirstFlight,
      reserveKex: (suite) => budget.reserve(source.address, suite),
      authorize,
    });
    secure.startKeepalive(options.keepaliveMs);
    return { secure, from: source.from, name: authorizedName ?? secure.peer.name };
  }
}
