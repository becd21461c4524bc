/**
 * DirectPacer against the relay's own Direct limit (PROTOCOL.md 13.8), on an injected clock: what
 * a member lets go never exceeds what the relay accepts, even when it arrives bunched.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  DIRECT_PACE_BURST_BYTES,
  DIRECT_PACE_BYTES_PER_SECOND,
  DirectPacer,
} from "../../lib/room/direct_pacer.ts";
import {
  DEFAULT_DIRECT_BURST_BYTES,
  DEFAULT_DIRECT_BYTES_PER_SECOND,
  TokenBucket,
} from "../../lib/room/limits.ts";

const SLICE = 65536;
const MiB = 1024 * 1024;

/** A pacer on a clock that moves only when it sleeps. */
function pacedClock() {
  const clock = { now: 0 };
  const pacer = new DirectPacer({
    now: () => clock.now,
    sleep: (ms) => Promise.resolve(void (clock.now += ms)),
  });
  return { clock, pacer };
}

Deno.test("DirectPacer paces at three quarters of the relay's Direct rate, in a quarter of its burst", () => {
  strictEqual(DIRECT_PACE_BYTES_PER_SECOND, 192 * MiB);
  strictEqual(DIRECT_PACE_BURST_BYTES, 16 * MiB);
});

Deno.test("DirectPacer lets 800 MiB of Directs go no faster than the relay accepts them", async () => {
  const { clock, pacer } = pacedClock();
  const relay = new TokenBucket(DEFAULT_DIRECT_BYTES_PER_SECOND, DEFAULT_DIRECT_BURST_BYTES, 0);
  for (let sent = 0; sent < 800 * MiB; sent += SLICE) {
    await pacer.wait(SLICE);
    ok(relay.take(clock.now, SLICE), `the relay drops the Direct after ${sent} bytes`);
  }
  // It did pace: 800 MiB less the first burst, at three quarters of the relay's rate.
  ok(
    clock.now >= ((800 * MiB - DIRECT_PACE_BURST_BYTES) / DIRECT_PACE_BYTES_PER_SECOND) * 1000,
    `${clock.now}`,
  );
});

Deno.test("DirectPacer: Directs that reach the relay bunched, 200 ms of them at once, still fit", async () => {
  const { clock, pacer } = pacedClock();
  const arrivals: number[] = [];
  for (let sent = 0; sent < 400 * MiB; sent += SLICE) {
    await pacer.wait(SLICE);
    // A socket that stalls: what was sent in each 200 ms arrives at its end.
    arrivals.push((Math.floor(clock.now / 200) + 1) * 200);
  }
  const relay = new TokenBucket(DEFAULT_DIRECT_BYTES_PER_SECOND, DEFAULT_DIRECT_BURST_BYTES, 0);
  for (const [i, at] of arrivals.entries()) ok(relay.take(at, SLICE), `Direct ${i} dropped`);
});

Deno.test("DirectPacer keeps the order in which Directs asked to go", async () => {
  const { pacer } = pacedClock();
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 400 }, (_, i) => pacer.wait(SLICE).then(() => void order.push(i))),
  );
  deepStrictEqual(order, Array.from({ length: 400 }, (_, i) => i));
});

Deno.test("DirectPacer refuses a Direct larger than its burst", async () => {
  const { pacer } = pacedClock();
  await rejects(pacer.wait(DEFAULT_DIRECT_BURST_BYTES), RangeError);
});
