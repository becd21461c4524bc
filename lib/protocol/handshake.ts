/**
 * What the two handshake machines share: the options and result types, the signature context
 * strings, and `HandshakeBase`, which holds the transcript, the handshake keys and the secrets and
 * takes the steps both roles take alike: opening and sealing the encrypted handshake messages,
 * checking the peer's Identity, IdentityVerify and Finished, writing our own flight, deriving the
 * application keys, and failing closed.
 *
 * The machines themselves are `InitiatorHandshake` (`handshake_initiator.ts`) and
 * `ResponderHandshake` (`handshake_responder.ts`): bytes in, bytes out. They never read a socket or
 * a clock; `connection.ts` does the I/O and the deadline, and decides trust (known_hosts,
 * authorized_keys) between the steps.
 *
 * Randomness and the ML-KEM encapsulation can be injected, so the PROTOCOL.md test vector replays
 * byte for byte; `onSecret` reports every intermediate value for that vector.
 *
 * Any failure moves a machine to "failed" and wipes its secrets; `alertFrame()` then gives the bytes
 * to send the peer. A finished machine hands over its keys once with `finish()`.
 *
 * Mirrors: docs/PROTOCOL.md sections 5.3 (encrypted handshake messages, signatures, Finished) and 6
 * (what 6.1 and 6.2 share: unexpected messages, failure, alerts).
 *
 * @module
 */

import { concat, constantTimeEqual, utf8, wipe } from "../core/bytes.ts";
import { ALERT, AuthenticationError, PeerAlertError, ProtocolError } from "../core/errors.ts";
import { alertName, SecurechatError } from "../core/errors.ts";
import { encodeFrame, type Frame, FRAME_TYPE, MAX_HELLO_LENGTH } from "./frame.ts";
import {
  type Identity,
  importPublicIdentity,
  type PublicIdentity,
  signTranscript,
  verifyTranscript,
} from "../keys/identity.ts";
import {
  type RandomSource,
  type RecordedEncapsulation,
  type SuiteName,
  systemRandom,
} from "../crypto/kex.ts";
import {
  deriveApplicationSecrets,
  deriveHandshakeSecrets,
  finishedMac,
  formatVerificationCode,
  type HandshakeSecrets,
  Transcript,
} from "../crypto/key_schedule.ts";
import {
  decodeFinished,
  decodeIdentity,
  decodeIdentityVerify,
  encodeFinished,
  encodeIdentity,
  encodeIdentityVerify,
  MESSAGE_TYPE,
} from "./messages.ts";
import { CONTENT_TYPE, MAX_RECORD_PLAINTEXT, maxCiphertextLength } from "./record.ts";
import { RecordProtection } from "./record_protection.ts";

/** Section 5.3: signature context strings, one per role. */
export const SERVER_SIGNATURE_CONTEXT = "securechat/1 server signature";
export const CLIENT_SIGNATURE_CONTEXT = "securechat/1 client signature";

/** Options of both machines. */
export interface HandshakeOptions {
  /** Our identity key pair. */
  identity: Identity;
  /** Display name sent in our Identity message (default: the key comment). */
  name?: string;
  /** Initiator: suites to offer, in preference order. Responder: suites accepted, in its order. */
  suites: readonly SuiteName[];
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

/** The part both roles share: transcript, handshake keys, secrets, failure handling. */
export abstract class HandshakeBase<State extends string> {
  protected state: State | "failed" | "done";
  protected readonly options: HandshakeOptions;
  protected readonly random: RandomSource;
  protected readonly transcript = new Transcript();
  protected secrets: HandshakeSecrets | undefined;
  protected sendProtection: RecordProtection | undefined;
  protected receiveProtection: RecordProtection | undefined;
  protected suite: SuiteName | undefined;
  protected version = 0;
  protected peerMaxPlaintext = MAX_RECORD_PLAINTEXT;
  protected peer: VerifiedPeer | undefined;
  protected peerIdentity: { identity: PublicIdentity; name: string } | undefined;
  protected result: HandshakeResult | undefined;

  constructor(initial: State, options: HandshakeOptions) {
    this.state = initial;
    this.options = options;
    this.random = options.random ?? systemRandom;
  }

  /** The current state, for drivers and tests. */
  get currentState(): string {
    return this.state;
  }

  protected expect(state: State): void {
    if (this.state !== state) throw new ProtocolStateError(state, this.state);
  }

  protected report(name: string, value: Uint8Array): void {
    this.options.onSecret?.(name, value);
  }

  /**
   * Runs one step; any error fails the machine for good. Secrets are wiped by `fail()`, which the
   * driver calls after `alertFrame()`: the alert must still be sealed under the handshake keys.
   */
  protected async step<T>(state: State, body: () => Promise<T>): Promise<T> {
    this.expect(state);
    try {
      return await body();
    } catch (error) {
      this.state = "failed";
      throw error;
    }
  }

