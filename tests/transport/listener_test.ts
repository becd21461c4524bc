/**
 * lib/transport/listener.ts: the pending-handshake table's eviction order, the expensive key agreement
 * budget, and the accept loop against a real socket flooded with resets.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import net from "node:net";
import {
  acceptLoop,
  DEFAULT_EXPENSIVE_KEX_PER_ADDRESS,
  KexBudget,
  PendingHandshakes,
  type Source,
} from "../../lib/transport/listener.ts";

Deno.test("PendingHandshakes.add() evicts the address's oldest once its cap is reached", () => {
  const table = new PendingHandshakes<string>({ maxPending: 10, maxPerAddress: 2 });
  deepStrictEqual(table.add("a", "a1").evicted, []);
  deepStrictEqual(table.add("b", "b1").evicted, []);
  deepStrictEqual(table.add("a", "a2").evicted, []);
  deepStrictEqual(table.add("a", "a3").evicted, ["a1"]);
  deepStrictEqual([table.countOf("a"), table.countOf("b"), table.size], [2, 1, 3]);
});

Deno.test("PendingHandshakes.add() evicts the globally oldest once the total cap is reached", () => {
  const table = new PendingHandshakes<string>({ maxPending: 3, maxPerAddress: 3 });
  table.add("a", "a1");
  table.add("b", "b1");
  table.add("c", "c1");
  deepStrictEqual(table.add("d", "d1").evicted, ["a1"]);
  deepStrictEqual(table.add("d", "d2").evicted, ["b1"]);
  strictEqual(table.size, 3);
});

Deno.test("PendingHandshakes.add() evicts connections still waiting for their first flight first", () => {
  const table = new PendingHandshakes<string>({ maxPending: 3, maxPerAddress: 2 });
  const talker = table.add("a", "talker").entry;
  talker.firstFlightDone = true; // an honest dialer that sent its ClientHello
  table.add("a", "idle");
  deepStrictEqual(table.add("a", "new").evicted, ["idle"]);
  // Past the total cap the oldest waiting one goes ("new"); when every entry of the address
  // talks, its oldest goes ("x1").
  const evicted = ["x1", "x2", "x3"].map((value) => {
    const added = table.add("b", value);
    added.entry.firstFlightDone = true;
    return added.evicted;
  });
  deepStrictEqual(evicted, [[], ["new"], ["x1"]]);
});

Deno.test("PendingHandshakes.remove() frees the slot and is idempotent", () => {
  const table = new PendingHandshakes<string>({ maxPending: 1, maxPerAddress: 1 });
  const { entry } = table.add("a", "a1");
  table.remove(entry);
  table.remove(entry);
  deepStrictEqual([table.size, table.countOf("a")], [0, 0]);
  deepStrictEqual(table.add("a", "a2").evicted, []);
});

Deno.test("KexBudget.reserve() caps ffdhe3072 per address and in all; cheap suites always pass", () => {
  const budget = new KexBudget({ perAddress: 1, total: 2 });
  const a = budget.reserve("a", "ffdhe3072");
  strictEqual(typeof a, "function");
  strictEqual(budget.reserve("a", "ffdhe3072"), undefined);
  strictEqual(typeof budget.reserve("a", "x25519-mlkem768"), "function");
  const b = budget.reserve("b", "ffdhe3072");
  strictEqual(typeof b, "function");
  strictEqual(budget.reserve("c", "ffdhe3072"), undefined, "over the total");
  a!();
  a!(); // a second release gives nothing back twice
  strictEqual(typeof budget.reserve("c", "ffdhe3072"), "function");
  strictEqual(budget.reserve("d", "ffdhe3072"), undefined);
  strictEqual(DEFAULT_EXPENSIVE_KEX_PER_ADDRESS, 1);
});

Deno.test("acceptLoop() keeps serving after rounds of connections reset right after connecting", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served: Source[] = [];
  const reports: string[] = [];
  const loop = acceptLoop(listener, (conn, source) => {
    served.push(source);
    conn.close();
    return Promise.resolve();
  }, (line) => reports.push(line));
  for (let round = 0; round < 20; round++) {
    await Promise.all(Array.from({ length: 100 }, () =>
      new Promise<void>((resolve) => {
        const socket = net.connect(port, "127.0.0.1", () => {
          socket.resetAndDestroy();
          resolve();
        });
        socket.on("error", () => resolve());
      })));
  }
  // An honest connection after the flood is still accepted and served.
  const before = served.length;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buffer = new Uint8Array(1);
  strictEqual(await conn.read(buffer), null); // served: closed by serve()
  conn.close();
  strictEqual(served.length > before, true);
  strictEqual(served.at(-1)!.address, "127.0.0.1");
  listener.close();
  await loop; // ends with the listener, not before
  deepStrictEqual(reports, []);
});
