/**
 * What the two handshake machines share: the signature context strings and `HandshakeBase`, which
 * holds the transcript and the state (the types of each phase are in `handshake_state.ts`)
 * and takes the steps both roles take alike: deriving the handshake and application keys (7.3),
 * opening and sealing the encrypted handshake messages, reading the peer's Identity, verifying its
 * IdentityVerify and Finished, writing our own flight, and failing closed.
 *
 * The machines themselves are `InitiatorHandshake` (`handshake_initiator.ts`) and
 * `ResponderHandshake` (`handshake_responder.ts`): bytes in, bytes out. They never read a socket or
 * a clock; `connection.ts` does the I/O and the deadline, and decides trust (known_hosts,
 * authorized_keys) between the steps.
 *
 * The state is one discriminated union per role: each state carries exactly what exists in it, so
 * a step receives its data non-optional, as the compiler proves. From the hellos on a state holds
 * `HandshakeKeys` (the choice of suite and version and both handshake protections); after the
 * peer's Identity, the identity it claims; after its Finished, the verified peer; "done" holds the
 * result until `finish()` hands it over.
 *
 * Randomness and the ML-KEM encapsulation can be injected, so the PROTOCOL.md test vector replays
 * byte for byte; `onSecret` reports every intermediate value for that vector.
 *
 * Any failure moves a machine to "failed"; `alertFrame()` then gives the bytes to send the peer,
 * sealed under the handshake keys the failed state still holds, and `fail()` wipes them. A finished
 * machine hands over its keys once with `finish()` and refuses every further call.
 *
 * Mirrors: docs/PROTOCOL.md sections 5.3 (encrypted handshake messages, signatures, Finished), 6
 * (what 6.1 and 6.2 share: unexpected messages, failure, alerts) and 7.3 (derivation).
 *
 * @module
 */