  /** Moves to "failed" and erases secrets. */
  fail(): void {
    this.state = "failed";
    this.eraseHandshakeSecrets();
  }

  protected eraseHandshakeSecrets(): void {
    if (this.secrets) {
      wipe(
        this.secrets.handshakeSecret,
        this.secrets.clientHandshakeTraffic,
        this.secrets.serverHandshakeTraffic,
      );
    }
    this.sendProtection?.destroy();
    this.receiveProtection?.destroy();
    // Dropped, not just wiped: alertFrame() must fall back to a plain alert, not seal with a
    // zeroed IV the peer cannot open.
    this.sendProtection = undefined;
    this.receiveProtection = undefined;
  }

  /**
   * The frame that tells the peer why we stop: a record once handshake keys exist, else a
   * plain_alert frame (section 9). Call it before `fail()`, which wipes the keys.
   */
  async alertFrame(error: unknown): Promise<Uint8Array | undefined> {
    if (error instanceof PeerAlertError) return undefined;
    const name = error instanceof SecurechatError && error.alert ? error.alert : "internal_error";
    const code = ALERT[name];
    try {
      if (this.sendProtection) {
        return await this.sendProtection.seal(CONTENT_TYPE.alert, Uint8Array.of(code));
      }
    } catch {
      // Fall through to a plain alert: the keys may already be wiped.
    }
    return encodeFrame(FRAME_TYPE.plainAlert, Uint8Array.of(code));
  }

  /** Largest body allowed for a frame of `type` in the current state (frame.ts caps). */
  capOf(type: number): number | undefined {
    if (type === FRAME_TYPE.plainAlert) return 1;
    if (type === FRAME_TYPE.record) return maxCiphertextLength(MAX_RECORD_PLAINTEXT);
    if (type === FRAME_TYPE.serverHello || type === FRAME_TYPE.clientHello) return MAX_HELLO_LENGTH;
    return undefined;
  }

  /** Opens one encrypted handshake message (section 5.3) that must be of type `what`. */
  protected async openHandshakeMessage(frame: Frame, what: MessageName): Promise<Uint8Array> {
    if (frame.type === FRAME_TYPE.plainAlert) throw plainAlert(frame.body);
    if (frame.type !== FRAME_TYPE.record || !this.receiveProtection) throw unexpected(what);
    let record;
    try {
      record = await this.receiveProtection.open(frame.header, frame.body);
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      // Handshake keys depend on the transcript hash, so any change to a hello (a flipped bit, a
      // stripped suite, substituted key shares) surfaces here first.
      throw new AuthenticationError(
        "handshake_tampered",
        `cannot decrypt the peer's ${what}: the handshake was altered on the way (tampering, a downgrade attempt or a man in the middle)`,
        { alert: "bad_record_mac", cause: error },
      );
    }
    if (record.type === CONTENT_TYPE.alert && record.content.length === 1) {
      const name = alertName(record.content[0]!) ?? `unknown alert ${record.content[0]}`;
      throw new PeerAlertError(name, `peer ended the handshake with alert "${name}"`);
    }
    if (record.type !== CONTENT_TYPE.handshake) throw unexpected(`a non-handshake record`);
    // Section 6: any other message than the one the state expects is unexpected_message.
    if (record.content[0] !== MESSAGE_TYPES[what]) throw unexpected(`another message than ${what}`);
    this.transcript.add(record.content);
    return record.content;
  }

  protected async sealHandshakeMessage(message: Uint8Array): Promise<Uint8Array> {
    this.transcript.add(message);
    return await this.sendProtection!.seal(CONTENT_TYPE.handshake, message);
  }

  /** Section 5.3: verify the peer's Identity and IdentityVerify. */
  protected async readPeerIdentity(message: Uint8Array): Promise<void> {
    const { spki, name } = decodeIdentity(message);
    this.peerIdentity = { identity: await importPublicIdentity(spki), name };
  }

  protected async readPeerSignature(message: Uint8Array, context: string): Promise<void> {
    const signature = decodeIdentityVerify(message);
    // TH up to the peer's Identity: the IdentityVerify itself was already appended, so rebuild.
    const th = this.thBeforeLast;
    const ok = await verifyTranscript(
      this.peerIdentity!.identity,
      signedContent(context, th!),
      signature,
    );
    if (!ok) {
      throw new AuthenticationError(
        "bad_signature",
        "the peer's signature over the handshake does not verify: someone may be intercepting the connection (man in the middle)",
        { alert: "decrypt_error" },
      );
    }
  }

