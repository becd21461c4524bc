/**
 * The key schedule: transcript hash, HKDF ExpandLabel, every derived secret, traffic keys and IVs,
 * Finished MACs, key update and the verification code.
 *
 * Every label is a named constant spelled exactly as in the spec. Nothing here touches sockets or
 * knows message layouts; it turns secrets and transcript hashes into secrets.
 *
 * Mirrors: docs/PROTOCOL.md section 7.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { formatVerificationCode } from "./key_schedule.ts";
 * strictEqual(formatVerificationCode(new Uint8Array(8)), "0000 0000 0000");
 * ```
 *
 * @module
 */

import { concat, u16, u8, utf8 } from "../core/bytes.ts";
import { HmacSha256, hmacSha256, Sha256, sha256 } from "./sha256.ts";

/** Section 7.2: the prefix of every label. */
export const LABEL_PREFIX = "securechat1 ";
/** Section 7.3: the salt of the first extraction. */
export const HANDSHAKE_SALT = "securechat/1";
/** Section 7.3 labels. */
export const LABEL_CLIENT_HANDSHAKE = "c hs traffic";
export const LABEL_SERVER_HANDSHAKE = "s hs traffic";
export const LABEL_DERIVED = "derived";
export const LABEL_CLIENT_APPLICATION = "c ap traffic";
export const LABEL_SERVER_APPLICATION = "s ap traffic";
export const LABEL_VERIFICATION_CODE = "verification code";
export const LABEL_KEY = "key";
export const LABEL_IV = "iv";
export const LABEL_FINISHED = "finished";
export const LABEL_KEY_UPDATE = "traffic upd";

/** Length of every secret, hash and MAC (SHA-256). */
export const HASH_LENGTH = 32;
/** AES-256-GCM key length. */
export const KEY_LENGTH = 32;
/** AES-GCM nonce length. */
export const IV_LENGTH = 12;

/*
 * HMAC, HKDF and the transcript hash run synchronously (lib/crypto/sha256.ts), not through
 * WebCrypto: their inputs are a few hundred bytes, and each WebCrypto call is handed to a blocking
 * thread and back. A handshake made about 40 of them on each side (an importKey and a sign per
 * HKDF label, six digests of the growing transcript).
 */

/** SHA-256 of `data`, synchronously. */
export function sha256Sync(data: Uint8Array): Uint8Array {
  return sha256(data);
}

/** HMAC-SHA256, synchronously. */
export function hmacSync(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmacSha256(key, data);
}

/** HMAC-SHA256. */
export function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return Promise.resolve(hmacSync(key, data));
}

/** RFC 5869 HKDF-Extract with SHA-256: HMAC(salt, ikm), synchronously. */
export function hkdfExtractSync(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  // An empty salt means HashLen zeros (RFC 5869 section 2.2); HMAC pads keys the same way.
  return hmacSync(salt.length === 0 ? new Uint8Array(HASH_LENGTH) : salt, ikm);
}

/** RFC 5869 HKDF-Extract with SHA-256: HMAC(salt, ikm). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Promise<Uint8Array> {
  return Promise.resolve(hkdfExtractSync(salt, ikm));
}

/** RFC 5869 HKDF-Expand with SHA-256, synchronously. @throws {RangeError} when length > 255 * 32 */
export function hkdfExpandSync(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (length > 255 * HASH_LENGTH) throw new RangeError("HKDF-Expand length too large");
  const keyed = new HmacSha256(prk);
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  let offset = 0;
  for (let counter = 1; offset < length; counter++) {
    const block = keyed.mac(previous, info, u8(counter));
    out.set(block.subarray(0, Math.min(block.length, length - offset)), offset);
    offset += block.length;
    previous.fill(0);
    previous = block;
  }
  previous.fill(0);
  keyed.destroy();
  return out;
}

