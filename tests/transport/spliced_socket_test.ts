/**
 * Handing a socket from one stream to the next (PROTOCOL.md 15.4): a SecureConnection detached
 * after its last record gives back the bytes it read past it, and a SplicedSocket replays them
 * before the socket's own, so a second handshake can run on the same TCP connection.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import { SplicedSocket } from "../../lib/transport/spliced_socket.ts";
import { writeAll } from "../../lib/core/io.ts";
import { alice, bob, connectionOptions, securePair } from "../_helpers/secure_pair.ts";

async function readAll(socket: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = await socket.read(out.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return out.subarray(0, filled);
}

Deno.test("detach() after the last record returns the raw bytes that followed it, read or not", async () => {
  const { server, client } = await securePair();
  const raw = crypto.getRandomValues(new Uint8Array(65536));
  // The server's last record, then raw bytes at once: the client may read some with the record.
  await server.send(new TextEncoder().encode("paired"));
  const detachedServer = await server.detach();
  await writeAll(detachedServer.conn, raw);
  detachedServer.conn.close();
  strictEqual(new TextDecoder().decode((await client.receive())!), "paired");
  const { conn, leftover } = await client.detach();
  const socket = new SplicedSocket(conn, leftover);
  deepStrictEqual(await readAll(socket, raw.length), raw);
  socket.close();
});

Deno.test("a second, full handshake runs over sockets detached from a first connection", async () => {
  const { server, client } = await securePair();
  await client.send(Uint8Array.of(1));
  await server.receive();
  const [serverSide, clientSide] = await Promise.all([server.detach(), client.detach()]);
  const [second, first] = await Promise.all([
    runResponder(new SplicedSocket(serverSide.conn, serverSide.leftover), {
      ...connectionOptions(alice),
      authorize: () => Promise.resolve(),
    }),
    runInitiator(new SplicedSocket(clientSide.conn, clientSide.leftover), {
      ...connectionOptions(bob),
      checkPeer: () => Promise.resolve(),
    }),
  ]);
  // The roles of the first connection are gone: bob dials alice on the same TCP connection.
  strictEqual(second.peer.identity.fingerprint, bob.fingerprint);
  strictEqual(first.peer.identity.fingerprint, alice.fingerprint);
  strictEqual(second.verificationCode, first.verificationCode);
  await first.send(new TextEncoder().encode("end to end"));
  strictEqual(new TextDecoder().decode((await second.receive())!), "end to end");
  first.close();
  second.close();
});

Deno.test("SplicedSocket's readable stream also starts with the leftover", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [server, client] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
  ]);
  const socket = new SplicedSocket(client, Uint8Array.of(1, 2, 3));
  await writeAll(server, Uint8Array.of(4, 5));
  server.close();
  const chunks: number[] = [];
  for await (const chunk of socket.readable) chunks.push(...chunk);
  deepStrictEqual(chunks, [1, 2, 3, 4, 5]);
  socket.close();
});
