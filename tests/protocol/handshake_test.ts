/**
 * What both handshake machines share (lib/protocol/handshake.ts, PROTOCOL.md sections 5 and 6), driven in
 * memory: complete handshakes for every suite and key type, `finish()` and `fail()` in any state,
 * alerts before and after handshake keys, and the frame caps. Real crypto throughout; where a test
 * needs a record no honest peer would send, it seals one under the real handshake traffic secret
 * that `onSecret` reports. The drivers are in `_helpers/handshake_pair.ts`.
 */

import {
  deepStrictEqual as eql,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { isAllZero, utf8 } from "../../lib/core/bytes.ts";
import {
  ALERT,
  AuthenticationError,
  PeerAlertError,
  ProtocolError,
  TrustError,
} from "../../lib/core/errors.ts";
import { FRAME_TYPE, MAX_HELLO_LENGTH } from "../../lib/protocol/frame.ts";
import type { HandshakeResult } from "../../lib/protocol/handshake_state.ts";
import { generateIdentity, type Identity } from "../../lib/keys/identity.ts";
import { ALL_SUITES, type SuiteName } from "../../lib/crypto/kex.ts";
import {
  CONTENT_TYPE,
  MAX_RECORD_PLAINTEXT,
  MAX_RECORD_PLAINTEXT_LIMIT,
  RecordLayer,
} from "../../lib/protocol/record.ts";
import { RecordProtection } from "../../lib/protocol/record_protection.ts";
import { isCode } from "../_helpers/assert_error.ts";
import {
  alice,
  asFrame,
  bob,
  clientFlown,
  completed,
  failureOf,
  frameOf,
  helloSent,
  initiatorCalls,
  isPeerAlert,
  isStateError,
  machines,
  responderCalls,
  serverHelloRead,
  unexpectedMessage,
} from "../_helpers/handshake_pair.ts";

// ---------------------------------------------------------------------------------------------
// Complete handshakes

function assertAgree(
  client: HandshakeResult,
  server: HandshakeResult,
  expected: {
    suite: SuiteName;
    clientIdentity: Identity;
    serverIdentity: Identity;
    clientMax: number;
    serverMax: number;
  },
) {
  strictEqual(client.verificationCode, server.verificationCode);
  ok(/^\d{4} \d{4} \d{4}$/.test(client.verificationCode), client.verificationCode);
  eql(client.sendSecret, server.receiveSecret);
  eql(client.receiveSecret, server.sendSecret);
  notDeepStrictEqual(client.sendSecret, client.receiveSecret);
  strictEqual(client.suite, expected.suite);
  strictEqual(server.suite, expected.suite);
  strictEqual(client.version, 1);
  strictEqual(server.version, 1);
  strictEqual(client.peer.identity.fingerprint, expected.serverIdentity.fingerprint);
  strictEqual(server.peer.identity.fingerprint, expected.clientIdentity.fingerprint);
  strictEqual(client.peer.identity.type, expected.serverIdentity.type);
  strictEqual(server.peer.identity.type, expected.clientIdentity.type);
  strictEqual(client.peer.name, expected.serverIdentity.comment);
  strictEqual(server.peer.name, expected.clientIdentity.comment);
  strictEqual(client.ownMaxPlaintext, expected.clientMax);
  strictEqual(client.peerMaxPlaintext, expected.serverMax);
  strictEqual(server.ownMaxPlaintext, expected.serverMax);
  strictEqual(server.peerMaxPlaintext, expected.clientMax);
  ok(client.handshakeReceive instanceof RecordProtection, "initiator keeps handshakeReceive");
  strictEqual(server.handshakeReceive, undefined);
}

/** One application record each way through RecordLayers built from the results. */
async function assertRecordsFlow(client: HandshakeResult, server: HandshakeResult) {
  const layer = (r: HandshakeResult) =>
    RecordLayer.create({
      sendSecret: r.sendSecret,
      receiveSecret: r.receiveSecret,
      suite: r.recordSuite,
      peerMaxPlaintext: r.peerMaxPlaintext,
      ownMaxPlaintext: r.ownMaxPlaintext,
    });
  const [a, b] = [await layer(client), await layer(server)];
  for (const [from, to, text] of [[a, b, "to responder"], [b, a, "to initiator"]] as const) {
    const [frame] = await from.sealData(utf8(text));
    const event = await to.open(frame!.subarray(0, 5), frame!.subarray(5));
    eql(event, { kind: "data", data: utf8(text) });
  }
}

for (const suite of ALL_SUITES) {
  Deno.test(`InitiatorHandshake and ResponderHandshake agree on everything with suite ${suite}`, async () => {
    const o = {
      clientSuites: [suite],
      clientMax: MAX_RECORD_PLAINTEXT_LIMIT,
      serverMax: MAX_RECORD_PLAINTEXT * 2,
    };
    const m = await completed(o);
    assertAgree(m.clientResult, m.serverResult, {
      suite,
      clientIdentity: alice,
      serverIdentity: bob,
      clientMax: MAX_RECORD_PLAINTEXT_LIMIT,
      serverMax: MAX_RECORD_PLAINTEXT * 2,
    });
    strictEqual(m.serverPeer.identity.fingerprint, bob.fingerprint);
    strictEqual(m.clientPeer.identity.fingerprint, alice.fingerprint);
    strictEqual(m.client.currentState, "done");
    strictEqual(m.server.currentState, "done");
    await assertRecordsFlow(m.clientResult, m.serverResult);
  });
}

Deno.test("InitiatorHandshake and ResponderHandshake agree with RSA-PSS and mixed identities", async () => {
  const [rsaClient, rsaServer] = await Promise.all([
    generateIdentity({ type: "rsa-pss", bits: 2048, comment: "rsa client" }),
    generateIdentity({ type: "rsa-pss", bits: 2048, comment: "rsa server" }),
  ]).then((pairs) => pairs.map((pair) => pair.identity)) as [Identity, Identity];
  const cases: [Identity, Identity][] = [
    [rsaClient, rsaServer],
    [rsaClient, bob],
    [alice, rsaServer],
  ];
  for (const [clientIdentity, serverIdentity] of cases) {
    const m = await completed({
      clientIdentity,
      serverIdentity,
      clientSuites: ["x25519-mlkem768"],
    });
    assertAgree(m.clientResult, m.serverResult, {
      suite: "x25519-mlkem768",
      clientIdentity,
      serverIdentity,
      clientMax: MAX_RECORD_PLAINTEXT,
      serverMax: MAX_RECORD_PLAINTEXT,
    });
    await assertRecordsFlow(m.clientResult, m.serverResult);
  }
});

Deno.test("InitiatorHandshake.finish() results of two handshakes share no secrets", async () => {
  const [one, two] = [await completed(), await completed()];
  notDeepStrictEqual(one.clientResult.sendSecret, two.clientResult.sendSecret);
  notDeepStrictEqual(one.clientResult.receiveSecret, two.clientResult.receiveSecret);
  notDeepStrictEqual(one.clientHello.body, two.clientHello.body);
});

// ---------------------------------------------------------------------------------------------
// State discipline

Deno.test("InitiatorHandshake.finish() hands over the keys once; a second call throws", async () => {
  const m = await completed();
  throws(() => m.client.finish(), isStateError("done", "done"));
  throws(() => m.server.finish(), isStateError("done", "done"));
  // Still "done", and every step refuses.
  for (const [expected, call] of initiatorCalls(m.client).slice(0, -1)) {
    await rejects(call(), isStateError(expected, "done"));
  }
  for (const [expected, call] of responderCalls(m.server).slice(0, -1)) {
    await rejects(call(), isStateError(expected, "done"));
  }
});

Deno.test("InitiatorHandshake.fail() moves any state to failed for good", async () => {
  const m = await serverHelloRead();
  m.client.fail();
  m.server.fail();
  strictEqual(m.client.currentState, "failed");
  strictEqual(m.server.currentState, "failed");
  for (const [expected, call] of initiatorCalls(m.client)) {
    await rejects(call(), isStateError(expected, "failed"));
  }
  for (const [expected, call] of responderCalls(m.server)) {
    await rejects(call(), isStateError(expected, "failed"));
  }
});

// ---------------------------------------------------------------------------------------------
// alertFrame() and fail() (PROTOCOL.md 6 and 9)

Deno.test("InitiatorHandshake.alertFrame() before handshake keys is a plain_alert frame", async () => {
  const fresh = machines();
  eql(
    await fresh.client.alertFrame(new TrustError("x", "y", { alert: "bad_certificate" })),
    Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.bad_certificate),
  );
  const m = await helloSent();
  eql(
    await m.client.alertFrame(new ProtocolError("x", "y")),
    Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.decode_error),
  );
  // Anything that is not a SecurechatError is a local failure: internal_error.
  eql(
    await m.client.alertFrame(new TypeError("bug")),
    Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.internal_error),
  );
  // An alert is never answered with an alert.
  strictEqual(await m.client.alertFrame(new PeerAlertError("user_canceled", "z")), undefined);
});

