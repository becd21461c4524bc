/**
 * `runPipe()` over real loopback sockets and the real handshake: how a pipe ends (PROTOCOL.md 8.5
 * and 11). Success needs the peer's receipt for exactly the bytes we sent; a peer that confirms
 * fewer, or ends TCP without a receipt, fails the pipe.
 */

import { deepStrictEqual, match, rejects, strictEqual } from "node:assert/strict";
import { concat } from "../../lib/core/bytes.ts";
import { AuthenticationError } from "../../lib/core/errors.ts";
import type { ByteSource } from "../../lib/core/io.ts";
import { type PipeEnds, runPipe } from "../../lib/transport/pipe.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { securePair } from "../_helpers/secure_pair.ts";

function source(data: Uint8Array): ByteSource {
  let offset = 0;
  return {
    read(buffer) {
      if (offset === data.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, data.length - offset, 50_000);
      buffer.set(data.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

function ends(input: Uint8Array): PipeEnds & { output: { received(): Uint8Array } } {
  const parts: Uint8Array[] = [];
  return {
    input: source(input),
    output: {
      write(data: Uint8Array) {
        parts.push(data.slice());
        return Promise.resolve(data.length);
      },
      received: () => concat(...parts),
    },
    inputIsTerminal: false,
  };
}

/** The peer's side of a pipe, by hand: takes everything, then confirms `confirm(received)`. */
async function peerConfirming(
  connection: SecureConnection,
  confirm: ((received: number) => number) | "no receipt",
): Promise<void> {
  await exchangeSessionHello(connection, "pipe");
  let received = 0;
  for (let data = await connection.receive(); data !== null; data = await connection.receive()) {
    received += data.length;
  }
  if (confirm === "no receipt") {
    await connection.closeWrite(); // close_notify and FIN, as before receipts existed
  } else {
    await connection.closeNotify();
    await connection.sendReceipt(confirm(received));
  }
  await connection.receiveReceipt().catch(() => {});
  connection.close();
}

const INPUT = crypto.getRandomValues(new Uint8Array(60_000));

Deno.test("runPipe() on both sides: inputs ending at once, each side confirms, both succeed", async () => {
  const { server, client } = await securePair();
  const [toServer, toClient] = [INPUT, INPUT.slice(0, 12345).reverse()];
  // Each side's input is what the other side must output.
  const [atServer, atClient] = [ends(toClient), ends(toServer)];
  const [serverStats, clientStats] = await Promise.all([
    runPipe(server, atServer),
    runPipe(client, atClient),
  ]);
  deepStrictEqual(atServer.output.received(), toServer);
  deepStrictEqual(atClient.output.received(), toClient);
  deepStrictEqual(clientStats, { sent: toServer.length, received: toClient.length });
  deepStrictEqual(serverStats, { sent: toClient.length, received: toServer.length });
});

Deno.test("runPipe() fails with receipt_mismatch when the peer confirms fewer bytes than we sent", async () => {
  const { server, client } = await securePair();
  const peer = peerConfirming(server, (received) => received - 1);
  await rejects(runPipe(client, ends(INPUT)), (error) => {
    isCode(AuthenticationError, "receipt_mismatch")(error);
    match(
      (error as Error).message,
      /^the peer did not confirm receipt: it accepted 59999 of the 60000 bytes we sent$/,
    );
    return true;
  });
  await peer;
});

Deno.test("runPipe() fails with no_receipt when the peer ends TCP after its close_notify", async () => {
  const { server, client } = await securePair();
  const peer = peerConfirming(server, "no receipt");
  await rejects(runPipe(client, ends(INPUT)), isCode(AuthenticationError, "no_receipt"));
  await peer;
});

Deno.test("runPipe() on an honest peer: the receipt counts pipe bytes, not the SessionHello", async () => {
  const { server, client } = await securePair();
  const peer = peerConfirming(server, (received) => received);
  const stats = await runPipe(client, ends(INPUT));
  strictEqual(stats.sent, INPUT.length);
  await peer;
});
