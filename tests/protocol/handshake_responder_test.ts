/**
 * The responder machine of lib/protocol/handshake_responder.ts (PROTOCOL.md section 6.2) driven in memory
 * against a real initiator: state discipline, version and suite choice (section 5.2), out-of-order
 * and foreign frames, and handshake secrets wiped once it finishes. Real crypto throughout.
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { isAllZero } from "../../lib/core/bytes.ts";
import { ALERT, ProtocolError } from "../../lib/core/errors.ts";
import { FRAME_TYPE } from "../../lib/protocol/frame.ts";
import type { SuiteName } from "../../lib/crypto/kex.ts";
import type { RecordSuiteName } from "../../lib/crypto/record_suites.ts";
import {
  decodeClientHello,
  decodeServerHello,
  encodeClientHello,
} from "../../lib/protocol/messages.ts";
import { isCode } from "../_helpers/assert_error.ts";
import {
  asFrame,
  assertOnlyCurrentStateAccepted,
  clientFlown,
  completed,
  failureOf,
  frameOf,
  helloSent,
  isPeerAlert,
  isStateError,
  machines,
  responderCalls,
  serverFlown,
  unexpectedMessage,
} from "../_helpers/handshake_pair.ts";
import { splitFrames } from "../_helpers/vector.ts";

// ---------------------------------------------------------------------------------------------
// Complete handshakes

Deno.test("ResponderHandshake.readClientFinished() leaves handshake secrets wiped and app secrets intact", async () => {
  const m = await completed();
  for (const side of [m.secrets.client, m.secrets.server]) {
    for (const name of ["shared_secret", "handshake_secret", "c_hs_traffic", "s_hs_traffic"]) {
      ok(isAllZero(side.get(name)!), `${name} not wiped`);
    }
    ok(isAllZero(side.get("master_secret")!), "master_secret not wiped");
  }
  ok(!isAllZero(m.clientResult.sendSecret) && !isAllZero(m.serverResult.sendSecret));
});

// ---------------------------------------------------------------------------------------------
// State discipline

Deno.test("ResponderHandshake methods called in the wrong state throw ProtocolStateError naming both states", async () => {
  const m = await helloSent();
  const calls = responderCalls(m.server);
  const step = async <T>(state: string, run: () => Promise<T>): Promise<T> => {
    strictEqual(m.server.currentState, state);
    await assertOnlyCurrentStateAccepted(calls, state);
    strictEqual(m.server.currentState, state, "a refused call must not move the machine");
    return await run();
  };
  await step("start", () => m.server.readClientHello(m.clientHello));
  const flight = await step("sendServerFlight", () => m.server.writeServerFlight());
  const [sHello, sIdentity, sVerify, sFinished] = splitFrames(flight, true);
  await m.client.readServerHello(sHello!);
  await m.client.readServerIdentity(sIdentity!);
  await m.client.readServerIdentityVerify(sVerify!);
  await m.client.readServerFinished(sFinished!);
  const [cIdentity, cVerify, cFinished] = splitFrames(await m.client.writeClientFlight(), false);
  await step("waitClientIdentity", () => m.server.readClientIdentity(cIdentity!));
  await step("waitClientIdentityVerify", () => m.server.readClientIdentityVerify(cVerify!));
  await step("waitClientFinished", () => m.server.readClientFinished(cFinished!));
  await step("done", () => Promise.resolve(m.server.finish()));
});

Deno.test("ResponderHandshake refuses every method in state failed after a failed step", async () => {
  const m = machines();
  await rejects(
    m.server.readClientHello(frameOf(FRAME_TYPE.clientHello, new Uint8Array(3))),
    isCode(ProtocolError, "decode_error", "decode_error"),
  );
  strictEqual(m.server.currentState, "failed");
  for (const [expected, call] of responderCalls(m.server)) {
    await rejects(call(), isStateError(expected, "failed"));
  }
});

// ---------------------------------------------------------------------------------------------
// Suite and version choice (PROTOCOL.md 5.2)

Deno.test("ResponderHandshake.readClientHello() picks by its own preference among offered shares", async () => {
  const cases: [SuiteName[], SuiteName[], SuiteName][] = [
    [["x25519", "x25519-mlkem768"], ["x25519-mlkem768", "x25519"], "x25519-mlkem768"],
    [["x25519-mlkem768", "x25519"], ["x25519", "x25519-mlkem768"], "x25519"],
    [["ffdhe3072", "x25519"], ["x25519-mlkem768", "ffdhe3072", "x25519"], "ffdhe3072"],
  ];
  for (const [clientSuites, serverSuites, chosen] of cases) {
    const m = await completed({ clientSuites, serverSuites });
    strictEqual(m.clientResult.suite, chosen, `${clientSuites} to ${serverSuites}`);
    strictEqual(m.serverResult.suite, chosen);
    strictEqual(m.clientResult.verificationCode, m.serverResult.verificationCode);
  }
});

Deno.test("ResponderHandshake.readClientHello() picks the record suite by its own preference among the offered ones (4.5)", async () => {
  const cases: [RecordSuiteName[], RecordSuiteName[], RecordSuiteName][] = [
    [
      ["aes-256-gcm", "chacha20-poly1305"],
      ["chacha20-poly1305", "aes-256-gcm"],
      "chacha20-poly1305",
    ],
    [["chacha20-poly1305", "aes-256-gcm"], ["aes-256-gcm", "chacha20-poly1305"], "aes-256-gcm"],
    [["aes-256-gcm"], ["chacha20-poly1305", "aes-256-gcm"], "aes-256-gcm"],
  ];
  for (const [clientRecordSuites, serverRecordSuites, chosen] of cases) {
    const m = await completed({ clientRecordSuites, serverRecordSuites });
    strictEqual(
      m.clientResult.recordSuite,
      chosen,
      `${clientRecordSuites} to ${serverRecordSuites}`,
    );
    strictEqual(m.serverResult.recordSuite, chosen);
  }
});

Deno.test("ResponderHandshake.readClientHello() rejects an offer with no common record suite as handshake_failure", async () => {
  const m = await helloSent({
    clientRecordSuites: ["aes-256-gcm"],
    serverRecordSuites: ["chacha20-poly1305"],
  });
  const failure = await failureOf(m.server.readClientHello(m.clientHello));
  isCode(ProtocolError, "no_common_record_suite", "handshake_failure")(failure);
  ok(/no common record suite: peer accepts aes-256-gcm, we accept chacha20-poly1305/.test(
    (failure as Error).message,
  ));
  const alert = await m.server.alertFrame(failure);
  eql(alert, Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.handshake_failure));
  await rejects(m.client.readServerHello(asFrame(alert!)), isPeerAlert("handshake_failure"));
});

Deno.test("ResponderHandshake.readClientHello() rejects an offer with no common suite as handshake_failure", async () => {
  const m = await helloSent({ clientSuites: ["ffdhe3072"], serverSuites: ["x25519"] });
  const failure = await failureOf(m.server.readClientHello(m.clientHello));
  isCode(ProtocolError, "no_common_suite", "handshake_failure")(failure);
  // No keys yet: the alert goes out as a plain_alert frame, and the initiator reports it.
  const alert = await m.server.alertFrame(failure);
  eql(alert, Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.handshake_failure));
  await rejects(m.client.readServerHello(asFrame(alert!)), isPeerAlert("handshake_failure"));
  strictEqual(m.client.currentState, "failed");
});

Deno.test("ResponderHandshake.readClientHello() rejects a list of unsupported versions with protocol_version", async () => {
  const m = await helloSent();
  const hello = decodeClientHello(m.clientHello.body);
  const forged = frameOf(FRAME_TYPE.clientHello, encodeClientHello({ ...hello, versions: [3, 2] }));
  const failure = await failureOf(m.server.readClientHello(forged));
  isCode(ProtocolError, "protocol_version", "protocol_version")(failure);
  eql(await m.server.alertFrame(failure), Uint8Array.of(0x15, 0, 0, 0, 1, ALERT.protocol_version));
});

Deno.test("ResponderHandshake.readClientHello() picks version 1 from a list that also has newer ones", async () => {
  const m = await helloSent();
  const hello = decodeClientHello(m.clientHello.body);
  const newer = frameOf(FRAME_TYPE.clientHello, encodeClientHello({ ...hello, versions: [9, 1] }));
  await m.server.readClientHello(newer);
  const [serverHello] = splitFrames(await m.server.writeServerFlight(), true);
  strictEqual(decodeServerHello(serverHello!.body).version, 1);
});

// ---------------------------------------------------------------------------------------------
// Unexpected frames and records (PROTOCOL.md 6: any other input is unexpected_message)
Deno.test("ResponderHandshake.readClientHello() rejects frames other than client_hello as unexpected_message", async () => {
  const donor = await serverFlown();
  const plainAlert = frameOf(FRAME_TYPE.plainAlert, Uint8Array.of(ALERT.user_canceled));
  for (const frame of [donor.serverHello, donor.serverIdentity, plainAlert]) {
    const m = machines();
    await rejects(m.server.readClientHello(frame), unexpectedMessage);
    strictEqual(m.server.currentState, "failed");
  }
});

Deno.test("ResponderHandshake.readClientIdentity() and later steps reject hello frames as unexpected_message", async () => {
  const steps: [string, (m: Awaited<ReturnType<typeof clientFlown>>) => Promise<unknown>][] = [
    ["readClientIdentity", (m) => m.server.readClientIdentity(m.clientHello)],
    ["readClientIdentityVerify", async (m) => {
      await m.server.readClientIdentity(m.clientIdentity);
      return await m.server.readClientIdentityVerify(m.serverHello);
    }],
    ["readClientFinished", async (m) => {
      await m.server.readClientIdentity(m.clientIdentity);
      await m.server.readClientIdentityVerify(m.clientVerify);
      return await m.server.readClientFinished(m.clientHello);
    }],
  ];
  for (const [name, run] of steps) {
    const m = await clientFlown();
    await rejects(run(m), unexpectedMessage, name);
    strictEqual(m.server.currentState, "failed", name);
  }
});
