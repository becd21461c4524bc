/**
 * The splice of PROTOCOL.md 15.4 and 15.6 over real loopback sockets: two clients, each connected
 * to the "relay" side of its own socket pair, and the relay's two ends spliced. Leftovers go
 * first, bytes pass intact both ways, FIN ends one direction, a reset or close() ends both, an
 * idle splice is closed, and the byte budget delays without dropping.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concat } from "../../lib/core/bytes.ts";
import { writeAll } from "../../lib/core/io.ts";
import { ByteBudgets } from "../../lib/rendezvous/byte_budget.ts";
import { splice, type SpliceOptions } from "../../lib/rendezvous/splice.ts";
import { SplicedSocket } from "../../lib/transport/spliced_socket.ts";
import { socketPair } from "../_helpers/secure_pair.ts";

/** Reads until EOF (or a reset, which also ends what this side will ever read). */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(256 * 1024);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } catch {
    // A reset: the end, too.
  }
  return concat(...chunks);
}

/** Two clients whose relay-side sockets are spliced, with leftovers `early` on each. */
async function spliced(
  early: [Uint8Array, Uint8Array] = [new Uint8Array(0), new Uint8Array(0)],
  options: SpliceOptions = {},
) {
  const [[relayA, a], [relayB, b]] = await Promise.all([socketPair(), socketPair()]);
  // One end as a SplicedSocket, the other as what detach() returns: splice() takes both.
  const running = splice(
    new SplicedSocket(relayA, early[0]),
    { conn: relayB, leftover: early[1] },
    options,
  );
  return { a, b, running };
}

const random = (length: number) => {
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  }
  return out;
};

Deno.test("splice() passes each side's leftover first, then MiBs intact both ways at once", async () => {
  const early = [new TextEncoder().encode("from a, early"), new TextEncoder().encode("from b")] as [
    Uint8Array,
    Uint8Array,
  ];
  const { a, b, running } = await spliced(early);
  const [fromA, fromB] = [random(3 * 2 ** 20 + 17), random(2 * 2 ** 20 + 5)];
  const [atB, atA] = await Promise.all([
    readToEnd(b),
    readToEnd(a),
    writeAll(a, fromA).then(() => a.closeWrite()),
    writeAll(b, fromB).then(() => b.closeWrite()),
  ]);
  deepStrictEqual(atB, concat(early[0], fromA));
  deepStrictEqual(atA, concat(early[1], fromB));
  deepStrictEqual(await running.done, {
    aToB: early[0].length + fromA.length,
    bToA: early[1].length + fromB.length,
    end: "finished",
  });
  a.close();
  b.close();
});

Deno.test("splice(): a FIN from one side ends that direction only; the other keeps flowing", async () => {
  const { a, b, running } = await spliced();
  await writeAll(a, Uint8Array.of(1, 2, 3));
  await a.closeWrite();
  deepStrictEqual(await readToEnd(b), Uint8Array.of(1, 2, 3)); // b sees a's FIN
  const late = random(100_000);
  await writeAll(b, late); // and can still talk to a
  await b.closeWrite();
  deepStrictEqual(await readToEnd(a), late);
  strictEqual((await running.done).end, "finished");
  a.close();
  b.close();
});

Deno.test("splice(): a side that resets makes the next write to it fail, which closes both", async () => {
  const { a, b, running } = await spliced();
  await writeAll(b, new Uint8Array(100).fill(9));
  // a reads a little and closes with the rest unread: its socket resets the connection.
  strictEqual(await a.read(new Uint8Array(1)), 1);
  a.close();
  // Deno reads a reset as an end of stream: b hears a FIN, and what b still sends fails the
  // relay's write to a, which closes b's side too.
  await readToEnd(b);
  const chunk = new Uint8Array(16 * 1024);
  try {
    while (true) await writeAll(b, chunk);
  } catch {
    // The relay closed b's side.
  }
  strictEqual((await running.done).end, "failed");
  b.close();
});

Deno.test("splice(): no byte either way for idleMs closes both", async () => {
  const { a, b, running } = await spliced(undefined, { idleMs: 150 });
  await writeAll(a, Uint8Array.of(7));
  deepStrictEqual(await b.read(new Uint8Array(8)), 1);
  const [atA, atB] = await Promise.all([readToEnd(a), readToEnd(b)]);
  deepStrictEqual([atA.length, atB.length], [0, 0]);
  deepStrictEqual(await running.done, { aToB: 1, bToA: 0, end: "idle" });
  a.close();
  b.close();
});

Deno.test("splice().close() closes both sides at once", async () => {
  const { a, b, running } = await spliced();
  running.close();
  deepStrictEqual(await Promise.all([readToEnd(a), readToEnd(b)]), [
    new Uint8Array(0),
    new Uint8Array(0),
  ]);
  strictEqual((await running.done).end, "closed");
  a.close();
  b.close();
});

Deno.test("splice(): over its byte budget the copy waits and drops nothing", async () => {
  const budgets = new ByteBudgets({ bytesPerSecond: 4 * 2 ** 20, burstBytes: 128 * 1024 });
  const { a, b, running } = await spliced(undefined, { budgets });
  const data = random(2 ** 20);
  const [atB] = await Promise.all([readToEnd(b), writeAll(a, data).then(() => a.closeWrite())]);
  deepStrictEqual(atB, data);
  ok(budgets.waits > 0, "the copy never had to wait");
  await b.closeWrite();
  await readToEnd(a);
  strictEqual((await running.done).end, "finished");
  strictEqual(budgets.size, 0, "the finished splice still holds its budget");
  a.close();
  b.close();
});
