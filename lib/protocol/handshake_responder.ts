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
import { CLIENT_SIGNATURE_CONTEXT, HandshakeBase } from "./handshake.ts";
import {
  type ClaimedPeer,
  type HandshakeKeys,
  type HandshakeOptions,
  unexpected,
  type VerifiedPeer,
} from "./handshake_state.ts";
import { responderKex } from "../crypto/kex.ts";
import { DEFAULT_RECORD_SUITES } from "../crypto/record_suites.ts";
import {
  decodeClientHello,
  encodeServerHello,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
} from "./messages.ts";

/** The states of section 6.2, each with what exists in it. */
type ResponderState =
  | { readonly name: "start" }
  /** The ServerHello frame to send, already in the transcript under these keys. */
  | {
    readonly name: "sendServerFlight";
    readonly keys: HandshakeKeys;
    readonly serverHello: Uint8Array;
  }
  | { readonly name: "waitClientIdentity"; readonly keys: HandshakeKeys }
  | {
    readonly name: "waitClientIdentityVerify";
    readonly keys: HandshakeKeys;
    readonly claimed: ClaimedPeer;
  }
  | {
    readonly name: "waitClientFinished";
    readonly keys: HandshakeKeys;
    readonly claimed: ClaimedPeer;
  };

/** The responder (listener) side of section 6.2. */
export class ResponderHandshake extends HandshakeBase<ResponderState> {
  constructor(options: HandshakeOptions) {
    super({ name: "start" }, "responder", options);
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
      // 5.2: the offered shares, in our order of preference (suite ids are distinct in a hello).
      const common = this.options.suites.flatMap((suite) =>
        hello.shares.filter((offer) => offer.suite === suite)
      );
      if (common.length === 0) {
        throw new ProtocolError(
          "no_common_suite",
          `no common key agreement suite: peer offers ${
            hello.shares.map((s) => s.suite).join(", ") || "none we know"
          }, we accept ${this.options.suites.join(", ")}`,
          { alert: "handshake_failure" },
        );
      }
      // 4.5: the first record suite of our preference that the initiator accepts.
      const ownRecordSuites = this.options.recordSuites ?? DEFAULT_RECORD_SUITES;
      const recordSuite = ownRecordSuites.find((suite) => hello.recordSuites.includes(suite));
      if (recordSuite === undefined) {
        throw new ProtocolError(
          "no_common_record_suite",
          `no common record suite: peer accepts ${
            hello.recordSuites.join(", ") || "none we know"
          }, we accept ${ownRecordSuites.join(", ")}`,
          { alert: "handshake_failure" },
        );
      }
      // 6.3: an expensive suite over its budget is skipped for the next common one.
      let chosen: { offer: (typeof common)[number]; release: () => void } | undefined;
      for (const offer of common) {
        const release = this.options.reserveKex ? this.options.reserveKex(offer.suite) : () => {};
        if (release !== undefined) {
          chosen = { offer, release };
          break;
        }
      }
      if (chosen === undefined) {
        throw new ProtocolError(
          "kex_busy",
          `too many ${
            common.map((offer) => offer.suite).join(", ")
          } handshakes from this address at once`,
          {
            alert: "handshake_failure",
            hints: ["the peer may retry later or offer another suite"],
          },
        );
      }
      const { suite, share } = chosen.offer;
      let answer;
      try {
        answer = await responderKex(
          suite,
          share,
          this.random,
          this.options.encapsulation ? { encapsulation: this.options.encapsulation } : {},
        );
      } finally {
        chosen.release();
      }
      const serverHello = encodeFrame(
        FRAME_TYPE.serverHello,
        encodeServerHello({
          version,
          random: this.random(RANDOM_LENGTH),
          maxRecordPlaintext: this.options.maxRecordPlaintext,
          suite,
          share: answer.share,
          recordSuite,
        }),
      );
      this.transcript.add(serverHello);
      const keys = await this.deriveHandshakeKeys(answer.sharedSecret, {
        suite,
        recordSuite,
        version,
        peerMaxPlaintext: hello.maxRecordPlaintext,
      });
      this.state = { name: "sendServerFlight", keys, serverHello };
    });
  }

  /** 6.2 sendServerFlight: MAGIC, ServerHello, {Identity}, {IdentityVerify}, {Finished}. */
  writeServerFlight(): Promise<Uint8Array> {
    return this.step("sendServerFlight", async ({ keys, serverHello }) => {
      const records = await this.writeOwnFlight(keys);
      this.state = { name: "waitClientIdentity", keys };
      return concat(MAGIC, serverHello, ...records);
    });
  }

  /** 6.2 waitClientIdentity: {Identity}. */
  readClientIdentity(frame: Frame): Promise<void> {
    return this.step("waitClientIdentity", async ({ keys }) => {
      const claimed = await this.readPeerIdentity(keys, frame);
      this.state = { name: "waitClientIdentityVerify", keys, claimed };
    });
  }

  /** 6.2 waitClientIdentityVerify: {IdentityVerify}, signature over TH(client Identity). */
  readClientIdentityVerify(frame: Frame): Promise<void> {
    return this.step("waitClientIdentityVerify", async ({ keys, claimed }) => {
      await this.verifyPeerSignature(keys, claimed, frame, CLIENT_SIGNATURE_CONTEXT);
      this.state = { name: "waitClientFinished", keys, claimed };
    });
  }

  /**
   * 6.2 waitClientFinished: {Finished} -> application keys. Returns the verified initiator; the
   * caller checks authorized_keys before using the session.
   */
  readClientFinished(frame: Frame): Promise<VerifiedPeer> {
    return this.step("waitClientFinished", async ({ keys, claimed }) => {
      await this.verifyPeerFinished(keys, frame);
      const peer: VerifiedPeer = claimed;
      const result = await this.deriveApplicationKeys(keys, peer);
      this.state = { name: "done", result };
      return peer;
    });
  }
}
