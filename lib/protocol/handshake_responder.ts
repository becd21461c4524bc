/**
 * The responder (listener) side of the handshake, `ResponderHandshake`: a pure state machine with
 * one method per state of PROTOCOL.md section 6.2, bytes in, bytes out. It never reads a socket or a
 * clock; `connection.ts` drives it and checks the initiator's key against authorized_keys after
 * `readClientFinished()`.
 *
 * It reads the ClientHello, chooses version and suite and writes the ServerHello itself; the
 * encrypted messages, signatures, Finished checks, alerts and key handover it shares with the
 * initiator through `HandshakeBase` (`handshake.ts`).
 *
 * Mirrors: docs/PROTOCOL.md sections 5.1, 5.2 (choosing version and suite) and 6.2.
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
  SERVER_SIGNATURE_CONTEXT,
  unexpected,
  type VerifiedPeer,
} from "./handshake.ts";
import { responderKex, type SuiteName } from "../crypto/kex.ts";
import {
  decodeClientHello,
  encodeServerHello,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
} from "./messages.ts";

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
      const common = this.options.suites.filter((s) => hello.shares.some((o) => o.suite === s));
      if (common.length === 0) {
        throw new ProtocolError(
          "no_common_suite",
          `no common key agreement suite: peer offers ${
            hello.shares.map((s) => s.suite).join(", ") || "none we know"
          }, we accept ${this.options.suites.join(", ")}`,
          { alert: "handshake_failure" },
        );
      }
      // 6.3: an expensive suite over its budget is skipped for the next common one.
      let suite: SuiteName | undefined;
      let release: (() => void) | undefined;
      for (const candidate of common) {
        release = this.options.reserveKex ? this.options.reserveKex(candidate) : () => {};
        if (release !== undefined) {
          suite = candidate;
          break;
        }
      }
      if (suite === undefined || release === undefined) {
        throw new ProtocolError(
          "kex_busy",
          `too many ${common.join(", ")} handshakes from this address at once`,
          {
            alert: "handshake_failure",
            hints: ["the peer may retry later or offer another suite"],
          },
        );
      }
      const offered = hello.shares.find((s) => s.suite === suite)!;
      let answer;
      try {
        answer = await responderKex(
          suite,
          offered.share,
          this.random,
          this.options.encapsulation ? { encapsulation: this.options.encapsulation } : {},
        );
      } finally {
        release();
      }
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
