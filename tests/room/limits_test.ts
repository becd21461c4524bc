/**
 * The relay's per-member limits on an injected clock: the token bucket (by count and by bytes)
 * and the violation window. The relay's use of them (warnings, disconnects, --max-members) is in
 * relay_limits_test.ts.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  DEFAULT_DIRECT_BURST_BYTES,
  DEFAULT_DIRECT_BYTES_PER_SECOND,
  DEFAULT_GROUP_BURST,
  DEFAULT_GROUP_RATE,
  DEFAULT_MAX_MEMBERS,
  MAX_RELAY_MESSAGE_BYTES,
  MAX_VIOLATIONS,
  TokenBucket,
  VIOLATION_WINDOW_MS,
  Violations,
} from "../../lib/room/limits.ts";

Deno.test("limits.ts holds the defaults of PROTOCOL.md 13.8", () => {
  strictEqual(DEFAULT_MAX_MEMBERS, 256);
  strictEqual(MAX_RELAY_MESSAGE_BYTES, 2 ** 20 - 32);
  strictEqual(DEFAULT_GROUP_RATE, 20);
  strictEqual(DEFAULT_GROUP_BURST, 100);
  strictEqual(DEFAULT_DIRECT_BYTES_PER_SECOND, 256 * 1024 * 1024);
  strictEqual(DEFAULT_DIRECT_BURST_BYTES, 64 * 1024 * 1024);
  strictEqual(VIOLATION_WINDOW_MS, 60_000);
});

Deno.test("TokenBucket.take() allows a burst, then refills at the rate, never above the burst", () => {
  const bucket = new TokenBucket(2, 3, 0);
  deepStrictEqual([0, 0, 0, 0].map(() => bucket.take(0)), [true, true, true, false]);
  strictEqual(bucket.take(499), false, "0.998 of a token after 499 ms");
  strictEqual(bucket.take(500), true, "one token after 500 ms at 2 a second");
  strictEqual(bucket.take(500), false);
  // An hour idle refills only up to the burst.
  const later = 3_600_000;
  deepStrictEqual([0, 0, 0, 0].map(() => bucket.take(later)), [true, true, true, false]);
});

Deno.test("Violations.add() says disconnect at the third violation within the window", () => {
  strictEqual(MAX_VIOLATIONS, 3);
  const violations = new Violations();
  strictEqual(violations.add(0), false);
  strictEqual(violations.add(1), false);
  strictEqual(violations.add(2), true);
  // Violations older than the window are forgotten.
  const fresh = new Violations();
  strictEqual(fresh.add(0), false);
  strictEqual(fresh.add(1), false);
  strictEqual(fresh.add(VIOLATION_WINDOW_MS), false, "the first one has expired");
  strictEqual(fresh.add(VIOLATION_WINDOW_MS + 1), false, "the second one has expired");
  strictEqual(fresh.add(VIOLATION_WINDOW_MS + 2), true);
});

Deno.test("TokenBucket.take() takes many tokens at once, or none", () => {
  const bucket = new TokenBucket(1000, 3000, 0);
  strictEqual(bucket.take(0, 2000), true);
  strictEqual(bucket.take(0, 1001), false, "1000 left");
  strictEqual(bucket.take(0, 1000), true, "a refused take took nothing");
  strictEqual(bucket.take(0, 1), false);
  strictEqual(bucket.take(500, 500), true, "500 refilled in half a second");
  // Never more than the burst, however long idle.
  strictEqual(bucket.take(3_600_000, 3001), false);
  strictEqual(bucket.take(3_600_000, 3000), true);
});
