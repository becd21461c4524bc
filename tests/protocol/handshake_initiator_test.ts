/**
 * The initiator machine of lib/protocol/handshake_initiator.ts (PROTOCOL.md section 6.1) driven in memory
 * against a real responder: state discipline, checking the responder's version and suite choice,
 * out-of-order and foreign frames, the responder's alerts, and signatures bound to the transcript
 * and the signer's role. Real crypto throughout; where a test needs a record no honest peer would
 * send, it seals one under the real handshake traffic secret that `onSecret` reports.
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { concat, utf8 } from "../../lib/core/bytes.ts";
import { ALERT, AuthenticationError, ProtocolError } from "../../lib/core/errors.ts";
import { type Frame, FRAME_TYPE } from "../../lib/protocol/frame.ts";
import {
  CLIENT_SIGNATURE_CONTEXT,
  SERVER_SIGNATURE_CONTEXT,
} from "../../lib/protocol/handshake.ts";
import { signTranscript } from "../../lib/keys/identity.ts";
import { Transcript } from "../../lib/crypto/key_schedule.ts";
import {
  decodeServerHello,
  encodeFinished,
  encodeIdentity,
  encodeIdentityVerify,
  encodeServerHello,
} from "../../lib/protocol/messages.ts";
import { CONTENT_TYPE } from "../../lib/protocol/record.ts";
import { isCode } from "../_helpers/assert_error.ts";
import {
  asFrame,
  assertOnlyCurrentStateAccepted,
  bob,
  failureOf,
  forger,
  frameOf,
  helloSent,
  initiatorCalls,
  isPeerAlert,
  isStateError,
  machines,
  serverFlown,
  serverHelloRead,
  unexpectedMessage,
} from "../_helpers/handshake_pair.ts";
import { splitFrames } from "../_helpers/vector.ts";

// ---------------------------------------------------------------------------------------------
// State discipline

Deno.test("InitiatorHandshake methods called in the wrong state throw ProtocolStateError naming both states", async () => {
  const m = machines();
  const calls = initiatorCalls(m.client);
  const step = async <T>(state: string, run: () => Promise<T>): Promise<T> => {
    strictEqual(m.client.currentState, state);
    await assertOnlyCurrentStateAccepted(calls, state);
    strictEqual(m.client.currentState, state, "a refused call must not move the machine");
    return await run();
  };
  const [clientHello] = splitFrames(await step("start", () => m.client.writeClientHello()), true);
  await m.server.readClientHello(clientHello!);
  const [sHello, sIdentity, sVerify, sFinished] = splitFrames(
    await m.server.writeServerFlight(),
    true,
  );
  await step("waitServerHello", () => m.client.readServerHello(sHello!));
  await step("waitServerIdentity", () => m.client.readServerIdentity(sIdentity!));
  await step("waitServerIdentityVerify", () => m.client.readServerIdentityVerify(sVerify!));
  await step("waitServerFinished", () => m.client.readServerFinished(sFinished!));
  await step("sendClientFlight", () => m.client.writeClientFlight());
  await step("done", () => Promise.resolve(m.client.finish()));
});

Deno.test("InitiatorHandshake refuses a call made while a step of the same state still runs", async () => {
  const m = machines();
  const first = m.client.writeClientHello();
  await rejects(m.client.writeClientHello(), isStateError("start", "start, during another step"));
  const [clientHello] = splitFrames(await first, true);
  strictEqual(m.client.currentState, "waitServerHello");
  // The machine goes on with the first call's hello.
  await m.server.readClientHello(clientHello!);
  const [sHello] = splitFrames(await m.server.writeServerFlight(), true);
  await m.client.readServerHello(sHello!);
  strictEqual(m.client.currentState, "waitServerIdentity");
});

Deno.test("InitiatorHandshake refuses every method in state failed after a failed step", async () => {
  const m = await helloSent();
  await rejects(
    m.client.readServerHello(frameOf(FRAME_TYPE.serverHello, new Uint8Array(3))),
    isCode(ProtocolError, "decode_error", "decode_error"),
  );
  strictEqual(m.client.currentState, "failed");
  for (const [expected, call] of initiatorCalls(m.client)) {
    await rejects(call(), isStateError(expected, "failed"));
  }
});

// ---------------------------------------------------------------------------------------------
// Suite and version choice (PROTOCOL.md 5.2)

Deno.test("InitiatorHandshake.readServerHello() rejects a suite it did not offer with illegal_parameter", async () => {
  // A real responder's answer to a hybrid offer, delivered to an initiator that offered x25519.
  const hybrid = await serverFlown({ clientSuites: ["x25519-mlkem768"] });
  const m = await helloSent({ clientSuites: ["x25519"] });
  await rejects(
    m.client.readServerHello(hybrid.serverHello),
    isCode(ProtocolError, "illegal_parameter", "illegal_parameter"),
  );
  strictEqual(m.client.currentState, "failed");
});

Deno.test("InitiatorHandshake.readServerHello() rejects a record suite it did not offer with illegal_parameter", async () => {
  // A real responder's answer choosing AES-256-GCM, delivered to an initiator that offered only
  // ChaCha20-Poly1305 (an attacker downgrading the record suite gets no further).
  const aes = await serverFlown({ clientRecordSuites: ["aes-256-gcm"] });
  strictEqual(decodeServerHello(aes.serverHello.body).recordSuite, "aes-256-gcm");
  const m = await helloSent({ clientRecordSuites: ["chacha20-poly1305"] });
  await rejects(
    m.client.readServerHello(aes.serverHello),
    isCode(ProtocolError, "illegal_parameter", "illegal_parameter"),
  );
  strictEqual(m.client.currentState, "failed");
});

Deno.test("InitiatorHandshake.readServerHello() rejects a version it did not offer with protocol_version", async () => {
  const m = await serverFlown();
  const hello = decodeServerHello(m.serverHello.body);
  const forged = frameOf(FRAME_TYPE.serverHello, encodeServerHello({ ...hello, version: 2 }));
  await rejects(
    m.client.readServerHello(forged),
    isCode(ProtocolError, "protocol_version", "protocol_version"),
  );
});

// ---------------------------------------------------------------------------------------------
// Unexpected frames and records (PROTOCOL.md 6: any other input is unexpected_message)
Deno.test("InitiatorHandshake.readServerHello() rejects frames other than server_hello as unexpected_message", async () => {
  const donor = await serverFlown();
  for (const frame of [donor.clientHello, donor.serverIdentity]) {
    const m = await helloSent();
    await rejects(m.client.readServerHello(frame), unexpectedMessage);
    strictEqual(m.client.currentState, "failed");
  }
});

Deno.test("InitiatorHandshake.readServerIdentity() and later steps reject hello frames as unexpected_message", async () => {
  const steps: [string, (m: Awaited<ReturnType<typeof serverFlown>>) => Promise<unknown>][] = [
    ["readServerIdentity", (m) => m.client.readServerIdentity(m.serverHello)],
    ["readServerIdentityVerify", async (m) => {
      await m.client.readServerIdentity(m.serverIdentity);
      return await m.client.readServerIdentityVerify(m.clientHello);
    }],
    ["readServerFinished", async (m) => {
      await m.client.readServerIdentity(m.serverIdentity);
      await m.client.readServerIdentityVerify(m.serverVerify);
      return await m.client.readServerFinished(m.serverHello);
    }],
  ];
  for (const [name, run] of steps) {
    const m = await serverHelloRead();
    await rejects(run(m), unexpectedMessage, name);
    strictEqual(m.client.currentState, "failed", name);
  }
});

Deno.test("InitiatorHandshake.readServerIdentity() rejects an application_data record as unexpected_message", async () => {
  const m = await serverHelloRead();
  const server = await forger(m.secrets.server.get("s_hs_traffic"));
  const record = await server.seal(CONTENT_TYPE.applicationData, utf8("too early"));
  await rejects(m.client.readServerIdentity(asFrame(record)), unexpectedMessage);
});

// Regression: a handshake message of the wrong msg_type was reported as decode_error.
Deno.test({
  name: "InitiatorHandshake.readServerIdentity() rejects a Finished message as unexpected_message",
  fn: async () => {
    const m = await serverHelloRead();
    const server = await forger(m.secrets.server.get("s_hs_traffic"));
    const record = await server.seal(CONTENT_TYPE.handshake, encodeFinished(new Uint8Array(32)));
    await rejects(m.client.readServerIdentity(asFrame(record)), unexpectedMessage);
  },
});

Deno.test("InitiatorHandshake.readServerHello() reports a plain_alert frame as PeerAlertError with its name", async () => {
  const cases: [number, string][] = [
    [ALERT.handshake_failure, "handshake_failure"],
    [ALERT.bad_certificate, "bad_certificate"],
    [ALERT.protocol_version, "protocol_version"],
    [200, "unknown alert 200"],
  ];
  for (const [code, name] of cases) {
    const m = await helloSent();
    await rejects(
      m.client.readServerHello(frameOf(FRAME_TYPE.plainAlert, Uint8Array.of(code))),
      isPeerAlert(name),
    );
    strictEqual(m.client.currentState, "failed");
  }
});

Deno.test("InitiatorHandshake.readServerIdentity() reports an encrypted alert record as PeerAlertError", async () => {
  // A responder that gives up right after its ServerHello seals the alert under its handshake
  // keys at sequence number 0, where the Identity is due.
  const m = await serverHelloRead();
  const server = await forger(m.secrets.server.get("s_hs_traffic"));
  const record = await server.seal(CONTENT_TYPE.alert, Uint8Array.of(ALERT.internal_error));
  await rejects(m.client.readServerIdentity(asFrame(record)), isPeerAlert("internal_error"));
  strictEqual(m.client.currentState, "failed");
});

// ---------------------------------------------------------------------------------------------
// Signatures (PROTOCOL.md 5.3, 6.3)

Deno.test("InitiatorHandshake.readServerIdentityVerify() rejects an IdentityVerify from another handshake", async () => {
  const other = await serverFlown();
  const m = await serverHelloRead();
  await m.client.readServerIdentity(m.serverIdentity);
  await rejects(m.client.readServerIdentityVerify(other.serverVerify), (error) => {
    ok(error instanceof AuthenticationError, `expected AuthenticationError, got ${error}`);
    ok(["handshake_tampered", "bad_signature"].includes(error.code), error.code);
    return true;
  });
  strictEqual(m.client.currentState, "failed");
});

/**
 * The responder's IdentityVerify re-made with the real keys: a signature by bob over the real
 * TH(ClientHello, ServerHello, Identity), with the given context string.
 */
