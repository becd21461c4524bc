/**
 * lib/transport/listener.ts: the pending-handshake table's eviction order, the expensive key agreement
 * budget, the waiting line, the address prefixes they count by, and the accept loop against a real
 * socket flooded with resets.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import net from "node:net";
import {
  acceptLoop,
  addressPrefix,
  DEFAULT_EXPENSIVE_KEX_PER_ADDRESS,
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_PENDING_PER_ADDRESS,
  KexBudget,
  PendingHandshakes,
  type Source,
  WaitingLine,
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

Deno.test("PendingHandshakes.add() past the total cap evicts from the heaviest address, not a lone dialer", () => {
  const table = new PendingHandshakes<string>({
    maxPending: DEFAULT_MAX_PENDING_HANDSHAKES,
    maxPerAddress: DEFAULT_MAX_PENDING_PER_ADDRESS,
  });
  const attackers = Array.from({ length: 9 }, (_, i) => `198.51.100.${i + 1}`);
  const fill = (address: string, value: string) => {
    const added = table.add(address, value);
    added.entry.firstFlightDone = true; // every one sent its ClientHello
    return added.evicted;
  };
  // The honest dialer arrives first: under first-in, first-out it would be the first to go.
  fill("203.0.113.7", "honest");
  // 9 addresses x 32 (each within its own cap) is more than the total cap of 256: hello after
  // hello, round after round, the table stays full and each new one evicts an older one.
  const evicted: string[] = [];
  for (let n = 0; n < 100; n++) {
    for (const address of attackers) evicted.push(...fill(address, `${address}#${n}`));
  }
  strictEqual(evicted.length, 1 + 9 * 100 - DEFAULT_MAX_PENDING_HANDSHAKES);
  strictEqual(evicted.includes("honest"), false, `evicted first: ${evicted.slice(0, 3).join()}`);
  strictEqual(table.countOf("203.0.113.7"), 1);
  strictEqual(table.size, DEFAULT_MAX_PENDING_HANDSHAKES);
  // The first to go is the oldest of the heaviest addresses (three held 29 then, the rest 28).
  strictEqual(evicted[0], "198.51.100.1#0");
  // A tie goes to the address whose oldest is oldest: the lone dialer when every address holds one.
  const small = new PendingHandshakes<string>({ maxPending: 2, maxPerAddress: 2 });
  small.add("203.0.113.7", "lone");
  small.add("198.51.100.1", "x1");
  deepStrictEqual(small.add("198.51.100.1", "x2").evicted, ["lone"]);
  deepStrictEqual(small.add("198.51.100.2", "y1").evicted, ["x1"]);
});

Deno.test("PendingHandshakes counts IPv6 addresses by /64 and IPv4-mapped IPv6 as IPv4", () => {
  const table = new PendingHandshakes<string>({ maxPending: 100, maxPerAddress: 2 });
  table.add("2001:db8:1:2::1", "a");
  table.add("2001:db8:1:2:ffff:ffff:ffff:fffe", "b");
  // A third address of the same /64 is over that /64's cap of 2.
  deepStrictEqual(table.add("2001:db8:1:2:dead:beef::9", "c").evicted, ["a"]);
  deepStrictEqual(table.add("2001:db8:1:3::1", "other /64").evicted, []);
  strictEqual(table.countOf("2001:db8:1:2::77"), 2);
  table.add("192.0.2.1", "v4");
  table.add("::ffff:192.0.2.1", "mapped");
  deepStrictEqual(table.add("0:0:0:0:0:ffff:c000:201", "mapped hex").evicted, ["v4"]);
  strictEqual(table.countOf("192.0.2.1"), 2);
});

Deno.test("addressPrefix() keeps IPv4, takes an IPv6 /64, unmaps IPv4-mapped IPv6", () => {
  const cases: [string, string][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["::FFFF:c000:0201", "192.0.2.1"],
    ["2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"],
    ["2001:DB8:0:0:1::", "2001:db8::/64"],
    ["2001:0:0:1::5", "2001:0:0:1::/64"],
    ["fe80::1%eth0", "fe80::/64"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4::/64"],
    ["::1", "::/64"],
    ["1::2::3", "1::2::3"], // not an address: its own key
    ["::ffff:300.1.1.1", "::ffff:300.1.1.1"],
    ["1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8:9"],
  ];
  deepStrictEqual(cases.map(([address]) => [address, addressPrefix(address)]), cases);
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

Deno.test("KexBudget.reserve() counts an IPv6 /64 as one address and IPv4-mapped IPv6 as IPv4", () => {
  const budget = new KexBudget({ perAddress: 1, total: 10 });
  strictEqual(typeof budget.reserve("2001:db8:1:2::1", "ffdhe3072"), "function");
  strictEqual(budget.reserve("2001:db8:1:2::2", "ffdhe3072"), undefined, "same /64");
  strictEqual(typeof budget.reserve("2001:db8:1:3::1", "ffdhe3072"), "function");
  const release = budget.reserve("192.0.2.1", "ffdhe3072");
  strictEqual(budget.reserve("::ffff:192.0.2.1", "ffdhe3072"), undefined, "mapped");
  release!();
  strictEqual(typeof budget.reserve("::ffff:192.0.2.1", "ffdhe3072"), "function");
});

Deno.test("WaitingLine.enter() caps the line in all and per address prefix", () => {
  const line = new WaitingLine({ max: 3, maxPerAddress: 2 });
  const a1 = line.enter("192.0.2.1");
  const a2 = line.enter("::ffff:192.0.2.1");
  strictEqual(line.enter("192.0.2.1"), undefined, "that address already has 2 waiting");
  const b1 = line.enter("2001:db8::1");
  strictEqual(line.size, 3);
  strictEqual(line.enter("198.51.100.1"), undefined, "the line is full");
  a1!();
  a1!(); // leaving twice frees one place
  strictEqual(line.size, 2);
  const b2 = line.enter("2001:db8::2");
  strictEqual(typeof b2, "function", "the second place of b1's /64");
  a2!();
  strictEqual(line.size, 2);
  strictEqual(line.enter("2001:db8::3"), undefined, "the line has room, that /64 has not");
  const c1 = line.enter("198.51.100.1");
  strictEqual(typeof c1, "function");
  for (const leave of [b1, b2, c1]) leave!();
  strictEqual(line.size, 0);
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