import { concat, constantTimeEqual, utf8, wipe } from "../core/bytes.ts";
import { ALERT, AuthenticationError, PeerAlertError, ProtocolError } from "../core/errors.ts";
import { alertName, SecurechatError } from "../core/errors.ts";
import { encodeFrame, type Frame, FRAME_TYPE, MAX_HELLO_LENGTH } from "./frame.ts";
import { importPublicIdentity, signTranscript, verifyTranscript } from "../keys/identity.ts";
import { type RandomSource, systemRandom } from "../crypto/kex.ts";
import {
  deriveApplicationSecretsSync,
  deriveHandshakeSecretsSync,
  finishedMacSync,
  formatVerificationCode,
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
import {
  type Choice,
  type ClaimedPeer,
  type DoneState,
  eraseHandshakeKeys,
  eraseResult,
  type FailedState,
  type HandshakeKeys,
  type HandshakeOptions,
  type HandshakeResult,
  type HandshakeState,
  isDone,
  type Named,
  ProtocolStateError,
  unexpected,
  type VerifiedPeer,
} from "./handshake_state.ts";

/** Section 5.3: signature context strings, one per role. */
export const SERVER_SIGNATURE_CONTEXT = "securechat/1 server signature";
export const CLIENT_SIGNATURE_CONTEXT = "securechat/1 client signature";

/** The part both roles share: transcript, state, key schedule, failure handling. */
export abstract class HandshakeBase<S extends HandshakeState> {
  protected state: S | DoneState | FailedState;
  protected readonly options: HandshakeOptions;
  protected readonly random: RandomSource;
  protected readonly transcript = new Transcript();
  /** The initiator sends under the c_* secrets, the responder under the s_* ones (7.3). */
  readonly #initiator: boolean;
  /** Set while a step runs: its state is checked before its first await, and moves only at its end. */
  #stepping = false;

  constructor(initial: S, role: "initiator" | "responder", options: HandshakeOptions) {
    this.state = initial;
    this.#initiator = role === "initiator";
    this.options = options;
    this.random = options.random ?? systemRandom;
  }

  /** The current state's name, for drivers and tests. */
  get currentState(): string {
    return this.state.name;
  }

  protected report(name: string, value: Uint8Array): void {
    this.options.onSecret?.(name, value);
  }

  /**
   * Runs one step of state `name` on that state's data; any error fails the machine for good. The
   * failed state keeps the handshake keys until `fail()`, which the driver calls after
   * `alertFrame()`: the alert must still be sealed under them.
   */
  protected async step<N extends S["name"], T>(
    name: N,
    body: (state: Named<S, N>) => Promise<T>,
  ): Promise<T> {
    const state = this.state;
    if (state.name !== name) throw new ProtocolStateError(name, state.name);
    // A second call while a step awaits would find the state not moved yet and run on it twice.
    if (this.#stepping) throw new ProtocolStateError(name, `${state.name}, during another step`);
    this.#stepping = true;
    try {
      // Checked just above: the state named `name` is the member of S of that name.
      return await body(state as Named<S, N>);
    } catch (error) {
      this.state = { name: "failed", keys: this.state.keys };
      throw error;
    } finally {
      this.#stepping = false;
    }
  }

  /** Moves to "failed" and erases secrets, and the keys of a result not handed over yet. */
  fail(): void {
    const state = this.state;
    // Dropped, not just wiped: alertFrame() must fall back to a plain alert, not seal with a
    // zeroed IV the peer cannot open.
    this.state = { name: "failed", keys: undefined };
    if (state.keys) eraseHandshakeKeys(state.keys, { keepReceive: false });
    // Before finish() the result has no other owner: nobody will wipe it after us.
    if (isDone(state) && state.result) eraseResult(state.result);
  }

  /**
   * The frame that tells the peer why we stop: a record once handshake keys exist, else a
   * plain_alert frame (section 9). Call it before `fail()`, which wipes the keys.
   */
  async alertFrame(error: unknown): Promise<Uint8Array | undefined> {
    if (error instanceof PeerAlertError) return undefined;
    const name = error instanceof SecurechatError && error.alert ? error.alert : "internal_error";
    const code = ALERT[name];
    const send = this.state.keys?.send;
    try {
      if (send) return await send.seal(CONTENT_TYPE.alert, Uint8Array.of(code));
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

  /** Hands over the session keys, once; the machine then refuses every call. */
  finish(): HandshakeResult {
    const state = this.state;
    if (!isDone(state) || !state.result) throw new ProtocolStateError("done", state.name);
    this.state = { name: "done", result: undefined };
    return state.result;
  }

  /**
   * 7.3: handshake_secret, c_hs_traffic and s_hs_traffic from the shared secret and TH(ServerHello),
   * which the transcript must end with; wipes the shared secret.
   */
  protected async deriveHandshakeKeys(
    sharedSecret: Uint8Array,
    choice: Choice,
  ): Promise<HandshakeKeys> {
    const thHello = this.transcript.hashSync();
    this.report("shared_secret", sharedSecret);
    this.report("th_hello", thHello);
    const secrets = deriveHandshakeSecretsSync(sharedSecret, thHello);
    wipe(sharedSecret);
    this.report("handshake_secret", secrets.handshakeSecret);
    this.report("c_hs_traffic", secrets.clientHandshakeTraffic);
    this.report("s_hs_traffic", secrets.serverHandshakeTraffic);
    const client = await RecordProtection.create(
      secrets.clientHandshakeTraffic,
      choice.recordSuite,
    );
    const server = await RecordProtection.create(
      secrets.serverHandshakeTraffic,
      choice.recordSuite,
    );
    return {
      ...choice,
      secrets,
      send: this.#initiator ? client : server,
      receive: this.#initiator ? server : client,
    };
  }

  /** Opens one encrypted handshake message (section 5.3) that must be of type `what`. */
  protected async openHandshakeMessage(
    keys: HandshakeKeys,
    frame: Frame,
    what: MessageName,
  ): Promise<Uint8Array> {
    if (frame.type === FRAME_TYPE.plainAlert) throw plainAlert(frame.body);
    if (frame.type !== FRAME_TYPE.record) throw unexpected(what);
    let record;
    try {
      record = await keys.receive.open(frame.header, frame.body);
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
    const [first] = record.content;
    if (record.type === CONTENT_TYPE.alert && record.content.length === 1 && first !== undefined) {
      const name = alertName(first) ?? `unknown alert ${first}`;
      throw new PeerAlertError(name, `peer ended the handshake with alert "${name}"`);
    }
    if (record.type !== CONTENT_TYPE.handshake) throw unexpected(`a non-handshake record`);
    // Section 6: any other message than the one the state expects is unexpected_message.
    if (first !== MESSAGE_TYPES[what]) throw unexpected(`another message than ${what}`);
    this.transcript.add(record.content);
    return record.content;
  }

  /** Seals one of our encrypted handshake messages (section 5.3) and adds it to the transcript. */
  protected async sealHandshakeMessage(
    keys: HandshakeKeys,
    message: Uint8Array,
  ): Promise<Uint8Array> {
    this.transcript.add(message);
    return await keys.send.seal(CONTENT_TYPE.handshake, message);
  }

  /** 5.3 Identity: the key and name the peer claims, until its signature verifies. */
  protected async readPeerIdentity(keys: HandshakeKeys, frame: Frame): Promise<ClaimedPeer> {
    const message = await this.openHandshakeMessage(keys, frame, "Identity");
    const { spki, name } = decodeIdentity(message);
    return { identity: await importPublicIdentity(spki), name };
  }

  /** 5.3 IdentityVerify: the claimed key signed TH up to its Identity under the peer's context. */
  protected async verifyPeerSignature(
    keys: HandshakeKeys,
    claimed: ClaimedPeer,
    frame: Frame,
    context: string,
  ): Promise<void> {
    const thIdentity = this.transcript.hashSync();
    const signature = decodeIdentityVerify(
      await this.openHandshakeMessage(keys, frame, "IdentityVerify"),
    );
    const ok = await verifyTranscript(
      claimed.identity,
      signedContent(context, thIdentity),
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

  /** 5.3 Finished: HMAC under the peer's finished_key over TH up to its IdentityVerify. */
  protected async verifyPeerFinished(keys: HandshakeKeys, frame: Frame): Promise<void> {
    const thIdentityVerify = this.transcript.hashSync();
    const verifyData = decodeFinished(await this.openHandshakeMessage(keys, frame, "Finished"));
    const peerTraffic = this.#initiator
      ? keys.secrets.serverHandshakeTraffic
      : keys.secrets.clientHandshakeTraffic;
    const expected = finishedMacSync(peerTraffic, thIdentityVerify);
    if (!constantTimeEqual(verifyData, expected)) {
      throw new AuthenticationError(
        "bad_finished",
        "the peer's Finished check failed: the handshake was altered on the way",
        { alert: "decrypt_error" },
      );
    }
  }

  /** 5.3: our {Identity}, {IdentityVerify} and {Finished}, as three records. */
  protected async writeOwnFlight(keys: HandshakeKeys): Promise<Uint8Array[]> {
    const identity = this.options.identity;
    const name = this.options.name ?? identity.comment;
    const records = [
      await this.sealHandshakeMessage(keys, encodeIdentity({ spki: identity.spki, name })),
    ];
    const context = this.#initiator ? CLIENT_SIGNATURE_CONTEXT : SERVER_SIGNATURE_CONTEXT;
    const thIdentity = this.transcript.hashSync();
    const signature = await signTranscript(identity, signedContent(context, thIdentity));
    records.push(await this.sealHandshakeMessage(keys, encodeIdentityVerify(signature)));
    const ownTraffic = this.#initiator
      ? keys.secrets.clientHandshakeTraffic
      : keys.secrets.serverHandshakeTraffic;
    const verifyData = finishedMacSync(ownTraffic, this.transcript.hashSync());
    this.report(`${this.#initiator ? "client" : "server"}_finished`, verifyData);
    records.push(await this.sealHandshakeMessage(keys, encodeFinished(verifyData)));
    return records;
  }

  /**
   * 7.3 and 7.4: master_secret, c_ap_traffic, s_ap_traffic and the verification code from
   * TH(client Finished), which the transcript must end with; erases the handshake keys (but for the
   * initiator's receive side, kept as `handshakeReceive`, section 6.2) and returns the result.
   */
  protected deriveApplicationKeys(
    keys: HandshakeKeys,
    peer: VerifiedPeer,
  ): Promise<HandshakeResult> {
    const thFinal = this.transcript.hashSync();
    this.report("th_final", thFinal);
    const app = deriveApplicationSecretsSync(keys.secrets.handshakeSecret, thFinal);
    this.report("master_secret", app.masterSecret);
    this.report("c_ap_traffic", app.clientApplicationTraffic);
    this.report("s_ap_traffic", app.serverApplicationTraffic);
    this.report("verification_code", app.verificationCode);
    const initiator = this.#initiator;
    const result: HandshakeResult = {
      peer,
      suite: keys.suite,
      recordSuite: keys.recordSuite,
      version: keys.version,
      verificationCode: formatVerificationCode(app.verificationCode),
      sendSecret: initiator ? app.clientApplicationTraffic : app.serverApplicationTraffic,
      receiveSecret: initiator ? app.serverApplicationTraffic : app.clientApplicationTraffic,
      peerMaxPlaintext: keys.peerMaxPlaintext,
      ownMaxPlaintext: this.options.maxRecordPlaintext,
    };
    if (initiator) result.handshakeReceive = keys.receive;
    wipe(app.masterSecret);
    eraseHandshakeKeys(keys, { keepReceive: initiator });
    // A promise still, so that the roles' steps read alike; nothing here waits any more.
    return Promise.resolve(result);
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
