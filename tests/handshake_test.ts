/**
 * The two handshake machines of lib/handshake.ts driven in memory (PROTOCOL.md sections 5 and 6):
 * complete handshakes for every suite and key type, state discipline, suite and version choice,
 * out-of-order and foreign frames, alerts before and after handshake keys, and signatures bound to
 * the transcript and the signer's role. Real crypto throughout; where a test needs a record no
 * honest peer would send, it seals one under the real handshake traffic secret that `onSecret`
 * reports.
 */

import {
  deepStrictEqual as eql,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { concat, isAllZero, utf8 } from "../lib/bytes.ts";
import {
  ALERT,
  AuthenticationError,
  PeerAlertError,
  ProtocolError,
  TrustError,
} from "../lib/errors.ts";
import { encodeFrame, type Frame, FRAME_TYPE, MAX_HELLO_LENGTH } from "../lib/frame.ts";
import {
  CLIENT_SIGNATURE_CONTEXT,
  type HandshakeResult,
  InitiatorHandshake,
  ProtocolStateError,
  ResponderHandshake,
  SERVER_SIGNATURE_CONTEXT,
} from "../lib/handshake.ts";
import { generateIdentity, type Identity, signTranscript } from "../lib/identity.ts";
import { ALL_SUITES, type SuiteName } from "../lib/kex.ts";
import { Transcript } from "../lib/key_schedule.ts";
import {
  decodeClientHello,
  decodeServerHello,
  encodeClientHello,
  encodeFinished,
  encodeIdentity,
  encodeIdentityVerify,
  encodeServerHello,
} from "../lib/messages.ts";
import {
  CONTENT_TYPE,
  MAX_RECORD_PLAINTEXT,
  MAX_RECORD_PLAINTEXT_LIMIT,
  RecordLayer,
} from "../lib/record.ts";
import { RecordProtection } from "../lib/record_protection.ts";
import { ed25519Identity, splitFrames } from "./_helpers/vector.ts";
import { isCode } from "./_helpers/assert_error.ts";

const alice = await ed25519Identity(new Uint8Array(32).fill(0xa1), "alice");
const bob = await ed25519Identity(new Uint8Array(32).fill(0xb0), "bob");

// ---------------------------------------------------------------------------------------------
// Drivers

interface PairOptions {
  clientIdentity?: Identity;
  serverIdentity?: Identity;
  clientSuites?: readonly SuiteName[];
  serverSuites?: readonly SuiteName[];
  clientMax?: number;
  serverMax?: number;
}

/**
 * A fresh initiator and responder. `secrets` keeps what `onSecret` reports by name; these are the
 * machines' own arrays, so a wipe inside a machine shows in them.
 */
function machines(o: PairOptions = {}) {
  const secrets = { client: new Map<string, Uint8Array>(), server: new Map<string, Uint8Array>() };
  const client = new InitiatorHandshake({
    identity: o.clientIdentity ?? alice,
    suites: o.clientSuites ?? ["x25519"],
    maxRecordPlaintext: o.clientMax ?? MAX_RECORD_PLAINTEXT,
    onSecret: (name, value) => secrets.client.set(name, value),
  });
  const server = new ResponderHandshake({
    identity: o.serverIdentity ?? bob,
    suites: o.serverSuites ?? ALL_SUITES,
    maxRecordPlaintext: o.serverMax ?? MAX_RECORD_PLAINTEXT,
    onSecret: (name, value) => secrets.server.set(name, value),
  });
  return { client, server, secrets };
}

/** The initiator has sent its ClientHello (state waitServerHello). */
async function helloSent(o: PairOptions = {}) {
  const m = machines(o);
  const [clientHello] = splitFrames(await m.client.writeClientHello(), true);
  return { ...m, clientHello: clientHello! };
}

/** The responder has sent its flight (state waitClientIdentity); the initiator has read nothing. */
async function serverFlown(o: PairOptions = {}) {
  const m = await helloSent(o);
  await m.server.readClientHello(m.clientHello);
  const [serverHello, identity, verify, finished] = splitFrames(
    await m.server.writeServerFlight(),
    true,
  );
  return {
    ...m,
    serverHello: serverHello!,
    serverIdentity: identity!,
    serverVerify: verify!,
    serverFinished: finished!,
  };
}

/** The initiator has read the ServerHello (state waitServerIdentity). */
async function serverHelloRead(o: PairOptions = {}) {
  const m = await serverFlown(o);
  await m.client.readServerHello(m.serverHello);
  return m;
}

/** The initiator has sent its flight and holds application keys (state done). */
async function clientFlown(o: PairOptions = {}) {
  const m = await serverHelloRead(o);
  await m.client.readServerIdentity(m.serverIdentity);
  await m.client.readServerIdentityVerify(m.serverVerify);
  const serverPeer = await m.client.readServerFinished(m.serverFinished);
  const [identity, verify, finished] = splitFrames(await m.client.writeClientFlight(), false);
  return {
    ...m,
    serverPeer,
    clientIdentity: identity!,
    clientVerify: verify!,
    clientFinished: finished!,
  };
}

/** A complete handshake; both machines finished. */
async function completed(o: PairOptions = {}) {
  const m = await clientFlown(o);
  await m.server.readClientIdentity(m.clientIdentity);
  await m.server.readClientIdentityVerify(m.clientVerify);
  const clientPeer = await m.server.readClientFinished(m.clientFinished);
  return { ...m, clientPeer, clientResult: m.client.finish(), serverResult: m.server.finish() };
}

/** A record frame as a `Frame`. */
function asFrame(bytes: Uint8Array): Frame {
  const [frame] = splitFrames(bytes, false);
  return frame!;
}

/** A frame of `type` with `body`. */
function frameOf(type: number, body: Uint8Array): Frame {
  return asFrame(encodeFrame(type, body));
}

/** Seals records under a traffic secret a machine reported, starting at sequence number 0. */
async function forger(secret: Uint8Array | undefined): Promise<RecordProtection> {
  ok(secret !== undefined && !isAllZero(secret), "traffic secret not reported or already wiped");
  return await RecordProtection.create(secret.slice());
}

/** The error `promise` rejects with; fails the test when it resolves. */
async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the step to fail");
}