/** RFC 5869 HKDF-Expand with SHA-256. @throws {RangeError} when length > 255 * 32 */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array> {
  try {
    return Promise.resolve(hkdfExpandSync(prk, info, length));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Section 7.2 ExpandLabel, synchronously. */
export function expandLabelSync(
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const fullLabel = utf8(LABEL_PREFIX + label);
  const info = concat(u16(length), u8(fullLabel.length), fullLabel, u8(context.length), context);
  return hkdfExpandSync(secret, info, length);
}

/** Section 7.2 ExpandLabel. */
export function expandLabel(
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  try {
    return Promise.resolve(expandLabelSync(secret, label, context, length));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Key and IV of one direction, derived from a traffic secret (section 7.3). */
export interface TrafficKeys {
  key: Uint8Array;
  iv: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Derives the AES-256-GCM key and IV of a traffic secret. */
export function trafficKeys(secret: Uint8Array): Promise<TrafficKeys> {
  return Promise.resolve({
    key: expandLabelSync(secret, LABEL_KEY, EMPTY, KEY_LENGTH),
    iv: expandLabelSync(secret, LABEL_IV, EMPTY, IV_LENGTH),
  });
}

/** Section 8.4: the next traffic secret of a direction after a key update. */
export function nextTrafficSecret(secret: Uint8Array): Promise<Uint8Array> {
  return Promise.resolve(expandLabelSync(secret, LABEL_KEY_UPDATE, EMPTY, HASH_LENGTH));
}

/** Section 5.3: Finished verify_data = HMAC(finished_key, TH), synchronously. */
export function finishedMacSync(trafficSecret: Uint8Array, transcriptHash: Uint8Array): Uint8Array {
  const finishedKey = expandLabelSync(trafficSecret, LABEL_FINISHED, EMPTY, HASH_LENGTH);
  const mac = hmacSync(finishedKey, transcriptHash);
  finishedKey.fill(0);
  return mac;
}

/** Section 5.3: Finished verify_data = HMAC(finished_key, TH). */
export function finishedMac(
  trafficSecret: Uint8Array,
  transcriptHash: Uint8Array,
): Promise<Uint8Array> {
  return Promise.resolve(finishedMacSync(trafficSecret, transcriptHash));
}

/** Handshake secrets (section 7.3, up to the handshake traffic secrets). */
export interface HandshakeSecrets {
  handshakeSecret: Uint8Array;
  clientHandshakeTraffic: Uint8Array;
  serverHandshakeTraffic: Uint8Array;
}

/** Derives the handshake secrets from the shared secret and TH(ServerHello), synchronously. */
export function deriveHandshakeSecretsSync(
  sharedSecret: Uint8Array,
  thHello: Uint8Array,
): HandshakeSecrets {
  const handshakeSecret = hkdfExtractSync(utf8(HANDSHAKE_SALT), sharedSecret);
  return {
    handshakeSecret,
    clientHandshakeTraffic: expandLabelSync(
      handshakeSecret,
      LABEL_CLIENT_HANDSHAKE,
      thHello,
      HASH_LENGTH,
    ),
    serverHandshakeTraffic: expandLabelSync(
      handshakeSecret,
      LABEL_SERVER_HANDSHAKE,
      thHello,
      HASH_LENGTH,
    ),
  };
}

/** Derives the handshake secrets from the shared secret and TH(ServerHello). */
export function deriveHandshakeSecrets(
  sharedSecret: Uint8Array,
  thHello: Uint8Array,
): Promise<HandshakeSecrets> {
  return Promise.resolve(deriveHandshakeSecretsSync(sharedSecret, thHello));
}

/** Application secrets (section 7.3, after the client Finished). */
export interface ApplicationSecrets {
  masterSecret: Uint8Array;
  clientApplicationTraffic: Uint8Array;
  serverApplicationTraffic: Uint8Array;
  verificationCode: Uint8Array;
}

/** SHA-256 of the empty string: the context of the "derived" label (section 7.3). */
const EMPTY_HASH = sha256(EMPTY);

/** Derives the master secret and the application secrets from TH(client Finished), synchronously. */
export function deriveApplicationSecretsSync(
  handshakeSecret: Uint8Array,
  thFinal: Uint8Array,
): ApplicationSecrets {
  const derived = expandLabelSync(handshakeSecret, LABEL_DERIVED, EMPTY_HASH, HASH_LENGTH);
  const masterSecret = hkdfExtractSync(derived, new Uint8Array(HASH_LENGTH));
  derived.fill(0);
  return {
    masterSecret,
    clientApplicationTraffic: expandLabelSync(
      masterSecret,
      LABEL_CLIENT_APPLICATION,
      thFinal,
      HASH_LENGTH,
    ),
    serverApplicationTraffic: expandLabelSync(
      masterSecret,
      LABEL_SERVER_APPLICATION,
      thFinal,
      HASH_LENGTH,
    ),
    verificationCode: expandLabelSync(masterSecret, LABEL_VERIFICATION_CODE, thFinal, 8),
  };
}

/** Derives the master secret and the application secrets from TH(client Finished). */
export function deriveApplicationSecrets(
  handshakeSecret: Uint8Array,
  thFinal: Uint8Array,
): Promise<ApplicationSecrets> {
  return Promise.resolve(deriveApplicationSecretsSync(handshakeSecret, thFinal));
}

/**
 * Section 7.4: 8 code bytes as a u64, modulo 10^12, as three groups of four digits.
 */
export function formatVerificationCode(codeBytes: Uint8Array): string {
  if (codeBytes.length !== 8) throw new RangeError("verification code bytes must be 8 long");
  const value = new DataView(codeBytes.buffer, codeBytes.byteOffset, 8).getBigUint64(0);
  const digits = (value % 1_000_000_000_000n).toString().padStart(12, "0");
  return `${digits.slice(0, 4)} ${digits.slice(4, 8)} ${digits.slice(8)}`;
}

/**
 * The running transcript (section 7.1): messages are appended in order, and `hash()` gives TH of
 * everything appended so far. The hash runs as the messages arrive: `hash()` finishes a copy of
 * the running state instead of hashing the whole transcript again (it is about 4.5 KB by the last
 * Finished with x25519-mlkem768 shares, and hashed six times per handshake).
 */
export class Transcript {
  #running = new Sha256();

  /** Appends one message's bytes. */
  add(message: Uint8Array): void {
    this.#running.update(message);
  }

  /** TH of the transcript so far, synchronously. */
  hashSync(): Uint8Array {
    return this.#running.clone().digest();
  }

  /** TH of the transcript so far. */
  hash(): Promise<Uint8Array> {
    return Promise.resolve(this.hashSync());
  }
}