Deno.test("InitiatorHandshake.alertFrame() after a failed step is a record the responder opens as the alert", async () => {
  // Regression: the keys used to be wiped when the step failed, before the alert was sealed.
  const m = await serverHelloRead();
  const failure = await failureOf(
    m.client.readServerIdentity(frameOf(FRAME_TYPE.serverHello, new Uint8Array(0))),
  );
  unexpectedMessage(failure);
  const alert = await m.client.alertFrame(failure);
  ok(alert !== undefined);
  strictEqual(alert[0], FRAME_TYPE.record);
  m.client.fail();
  // The responder, waiting for the initiator's Identity, opens it under the client handshake keys.
  await rejects(m.server.readClientIdentity(asFrame(alert)), isPeerAlert("unexpected_message"));
  strictEqual(m.server.currentState, "failed");
});

Deno.test("ResponderHandshake.alertFrame() after a failed step is a record the initiator opens with handshakeReceive", async () => {
  // The initiator already holds application keys; the responder rejects its IdentityVerify (here:
  // one from another handshake) and seals the alert under the server handshake keys, sequence 3.
  const other = await clientFlown();
  const m = await clientFlown();
  await m.server.readClientIdentity(m.clientIdentity);
  const failure = await failureOf(m.server.readClientIdentityVerify(other.clientVerify));
  isCode(AuthenticationError, "handshake_tampered", "bad_record_mac")(failure);
  const alert = await m.server.alertFrame(failure);
  ok(alert !== undefined);
  strictEqual(alert[0], FRAME_TYPE.record);
  m.server.fail();
  const result = m.client.finish();
  const opened = await result.handshakeReceive!.open(alert.subarray(0, 5), alert.subarray(5));
  eql(opened, { type: CONTENT_TYPE.alert, content: Uint8Array.of(ALERT.bad_record_mac) });
});

