/**
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), synchronous, in plain TypeScript: what the
 * key schedule (lib/crypto/key_schedule.ts) and key fingerprints hash.
 *
 * Why not WebCrypto: each `crypto.subtle` call is handed to a blocking thread and back (two futex
 * wake-ups, about 30-50 us of CPU for an importKey plus an HMAC of 60 bytes), and a handshake made
 * about 40 of them on each side for inputs of a few hundred bytes. Why not an npm package: loading
 * one (`@noble/hashes`) added 3-10 ms to every `securechat dial` start (dial to a closed port,
 * median of 15: 60-65 -> 68-81 ms), most of a pipe's time-to-ready budget over socat.
 *
 * Only additions, rotations and XORs on 32-bit words: no table lookup or branch depends on the data,
 * so keys hashed here (HMAC keys, traffic secrets) do not leak through timing. Checked against
 * WebCrypto and the Wycheproof HMAC-SHA256 vectors (tests/crypto/sha256_test.ts,
 * tests/crypto/wycheproof_hmac_test.ts).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { sha256 } from "./sha256.ts";
 * import { toHex } from "../core/bytes.ts";
 * strictEqual(
 *   toHex(sha256(new TextEncoder().encode("abc"))),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * ```
 *
 * @module
 */

/** Bytes of a digest. */
export const SHA256_LENGTH = 32;
/** Bytes of a compression block. */
const BLOCK = 64;

// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes.
const K = Int32Array.from([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

// Section 5.3.3: the initial hash value.
const IV = Int32Array.from([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** The message schedule, shared: compression never re-enters. */
const W = new Int32Array(64);

/** Section 6.2.2: one compression of the 64-byte block at `offset` of `data` into `state`. */
function compress(state: Int32Array, data: Uint8Array, offset: number): void {
  for (let t = 0; t < 16; t++, offset += 4) {
    W[t] = (data[offset]! << 24) | (data[offset + 1]! << 16) | (data[offset + 2]! << 8) |
      data[offset + 3]!;
  }
  for (let t = 16; t < 64; t++) {
    const w15 = W[t - 15]!;
    const w2 = W[t - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[t] = (s1 + W[t - 7]! + s0 + W[t - 16]!) | 0;
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let e = state[4]!;
  let f = state[5]!;
  let g = state[6]!;
  let h = state[7]!;
  for (let t = 0; t < 64; t++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + s1 + ch + K[t]! + W[t]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (s0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}

/** An incremental SHA-256: `update()` as data arrives, `digest()` once; `clone()` to branch. */
export class Sha256 {
  #state = IV.slice();
  #buffer = new Uint8Array(BLOCK);
  /** Bytes waiting in `#buffer`. */
  #buffered = 0;
  /** Bytes hashed so far (a handshake never nears 2^53). */
  #length = 0;
  #finished = false;

  /** Hashes `data` in. @throws {Error} after `digest()` */
  update(data: Uint8Array): this {
    if (this.#finished) throw new Error("SHA-256: update after digest");
    this.#length += data.length;
    let offset = 0;
    if (this.#buffered > 0) {
      const take = Math.min(BLOCK - this.#buffered, data.length);
      this.#buffer.set(data.subarray(0, take), this.#buffered);
      this.#buffered += take;
      offset = take;
      if (this.#buffered < BLOCK) return this;
      compress(this.#state, this.#buffer, 0);
      this.#buffered = 0;
    }
    for (; offset + BLOCK <= data.length; offset += BLOCK) compress(this.#state, data, offset);
    if (offset < data.length) {
      this.#buffer.set(data.subarray(offset), 0);
      this.#buffered = data.length - offset;
    }
    return this;
  }

  /** A copy of the running state: the digest of what was hashed so far, and more may follow. */
  clone(): Sha256 {
    const copy = new Sha256();
    copy.#state.set(this.#state);
    copy.#buffer.set(this.#buffer);
    copy.#buffered = this.#buffered;
    copy.#length = this.#length;
    copy.#finished = this.#finished;
    return copy;
  }

  /** Wipes the state without a digest; the hash is unusable afterwards. */
  wipe(): void {
    this.#finished = true;
    this.#state.fill(0);
    this.#buffer.fill(0);
  }

  /** Section 5.1.1 padding and the final compressions; wipes the state. @throws {Error} twice */
  digest(): Uint8Array {
    if (this.#finished) throw new Error("SHA-256: digest called twice");
    this.#finished = true;
    const buffer = this.#buffer;
    buffer.fill(0, this.#buffered);
    buffer[this.#buffered] = 0x80;
    if (this.#buffered >= BLOCK - 8) {
      compress(this.#state, buffer, 0);
      buffer.fill(0);
    }
    const view = new DataView(buffer.buffer);
    view.setUint32(BLOCK - 8, Math.floor(this.#length / 0x20000000));
    view.setUint32(BLOCK - 4, (this.#length << 3) >>> 0);
    compress(this.#state, buffer, 0);
    const out = new Uint8Array(SHA256_LENGTH);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setInt32(i * 4, this.#state[i]!);
    this.#state.fill(0);
    buffer.fill(0);
    W.fill(0);
    return out;
  }
}

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  return new Sha256().update(data).digest();
}

/** RFC 2104 HMAC-SHA256, keyed once: `mac()` as often as needed, then `destroy()`. */
export class HmacSha256 {
  #inner: Sha256;
  #outer: Sha256;

  constructor(key: Uint8Array) {
    // RFC 2104 section 2: a key longer than the block is hashed first, a shorter one zero-padded.
    const block = new Uint8Array(BLOCK);
    block.set(key.length > BLOCK ? sha256(key) : key);
    for (let i = 0; i < BLOCK; i++) block[i]! ^= 0x36;
    this.#inner = new Sha256().update(block);
    for (let i = 0; i < BLOCK; i++) block[i]! ^= 0x36 ^ 0x5c;
    this.#outer = new Sha256().update(block);
    block.fill(0);
  }

  /** HMAC of the concatenation of `parts`. */
  mac(...parts: Uint8Array[]): Uint8Array {
    const inner = this.#inner.clone();
    for (const part of parts) inner.update(part);
    return this.#outer.clone().update(inner.digest()).digest();
  }

  /** Wipes the keyed states; `mac()` throws afterwards. */
  destroy(): void {
    this.#inner.wipe();
    this.#outer.wipe();
  }
}

/** HMAC-SHA256 of `data` under `key`. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const keyed = new HmacSha256(key);
  const mac = keyed.mac(data);
  keyed.destroy();
  return mac;
}
