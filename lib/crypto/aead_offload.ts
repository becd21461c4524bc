/**
 * A record suite's AEAD (lib/crypto/record_suites.ts) in a worker thread, with the interface of
 * lib/crypto/aead.ts's `Aes256Gcm` and lib/crypto/chacha20_poly1305.ts's `ChaCha20Poly1305`.
 *
 * Deno's WebCrypto does most of an AES-GCM call on the calling thread, and `node:crypto`'s
 * ChaCha20-Poly1305 all of it, so a pipe that encrypts on
 * its main thread cannot read, encrypt and write at the same time. Bulk transfers move their
 * record keys here once they are under way (lib/protocol/record_protection.ts `offload()`); the bytes
 * produced are identical, only the thread differs. One worker serves every key of the process
 * and ends when the last key is forgotten.
 *
 * Like the main-thread classes, `seal()` and `open()` copy their inputs before they return, so callers may
 * reuse their buffers at once.
 *
 * @module
 */

import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH } from "./aead.ts";
import { AuthenticationError } from "../core/errors.ts";
import type { RecordSuiteName } from "./record_suites.ts";

/** A message to the worker (lib/crypto/aead_worker.ts). */
export type OffloadRequest =
  | { op: "key"; id: number; keyId: number; suite: RecordSuiteName; key: ArrayBuffer }
  | { op: "forget"; id: number; keyId: number }
  | {
    op: "seal" | "open";
    id: number;
    keyId: number;
    nonce: ArrayBuffer;
    data: ArrayBuffer;
    aad: ArrayBuffer;
  };

/** The worker's answer to one request. */
export type OffloadReply =
  | { id: number; ok: true; result?: Uint8Array }
  | { id: number; ok: false; error: string };

/** A request before it gets its id (Omit over each member of the union). */
type Unnumbered<T> = T extends unknown ? Omit<T, "id"> : never;

interface Waiter {
  resolve(result: Uint8Array | undefined): void;
  reject(error: Error): void;
}

/** The one worker thread, shared by every offloaded key; started on first use. */
class CryptoThread {
  #worker: Worker;
  #waiting = new Map<number, Waiter>();
  #nextId = 1;
  #keys = 0;
  #failure: Error | undefined;

  constructor() {
    this.#worker = new Worker(new URL("./aead_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#worker.onmessage = (event: MessageEvent<OffloadReply>) => {
      const reply = event.data;
      const waiter = this.#waiting.get(reply.id);
      if (waiter === undefined) return;
      this.#waiting.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.result);
      else waiter.reject(new Error(reply.error));
    };
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#fail(new Error(`the crypto worker failed: ${event.message}`));
    };
  }

  #fail(error: Error): void {
    this.#failure = error;
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
    this.#worker.terminate();
    if (thread === this) thread = undefined;
  }

  request(
    message: Unnumbered<OffloadRequest>,
    transfer: ArrayBuffer[] = [],
  ): Promise<Uint8Array | undefined> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** Gives the worker a key; resolves once it can be used. */
  async addKey(keyId: number, suite: RecordSuiteName, key: Uint8Array): Promise<void> {
    this.#keys++;
    const copy = key.slice(); // transferred: gone from this thread once posted
    try {
      await this.request({ op: "key", keyId, suite, key: copy.buffer }, [copy.buffer]);
    } catch (error) {
      this.forgetKey(keyId);
      throw error;
    }
  }

  /** Drops a key; the worker ends with the last one. */
  forgetKey(keyId: number): void {
    this.#keys--;
    if (this.#keys > 0 || this.#failure) {
      this.request({ op: "forget", keyId }).catch(() => {});
      return;
    }
    for (const waiter of this.#waiting.values()) waiter.reject(new Error("crypto worker ended"));
    this.#waiting.clear();
    this.#worker.terminate();
    if (thread === this) thread = undefined;
  }
}

let thread: CryptoThread | undefined;
let nextKeyId = 1;

/** Copies a view into an ArrayBuffer of its own, to be transferred. */
function detachedCopy(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

/** One record key held by the crypto worker. */
export class OffloadedAead {
  #thread: CryptoThread;
  #keyId: number;
  #name: string;
  #destroyed = false;

  private constructor(worker: CryptoThread, keyId: number, suite: RecordSuiteName) {
    this.#thread = worker;
    this.#keyId = keyId;
    this.#name = suite === "aes-256-gcm" ? "AES-256-GCM" : "ChaCha20-Poly1305";
  }

  /**
   * Hands a raw key to the worker. The caller keeps (and wipes) its bytes.
   *
   * @throws {RangeError} when the key is not 32 bytes
   * @throws {Error} when the worker cannot start; callers keep their main-thread AEAD then
   */
  static async create(suite: RecordSuiteName, key: Uint8Array): Promise<OffloadedAead> {
    if (key.length !== AEAD_KEY_LENGTH) {
      throw new RangeError(`${suite} key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    }
    thread ??= new CryptoThread();
    const keyId = nextKeyId++;
    const worker = thread;
    await worker.addKey(keyId, suite, key);
    return new OffloadedAead(worker, keyId, suite);
  }

  #call(op: "seal" | "open", nonce: Uint8Array, data: Uint8Array, aad: Uint8Array) {
    if (nonce.length !== AEAD_NONCE_LENGTH) {
      throw new RangeError(
        `${this.#name} nonce must be ${AEAD_NONCE_LENGTH} bytes, got ${nonce.length}`,
      );
    }
    if (this.#destroyed) throw new RangeError(`this ${this.#name} key was destroyed`);
    const buffer = detachedCopy(data);
    return this.#thread.request(
      {
        op,
        keyId: this.#keyId,
        nonce: detachedCopy(nonce),
        data: buffer,
        aad: detachedCopy(aad),
      },
      [buffer],
    );
  }

  /** Encrypts and authenticates, as the main-thread class's `seal()`. */
  async seal(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    additionalData: Uint8Array,
  ): Promise<Uint8Array> {
    return (await this.#call("seal", nonce, plaintext, additionalData))!;
  }

  /**
   * Checks the tag and decrypts, as the main-thread class's `open()`.
   *
   * @throws {AuthenticationError} code "bad_record_mac" when the tag does not verify
   */
  async open(
    nonce: Uint8Array,
    sealed: Uint8Array,
    additionalData: Uint8Array,
  ): Promise<Uint8Array> {
    if (sealed.length < AEAD_TAG_LENGTH) {
      throw badRecordMac(this.#name, new RangeError("shorter than a tag"));
    }
    const opening = this.#call("open", nonce, sealed, additionalData);
    try {
      return (await opening)!;
    } catch (error) {
      // Only a failed tag check is the peer's doing; a dead worker is our own failure.
      if (error instanceof Error && error.message === "AuthenticationError") {
        throw badRecordMac(this.#name, error);
      }
      throw error;
    }
  }

  /** Tells the worker to drop the key. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#thread.forgetKey(this.#keyId);
  }
}

function badRecordMac(name: string, cause: unknown): AuthenticationError {
  return new AuthenticationError("bad_record_mac", `${name} authentication failed`, {
    alert: "bad_record_mac",
    cause,
  });
}
