/**
 * The initiator (dialer) side of the handshake, `InitiatorHandshake`: a pure state machine with one
 * method per state of PROTOCOL.md section 6.1, bytes in, bytes out. It never reads a socket or a
 * clock; `connection.ts` drives it and checks the responder's key against known_hosts (or a pin)
 * between `readServerFinished()` and `writeClientFlight()`.
 *
 * It writes the ClientHello and reads the ServerHello itself; the encrypted messages, signatures,
 * Finished checks, alerts and key handover it shares with the responder through `HandshakeBase`
 * (`handshake.ts`).
 *
 * Mirrors: docs/PROTOCOL.md sections 5.1, 5.2 (checking the responder's choice) and 6.1.
 *
 * @module
 */

import { concat } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import { encodeFrame, type Frame, FRAME_TYPE, MAGIC } from "./frame.ts";
import {
  CLIENT_SIGNATURE_CONTEXT,
  HandshakeBase,
  type HandshakeOptions,
  plainAlert,
  SERVER_SIGNATURE_CONTEXT,
  unexpected,
  type VerifiedPeer,
} from "./handshake.ts";
import { type InitiatorKex, initiatorKex } from "../crypto/kex.ts";
import {
  type ClientHello,
  decodeServerHello,
  encodeClientHello,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
} from "./messages.ts";

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