  protected async readPeerFinished(message: Uint8Array, peerSecret: Uint8Array): Promise<void> {
    const verifyData = decodeFinished(message);
    const expected = await finishedMac(peerSecret, this.thBeforeLast!);
    if (!constantTimeEqual(verifyData, expected)) {
      throw new AuthenticationError(
        "bad_finished",
        "the peer's Finished check failed: the handshake was altered on the way",
        { alert: "decrypt_error" },
      );
    }
  }

  /** TH of the transcript without its last message, captured before adding it. */
  protected thBeforeLast: Uint8Array | undefined;

  protected async openAndHashBefore(frame: Frame, what: MessageName): Promise<Uint8Array> {
    this.thBeforeLast = await this.transcript.hash();
    return await this.openHandshakeMessage(frame, what);
  }

  protected async writeOwnFlight(
    context: string,
    ownSecret: Uint8Array,
    label: string,
  ): Promise<Uint8Array[]> {
    const identity = this.options.identity;
    const name = this.options.name ?? identity.comment;
    const records = [
      await this.sealHandshakeMessage(encodeIdentity({ spki: identity.spki, name })),
    ];
    const thIdentity = await this.transcript.hash();
    const signature = await signTranscript(identity, signedContent(context, thIdentity));
    records.push(await this.sealHandshakeMessage(encodeIdentityVerify(signature)));
    const verifyData = await finishedMac(ownSecret, await this.transcript.hash());
    this.report(`${label}_finished`, verifyData);
    records.push(await this.sealHandshakeMessage(encodeFinished(verifyData)));
    return records;
  }

  protected async deriveApplication(clientSends: boolean): Promise<void> {
    const thFinal = await this.transcript.hash();
    this.report("th_final", thFinal);
    const app = await deriveApplicationSecrets(this.secrets!.handshakeSecret, thFinal);
    this.report("master_secret", app.masterSecret);
    this.report("c_ap_traffic", app.clientApplicationTraffic);
    this.report("s_ap_traffic", app.serverApplicationTraffic);
    this.report("verification_code", app.verificationCode);
    this.result = {
      peer: this.peer!,
      suite: this.suite!,
      version: this.version,
      verificationCode: formatVerificationCode(app.verificationCode),
      sendSecret: clientSends ? app.clientApplicationTraffic : app.serverApplicationTraffic,
      receiveSecret: clientSends ? app.serverApplicationTraffic : app.clientApplicationTraffic,
      peerMaxPlaintext: this.peerMaxPlaintext,
      ownMaxPlaintext: this.options.maxRecordPlaintext,
    };
    if (clientSends) {
      this.result.handshakeReceive = this.receiveProtection!;
      this.receiveProtection = undefined;
    }
    wipe(app.masterSecret);
    this.eraseHandshakeSecrets();
    this.state = "done";
  }

  /** Hands over the session keys, once. */
  finish(): HandshakeResult {
    if (this.state !== "done" || !this.result) throw new ProtocolStateError("done", this.state);
    const result = this.result;
    this.result = undefined;
    return result;
  }

  protected async enterHandshakeKeys(sharedSecret: Uint8Array, clientSends: boolean) {
    const thHello = await this.transcript.hash();
    this.report("shared_secret", sharedSecret);
    this.report("th_hello", thHello);
    this.secrets = await deriveHandshakeSecrets(sharedSecret, thHello);
    wipe(sharedSecret);
    this.report("handshake_secret", this.secrets.handshakeSecret);
    this.report("c_hs_traffic", this.secrets.clientHandshakeTraffic);
    this.report("s_hs_traffic", this.secrets.serverHandshakeTraffic);
    const client = await RecordProtection.create(this.secrets.clientHandshakeTraffic);
    const server = await RecordProtection.create(this.secrets.serverHandshakeTraffic);
    this.sendProtection = clientSends ? client : server;
    this.receiveProtection = clientSends ? server : client;
  }
}

/** The encrypted handshake messages, by name (section 5.3). */
type MessageName = "Identity" | "IdentityVerify" | "Finished";
const MESSAGE_TYPES: Record<MessageName, number> = {
  Identity: MESSAGE_TYPE.identity,
  IdentityVerify: MESSAGE_TYPE.identityVerify,
  Finished: MESSAGE_TYPE.finished,
};

function signedContent(context: string, th: Uint8Array): Uint8Array {
  return concat(utf8(context), Uint8Array.of(0), th);
}

/**
 * A plain_alert frame from the peer, unauthenticated (section 9). Its body is exactly one byte
 * (section 3.2): a longer one is refused by the frame cap, an empty one here.
 */
export function plainAlert(body: Uint8Array): PeerAlertError | ProtocolError {
  if (body.length !== 1) {
    return new ProtocolError("decode_error", "peer sent an empty plain_alert frame");
  }
  const name = alertName(body[0] ?? 255) ?? `unknown alert ${body[0]}`;
  return new PeerAlertError(
    name,
    `peer ended the handshake with alert "${name}" (unauthenticated)`,
  );
}
