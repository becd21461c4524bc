/**
 * `runInitiator()` / `runResponder()` over real loopback sockets: the handshake deadline, and
 * refusals reaching the other side as alerts.
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import { runInitiator, runResponder } from "../lib/connection.ts";
import { ConnectionError, PeerAlertError, TrustError } from "../lib/errors.ts";
import type { SecureConnection } from "../lib/secure_connection.ts";
import { alice, bob, connectionOptions, socketPair } from "./_helpers/secure_pair.ts";

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
