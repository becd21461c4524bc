import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import {
  AEAD_KEY_LENGTH,
  AEAD_NONCE_LENGTH,
  AEAD_TAG_LENGTH,
  Aes256Gcm,
  SMALL_INPUT_LIMIT,
  useSynchronousCipherForSmallInputs,
} from "../../lib/crypto/aead.ts";
import { AuthenticationError } from "../../lib/core/errors.ts";

// Wycheproof vectors for this module are in wycheproof_aes_gcm_test.ts; these are the edges.

const KEY = new Uint8Array(AEAD_KEY_LENGTH).map((_, i) => i);
const NONCE = new Uint8Array(AEAD_NONCE_LENGTH).fill(0x42);
const AAD = Uint8Array.of(0x17, 0, 0, 0, 20);

function pattern(length: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 29 + 3) & 0xff);
}

function isBadRecordMac(error: unknown): boolean {
  ok(error instanceof AuthenticationError, `expected AuthenticationError, got ${error}`);
  strictEqual(error.code, "bad_record_mac");
  strictEqual(error.alert, "bad_record_mac");
  return true;
}

Deno.test("Aes256Gcm.create() refuses keys of any length but 32 bytes with RangeError", async () => {
  for (const length of [0, 16, 24, 31, 33, 64]) {
    await rejects(Aes256Gcm.create(new Uint8Array(length)), RangeError, `${length} bytes`);
  }
});

Deno.test("Aes256Gcm seal() and open() refuse nonces of any length but 12 bytes with RangeError", async () => {
  const aead = await Aes256Gcm.create(KEY);
  const sealed = await aead.seal(NONCE, pattern(5), AAD);
  for (const length of [0, 8, 11, 13, 16]) {
    const nonce = new Uint8Array(length);
    await rejects(aead.seal(nonce, pattern(5), AAD), RangeError, `seal, ${length} bytes`);
    await rejects(aead.open(nonce, sealed, AAD), RangeError, `open, ${length} bytes`);
  }
});

Deno.test("Aes256Gcm seal() appends a 16-byte tag and open() reverses it, empty input included", async () => {
  const aead = await Aes256Gcm.create(KEY);
  for (const length of [0, 1, 15, 16, 17, 1000]) {
    const plaintext = pattern(length);
    const sealed = await aead.seal(NONCE, plaintext, AAD);
    strictEqual(sealed.length, length + AEAD_TAG_LENGTH);
    eql(await aead.open(NONCE, sealed, AAD), plaintext);
  }
});

Deno.test("Aes256Gcm seal() and open() read views at their own offset", async () => {
  const aead = await Aes256Gcm.create(KEY);
  const backing = pattern(100);
  const view = backing.subarray(10, 40);
  const sealed = await aead.seal(NONCE, view, AAD);
  eql(sealed, await aead.seal(NONCE, view.slice(), AAD));
  const padded = new Uint8Array(sealed.length + 7);
  padded.set(sealed, 3);
  eql(await aead.open(NONCE, padded.subarray(3, 3 + sealed.length), AAD), view.slice());
});

Deno.test("Aes256Gcm.open() rejects input shorter than a tag with bad_record_mac", async () => {
  const aead = await Aes256Gcm.create(KEY);
  for (let length = 0; length < AEAD_TAG_LENGTH; length++) {
    await rejects(aead.open(NONCE, new Uint8Array(length), AAD), isBadRecordMac);
  }
});

Deno.test("Aes256Gcm.open() rejects a changed byte of ciphertext, tag, nonce or aad with bad_record_mac", async () => {
  const aead = await Aes256Gcm.create(KEY);
  const sealed = await aead.seal(NONCE, pattern(20), AAD);
  const flip = (bytes: Uint8Array, at: number) => {
    const out = bytes.slice();
    out[at]! ^= 0x01;
    return out;
  };
  for (const at of [0, 19, 20, 35]) {
    await rejects(aead.open(NONCE, flip(sealed, at), AAD), isBadRecordMac, `sealed[${at}]`);
  }
  await rejects(aead.open(flip(NONCE, 11), sealed, AAD), isBadRecordMac, "nonce");
  await rejects(aead.open(NONCE, sealed, flip(AAD, 4)), isBadRecordMac, "aad");
  await rejects(aead.open(NONCE, sealed, AAD.subarray(0, 4)), isBadRecordMac, "short aad");
  const other = await Aes256Gcm.create(flip(KEY, 0));
  await rejects(other.open(NONCE, sealed, AAD), isBadRecordMac, "key");
});

Deno.test("Aes256Gcm seal() and open() have copied their inputs when the call returns", async () => {
  const aead = await Aes256Gcm.create(KEY);
  const plaintext = pattern(4096);
  const expected = await aead.seal(NONCE, plaintext, AAD);
  const reused = plaintext.slice();
  const nonce = NONCE.slice();
  const aad = AAD.slice();
  const sealing = aead.seal(nonce, reused, aad);
  reused.fill(0); // what lib/protocol/record_protection.ts does with its scratch buffer right after the call
  nonce.fill(0);
  aad.fill(0);
  eql(await sealing, expected);
  const sealed = expected.slice();
  const opening = aead.open(NONCE, sealed, AAD);
  sealed.fill(0);
  eql(await opening, plaintext);
});

/** A key on the synchronous small-input path; keys created afterwards are on WebCrypto again. */
async function createSynchronous(key: Uint8Array): Promise<Aes256Gcm> {
  await useSynchronousCipherForSmallInputs(true);
  try {
    return await Aes256Gcm.create(key);
  } finally {
    await useSynchronousCipherForSmallInputs(false);
  }
}

Deno.test("Aes256Gcm's synchronous path for small inputs gives WebCrypto's bytes on both sides of the limit, and fails closed", async () => {
  const viaWebCrypto = await Aes256Gcm.create(KEY);
  const synchronous = await createSynchronous(KEY);
  strictEqual(viaWebCrypto.synchronousInputLimit, 0);
  strictEqual(synchronous.synchronousInputLimit, SMALL_INPUT_LIMIT);
  strictEqual((await Aes256Gcm.create(KEY)).synchronousInputLimit, 0, "switched back");
  for (
    const length of [0, 1, 300, SMALL_INPUT_LIMIT - 1, SMALL_INPUT_LIMIT, SMALL_INPUT_LIMIT + 1]
  ) {
    const plaintext = pattern(length);
    const sealed = await synchronous.seal(NONCE, plaintext, AAD);
    eql(sealed, await viaWebCrypto.seal(NONCE, plaintext, AAD), `${length} bytes`);
    eql(await synchronous.open(NONCE, sealed, AAD), plaintext);
    for (const flip of [0, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[flip]! ^= 0x01;
      await rejects(synchronous.open(NONCE, bad, AAD), isBadRecordMac);
    }
    await rejects(synchronous.open(NONCE, sealed, Uint8Array.of(0x18)), isBadRecordMac);
  }
  await rejects(synchronous.open(NONCE, new Uint8Array(AEAD_TAG_LENGTH - 1), AAD), isBadRecordMac);
  await rejects(synchronous.seal(new Uint8Array(8), pattern(5), AAD), RangeError);
});

Deno.test("Aes256Gcm's synchronous path reads its inputs at the call, so the caller may reuse them at once", async () => {
  const aead = await createSynchronous(KEY);
  const buffer = pattern(100);
  const sealing = aead.seal(NONCE, buffer, AAD);
  buffer.fill(0);
  eql(await aead.open(NONCE, await sealing, AAD), pattern(100));
});
