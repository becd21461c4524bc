/**
 * ChaCha20-Poly1305 (RFC 8439) exactly as records use it: a 256-bit key, a 96-bit nonce, a
 * 128-bit tag appended to the ciphertext. The one place lib/protocol/record_protection.ts reaches a
 * ChaCha20-Poly1305 implementation, so that the public vectors (Wycheproof
 * `chacha20_poly1305_test.json`) run through the code records run through.
 *
 * Two implementations of the same function, chosen per call:
 * - WebCrypto's "ChaCha20-Poly1305" (Deno 2.9; the key is imported in "raw-secret" format), an
 *   asynchronous op. Always available, nothing to load.
 * - `node:crypto`'s synchronous "chacha20-poly1305", after `loadSynchronousChaCha20Poly1305()`.
 *   Measured on the 2-core bench machine (Deno 2.9.6, 256 MiB in 256 KiB calls): 1,678 MB/s against
 *   926 MB/s for WebCrypto with 4 calls in flight, and no thread hop per call. Loading `node:crypto`
 *   costs a fresh process about 20-35 ms (lib/core/node_crypto.ts), so a dial never pays it up front:
 *   the record layer loads it once a connection has moved bulk data (record_protection.ts), and a
 *   relay loads it at start.
 * Both produce the same bytes; the Wycheproof vectors run through both.
 *
 * WebCrypto and `node:crypto` both copy their inputs when called, so callers may reuse a buffer as
 * soon as `seal()` or `open()` returns (see lib/crypto/aead.ts). `node:crypto` would accept a short
 * tag; we always pass `authTagLength: 16` and a 16-byte tag, so it cannot.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { ChaCha20Poly1305 } from "./chacha20_poly1305.ts";
 * const aead = await ChaCha20Poly1305.create(new Uint8Array(32).fill(1));
 * const nonce = new Uint8Array(12);
 * const sealed = await aead.seal(nonce, Uint8Array.of(1, 2, 3), Uint8Array.of(0x17));
 * deepStrictEqual(await aead.open(nonce, sealed, Uint8Array.of(0x17)), Uint8Array.of(1, 2, 3));
 * ```
 *
 * Mirrors: docs/PROTOCOL.md section 8.1 (`AEAD-Seal` with record suite chacha20-poly1305).
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
import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH } from "./aead.ts";

let synchronousCipher: NodeCrypto | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads `node:crypto` once per process, so that keys created from then on seal and open
 * synchronously. Safe to call many times.
 */
export function loadSynchronousChaCha20Poly1305(): Promise<void> {
  loading ??= loadNodeCrypto().then((module) => {
    synchronousCipher = module;
  });
  return loading;
}

/** True once `loadSynchronousChaCha20Poly1305()` finished: new keys then take the fast path. */
export function synchronousChaCha20Poly1305Loaded(): boolean {
  return synchronousCipher !== undefined;
}

const ALGORITHM = "ChaCha20-Poly1305";

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== AEAD_NONCE_LENGTH) {
    throw new RangeError(
      `ChaCha20-Poly1305 nonce must be ${AEAD_NONCE_LENGTH} bytes, got ${nonce.length}`,
    );
  }
}

/** One ChaCha20-Poly1305 key, non-extractable once imported. */
export class ChaCha20Poly1305 {
  #key: CryptoKey;
  #synchronous: SynchronousKey | undefined;

  private constructor(key: CryptoKey, synchronous: SynchronousKey | undefined) {
    this.#key = key;
    this.#synchronous = synchronous;
  }

  /** True when this key seals and opens with `node:crypto` (see the module doc). */
  get synchronous(): boolean {
    return this.#synchronous !== undefined;
  }

  /**
   * Imports a raw key. The caller keeps (and wipes) its bytes.
   *
   * @param key 32 bytes
   * @throws {RangeError} when the key is not 32 bytes
   */
  static async create(key: Uint8Array): Promise<ChaCha20Poly1305> {
    if (key.length !== AEAD_KEY_LENGTH) {
      throw new RangeError(
        `ChaCha20-Poly1305 key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`,
      );
    }
    // "raw-secret" is the format WebCrypto's newer algorithms take (Deno 2.9 refuses "raw").
    const cryptoKey = await crypto.subtle.importKey(
      "raw-secret" as "raw",
      own(key),
      ALGORITHM,
      false,
      ["encrypt", "decrypt"],
    );
    const cipher = synchronousCipher;
    if (cipher === undefined) return new ChaCha20Poly1305(cryptoKey, undefined);
    return new ChaCha20Poly1305(cryptoKey, synchronousKey(cipher, "chacha20-poly1305", key));
  }

  /**
   * Encrypts and authenticates.
   *
   * @param nonce 12 bytes, never reused with this key
   * @returns ciphertext || tag (plaintext length + 16 bytes)
   * @throws {RangeError} when the nonce is not 12 bytes
   */
  async seal(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    additionalData: Uint8Array,
  ): Promise<Uint8Array> {
    checkNonce(nonce);
    if (this.#synchronous) {
      return sealSynchronously(this.#synchronous, nonce, additionalData, new Uint8Array(0), [
        plaintext,
      ]);
    }
    return await webCryptoSeal(ALGORITHM, this.#key, nonce, plaintext, additionalData);
  }

  /**
   * On the synchronous path, seals `type || content` straight into a record frame after `header`
   * (which is also the additional data): one pass over the content instead of assembling the
   * plaintext, sealing it and copying the result into a frame (lib/protocol/record_protection.ts).
   * Undefined on the WebCrypto path, where the caller seals as usual.
   *
   * @returns header || ciphertext || tag, or undefined
   */
  sealRecord(
    nonce: Uint8Array,
    header: Uint8Array,
    type: number,
    content: Uint8Array,
  ): Uint8Array | undefined {
    // The header is also the additional data (PROTOCOL.md 8.1).
    return this.sealAfter(nonce, header, header, [Uint8Array.of(type), content]);
  }

  /**
   * On the synchronous path, seals the concatenation of `parts` straight into one buffer after
   * `prefix`: one pass and one allocation instead of assembling the plaintext, sealing it and
   * copying the result after the prefix (a file transfer's Data, lib/transfer/data_seal.ts). The
   * prefix is not authenticated unless it is also in `additionalData`. Undefined on the WebCrypto
   * path, where the caller seals as usual.
   *
   * @returns prefix || ciphertext || tag, or undefined
   */
  sealAfter(
    nonce: Uint8Array,
    additionalData: Uint8Array,
    prefix: Uint8Array,
    parts: readonly Uint8Array[],
  ): Uint8Array | undefined {
    checkNonce(nonce);
    if (this.#synchronous === undefined) return undefined;
    return sealSynchronously(this.#synchronous, nonce, additionalData, prefix, parts);
  }

  /**
   * Checks the tag and decrypts.
   *
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
      if (this.#synchronous) {
        return openSynchronously(this.#synchronous, nonce, sealed, additionalData);
      }
      return await webCryptoOpen(ALGORITHM, this.#key, nonce, sealed, additionalData);
    } catch (error) {
      throw new AuthenticationError("bad_record_mac", "ChaCha20-Poly1305 authentication failed", {
        alert: "bad_record_mac",
        cause: error,
      });
    }
  }
}
