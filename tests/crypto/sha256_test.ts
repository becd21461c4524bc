/**
 * lib/crypto/sha256.ts against WebCrypto: SHA-256 of every length around the block and padding
 * boundaries and of a few large inputs, fed whole and in uneven pieces, with `clone()` branching
 * mid-way; HMAC-SHA256 with keys shorter than, equal to and longer than the block. Wycheproof's
 * HMAC vectors run through the key schedule's `hmac()` (wycheproof_hmac_test.ts).
 *
 * @module
 */

import { deepStrictEqual, throws } from "node:assert/strict";
import { own } from "../../lib/core/bytes.ts";
import { HmacSha256, hmacSha256, Sha256, sha256 } from "../../lib/crypto/sha256.ts";

function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

async function webSha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", own(data)));
}

async function webHmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const imported = await crypto.subtle.importKey(
    "raw",
    key.length === 0 ? new Uint8Array(64) : own(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, own(data)));
}

Deno.test("sha256 matches WebCrypto for every length 0..300 and a few large ones", async () => {
  const lengths = [...Array.from({ length: 301 }, (_, i) => i), 1000, 4096, 65_537, 1_000_003];
  for (const length of lengths) {
    const data = bytes(length, length);
    deepStrictEqual(sha256(data), await webSha256(data), `length ${length}`);
  }
});

Deno.test("Sha256 fed in uneven pieces, cloned mid-way, gives the digests of both prefixes", async () => {
  const data = bytes(5000, 3);
  const running = new Sha256();
  let offset = 0;
  for (let step = 1; offset < data.length; step = (step * 7 + 3) % 200) {
    const end = Math.min(data.length, offset + step);
    running.update(data.subarray(offset, end));
    offset = end;
    if (offset % 3 === 0 || offset === data.length) {
      deepStrictEqual(running.clone().digest(), await webSha256(data.subarray(0, offset)));
    }
  }
  deepStrictEqual(running.digest(), await webSha256(data));
  throws(() => running.update(data), /after digest/);
  throws(() => running.digest(), /twice/);
});

Deno.test("hmacSha256 matches WebCrypto for keys of 0..200 bytes and messages of several lengths", async () => {
  for (const keyLength of [0, 1, 31, 32, 33, 63, 64, 65, 100, 128, 200]) {
    for (const dataLength of [0, 1, 32, 55, 56, 64, 119, 120, 1000]) {
      const key = bytes(keyLength, 11);
      const data = bytes(dataLength, 5);
      deepStrictEqual(
        hmacSha256(key, data),
        await webHmac(key, data),
        `key ${keyLength}, data ${dataLength}`,
      );
    }
  }
});

Deno.test("HmacSha256 keyed once gives the same MAC for each call, over parts as over their concatenation", async () => {
  const key = bytes(32, 9);
  const keyed = new HmacSha256(key);
  const a = bytes(40, 1);
  const b = bytes(70, 2);
  const whole = new Uint8Array([...a, ...b]);
  const expected = await webHmac(key, whole);
  deepStrictEqual(keyed.mac(a, b), expected);
  deepStrictEqual(keyed.mac(whole), expected);
  keyed.destroy();
  throws(() => keyed.mac(a), /after digest/);
});
