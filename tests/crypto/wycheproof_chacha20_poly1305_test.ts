/**
 * Wycheproof `chacha20_poly1305_test.json` through lib/crypto/chacha20_poly1305.ts
 * `ChaCha20Poly1305`, the AEAD of record suite chacha20-poly1305 (docs/PROTOCOL.md 4.5, 8.1).
 *
 * Run: the group with ivSize 96 (the one shape records use: 7.3 derives 32-byte keys, 8.1 builds
 * 12-byte nonces), through both implementations the class chooses between: WebCrypto, and
 * `node:crypto` once `loadSynchronousChaCha20Poly1305()` ran (the fast path bulk records take).
 * - valid: `seal()` gives ct || tag and `open()` gives msg back.
 * - invalid: `open()` throws `AuthenticationError` code "bad_record_mac".
 * Skipped: the groups with any other nonce size; `ChaCha20Poly1305` refuses them with `RangeError`
 * by design, which is checked for every skipped case instead.
 *
 * The WebCrypto path runs first, before this process loads `node:crypto`: keys made before the load
 * must be WebCrypto keys, and keys made after it synchronous ones.
 */

import { deepStrictEqual as eql, rejects } from "node:assert/strict";
import {
  ChaCha20Poly1305,
  loadSynchronousChaCha20Poly1305,
} from "../../lib/crypto/chacha20_poly1305.ts";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import { AuthenticationError } from "../../lib/core/errors.ts";
import {
  type AeadCase,
  type AeadGroup,
  loadWycheproofGroups,
  type Outcome,
  rejection,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

const FILE = "chacha20_poly1305_test.json";
const groups = await loadWycheproofGroups<AeadGroup>(FILE);

/** Whether keys of the test running now must take the synchronous path. */
let synchronous = false;

async function key(hex: string): Promise<ChaCha20Poly1305> {
  const aead = await ChaCha20Poly1305.create(fromHex(hex));
  eql(aead.synchronous, synchronous, "the path under test");
  return aead;
}

async function sealOutcome(v: AeadCase): Promise<Outcome> {
  const aead = await key(v.key);
  const sealed = toHex(await aead.seal(fromHex(v.iv), fromHex(v.msg), fromHex(v.aad)));
  if (sealed !== v.ct + v.tag) return { unexpected: `seal() gave ${sealed}` };
  // sealAfter() (synchronous path only): the message in two parts, sealed after a prefix.
  const msg = fromHex(v.msg);
  const parts = [msg.subarray(0, msg.length >> 1), msg.subarray(msg.length >> 1)];
  const after = aead.sealAfter(fromHex(v.iv), fromHex(v.aad), Uint8Array.of(0xa5), parts);
  if (synchronous !== (after !== undefined)) return { unexpected: "sealAfter() on the wrong path" };
  if (after && toHex(after) !== "a5" + v.ct + v.tag) {
    return { unexpected: `sealAfter() gave ${toHex(after)}` };
  }
  const opened = toHex(await aead.open(fromHex(v.iv), fromHex(v.ct + v.tag), fromHex(v.aad)));
  return opened === v.msg ? "accepted" : { unexpected: `open() gave ${opened}` };
}

async function openOutcome(v: AeadCase): Promise<Outcome> {
  const aead = await key(v.key);
  return await rejection(
    () => aead.open(fromHex(v.iv), fromHex(v.ct + v.tag), fromHex(v.aad)),
    AuthenticationError,
    "bad_record_mac",
  );
}

for (const path of ["WebCrypto", "node:crypto"] as const) {
  Deno.test({
    name:
      `ChaCha20Poly1305 seal() and open() (${path}) match every Wycheproof ChaCha20-Poly1305 case with a 96-bit nonce`,
    async fn() {
      if (path === "node:crypto") await loadSynchronousChaCha20Poly1305();
      synchronous = path === "node:crypto";
      const tally = new WycheproofTally(FILE, groups, { acceptable: "rejected" });
      for (const group of groups) {
        for (const v of group.tests) {
          if (group.ivSize !== 96) {
            // Not our nonce size: refused, never passed on.
            const aead = await key(v.key);
            await rejects(
              aead.open(fromHex(v.iv), fromHex(v.ct + v.tag), fromHex(v.aad)),
              RangeError,
              `tcId ${v.tcId}`,
            );
            tally.skip("nonce not 96 bits, refused by ChaCha20Poly1305");
            continue;
          }
          tally.record(v, v.result === "valid" ? await sealOutcome(v) : await openOutcome(v));
        }
      }
      tally.finish();
    },
  });

  Deno.test({
    name:
      `ChaCha20Poly1305.open() (${path}) rejects a valid Wycheproof case with any one of its 128 tag bits flipped, and a 31-byte key`,
    async fn() {
      if (path === "node:crypto") await loadSynchronousChaCha20Poly1305();
      synchronous = path === "node:crypto";
      const group = groups.find((g) => g.ivSize === 96)!;
      const v = group.tests.find((t) => t.result === "valid" && t.msg.length > 0)!;
      const aead = await key(v.key);
      const sealed = fromHex(v.ct + v.tag);
      eql(toHex(await aead.open(fromHex(v.iv), sealed, fromHex(v.aad))), v.msg);
      for (let bit = 0; bit < 128; bit++) {
        const bad = sealed.slice();
        bad[sealed.length - 16 + (bit >> 3)]! ^= 1 << (bit & 7);
        await rejects(aead.open(fromHex(v.iv), bad, fromHex(v.aad)), AuthenticationError);
      }
      await rejects(ChaCha20Poly1305.create(new Uint8Array(31)), RangeError);
    },
  });
}
