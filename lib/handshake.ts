/**
 * The handshake as two pure state machines, `InitiatorHandshake` and `ResponderHandshake`: bytes in,
 * bytes out. They never read a socket or a clock; `connection.ts` does the I/O and the deadline,
 * and decides trust (known_hosts, authorized_keys) between the steps.
 *
 * Randomness and the ML-KEM encapsulation can be injected, so the PROTOCOL.md test vector replays
 * byte for byte; `onSecret` reports every intermediate value for that vector.
 *
 * Any failure moves a machine to "failed" and wipes its secrets; `alertFrame()` then gives the bytes
 * to send the peer. A finished machine hands over its keys once with `finish()`.
 *
 * Mirrors: docs/PROTOCOL.md sections 5 and 6.
 *
 * @module
 */

import { concat, constantTimeEqual, utf8, wipe } from "./bytes.ts";
import { ALERT, AuthenticationError, PeerAlertError, ProtocolError } from "./errors.ts";
import { alertName, SecurechatError } from "./errors.ts";
import { encodeFrame, type Frame, FRAME_TYPE, MAGIC, MAX_HELLO_LENGTH } from "./frame.ts";
import {
  type Identity,
  importPublicIdentity,
  type PublicIdentity,
  signTranscript,
  verifyTranscript,
} from "./identity.ts";
import {
  type InitiatorKex,
  initiatorKex,
  type RandomSource,
  type RecordedEncapsulation,
  responderKex,
  type SuiteName,
  systemRandom,
} from "./kex.ts";
import {
  deriveApplicationSecrets,
  deriveHandshakeSecrets,
  finishedMac,
  formatVerificationCode,
  type HandshakeSecrets,
  Transcript,
} from "./key_schedule.ts";
import {
  type ClientHello,
  decodeClientHello,
  decodeFinished,
  decodeIdentity,
  decodeIdentityVerify,
  decodeServerHello,
  encodeClientHello,
  encodeFinished,
  encodeIdentity,
  encodeIdentityVerify,
  encodeServerHello,
  MESSAGE_TYPE,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
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

function unexpected(what: string): ProtocolError {
  return new ProtocolError("unexpected_message", `peer sent ${what} out of order`, {
    alert: "unexpected_message",
  });
}

/** The part both roles share: transcript, handshake keys, secrets, failure handling. */
abstract class HandshakeBase<State extends string> {
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

/** A plain_alert frame from the peer, unauthenticated (section 9). */
export function plainAlert(body: Uint8Array): PeerAlertError {
  const name = alertName(body[0] ?? 255) ?? `unknown alert ${body[0]}`;
  return new PeerAlertError(
    name,
    `peer ended the handshake with alert "${name}" (unauthenticated)`,
  );
}

type InitiatorState =
  | "start"
  | "waitServerHello"
  | "waitServerIdentity"
  | "waitServerIdentityVerify"
  | "waitServerFinished"
  | "sendClientFlight";

/** The initiator (dialer) side of section 6.1. */
export class InitiatorHandshake extends HandshakeBase<InitiatorState> {
  #offers: InitiatorKex[] = [];
  #hello: ClientHello | undefined;

  constructor(options: HandshakeOptions) {
    super("start", options);
  }

  /** 6.1 start: MAGIC, ClientHello(versions, random, shares). */
  writeClientHello(): Promise<Uint8Array> {
    return this.step("start", async () => {
      for (const suite of this.options.suites) {
        this.#offers.push(await initiatorKex(suite, this.random));
      }
      this.#hello = {
        versions: [...SUPPORTED_VERSIONS],
        random: this.random(RANDOM_LENGTH),
        maxRecordPlaintext: this.options.maxRecordPlaintext,
        shares: this.#offers.map((offer) => ({ suite: offer.suite, share: offer.share })),
      };
      const frame = encodeFrame(FRAME_TYPE.clientHello, encodeClientHello(this.#hello));
      this.transcript.add(frame);
      this.state = "waitServerHello";
      return concat(MAGIC, frame);
    });
  }

  /** 6.1 waitServerHello: ServerHello(version, random, suite, share) -> handshake keys. */
  readServerHello(frame: Frame): Promise<void> {
    return this.step("waitServerHello", async () => {
      if (frame.type === FRAME_TYPE.plainAlert) throw plainAlert(frame.body);
      if (frame.type !== FRAME_TYPE.serverHello) throw unexpected("a message before ServerHello");
      const hello = decodeServerHello(frame.body);
      if (!this.#hello!.versions.includes(hello.version)) {
        throw new ProtocolError("protocol_version", `peer chose version ${hello.version}`, {
          alert: "protocol_version",
        });
      }
      const offer = this.#offers.find((o) => o.suite === hello.suite);
      if (!offer) {
        throw new ProtocolError(
          "illegal_parameter",
          `peer chose suite ${hello.suite}, not offered`,
          {
            alert: "illegal_parameter",
          },
        );
      }
      this.transcript.add(concat(frame.header, frame.body));
      this.version = hello.version;
      this.suite = hello.suite;
      this.peerMaxPlaintext = hello.maxRecordPlaintext;
      const shared = await offer.complete(hello.share);
      this.#offers = [];
      await this.enterHandshakeKeys(shared, true);
      this.state = "waitServerIdentity";
    });
  }

  /** 6.1 waitServerIdentity: {Identity}. */
  readServerIdentity(frame: Frame): Promise<void> {
    return this.step("waitServerIdentity", async () => {
      await this.readPeerIdentity(await this.openHandshakeMessage(frame, "Identity"));
      this.state = "waitServerIdentityVerify";
    });
  }

  /** 6.1 waitServerIdentityVerify: {IdentityVerify}, signature over TH(server Identity). */
  readServerIdentityVerify(frame: Frame): Promise<void> {
    return this.step("waitServerIdentityVerify", async () => {
      const message = await this.openAndHashBefore(frame, "IdentityVerify");
      await this.readPeerSignature(message, SERVER_SIGNATURE_CONTEXT);
      this.state = "waitServerFinished";
    });
  }

  /**
   * 6.1 waitServerFinished: {Finished}. Returns the verified responder; the caller checks trust
   * before calling `writeClientFlight()`.
   */
  readServerFinished(frame: Frame): Promise<VerifiedPeer> {
    return this.step("waitServerFinished", async () => {
      const message = await this.openAndHashBefore(frame, "Finished");
      await this.readPeerFinished(message, this.secrets!.serverHandshakeTraffic);
      this.peer = this.peerIdentity!;
      this.state = "sendClientFlight";
      return this.peer;
    });
  }

  /** 6.1 sendClientFlight: {Identity}, {IdentityVerify}, {Finished}; then application keys. */
  writeClientFlight(): Promise<Uint8Array> {
    return this.step("sendClientFlight", async () => {
      const records = await this.writeOwnFlight(
        CLIENT_SIGNATURE_CONTEXT,
        this.secrets!.clientHandshakeTraffic,
        "client",
      );
      await this.deriveApplication(true);
      return concat(...records);
    });
  }
}

type ResponderState =
  | "start"
  | "sendServerFlight"
  | "waitClientIdentity"
  | "waitClientIdentityVerify"
  | "waitClientFinished";

/** The responder (listener) side of section 6.2. */
export class ResponderHandshake extends HandshakeBase<ResponderState> {
  #serverHelloFrame: Uint8Array | undefined;

  constructor(options: HandshakeOptions) {
    super("start", options);
  }

  /** 6.2 start: ClientHello -> choose version and suite, answer the share, handshake keys. */
  readClientHello(frame: Frame): Promise<void> {
    return this.step("start", async () => {
      if (frame.type !== FRAME_TYPE.clientHello) throw unexpected("a message before ClientHello");
      const hello = decodeClientHello(frame.body);
      this.transcript.add(concat(frame.header, frame.body));
      const version = SUPPORTED_VERSIONS.find((v) => hello.versions.includes(v));
      if (version === undefined) {
        throw new ProtocolError(
          "protocol_version",
          `peer offers protocol versions ${hello.versions.join(", ")}, none of which we speak`,
          { alert: "protocol_version" },
        );
      }
      const suite = this.options.suites.find((s) => hello.shares.some((o) => o.suite === s));
      if (suite === undefined) {
        throw new ProtocolError(
          "no_common_suite",
          `no common key agreement suite: peer offers ${
            hello.shares.map((s) => s.suite).join(", ") || "none we know"
          }, we accept ${this.options.suites.join(", ")}`,
          { alert: "handshake_failure" },
        );
      }
      const offered = hello.shares.find((s) => s.suite === suite)!;
      const answer = await responderKex(
        suite,
        offered.share,
        this.random,
        this.options.encapsulation ? { encapsulation: this.options.encapsulation } : {},
      );
      this.version = version;
      this.suite = suite;
      this.peerMaxPlaintext = hello.maxRecordPlaintext;
      this.#serverHelloFrame = encodeFrame(
        FRAME_TYPE.serverHello,
        encodeServerHello({
          version,
          random: this.random(RANDOM_LENGTH),
          maxRecordPlaintext: this.options.maxRecordPlaintext,
          suite,
          share: answer.share,
        }),
      );
      this.transcript.add(this.#serverHelloFrame);
      await this.enterHandshakeKeys(answer.sharedSecret, false);
      this.state = "sendServerFlight";
    });
  }

  /** 6.2 sendServerFlight: MAGIC, ServerHello, {Identity}, {IdentityVerify}, {Finished}. */
  writeServerFlight(): Promise<Uint8Array> {
    return this.step("sendServerFlight", async () => {
      const records = await this.writeOwnFlight(
        SERVER_SIGNATURE_CONTEXT,
        this.secrets!.serverHandshakeTraffic,
        "server",
      );
      this.state = "waitClientIdentity";
      return concat(MAGIC, this.#serverHelloFrame!, ...records);
    });
  }

  /** 6.2 waitClientIdentity: {Identity}. */
  readClientIdentity(frame: Frame): Promise<void> {
    return this.step("waitClientIdentity", async () => {
      await this.readPeerIdentity(await this.openHandshakeMessage(frame, "Identity"));
      this.state = "waitClientIdentityVerify";
    });
  }

  /** 6.2 waitClientIdentityVerify: {IdentityVerify}, signature over TH(client Identity). */
  readClientIdentityVerify(frame: Frame): Promise<void> {
    return this.step("waitClientIdentityVerify", async () => {
      const message = await this.openAndHashBefore(frame, "IdentityVerify");
      await this.readPeerSignature(message, CLIENT_SIGNATURE_CONTEXT);
      this.state = "waitClientFinished";
    });
  }

  /**
   * 6.2 waitClientFinished: {Finished} -> application keys. Returns the verified initiator; the
   * caller checks authorized_keys before using the session.
   */
  readClientFinished(frame: Frame): Promise<VerifiedPeer> {
    return this.step("waitClientFinished", async () => {
      const message = await this.openAndHashBefore(frame, "Finished");
      await this.readPeerFinished(message, this.secrets!.clientHandshakeTraffic);
      this.peer = this.peerIdentity!;
      await this.deriveApplication(false);
      return this.peer;
    });
  }
}
