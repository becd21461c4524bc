/**
 * WebCrypto's AEAD calls as records use them, for both record suites ("AES-GCM" and
 * "ChaCha20-Poly1305"): 96-bit nonce, 128-bit tag appended (WebCrypto's default tag length for
 * both). lib/crypto/aead.ts and lib/crypto/chacha20_poly1305.ts call these on their WebCrypto
 * paths; the Wycheproof vectors run through both.
 *
 * It does not check lengths or map errors (the callers do, with their own names). WebCrypto takes
 * "a copy of the bytes held by" each input when the call is made (W3C WebCrypto,
 * SubtleCrypto.encrypt step 2), so callers may reuse their buffers as soon as a call returns.
 *
 * @module
 */

import { own } from "../core/bytes.ts";

/** WebCrypto's names of the two AEADs. */
export type WebCryptoAeadName = "AES-GCM" | "ChaCha20-Poly1305";

/** WebCrypto's typings want ArrayBuffer-backed views; copy only when the buffer is shared. */
function bufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : own(bytes);
}

/** Encrypts and authenticates: ciphertext || tag. */
export async function webCryptoSeal(
  name: WebCryptoAeadName,
  key: CryptoKey,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  additionalData: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name, iv: own(nonce), additionalData: own(additionalData) },
      key,
      bufferSource(plaintext),
    ),
  );
}

/** Checks the tag and decrypts ciphertext || tag. @throws a DOMException when it does not verify */
export async function webCryptoOpen(
  name: WebCryptoAeadName,
  key: CryptoKey,
  nonce: Uint8Array,
  sealed: Uint8Array,
  additionalData: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.decrypt(
      { name, iv: own(nonce), additionalData: own(additionalData) },
      key,
      bufferSource(sealed),
    ),
  );
}
