/**
 * `runInitiator()` / `runResponder()` over real loopback sockets: the handshake deadline, and
 * refusals reaching the other side as alerts.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { concat, constantTimeEqual, readU32 } from "../../lib/core/bytes.ts";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import {
  ALERT,
  ConnectionError,
  PeerAlertError,
  SecurechatError,
  TrustError,
} from "../../lib/core/errors.ts";
import {
  encodeFrame,
  type Frame,
  FRAME_TYPE,
  frameHeader,
  FrameReader,
  MAGIC,
} from "../../lib/protocol/frame.ts";
import { writeAll } from "../../lib/core/io.ts";
import { InitiatorHandshake } from "../../lib/protocol/handshake_initiator.ts";
import { CONTENT_TYPE } from "../../lib/protocol/record.ts";
import { RecordProtection } from "../../lib/protocol/record_protection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { alice, bob, connectionOptions, socketPair } from "../_helpers/secure_pair.ts";

Deno.test("runResponder() gives up on a silent peer at the deadline", async () => {
  const [serverConn, clientConn] = await socketPair();
  const start = Date.now();
  await rejects(
    runResponder(serverConn, {
      ...connectionOptions(bob, { timeoutMs: 300 }),
      authorize: () => Promise.resolve(),
    }),
    (error: unknown) => error instanceof ConnectionError && error.code === "handshake_timeout",
  );
  const elapsed = Date.now() - start;
  ok(elapsed >= 250 && elapsed < 3000, `${elapsed} ms`);
  clientConn.close();
});

Deno.test("a dialer's trust refusal reaches the listener as a bad_certificate alert", async () => {
  const [serverConn, clientConn] = await socketPair();
  const refusal = new TrustError("host_key_changed", "changed", { alert: "bad_certificate" });
  const [server, client] = await Promise.allSettled([
    runResponder(serverConn, { ...connectionOptions(bob), authorize: () => Promise.resolve() }),
    runInitiator(clientConn, {
      ...connectionOptions(alice),
      checkPeer: () => Promise.reject(refusal),
    }),
  ]);
  strictEqual(client.status, "rejected");
  strictEqual((client as PromiseRejectedResult).reason, refusal);
  strictEqual(server.status, "rejected");
  const reason = (server as PromiseRejectedResult).reason;
  ok(reason instanceof PeerAlertError && reason.received === "bad_certificate", String(reason));
});

Deno.test("a listener's authorization refusal reaches the dialer as access_denied", async () => {
  const [serverConn, clientConn] = await socketPair();
  const refusal = new TrustError("unauthorized_key", "not listed", { alert: "access_denied" });
  const [server, client] = await Promise.allSettled([
    runResponder(serverConn, {
      ...connectionOptions(bob),
      authorize: () => Promise.reject(refusal),
    }),
    runInitiator(clientConn, { ...connectionOptions(alice), checkPeer: () => Promise.resolve() }),
  ]);
  strictEqual(server.status, "rejected");
  strictEqual(client.status, "fulfilled");
  const connection = (client as PromiseFulfilledResult<SecureConnection>).value;
  await rejects(
    connection.receive(),
    (error: unknown) => error instanceof PeerAlertError && error.received === "access_denied",
  );
  connection.close();
});

// ---------------------------------------------------------------------------------------------
// PROTOCOL.md 3.2: which alert a framing failure puts on the wire

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return concat(...chunks);
    chunks.push(buffer.slice(0, n));
  }
}

/** A raw "responder" that reads the ClientHello, answers MAGIC || `reply`, then reads the rest. */
async function dialerAnswering(reply: Uint8Array, halfClose = false) {
  const [serverConn, clientConn] = await socketPair();
  const dialing = runInitiator(clientConn, {
    ...connectionOptions(alice),
    checkPeer: () => Promise.resolve(),
  });
  dialing.catch(() => {});
  const reader = new FrameReader(serverConn);
  ok(constantTimeEqual((await reader.readExactly(MAGIC.length))!, MAGIC));
  strictEqual((await reader.readFrame(() => 4096))!.type, FRAME_TYPE.clientHello);
  await writeAll(serverConn, concat(MAGIC, reply));
  if (halfClose) await serverConn.closeWrite();
  const failure = await dialing.then(() => undefined, (error) => error);
  const answer = await readAll(serverConn);
  serverConn.close();
  return { failure, answer };
}

