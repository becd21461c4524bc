/**
 * Wycheproof `mlkem_768_test.json` (decapsulation) through lib/crypto/kex.ts
 * `mlkemDecapsulateFromSeed()`, which runs the key generation and decapsulation functions the
 * `x25519-mlkem768` initiator runs (docs/PROTOCOL.md 4.1; FIPS 203 KeyGen_internal and Decaps).
 * Encapsulation keys (`mlkem_768_encaps_test.json`) are checked in kex_test.ts.
 *
 * - valid: the key pair from `seed` has the vector's `ek`, and decapsulating `c` gives `K`. This
 *   includes random and bit-flipped ciphertexts, whose K is FIPS 203's implicit-rejection key:
 *   the handshake then fails at the Finished MAC, as it must.
 * - invalid: a ciphertext of the wrong length is the peer's fault, rejected with `ProtocolError`
 *   code "illegal_parameter" (docs/PROTOCOL.md 4.4). A seed of the wrong length can only be a bug
 *   of ours (the seed is our own randomness, never peer data): `RangeError`, as STYLE.md wants for
 *   programmer errors, instead of WebCrypto's `DataError`.
 * - acceptable: rejected. The file has none; were one to appear, the key agreement fails closed
 *   and this test would make us decide explicitly.
 */

import { ok, strictEqual } from "node:assert/strict";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import { initiatorKex, mlkemDecapsulateFromSeed, type RandomSource } from "../../lib/crypto/kex.ts";
import {
  loadWycheproofGroups,
  type Outcome,
  rejection,
  type WycheproofCase,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

interface MlKemCase extends WycheproofCase {
  seed: string;
  ek?: string;
  c: string;
  K: string;
}

const FILE = "mlkem_768_test.json";
const groups = await loadWycheproofGroups<{ parameterSet: string; tests: MlKemCase[] }>(FILE);

async function outcome(v: MlKemCase): Promise<Outcome> {
  const seed = fromHex(v.seed);
  const ciphertext = fromHex(v.c);
  if (v.result !== "valid") {
    return seed.length === 64
      ? await rejection(
        () => mlkemDecapsulateFromSeed(seed, ciphertext),
        ProtocolError,
        "illegal_parameter",
      )
      : await rejection(() => mlkemDecapsulateFromSeed(seed, ciphertext), RangeError);
  }
  const { encapsulationKey, sharedKey } = await mlkemDecapsulateFromSeed(seed, ciphertext);
  if (v.ek !== undefined && toHex(encapsulationKey) !== v.ek) return { unexpected: "another ek" };
  return toHex(sharedKey) === v.K ? "accepted" : { unexpected: `K ${toHex(sharedKey)}` };
}

Deno.test({
  name:
    "mlkemDecapsulateFromSeed() gives ek and K of every valid and rejects every invalid Wycheproof ML-KEM-768 case",
  async fn() {
    const tally = new WycheproofTally(FILE, groups, { acceptable: "rejected" });
    for (const group of groups) {
      strictEqual(group.parameterSet, "ML-KEM-768");
      for (const v of group.tests) tally.record(v, await outcome(v));
    }
    tally.finish();
  },
});

Deno.test({
  name:
    "initiatorKex() x25519-mlkem768 shares the ek and derives the K of a Wycheproof seed and ciphertext",
  async fn() {
    // The protocol path itself, for one vector: randomness = the ML-KEM seed, then an X25519
    // scalar; the responder's share = the vector's ciphertext || an X25519 public key.
    const v = groups.flatMap((group) => group.tests).find((t) => t.result === "valid")!;
    const scalar = new Uint8Array(32).fill(7);
    const draws = [fromHex(v.seed), scalar];
    const random: RandomSource = (length) => {
      const next = draws.shift()!;
      strictEqual(next.length, length);
      return next.slice();
    };
    const initiator = await initiatorKex("x25519-mlkem768", random);
    strictEqual(toHex(initiator.share.subarray(0, 1184)), v.ek);
    const peer = await initiatorKex("x25519", () => new Uint8Array(32).fill(9));
    const shared = await initiator.complete(Uint8Array.from([...fromHex(v.c), ...peer.share]));
    strictEqual(toHex(shared.subarray(0, 32)), v.K);
    ok(draws.length === 0);
  },
});
