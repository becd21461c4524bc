/**
 * The vocabulary of the two handshake machines (`handshake.ts` and the roles built on it): their
 * options and result, the errors for calls and messages out of order, the data each phase holds
 * (section 5.2's choice, section 7.3's handshake keys, the peer as claimed and as verified), and
 * what wipes that data when a machine finishes or fails.
 *
 * Types and pure helpers only: no state machine runs here.
 *
 * Mirrors: docs/PROTOCOL.md sections 5.2, 5.3, 6 and 7.3.
 *
 * @module
 */

import { wipe } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import type { RandomSource, RecordedEncapsulation, SuiteName } from "../crypto/kex.ts";
import type { RecordSuiteName } from "../crypto/record_suites.ts";
import type { HandshakeSecrets } from "../crypto/key_schedule.ts";
import type { Identity, PublicIdentity } from "../keys/identity.ts";
import type { RecordProtection } from "./record_protection.ts";

/** Options of both machines. */
export interface HandshakeOptions {
  /** Our identity key pair. */
  identity: Identity;
  /** Display name sent in our Identity message (default: the key comment). */
  name?: string;
  /** Initiator: suites to offer, in preference order. Responder: suites accepted, in its order. */
  suites: readonly SuiteName[];
  /**
   * Initiator: record suites to offer, in preference order. Responder: record suites accepted, in
   * its order (section 4.5). Default: DEFAULT_RECORD_SUITES.
   */
  recordSuites?: readonly RecordSuiteName[];
  /** The largest record content we accept (our hello's max_record_plaintext). */
  maxRecordPlaintext: number;
  /** Randomness; the system CSPRNG unless a test vector injects its own. */
  random?: RandomSource;
  /** A recorded ML-KEM encapsulation (responder, test vector only). */
  encapsulation?: RecordedEncapsulation;
  /**
   * Responder: reserves the key agreement of a suite it would choose, before any work on the
   * peer's share; returns the release, or undefined when that suite is over budget (section 6.3),
   * and the next common suite is tried.
   */
  reserveKex?: (suite: SuiteName) => (() => void) | undefined;
  /** Receives every intermediate secret by name (test vector and debugging only). */
  onSecret?: (name: string, value: Uint8Array) => void;
}

/** The peer, once its signature and Finished verified. */
export interface VerifiedPeer {
  identity: PublicIdentity;
  name: string;
}

/** What a finished handshake hands to the record layer and the user. */
export interface HandshakeResult {
  peer: VerifiedPeer;
  suite: SuiteName;
  recordSuite: RecordSuiteName;
  version: number;
  verificationCode: string;
  sendSecret: Uint8Array;
  receiveSecret: Uint8Array;
  peerMaxPlaintext: number;
  ownMaxPlaintext: number;
  /**
   * Initiator only: the responder's handshake protection, kept to read an alert the responder
   * seals under it while checking our flight (section 6.1, last paragraph).
   */
  handshakeReceive?: RecordProtection;
}

/** Thrown when a method is called in the wrong state (a programming error, not a peer's). */
export class ProtocolStateError extends Error {
  constructor(expected: string, actual: string) {
    super(`handshake method for state "${expected}" called in state "${actual}"`);
    this.name = "ProtocolStateError";
  }
}

/** The error for a message out of order (section 6: any other input is unexpected_message). */
export function unexpected(what: string): ProtocolError {
  return new ProtocolError("unexpected_message", `peer sent ${what} out of order`, {
    alert: "unexpected_message",
  });
}

/** Section 5.2: what the hellos settled, besides the keys. */
export interface Choice {
  readonly suite: SuiteName;
  readonly recordSuite: RecordSuiteName;
  readonly version: number;
  /** The peer hello's max_record_plaintext. */
  readonly peerMaxPlaintext: number;
}

/**
 * Sections 5.2 and 7.3: what every state from the hellos to the last Finished holds: the choice,
 * the handshake secrets and the protection of each direction.
 */
export interface HandshakeKeys extends Choice {
  readonly secrets: HandshakeSecrets;
  /** Our direction: c_hs_traffic for the initiator, s_hs_traffic for the responder. */
  readonly send: RecordProtection;
  /** The peer's direction. */
  readonly receive: RecordProtection;
}

/** Section 5.3: the peer's Identity, before its signature and Finished verified it. */
export interface ClaimedPeer {
  identity: PublicIdentity;
  name: string;
}

/** What any state may hold; a role's states extend it. */
export interface HandshakeState {
  readonly name: string;
  /** The handshake keys, in every state from the hellos to the last Finished. */
  readonly keys?: HandshakeKeys | undefined;
}

/** After the last step: the result, until `finish()` hands it over. */
export interface DoneState {
  readonly name: "done";
  readonly keys?: undefined;
  readonly result: HandshakeResult | undefined;
}

/**
 * After a failure: the handshake keys stay, so `alertFrame()` can seal the alert under them, until
 * `fail()` wipes them.
 */
export interface FailedState {
  readonly name: "failed";
  readonly keys: HandshakeKeys | undefined;
}

/** The state of `S` named `N`. */
export type Named<S extends HandshakeState, N> = Extract<S, { readonly name: N }>;

/** Wipes the application traffic secrets of a result and destroys its handshake protection. */
export function eraseResult(result: HandshakeResult): void {
  wipe(result.sendSecret, result.receiveSecret);
  result.handshakeReceive?.destroy();
}

/** A role's own states are never named "done" (`S` cannot say so, hence this guard). */
export function isDone(state: HandshakeState): state is DoneState {
  return state.name === "done";
}

/** Wipes the handshake secrets and destroys the protections (all but `receive` if kept). */
export function eraseHandshakeKeys(keys: HandshakeKeys, { keepReceive }: { keepReceive: boolean }) {
  wipe(
    keys.secrets.handshakeSecret,
    keys.secrets.clientHandshakeTraffic,
    keys.secrets.serverHandshakeTraffic,
  );
  keys.send.destroy();
  if (!keepReceive) keys.receive.destroy();
}