const plainAlertFrame = (code: number) => encodeFrame(FRAME_TYPE.plainAlert, Uint8Array.of(code));

Deno.test("framing failures reach the peer as the alerts of PROTOCOL.md 3.2", async () => {
  const cases: [string, Uint8Array, boolean, string][] = [
    ["an unknown frame type", frameHeader(0x03, 1), false, "unexpected_message"],
    ["a hello over its cap", frameHeader(FRAME_TYPE.serverHello, 4097), false, "record_overflow"],
    ["a plain_alert of 2 bytes", frameHeader(FRAME_TYPE.plainAlert, 2), false, "record_overflow"],
    ["an empty plain_alert", frameHeader(FRAME_TYPE.plainAlert, 0), false, "decode_error"],
    [
      "a frame cut short",
      concat(frameHeader(FRAME_TYPE.serverHello, 100), new Uint8Array(10)),
      true,
      "decode_error",
    ],
  ];
  for (const [what, reply, halfClose, alert] of cases) {
    const { failure, answer } = await dialerAnswering(reply, halfClose);
    ok(failure instanceof SecurechatError, `${what}: ${failure}`);
    strictEqual(failure.alert, alert, what);
    deepStrictEqual(answer, plainAlertFrame(ALERT[alert as keyof typeof ALERT]), what);
  }
});

// ---------------------------------------------------------------------------------------------
// PROTOCOL.md 6.2 and 9: which keys seal the responder's verdict on the initiator's flight

/**
 * A raw initiator (the machine, driven by hand) against `runResponder()`: sends its flight (with a
 * Finished whose MAC is wrong when `forgeFinished`), then returns the next record frame from the
 * responder, the responder's flight records, and copies of the traffic secrets it derived.
 */
async function verdictOn(
  authorize: () => Promise<void>,
  forgeFinished: boolean,
) {
  const [serverConn, clientConn] = await socketPair();
  const responding = runResponder(serverConn, { ...connectionOptions(bob), authorize });
  responding.catch(() => {});
  const secrets = new Map<string, Uint8Array>();
  const machine = new InitiatorHandshake({
    ...connectionOptions(alice),
    onSecret: (name, value) => secrets.set(name, value.slice()),
  });
  await writeAll(clientConn, await machine.writeClientHello());
  const reader = new FrameReader(clientConn);
  ok(constantTimeEqual((await reader.readExactly(MAGIC.length))!, MAGIC));
  const cap = (type: number) => machine.capOf(type);
  await machine.readServerHello((await reader.readFrame(cap))!);
  const serverFlight = [];
  for (const step of ["Identity", "IdentityVerify", "Finished"]) {
    const frame = (await reader.readFrame(cap))!;
    serverFlight.push(frame);
    if (step === "Identity") await machine.readServerIdentity(frame);
    if (step === "IdentityVerify") await machine.readServerIdentityVerify(frame);
    if (step === "Finished") await machine.readServerFinished(frame);
  }
  let flight = await machine.writeClientFlight();
  if (forgeFinished) {
    // The same Identity and IdentityVerify, then a well-sealed Finished with the wrong MAC.
    const records = [];
    let offset = 0;
    for (let i = 0; i < 3; i++) {
      const length = readU32(flight, offset + 1);
      records.push(flight.subarray(offset, offset + 5 + length));
      offset += 5 + length;
    }
    const forger = await RecordProtection.create(secrets.get("c_hs_traffic")!, "chacha20-poly1305");
    // Two throwaway seals bring the forger to sequence 2, where the Finished goes.
    await forger.seal(CONTENT_TYPE.handshake, new Uint8Array(1));
    await forger.seal(CONTENT_TYPE.handshake, new Uint8Array(1));
    const wrongFinished = await forger.seal(
      CONTENT_TYPE.handshake,
      concat(Uint8Array.of(0x14), new Uint8Array(32)),
    );
    flight = concat(records[0]!, records[1]!, wrongFinished);
  }
  await writeAll(clientConn, flight);
  const verdict = (await reader.readFrame(() => 1 << 20))!;
  const responder = await responding.then(() => undefined, (error) => error);
  clientConn.close();
  machine.fail();
  return { verdict, secrets, serverFlight, responder };
}