async function serverVerifyWithContext(
  m: Awaited<ReturnType<typeof serverHelloRead>>,
  context: string,
): Promise<Frame> {
  const server = await forger(m.secrets.server.get("s_hs_traffic"));
  const identityMessage = encodeIdentity({ spki: bob.spki, name: bob.comment });
  eql(
    await server.seal(CONTENT_TYPE.handshake, identityMessage),
    concat(
      m.serverIdentity.header,
      m.serverIdentity.body,
    ),
  );
  const transcript = new Transcript();
  transcript.add(concat(m.clientHello.header, m.clientHello.body));
  transcript.add(concat(m.serverHello.header, m.serverHello.body));
  transcript.add(identityMessage);
  const signed = concat(utf8(context), Uint8Array.of(0), await transcript.hash());
  const signature = await signTranscript(bob, signed);
  return asFrame(await server.seal(CONTENT_TYPE.handshake, encodeIdentityVerify(signature)));
}

Deno.test("InitiatorHandshake.readServerIdentityVerify() accepts the server context (control)", async () => {
  const m = await serverHelloRead();
  await m.client.readServerIdentity(m.serverIdentity);
  await m.client.readServerIdentityVerify(
    await serverVerifyWithContext(m, SERVER_SIGNATURE_CONTEXT),
  );
  strictEqual(m.client.currentState, "waitServerFinished");
});

Deno.test("InitiatorHandshake.readServerIdentityVerify() rejects a signature made with the client context", async () => {
  const m = await serverHelloRead();
  await m.client.readServerIdentity(m.serverIdentity);
  const forged = await serverVerifyWithContext(m, CLIENT_SIGNATURE_CONTEXT);
  const failure = await failureOf(m.client.readServerIdentityVerify(forged));
  isCode(AuthenticationError, "bad_signature", "decrypt_error")(failure);
  // The verdict reaches the responder as decrypt_error, sealed under the client handshake keys.
  const alert = await m.client.alertFrame(failure);
  m.client.fail();
  await rejects(m.server.readClientIdentity(asFrame(alert!)), isPeerAlert("decrypt_error"));
});
