/**
 * The per-address byte budget of PROTOCOL.md 15.6, on an injected clock: a burst passes at once,
 * beyond it each charge says how long to wait, addresses of one prefix share a bucket, and a
 * bucket is forgotten once its last holder releases it.
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ByteBudgets } from "../../lib/rendezvous/byte_budget.ts";

function clocked(bytesPerSecond: number, burstBytes?: number) {
  const clock = { now: 1_000 };
  const budgets = new ByteBudgets({
    bytesPerSecond,
    ...(burstBytes === undefined ? {} : { burstBytes }),
    now: () => clock.now,
  });
  return { clock, budgets };
}

Deno.test("ByteBudgets: a burst passes at once, then each charge waits for its debt to fill", () => {
  const { clock, budgets } = clocked(1000, 500);
  const budget = budgets.acquire("192.0.2.1");
  strictEqual(budget.take(500), 0);
  strictEqual(budget.take(250), 250);
  strictEqual(budget.take(250), 500); // behind the first debt
  clock.now += 500; // repays 500 of the 500 owed
  strictEqual(budget.take(0), 0);
  clock.now += 10_000; // refills no further than the burst
  strictEqual(budget.take(500), 0);
  strictEqual(budget.take(1), 1);
  strictEqual(budgets.waits, 3);
});

Deno.test("ByteBudgets: the default burst is one second's worth", () => {
  const { budgets } = clocked(4096);
  const budget = budgets.acquire("192.0.2.1");
  strictEqual(budget.take(4096), 0);
  strictEqual(budget.take(2048), 500);
});

Deno.test("ByteBudgets: splices of one address prefix share its bucket, others have their own", () => {
  const { budgets } = clocked(1000, 1000);
  const first = budgets.acquire("2001:db8:1:2::1");
  const second = budgets.acquire("2001:db8:1:2:ffff::9"); // the same /64
  const other = budgets.acquire("192.0.2.1");
  strictEqual(first.prefix, second.prefix);
  strictEqual(first.take(1000), 0);
  strictEqual(second.take(100), 100);
  strictEqual(other.take(1000), 0);
  strictEqual(budgets.size, 2);
});

Deno.test("ByteBudgets: a bucket is dropped once no splice holds it; a second release does nothing", () => {
  const { budgets } = clocked(1000, 1000);
  const first = budgets.acquire("192.0.2.1");
  const second = budgets.acquire("192.0.2.1");
  first.release();
  first.release();
  strictEqual(budgets.size, 1);
  second.release();
  strictEqual(budgets.size, 0);
  deepStrictEqual(budgets.acquire("192.0.2.1").take(1000), 0); // a fresh, full bucket
});

Deno.test("ByteBudgets refuses a rate or burst that is not positive", () => {
  throws(() => new ByteBudgets({ bytesPerSecond: 0 }), RangeError);
  throws(() => new ByteBudgets({ bytesPerSecond: 10, burstBytes: -1 }), RangeError);
  throws(() => new ByteBudgets({ bytesPerSecond: NaN }), RangeError);
});
