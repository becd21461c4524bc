/**
 * Drivers for the handshake machine tests (`handshake_test.ts`, `handshake_initiator_test.ts`,
 * `handshake_responder_test.ts`): a fresh initiator and responder wired to each other in memory,
 * advanced to a named point of PROTOCOL.md section 6, and matchers for the errors they throw.
 * Real crypto throughout; `forger()` seals records no honest peer would send under a traffic
 * secret that `onSecret` reported.
 *
 * @module
 */

import { DEFAULT_RECORD_SUITES, type RecordSuiteName } from "../../lib/crypto/record_suites.ts";
import { ok, rejects, strictEqual } from "node:assert/strict";
import { isAllZero } from "../../lib/core/bytes.ts";
import { PeerAlertError, ProtocolError } from "../../lib/core/errors.ts";
import { encodeFrame, type Frame, FRAME_TYPE } from "../../lib/protocol/frame.ts";
import { ProtocolStateError } from "../../lib/protocol/handshake_state.ts";
import { InitiatorHandshake } from "../../lib/protocol/handshake_initiator.ts";
import { ResponderHandshake } from "../../lib/protocol/handshake_responder.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { ALL_SUITES, type SuiteName } from "../../lib/crypto/kex.ts";
import { MAX_RECORD_PLAINTEXT } from "../../lib/protocol/record.ts";
import { RecordProtection } from "../../lib/protocol/record_protection.ts";
import { isCode } from "./assert_error.ts";
import { ed25519Identity, splitFrames } from "./vector.ts";

/** The initiator's and the responder's identities, fixed so that failures reproduce. */
export const alice = await ed25519Identity(new Uint8Array(32).fill(0xa1), "alice");
export const bob = await ed25519Identity(new Uint8Array(32).fill(0xb0), "bob");

// ---------------------------------------------------------------------------------------------
// Drivers

/** What `machines()` and the drivers built on it vary; defaults: alice dials bob over x25519. */
export interface PairOptions {
  clientIdentity?: Identity;
  serverIdentity?: Identity;
  clientSuites?: readonly SuiteName[];
  serverSuites?: readonly SuiteName[];
  clientRecordSuites?: readonly RecordSuiteName[];
  serverRecordSuites?: readonly RecordSuiteName[];
  clientMax?: number;
  serverMax?: number;
}

/**
 * A fresh initiator and responder. `secrets` keeps what `onSecret` reports by name; these are the
 * machines' own arrays, so a wipe inside a machine shows in them.
 */
export function machines(o: PairOptions = {}) {
  const secrets = { client: new Map<string, Uint8Array>(), server: new Map<string, Uint8Array>() };
  const client = new InitiatorHandshake({
    identity: o.clientIdentity ?? alice,
    suites: o.clientSuites ?? ["x25519"],
    ...(o.clientRecordSuites ? { recordSuites: o.clientRecordSuites } : {}),
    maxRecordPlaintext: o.clientMax ?? MAX_RECORD_PLAINTEXT,
    onSecret: (name, value) => secrets.client.set(name, value),
  });
  const server = new ResponderHandshake({
    identity: o.serverIdentity ?? bob,
    suites: o.serverSuites ?? ALL_SUITES,
    ...(o.serverRecordSuites ? { recordSuites: o.serverRecordSuites } : {}),
    maxRecordPlaintext: o.serverMax ?? MAX_RECORD_PLAINTEXT,
    onSecret: (name, value) => secrets.server.set(name, value),
  });
  return { client, server, secrets };
}

/** The initiator has sent its ClientHello (state waitServerHello). */
export async function helloSent(o: PairOptions = {}) {
  const m = machines(o);
  const [clientHello] = splitFrames(await m.client.writeClientHello(), true);
  return { ...m, clientHello: clientHello! };
}

/** The responder has sent its flight (state waitClientIdentity); the initiator has read nothing. */
export async function serverFlown(o: PairOptions = {}) {
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
export async function serverHelloRead(o: PairOptions = {}) {
  const m = await serverFlown(o);
  await m.client.readServerHello(m.serverHello);
  return m;
}

/** The initiator has sent its flight and holds application keys (state done). */
export async function clientFlown(o: PairOptions = {}) {
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
export async function completed(o: PairOptions = {}) {
  const m = await clientFlown(o);
  await m.server.readClientIdentity(m.clientIdentity);
  await m.server.readClientIdentityVerify(m.clientVerify);
  const clientPeer = await m.server.readClientFinished(m.clientFinished);
  return { ...m, clientPeer, clientResult: m.client.finish(), serverResult: m.server.finish() };
}

/** A record frame as a `Frame`. */
export function asFrame(bytes: Uint8Array): Frame {
  const [frame] = splitFrames(bytes, false);
  return frame!;
}

/** A frame of `type` with `body`. */
export function frameOf(type: number, body: Uint8Array): Frame {
  return asFrame(encodeFrame(type, body));
}

/**
 * Seals records under a traffic secret a machine reported, starting at sequence number 0, with the
 * record suite the machines chose (the default one unless the test chose another).
 */
export async function forger(
  secret: Uint8Array | undefined,
  suite: RecordSuiteName = DEFAULT_RECORD_SUITES[0]!,
): Promise<RecordProtection> {
  ok(secret !== undefined && !isAllZero(secret), "traffic secret not reported or already wiped");
  return await RecordProtection.create(secret.slice(), suite);
}

/** The error `promise` rejects with; fails the test when it resolves. */
export async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the step to fail");
}

/** Matches a `PeerAlertError` for the alert `name`. */
export function isPeerAlert(name: string) {
  return (error: unknown) => {
    ok(error instanceof PeerAlertError, `expected PeerAlertError, got ${error}`);
    strictEqual(error.received, name);
    strictEqual(error.code, `peer_alert_${name}`);
    return true;
  };
}

/** Matches the `ProtocolStateError` of a call for state `expected` made in state `actual`. */
export function isStateError(expected: string, actual: string) {
  return (error: unknown) => {
    ok(error instanceof ProtocolStateError, `expected ProtocolStateError, got ${error}`);
    strictEqual(
      error.message,
      `handshake method for state "${expected}" called in state "${actual}"`,
    );
    return true;
  };
}

/** Any frame: a call in the wrong state is refused before it looks at the frame. */
export const anyFrame: Frame = frameOf(FRAME_TYPE.record, new Uint8Array(17));

/** Every public step of the initiator, with the state it belongs to. */
export function initiatorCalls(h: InitiatorHandshake): [string, () => Promise<unknown>][] {
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

/** Every public step of the responder, with the state it belongs to. */
export function responderCalls(h: ResponderHandshake): [string, () => Promise<unknown>][] {
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
export async function assertOnlyCurrentStateAccepted(
  calls: [string, () => Promise<unknown>][],
  current: string,
) {
  for (const [expected, call] of calls) {
    if (expected === current) continue;
    await rejects(call(), isStateError(expected, current), `${expected} in ${current}`);
  }
}

/** Matches the error of section 6: any other input is unexpected_message. */
export const unexpectedMessage = isCode(ProtocolError, "unexpected_message", "unexpected_message");
