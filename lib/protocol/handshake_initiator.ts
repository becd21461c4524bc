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
import { HandshakeBase, plainAlert, SERVER_SIGNATURE_CONTEXT } from "./handshake.ts";
import {
  type ClaimedPeer,
  type HandshakeKeys,
  type HandshakeOptions,
  unexpected,
  type VerifiedPeer,
} from "./handshake_state.ts";
import { type InitiatorKex, initiatorKex } from "../crypto/kex.ts";
import { DEFAULT_RECORD_SUITES } from "../crypto/record_suites.ts";
import {
  type ClientHello,
  decodeServerHello,
  encodeClientHello,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
} from "./messages.ts";

/** The states of section 6.1, each with what exists in it. */
type InitiatorState =
  | { readonly name: "start" }
  /** Our hello and the ephemeral key pair of each offered share. */
  | {
    readonly name: "waitServerHello";
    readonly hello: ClientHello;
    readonly offers: InitiatorKex[];
  }
  | { readonly name: "waitServerIdentity"; readonly keys: HandshakeKeys }
  | {
    readonly name: "waitServerIdentityVerify";
    readonly keys: HandshakeKeys;
    readonly claimed: ClaimedPeer;
  }
  | {
    readonly name: "waitServerFinished";
    readonly keys: HandshakeKeys;
    readonly claimed: ClaimedPeer;
  }
  /** The responder's Finished verified: the caller decides whether it trusts `peer`. */
  | {
    readonly name: "sendClientFlight";
    readonly keys: HandshakeKeys;
    readonly peer: VerifiedPeer;
  };

/** The initiator (dialer) side of section 6.1. */
export class InitiatorHandshake extends HandshakeBase<InitiatorState> {
  constructor(options: HandshakeOptions) {
    super({ name: "start" }, "initiator", options);
  }

  /** 6.1 start: MAGIC, ClientHello(versions, random, shares). */
  writeClientHello(): Promise<Uint8Array> {
    return this.step("start", async () => {
      const offers: InitiatorKex[] = [];
      for (const suite of this.options.suites) {
        offers.push(await initiatorKex(suite, this.random));
      }
      const hello: ClientHello = {
        versions: [...SUPPORTED_VERSIONS],
        random: this.random(RANDOM_LENGTH),
        maxRecordPlaintext: this.options.maxRecordPlaintext,
        shares: offers.map((offer) => ({ suite: offer.suite, share: offer.share })),
        recordSuites: [...(this.options.recordSuites ?? DEFAULT_RECORD_SUITES)],
      };
      const frame = encodeFrame(FRAME_TYPE.clientHello, encodeClientHello(hello));
      this.transcript.add(frame);
      this.state = { name: "waitServerHello", hello, offers };
      return concat(MAGIC, frame);
    });
  }

  /** 6.1 waitServerHello: ServerHello(version, random, suite, share) -> handshake keys. */
  readServerHello(frame: Frame): Promise<void> {
    return this.step("waitServerHello", async ({ hello: ours, offers }) => {
      if (frame.type === FRAME_TYPE.plainAlert) throw plainAlert(frame.body);
      if (frame.type !== FRAME_TYPE.serverHello) throw unexpected("a message before ServerHello");
      const hello = decodeServerHello(frame.body);
      if (!ours.versions.includes(hello.version)) {
        throw new ProtocolError("protocol_version", `peer chose version ${hello.version}`, {
          alert: "protocol_version",
        });
      }
      const offer = offers.find((o) => o.suite === hello.suite);
      if (!offer) {
        throw new ProtocolError(
          "illegal_parameter",
          `peer chose suite ${hello.suite}, not offered`,
          {
            alert: "illegal_parameter",
          },
        );
      }
      if (!ours.recordSuites.includes(hello.recordSuite)) {
        throw new ProtocolError(
          "illegal_parameter",
          `peer chose record suite ${hello.recordSuite}, not offered`,
          { alert: "illegal_parameter" },
        );
      }
      this.transcript.add(concat(frame.header, frame.body));
      const shared = await offer.complete(hello.share);
      const keys = await this.deriveHandshakeKeys(shared, {
        suite: hello.suite,
        recordSuite: hello.recordSuite,
        version: hello.version,
        peerMaxPlaintext: hello.maxRecordPlaintext,
      });
      this.state = { name: "waitServerIdentity", keys };
    });
  }

  /** 6.1 waitServerIdentity: {Identity}. */
  readServerIdentity(frame: Frame): Promise<void> {
    return this.step("waitServerIdentity", async ({ keys }) => {
      const claimed = await this.readPeerIdentity(keys, frame);
      this.state = { name: "waitServerIdentityVerify", keys, claimed };
    });
  }

  /** 6.1 waitServerIdentityVerify: {IdentityVerify}, signature over TH(server Identity). */
  readServerIdentityVerify(frame: Frame): Promise<void> {
    return this.step("waitServerIdentityVerify", async ({ keys, claimed }) => {
      await this.verifyPeerSignature(keys, claimed, frame, SERVER_SIGNATURE_CONTEXT);
      this.state = { name: "waitServerFinished", keys, claimed };
    });
  }

  /**
   * 6.1 waitServerFinished: {Finished}. Returns the verified responder; the caller checks trust
   * before calling `writeClientFlight()`.
   */
  readServerFinished(frame: Frame): Promise<VerifiedPeer> {
    return this.step("waitServerFinished", async ({ keys, claimed }) => {
      await this.verifyPeerFinished(keys, frame);
      const peer: VerifiedPeer = claimed;
      this.state = { name: "sendClientFlight", keys, peer };
      return peer;
    });
  }

  /** 6.1 sendClientFlight: {Identity}, {IdentityVerify}, {Finished}; then application keys. */
  writeClientFlight(): Promise<Uint8Array> {
    return this.step("sendClientFlight", async ({ keys, peer }) => {
      const records = await this.writeOwnFlight(keys);
      const result = await this.deriveApplicationKeys(keys, peer);
      this.state = { name: "done", result };
      return concat(...records);
    });
  }
}
