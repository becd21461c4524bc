/**
 * Wycheproof `hmac_sha256_test.json` through lib/crypto/key_schedule.ts `hmac()` and lib/core/bytes.ts
 * `constantTimeEqual()`: the MAC and the comparison lib/protocol/handshake.ts uses to check a Finished
 * message (docs/PROTOCOL.md 5.3), and the HMAC under `hkdfExtract()`/`hkdfExpand()`.
 *
 * Run: the groups with tagSize 256, with every key size in the file (128, 256 and 520 bits: keys
 * shorter and longer than the SHA-256 block, as HKDF salts may be).
 * - valid: `hmac(key, msg)` equals the tag, and the comparison accepts it.
 * - invalid: the comparison returns false (a verify step returns a boolean; lib/protocol/handshake.ts
 *   turns false into `AuthenticationError` "bad_finished").
 * - acceptable: rejected. The file has none; a MAC check that is not plainly valid fails closed.
 * Skipped: the tagSize 128 groups. We never truncate HMAC (the Finished MAC is all 32 bytes), so
 * truncated tags do not fit our use.
 */

import { constantTimeEqual, fromHex, toHex } from "../../lib/core/bytes.ts";
import { hmac } from "../../lib/crypto/key_schedule.ts";
import {
  loadWycheproofGroups,
  type Outcome,
  type WycheproofCase,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

interface MacCase extends WycheproofCase {
  key: string;
  msg: string;
  tag: string;
}

interface MacGroup {
  keySize: number;
  tagSize: number;
  tests: MacCase[];
}

const FILE = "hmac_sha256_test.json";
const groups = await loadWycheproofGroups<MacGroup>(FILE);

async function outcome(v: MacCase): Promise<Outcome> {
  const mac = await hmac(fromHex(v.key), fromHex(v.msg));
  const matches = constantTimeEqual(mac, fromHex(v.tag));
  if (v.result === "valid" && !matches) return { unexpected: `hmac() gave ${toHex(mac)}` };
  return matches ? "accepted" : "rejected";
}

Deno.test({
  name:
    "hmac() and constantTimeEqual() accept every valid and refuse every invalid Wycheproof HMAC-SHA-256 full-length tag",
  async fn() {
    const tally = new WycheproofTally(FILE, groups, { acceptable: "rejected" });
    for (const group of groups) {
      if (group.tagSize !== 256) {
        tally.skip(`${group.tagSize}-bit truncated tag, never used`, group.tests.length);
        continue;
      }
      for (const v of group.tests) tally.record(v, await outcome(v));
    }
    tally.finish();
  },
});
