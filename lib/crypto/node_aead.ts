/**
 * The synchronous AEADs of `node:crypto` as records use them: AES-256-GCM and ChaCha20-Poly1305
 * with a 96-bit nonce and a 16-byte tag appended. lib/crypto/aead.ts and
 * lib/crypto/chacha20_poly1305.ts call these on their synchronous paths (small records on a relay,
 * bulk ChaCha20-Poly1305); the Wycheproof vectors run through both.
 *
 * It does not load `node:crypto` (the callers decide when its 20-35 ms start-up is worth it) and
 * does not check nonce or key lengths (the callers do, with their own messages). `node:crypto`
 * would accept a short tag; we always pass `authTagLength: 16` and a 16-byte tag, so it cannot.
 *
 * @module
 */

import { wipe } from "../core/bytes.ts";
import type { loadNodeCrypto } from "../core/node_crypto.ts";

/** The `node:crypto` module. */
export type NodeCrypto = Awaited<ReturnType<typeof loadNodeCrypto>>;

/** `node:crypto`'s names of the two AEADs. */
export type NodeAeadAlgorithm = "aes-256-gcm" | "chacha20-poly1305";

/** A key held natively by `node:crypto` (like a CryptoKey, not in the JS heap). */
export interface SynchronousKey {
  cipher: NodeCrypto;
  algorithm: NodeAeadAlgorithm;
  key: ReturnType<NodeCrypto["createSecretKey"]>;
}

/** 16 bytes, as lib/crypto/aead.ts's AEAD_TAG_LENGTH (not imported: aead.ts imports this). */
const AEAD_TAG_LENGTH = 16;
const TAG_OPTIONS = { authTagLength: AEAD_TAG_LENGTH };

/** Copies `raw` into native memory; the caller keeps (and wipes) its own bytes. */
export function synchronousKey(
  cipher: NodeCrypto,
  algorithm: NodeAeadAlgorithm,
  raw: Uint8Array,
): SynchronousKey {
  const copy = raw.slice();
  try {
    return { cipher, algorithm, key: cipher.createSecretKey(copy) };
  } finally {
    wipe(copy);
  }
}

/**
 * Seals `parts`, one after the other, after `prefix` in one new buffer: prefix || ciphertext ||
 * tag. Both AEADs encrypt with a stream, so sealing the parts in turn is sealing their
 * concatenation, as long as each update() gives back exactly its input's length (checked).
 */
export function sealSynchronously(
  { cipher, algorithm, key }: SynchronousKey,
  nonce: Uint8Array,
  additionalData: Uint8Array,
  prefix: Uint8Array,
  parts: readonly Uint8Array[],
): Uint8Array {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  // Typed as GCM: the typings' overloads take one literal name at a time; both have this API.
  const sealer = cipher.createCipheriv(algorithm as "aes-256-gcm", key, nonce, TAG_OPTIONS);
  sealer.setAAD(additionalData, { plaintextLength: length });
  const out = new Uint8Array(prefix.length + length + AEAD_TAG_LENGTH);
  out.set(prefix);
  let at = prefix.length;
  for (const part of parts) {
    const sealed = sealer.update(part);
    if (sealed.length !== part.length) {
      throw new Error(`${algorithm} update() did not return its input's length`);
    }
    out.set(sealed, at);
    at += part.length;
  }
  if (sealer.final().length !== 0) throw new Error(`${algorithm} returned bytes at final()`);
  out.set(sealer.getAuthTag(), at);
  return out;
}

/**
 * Checks the tag and decrypts `sealed` (ciphertext || tag).
 *
 * @throws when the tag does not verify (from `final()`); what was decrypted before the check is
 *   wiped and never returned
 */
export function openSynchronously(
  { cipher, algorithm, key }: SynchronousKey,
  nonce: Uint8Array,
  sealed: Uint8Array,
  additionalData: Uint8Array,
): Uint8Array {
  const split = sealed.length - AEAD_TAG_LENGTH;
  const opener = cipher.createDecipheriv(algorithm as "aes-256-gcm", key, nonce, TAG_OPTIONS);
  opener.setAAD(additionalData, { plaintextLength: split });
  opener.setAuthTag(sealed.subarray(split));
  const body = opener.update(sealed.subarray(0, split));
  try {
    if (opener.final().length !== 0) throw new Error(`${algorithm} returned bytes at final()`);
  } catch (error) {
    wipe(body); // decrypted before the tag was checked: never released
    throw error;
  }
  // A buffer of its own (outputs are not pooled) is handed over without a copy.
  if (body.byteOffset === 0 && body.buffer.byteLength === body.length) {
    return new Uint8Array(body.buffer, 0, body.length);
  }
  const plaintext = body.slice();
  wipe(body);
  return plaintext;
}
