/**
 * `SecureConnection` over real loopback sockets, set up by the real handshake: data both ways
 * across many key updates, updates on request, crypto offload mid-stream, ordered bursts and
 * batches, keepalives, and sends after the peer vanished.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { concat } from "../../lib/core/bytes.ts";
import { ConnectionError, SecurechatError } from "../../lib/core/errors.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { alice, bob, securePair } from "../_helpers/secure_pair.ts";

async function drain(connection: SecureConnection): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  while (true) {
    const data = await connection.receive();
    if (data === null) return concat(...parts);
    parts.push(data);
  }
}

Deno.test("SecureConnection moves data both ways across many key updates", async () => {
  const { server, client } = await securePair({ keyUpdateRecords: 3 });
  const messages = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`message ${i};`));
  const sending = async (from: SecureConnection) => {
    for (const message of messages) await from.send(message);
    await from.closeWrite();
  };
  const [, , atServer, atClient] = await Promise.all([
    sending(client),
    sending(server),
    drain(server),
    drain(client),
  ]);
  deepStrictEqual(atServer, concat(...messages));
  deepStrictEqual(atClient, concat(...messages));
  strictEqual(server.verificationCode, client.verificationCode);
  strictEqual(client.peer.identity.fingerprint, bob.fingerprint);
  strictEqual(server.peer.identity.fingerprint, alice.fingerprint);
  server.close();
  client.close();
});

Deno.test("SecureConnection.offloadCrypto() mid-stream keeps the byte stream exact, across key updates", async () => {
  const { server, client } = await securePair({ keyUpdateRecords: 5 });
  const chunks = Array.from({ length: 60 }, (_, i) => new Uint8Array(3000 + i).fill(i));
  const received = drain(server);
  const pending: Promise<void>[] = [];
  for (const [i, chunk] of chunks.entries()) {
    pending.push(client.send(chunk)); // not awaited: sends overlap, as in pipe mode
    if (i === 20) strictEqual(await client.offloadCrypto(), true);
    if (i === 40) strictEqual(await server.offloadCrypto(), true);
  }
  await Promise.all(pending);
  await client.closeWrite();
  deepStrictEqual(await received, concat(...chunks));
  server.close();
  client.close(); // the last key forgotten ends the worker: the test's leak check would notice
});

Deno.test("SecureConnection queues a burst to a peer that does not read yet, in order", async () => {
  const { server, client } = await securePair();
  // Far more sends than are sealed ahead; the rest seal when their turn comes.
  const messages = Array.from({ length: 2000 }, (_, i) => new TextEncoder().encode(`${i},`));
  const sends = messages.map((message) => client.send(message));
  const closing = client.closeWrite();
  const received = await drain(server);
  await Promise.all([...sends, closing]);
  deepStrictEqual(
    new TextDecoder().decode(received),
    messages.map((m) => new TextDecoder().decode(m)).join(""),
  );
  server.close();
  client.close();
});

Deno.test("SecureConnection.sendBatch() delivers each message as its own record, in order", async () => {
  const { server, client } = await securePair({ keyUpdateRecords: 4 });
  const words = Array.from({ length: 30 }, (_, i) => new TextEncoder().encode(`word${i}`));
  const sent = [client.sendBatch(words.slice(0, 10)), client.send(words[10]!)];
  sent.push(client.sendBatch(words.slice(11)));
  await Promise.all(sent);
  await client.closeWrite();
  const received: string[] = [];
  for (let data = await server.receive(); data !== null; data = await server.receive()) {
    received.push(new TextDecoder().decode(data));
  }
  deepStrictEqual(received, words.map((word) => new TextDecoder().decode(word)));
  server.close();
  client.close();
});

Deno.test("SecureConnection.updateKeys(true) makes the peer update too, and data still flows", async () => {
  const { server, client } = await securePair();
  await client.send(new TextEncoder().encode("before"));
  await client.updateKeys(true);
  await client.send(new TextEncoder().encode(" after"));
  await client.closeWrite();
  // The server answers the request with its own key_update before its next data.
  const serverReceived = drain(server);
  await server.send(new TextEncoder().encode("reply"));
  await server.closeWrite();
  deepStrictEqual(new TextDecoder().decode(await serverReceived), "before after");
  deepStrictEqual(new TextDecoder().decode(await drain(client)), "reply");
  server.close();
  client.close();
});

Deno.test("keepalives keep a quiet session alive, and data flows after the silence", async () => {
  const { server, client } = await securePair();
  server.startKeepalive(100);
  client.startKeepalive(100);
  const serverReceiving = server.receive();
  const clientReceiving = client.receive();
  // Ten intervals of silence: pings and pongs must keep both sides from presuming the other dead.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await client.send(new TextEncoder().encode("still alive"));
  deepStrictEqual(new TextDecoder().decode((await serverReceiving)!), "still alive");
  await server.send(new TextEncoder().encode("me too"));
  deepStrictEqual(new TextDecoder().decode((await clientReceiving)!), "me too");
  server.close();
  client.close();
});

Deno.test("a peer that goes silent is presumed dead after three keepalive intervals", async () => {
  const { server, client } = await securePair();
  // The client neither reads nor pings (as a stopped process would): the server gives up on it.
  server.startKeepalive(100);
  const start = Date.now();
  await rejects(
    server.receive(),
    (error: unknown) =>
      error instanceof ConnectionError && error.code === "peer_silent" &&
      /peer silent for \d+ s/.test(error.message),
  );
  ok(Date.now() - start >= 300, "not before three intervals");
  server.close();
  client.close();
});

Deno.test("after a peer vanishes, sends fail as send_failed (connection is gone), never as record-layer misuse", async () => {
  // Regression: the receive side aborting the session (an alert is sent, so close_notify is
  // spent) made a send racing with it fail as "cannot send after close_notify", and the user saw
  // that instead of why the connection ended.
  const { server, client } = await securePair();
  client.close(); // the peer disappears without close_notify
  const receiving = server.receive();
  await rejects(
    receiving,
    (error: unknown) => error instanceof Error && /close_notify/.test(error.message),
  );
  await server.abort(await receiving.catch((error) => error));
  const isGone = (error: unknown) =>
    error instanceof ConnectionError && error.code === "send_failed" &&
    /connection is gone/.test(error.message);
  await rejects(server.send(new Uint8Array(1)), isGone);
  await rejects(server.sendBatch([new Uint8Array(1)]), isGone);
  await rejects(server.updateKeys(false), isGone);
});

Deno.test("after our close_notify, a key_update asking for ours switches our receive key and goes unanswered", async () => {
  // PROTOCOL.md 8.4: nothing follows close_notify, not even the requested key_update.
  const { server, client } = await securePair();
  await client.closeWrite();
  strictEqual(await server.receive(), null);
  await server.updateKeys(true);
  await server.send(new TextEncoder().encode("under the new key"));
  deepStrictEqual(new TextDecoder().decode((await client.receive())!), "under the new key");
  await server.closeWrite();
  strictEqual(await client.receive(), null);
  // Nothing but the end of the stream followed the client's close_notify: an answering key_update
  // would be a record after close_notify (record_after_close), not the missing receipt.
  await rejects(
    server.receiveReceipt(),
    (error: unknown) => error instanceof SecurechatError && error.code === "no_receipt",
  );
  server.close();
  client.close();
});