function isPeerAlert(name: string) {
  return (error: unknown) => {
    ok(error instanceof PeerAlertError, `expected PeerAlertError, got ${error}`);
    strictEqual(error.received, name);
    strictEqual(error.code, `peer_alert_${name}`);
    return true;
  };
}

function isStateError(expected: string, actual: string) {
  return (error: unknown) => {
    ok(error instanceof ProtocolStateError, `expected ProtocolStateError, got ${error}`);
    strictEqual(
      error.message,
      `handshake method for state "${expected}" called in state "${actual}"`,
    );
    return true;
  };
}

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

const anyFrame: Frame = frameOf(FRAME_TYPE.record, new Uint8Array(17));

/** Every public step of the initiator, with the state it belongs to. */
function initiatorCalls(h: InitiatorHandshake): [string, () => Promise<unknown>][] {
  return [
    ["start", () => h.writeClientHello()],
    ["waitServerHello", () => h.readServerHello(anyFrame)],
    ["waitServerIdentity", () => h.readServerIdentity(anyFrame)],
    ["waitServerIdentityVerify", () => h.readServerIdentityVerify(anyFrame)],
    ["waitServerFinished", () => h.readServerFinished(anyFrame)],
    ["sendClientFlight", () => h.writeClientFlight()],
    ["done", () => Promise.resolve().then(() => h.finish())],
  ];
}

function responderCalls(h: ResponderHandshake): [string, () => Promise<unknown>][] {
  return [
    ["start", () => h.readClientHello(anyFrame)],
    ["sendServerFlight", () => h.writeServerFlight()],
    ["waitClientIdentity", () => h.readClientIdentity(anyFrame)],
    ["waitClientIdentityVerify", () => h.readClientIdentityVerify(anyFrame)],
    ["waitClientFinished", () => h.readClientFinished(anyFrame)],
    ["done", () => Promise.resolve().then(() => h.finish())],
  ];
}

/** Every call not meant for the machine's current state is refused, naming both states. */
async function assertOnlyCurrentStateAccepted(
  calls: [string, () => Promise<unknown>][],
  current: string,
) {
  for (const [expected, call] of calls) {
    if (expected === current) continue;
    await rejects(call(), isStateError(expected, current), `${expected} in ${current}`);
  }
}

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

Deno.test("InitiatorHandshake.readServerHello() rejects a version it did not offer with protocol_version", async () => {
  const m = await serverFlown();
  const hello = decodeServerHello(m.serverHello.body);
  const forged = frameOf(FRAME_TYPE.serverHello, encodeServerHello({ ...hello, version: 2 }));
  await rejects(
    m.client.readServerHello(forged),
    isCode(ProtocolError, "protocol_version", "protocol_version"),
  );
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

const unexpectedMessage = isCode(ProtocolError, "unexpected_message", "unexpected_message");

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
