/**
 * Wycheproof `pbkdf2_hmacsha256_test.json` through lib/keys/pkcs8.ts `pbkdf2HmacSha256()`, the
 * derivation behind every passphrase-protected private key (PBES2, RFC 8018 section 5.2).
 *
 * - valid: the derived key equals `dk`, for every password, including non-UTF-8 bytes (a
 *   passphrase reaches the function as UTF-8, but the function itself takes any bytes).
 * - invalid: the file has none.
 * - acceptable: accepted. The file has none; PBKDF2 itself has no weak-but-legal output, and the
 *   policy on parameters (salt of 8 to 64 bytes, iteration cap) belongs to the file parser
 *   (`decryptPrivateKeyInfo()`), which pkcs8_test.ts covers.
 * Skipped: cases above `MAX_TEST_ITERATIONS` iterations, to keep the suite fast (none in this
 * file: its largest count is 80,000).
 */

import { fromHex, toHex } from "../../lib/core/bytes.ts";
import { pbkdf2HmacSha256 } from "../../lib/keys/pkcs8.ts";
import {
  loadWycheproofGroups,
  type WycheproofCase,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

interface PbkdfCase extends WycheproofCase {
  password: string;
  salt: string;
  iterationCount: number;
  dkLen: number;
  dk: string;
}

/** Largest iteration count run here (100,000 for a 64-byte output take about 50 ms). */
const MAX_TEST_ITERATIONS = 100_000;

const FILE = "pbkdf2_hmacsha256_test.json";
const groups = await loadWycheproofGroups<{ tests: PbkdfCase[] }>(FILE);

Deno.test({
  name: "pbkdf2HmacSha256() derives the dk of every Wycheproof PBKDF2-HMAC-SHA256 case",
  async fn() {
    const tally = new WycheproofTally(FILE, groups, { acceptable: "accepted" });
    for (const v of groups.flatMap((group) => group.tests)) {
      if (v.iterationCount > MAX_TEST_ITERATIONS) {
        tally.skip(`over ${MAX_TEST_ITERATIONS} iterations, too slow for the suite`);
        continue;
      }
      const dk = toHex(
        await pbkdf2HmacSha256(fromHex(v.password), fromHex(v.salt), v.iterationCount, v.dkLen),
      );
      tally.record(v, dk === v.dk ? "accepted" : { unexpected: `dk ${dk}` });
    }
    tally.finish();
  },
});
