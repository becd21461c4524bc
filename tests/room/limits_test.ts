/**
 * The relay's per-member limits on an injected clock: the token bucket and the violation window.
 * The relay's use of them (warnings, disconnects, --max-members) is in room_test.ts.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  MAX_VIOLATIONS,
  TokenBucket,
  TransferFlows,
  VIOLATION_WINDOW_MS,
  Violations,
} from "../../lib/room/limits.ts";
import {
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_ENTRY_BYTES,
  MAX_SLICE,
  WINDOW_BYTES,
} from "../../lib/transfer/transfer_messages.ts";

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

Deno.test("TransferFlows.check() calls a manifest past MAX_MANIFEST_BYTES a violation, whatever the file count allows", () => {
  const flows = new TransferFlows(WINDOW_BYTES + MAX_SLICE, MAX_MANIFEST_ENTRY_BYTES);
  // 5,000 files would allow 20.7 MB by the per-file figure alone.
  deepStrictEqual(flows.offer("sender", "recipient", "id", 5000), { action: "forward" });
  deepStrictEqual(flows.check("accept", "recipient", "sender", "id"), { action: "forward" });
  let forwarded = 0;
  while (forwarded + MAX_SLICE <= MAX_MANIFEST_BYTES) {
    deepStrictEqual(flows.check("manifest", "sender", "recipient", "id", MAX_SLICE), {
      action: "forward",
    });
    forwarded += MAX_SLICE;
  }
  deepStrictEqual(flows.check("manifest", "sender", "recipient", "id", MAX_SLICE), {
    action: "violation",
    text: "a manifest larger than its offer allows",
  });
});