/** Opens `frame` under a fresh key from `secret` after opening `before` (to reach its sequence). */
async function openAt(secret: Uint8Array, before: Frame[], frame: Frame) {
  const protection = await RecordProtection.create(secret.slice(), "chacha20-poly1305");
  for (const earlier of before) await protection.open(earlier.header, earlier.body);
  return await protection.open(frame.header, frame.body);
}

Deno.test("the responder seals decrypt_error for a bad Finished under its handshake keys, sequence 3", async () => {
  const { verdict, secrets, serverFlight, responder } = await verdictOn(
    () => Promise.resolve(),
    true,
  );
  ok(responder instanceof SecurechatError && responder.alert === "decrypt_error", `${responder}`);
  deepStrictEqual(await openAt(secrets.get("s_hs_traffic")!, serverFlight, verdict), {
    type: CONTENT_TYPE.alert,
    content: Uint8Array.of(ALERT.decrypt_error),
  });
  // Not at sequence 0 of the same keys.
  await rejects(openAt(secrets.get("s_hs_traffic")!, [], verdict));
});

Deno.test("the responder seals access_denied under its application keys, sequence 0", async () => {
  const refusal = new TrustError("unauthorized_key", "not listed", { alert: "access_denied" });
  const { verdict, secrets, serverFlight } = await verdictOn(() => Promise.reject(refusal), false);
  deepStrictEqual(await openAt(secrets.get("s_ap_traffic")!, [], verdict), {
    type: CONTENT_TYPE.alert,
    content: Uint8Array.of(ALERT.access_denied),
  });
  // Not under the handshake keys, where a failure during the flight would be.
  await rejects(openAt(secrets.get("s_hs_traffic")!, serverFlight, verdict));
});

Deno.test("runResponder() cuts a peer that sends only the magic at the first-flight deadline", async () => {
  const [serverConn, clientConn] = await socketPair();
  await clientConn.write(new TextEncoder().encode("securechat\r\n"));
  let firstFlight = false;
  await rejects(
    runResponder(serverConn, {
      ...connectionOptions(bob, { timeoutMs: 30_000 }),
      firstFlightTimeoutMs: 300,
      onFirstFlight: () => firstFlight = true,
      authorize: () => Promise.resolve(),
    }),
    (error: unknown) =>
      error instanceof ConnectionError && error.code === "handshake_timeout" &&
      error.message === "the ClientHello did not arrive within 0.3 s",
  );
  strictEqual(firstFlight, false);
  clientConn.close();
});

Deno.test("runResponder() reports the first flight and asks reserveKex() before the key agreement", async () => {
  const [serverConn, clientConn] = await socketPair();
  const calls: string[] = [];
  const [server, client] = await Promise.allSettled([
    runResponder(serverConn, {
      ...connectionOptions(bob),
      onFirstFlight: () => calls.push("first flight"),
      reserveKex: (suite) => {
        calls.push(`reserve ${suite}`);
        return () => calls.push(`release ${suite}`);
      },
      authorize: () => Promise.resolve(),
    }),
    runInitiator(clientConn, { ...connectionOptions(alice), checkPeer: () => Promise.resolve() }),
  ]);
  strictEqual(server.status, "fulfilled");
  strictEqual(client.status, "fulfilled");
  const suite = (server as PromiseFulfilledResult<SecureConnection>).value.suite;
  strictEqual(calls.join(", "), `first flight, reserve ${suite}, release ${suite}`);
  (server as PromiseFulfilledResult<SecureConnection>).value.close();
  (client as PromiseFulfilledResult<SecureConnection>).value.close();
});
