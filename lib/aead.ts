/**
 * AES-256-GCM (NIST SP 800-38D) exactly as records use it: a 256-bit key, a 96-bit nonce, a
 * 128-bit tag appended to the ciphertext. The one place lib/record_protection.ts reaches
 * WebCrypto's AES-GCM, so that public vectors (Wycheproof `aes_gcm_test.json`) run through the
 * code records run through.
 *
 * It does not choose nonces or keys: lib/record_protection.ts builds the nonce as IV XOR sequence
 * number and derives the key from a traffic secret.
 *
 * Mirrors: docs/PROTOCOL.md section 8.1 (`AES-256-GCM-Seal(key, nonce, aad, plaintext)`).
 *
 * WebCrypto quirks handled here:
 * - WebCrypto's AES-GCM also takes 128- and 192-bit keys, IVs of any length and shorter tags. We
 *   refuse every shape but ours with `RangeError`, so a bug cannot fall back to a weaker one.
 * - A failed tag check is a `DOMException` ("OperationError"); we map it, and input shorter than a
 *   tag, to `AuthenticationError` code "bad_record_mac".
 * - WebCrypto takes "a copy of the bytes held by" each input when the call is made (W3C WebCrypto,
 *   SubtleCrypto.encrypt step 2), so `seal()` and `open()` may be handed a buffer that the caller
 *   reuses as soon as the call returns; lib/record_protection.ts relies on it and aead_test.ts
 *   proves it.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { Aes256Gcm } from "./aead.ts";
 * const aead = await Aes256Gcm.create(new Uint8Array(32).fill(1));
 * const nonce = new Uint8Array(12);
 * const aad = Uint8Array.of(0x17);
 * const sealed = await aead.seal(nonce, Uint8Array.of(1, 2, 3), aad);
 * deepStrictEqual(await aead.open(nonce, sealed, aad), Uint8Array.of(1, 2, 3));
 * ```
 *
 * @module
 */

import { own } from "./bytes.ts";
import { AuthenticationError } from "./errors.ts";

/** AES-256 key length, in bytes. */
export const AEAD_KEY_LENGTH = 32;
/** GCM nonce length, in bytes (96 bits, the only length GCM uses without GHASHing the IV). */
export const AEAD_NONCE_LENGTH = 12;
/** GCM tag length, in bytes (128 bits). */
export const AEAD_TAG_LENGTH = 16;

/** WebCrypto's typings want ArrayBuffer-backed views; copy only when the buffer is shared. */
function bufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : own(bytes);
}

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== AEAD_NONCE_LENGTH) {
    throw new RangeError(
      `AES-256-GCM nonce must be ${AEAD_NONCE_LENGTH} bytes, got ${nonce.length}`,
    );
  }
}

/** One AES-256-GCM key, non-extractable once imported. */
export class Aes256Gcm {
  #key: CryptoKey;

  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /**
   * Imports a raw key. The caller keeps (and wipes) its bytes.
   *
   * @param key 32 bytes
   * @returns the AEAD
   * @throws {RangeError} when the key is not 32 bytes (AES-128 and AES-192 are refused)
   */
  static async create(key: Uint8Array): Promise<Aes256Gcm> {
    if (key.length !== AEAD_KEY_LENGTH) {
      throw new RangeError(`AES-256-GCM key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    }
    const cryptoKey = await crypto.subtle.importKey("raw", own(key), "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new Aes256Gcm(cryptoKey);
  }

  /**
   * Encrypts and authenticates.
   *
   * @param nonce 12 bytes, never reused with this key
   * @param plaintext the content
   * @param additionalData authenticated, not encrypted
   * @returns ciphertext || tag (plaintext length + 16 bytes)
   * @throws {RangeError} when the nonce is not 12 bytes
   */
  async seal(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    additionalData: Uint8Array,
  ): Promise<Uint8Array> {
    checkNonce(nonce);
    return new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: own(nonce), additionalData: own(additionalData) },
        this.#key,
        bufferSource(plaintext),
      ),
    );
  }

  /**
   * Checks the tag and decrypts.
   *
   * @param nonce 12 bytes
   * @param sealed ciphertext || tag
   * @param additionalData as given to `seal()`
   * @returns the plaintext
   * @throws {RangeError} when the nonce is not 12 bytes
   * @throws {AuthenticationError} code "bad_record_mac" when the tag does not verify or `sealed`
   *   is shorter than a tag; nothing of the plaintext is released
   */
  async open(
    nonce: Uint8Array,
    sealed: Uint8Array,
    additionalData: Uint8Array,
  ): Promise<Uint8Array> {
    checkNonce(nonce);
    try {
      if (sealed.length < AEAD_TAG_LENGTH) throw new RangeError("shorter than a tag");
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: own(nonce), additionalData: own(additionalData) },
          this.#key,
          bufferSource(sealed),
        ),
      );
    } catch (error) {
      throw new AuthenticationError("bad_record_mac", "AES-256-GCM authentication failed", {
        alert: "bad_record_mac",
        cause: error,
      });
    }
  }
}