Deno.test("InitiatorHandshake.fail() wipes the handshake secrets", async () => {
  const m = await serverHelloRead();
  const names = ["handshake_secret", "c_hs_traffic", "s_hs_traffic"];
  // The ECDH output is wiped as soon as the handshake keys are derived.
  ok(isAllZero(m.secrets.client.get("shared_secret")!), "shared_secret not wiped");
  for (const name of names) ok(!isAllZero(m.secrets.client.get(name)!), `${name} missing`);
  m.client.fail();
  m.server.fail();
  for (const side of [m.secrets.client, m.secrets.server]) {
    for (const name of names) ok(isAllZero(side.get(name)!), `${name} not wiped`);
  }
});

Deno.test("InitiatorHandshake.fail() after the last step wipes the application keys finish() did not hand over", async () => {
  const m = await clientFlown();
  await m.server.readClientIdentity(m.clientIdentity);
  await m.server.readClientIdentityVerify(m.clientVerify);
  await m.server.readClientFinished(m.clientFinished);
  const names = ["c_ap_traffic", "s_ap_traffic"];
  for (const side of [m.secrets.client, m.secrets.server]) {
    for (const name of names) ok(!isAllZero(side.get(name)!), `${name} missing`);
  }
  m.client.fail();
  m.server.fail();
  for (const side of [m.secrets.client, m.secrets.server]) {
    for (const name of names) ok(isAllZero(side.get(name)!), `${name} not wiped`);
  }
  throws(() => m.client.finish(), isStateError("done", "failed"));
  throws(() => m.server.finish(), isStateError("done", "failed"));
});

// Regression: after fail() a wiped protection could still seal alerts with a zeroed IV.
Deno.test({
  name: "InitiatorHandshake.alertFrame() after fail() is a plain_alert frame, not a record",
  fn: async () => {
    const m = await serverHelloRead();
    m.client.fail();
    eql(
      await m.client.alertFrame(new ProtocolError("x", "y")),
      Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.decode_error),
    );
  },
});

// ---------------------------------------------------------------------------------------------
// Frame caps (PROTOCOL.md 3.2, 8.3)

Deno.test("InitiatorHandshake.capOf() gives the frame caps of section 3.2", async () => {
  const m = await serverHelloRead();
  for (const machine of [m.client, m.server, machines().client]) {
    strictEqual(machine.capOf(FRAME_TYPE.record), 16384 + 17);
    strictEqual(machine.capOf(FRAME_TYPE.clientHello), MAX_HELLO_LENGTH);
    strictEqual(machine.capOf(FRAME_TYPE.serverHello), 4096);
    strictEqual(machine.capOf(FRAME_TYPE.plainAlert), 1);
    for (const unknown of [0x00, 0x03, 0x14, 0x16, 0x18, 0xff]) {
      strictEqual(machine.capOf(unknown), undefined, `type 0x${unknown.toString(16)}`);
    }
  }
});
