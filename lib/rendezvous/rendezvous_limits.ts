/**
 * The limits of a rendezvous relay and its defaults: section 15.6's, the handshake admission of
 * section 6.3 that it shares with a listener, its suites and its keepalive interval. Only numbers:
 * lib/rendezvous/rendezvous_relay.ts applies them.
 *
 * Mirrors: docs/PROTOCOL.md section 15.6 (and 6.3, 4.3, 8.6).
 *
 * @module
 */

import type { SuiteName } from "../crypto/kex.ts";
import {
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_PENDING_PER_ADDRESS,
} from "../transport/listener.ts";
import { DEFAULT_SPLICE_IDLE_MS } from "./splice.ts";

/** Section 15.6, each overridable (tests shorten the times and lower the caps). */
export interface RendezvousLimits {
  /** Connections after the handshake from one address (IPv6: its /64). */
  maxConnectionsPerAddress: number;
  /** Registrations waiting, in all and from one address. */
  maxWaiting: number;
  maxWaitingPerAddress: number;
  /** A registration's life (`expires_in`), in milliseconds. */
  registrationLifeMs: number;
  /** Time to send the request after the handshake. */
  requestTimeoutMs: number;
  /** Time between Paired and each side's Spliced. */
  splicedTimeoutMs: number;
  /** Bytes a second spliced for one address, both ways. */
  bytesPerSecondPerAddress: number;
  /** A splice with no byte either way for this long is closed. */
  spliceIdleMs: number;
  /** Handshakes in progress, in all and from one address (section 6.3). */
  maxPendingHandshakes: number;
  maxPendingPerAddress: number;
}

/** The defaults of section 15.6 (and 6.3 for the handshakes). */
export const DEFAULT_RENDEZVOUS_LIMITS: Readonly<RendezvousLimits> = Object.freeze({
  maxConnectionsPerAddress: 64,
  maxWaiting: 4096,
  maxWaitingPerAddress: 32,
  registrationLifeMs: 3600_000,
  requestTimeoutMs: 10_000,
  splicedTimeoutMs: 10_000,
  bytesPerSecondPerAddress: 64 * 2 ** 20,
  spliceIdleMs: DEFAULT_SPLICE_IDLE_MS,
  maxPendingHandshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
  maxPendingPerAddress: DEFAULT_MAX_PENDING_PER_ADDRESS,
});

/** Suites the relay accepts unless told otherwise: ffdhe3072 is opt-in, as on a listener (4.3). */
export const DEFAULT_RELAY_SUITES: readonly SuiteName[] = ["x25519-mlkem768", "x25519"];

/** Section 8.6: the relay pings a waiting registration after this long without traffic. */
export const DEFAULT_RELAY_KEEPALIVE_MS = 30_000;
