/**
 * AES-256-GCM (NIST SP 800-38D) exactly as records use it: a 256-bit key, a 96-bit nonce, a
 * 128-bit tag appended to the ciphertext. The one place lib/protocol/record_protection.ts reaches
 * WebCrypto's AES-GCM, so that public vectors (Wycheproof `aes_gcm_test.json`) run through the
 * code records run through.
 *
 * It does not choose nonces or keys: lib/protocol/record_protection.ts builds the nonce as IV XOR sequence
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
 *   reuses as soon as the call returns; lib/protocol/record_protection.ts relies on it and aead_test.ts
 *   proves it.
 * - Every WebCrypto call is an asynchronous op with a fixed cost of tens of microseconds, which
 *   dominates small records: a room's relay seals one record per member for every message.
 *   After `useSynchronousCipherForSmallInputs()`, keys created from then on seal and open inputs
 *   of at most `SMALL_INPUT_LIMIT` bytes with `node:crypto`'s synchronous AES-256-GCM instead
 *   (same bytes: the Wycheproof vectors run through both paths). It is opt-in per process because
 *   loading `node:crypto` costs ~35 ms of start-up (lib/core/node_crypto.ts): the relay pays it once at
 *   start, a dial never does. `node:crypto` would accept a shortened tag; we always pass
 *   `authTagLength: 16` and a 16-byte tag, so it cannot.
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

import { own } from "../core/bytes.ts";
import { AuthenticationError } from "../core/errors.ts";
import { loadNodeCrypto } from "../core/node_crypto.ts";
import { webCryptoOpen, webCryptoSeal } from "./webcrypto_aead.ts";
import {
  type NodeCrypto,
  openSynchronously,
  sealSynchronously,
  type SynchronousKey,
  synchronousKey,
} from "./node_aead.ts";

/** AES-256 key length, in bytes. */
export const AEAD_KEY_LENGTH = 32;
/** GCM nonce length, in bytes (96 bits, the only length GCM uses without GHASHing the IV). */
export const AEAD_NONCE_LENGTH = 12;
/** GCM tag length, in bytes (128 bits). */
export const AEAD_TAG_LENGTH = 16;

/**
 * Inputs up to this many bytes take the synchronous path once it is enabled. Measured on the
 * room relay (issue 6): beyond a few KiB WebCrypto's per-byte speed wins over its call cost.
 */
export const SMALL_INPUT_LIMIT = 4096;

let smallInputCipher: NodeCrypto | undefined;

/**
 * Makes keys created from now on in this process handle inputs of at most `SMALL_INPUT_LIMIT`
 * bytes with `node:crypto` (see the module doc); `false` switches back for keys created later.
 */
export async function useSynchronousCipherForSmallInputs(enabled = true): Promise<void> {
  smallInputCipher = enabled ? await loadNodeCrypto() : undefined;
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
  #small: SynchronousKey | undefined;

  private constructor(key: CryptoKey, small: SynchronousKey | undefined) {
    this.#key = key;
    this.#small = small;
  }

  /** Inputs up to this many bytes are sealed and opened synchronously (0: none, all WebCrypto). */
  get synchronousInputLimit(): number {
    return this.#small ? SMALL_INPUT_LIMIT : 0;
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
    const cipher = smallInputCipher;
    if (cipher === undefined) return new Aes256Gcm(cryptoKey, undefined);
    return new Aes256Gcm(cryptoKey, synchronousKey(cipher, "aes-256-gcm", key));
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
    if (this.#small && plaintext.length <= SMALL_INPUT_LIMIT) {
      return sealSynchronously(this.#small, nonce, additionalData, new Uint8Array(0), [plaintext]);
    }
    return await webCryptoSeal("AES-GCM", this.#key, nonce, plaintext, additionalData);
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
      if (this.#small && sealed.length - AEAD_TAG_LENGTH <= SMALL_INPUT_LIMIT) {
        return openSynchronously(this.#small, nonce, sealed, additionalData);
      }
      return await webCryptoOpen("AES-GCM", this.#key, nonce, sealed, additionalData);
    } catch (error) {
      throw new AuthenticationError("bad_record_mac", "AES-256-GCM authentication failed", {
        alert: "bad_record_mac",
        cause: error,
      });
    }
  }
}
