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

import { concat, own, sha256, u16, u8, utf8 } from "../core/bytes.ts";

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

async function hmacKey(key: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", own(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** HMAC-SHA256. */
export async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(key), own(data)));
}

/** RFC 5869 HKDF-Extract with SHA-256: HMAC(salt, ikm). */
export async function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Promise<Uint8Array> {
  // An empty salt means HashLen zeros (RFC 5869 section 2.2); HMAC pads keys the same way.
  return await hmac(salt.length === 0 ? new Uint8Array(HASH_LENGTH) : salt, ikm);
}

/** RFC 5869 HKDF-Expand with SHA-256. @throws {RangeError} when length > 255 * 32 */
export async function hkdfExpand(
  prk: Uint8Array,
  info: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  if (length > 255 * HASH_LENGTH) throw new RangeError("HKDF-Expand length too large");
  const key = await hmacKey(prk);
  const out = new Uint8Array(length);
  let previous = new Uint8Array(0);
  let offset = 0;
  for (let counter = 1; offset < length; counter++) {
    const block = new Uint8Array(
      await crypto.subtle.sign("HMAC", key, own(concat(previous, info, u8(counter)))),
    );
    out.set(block.subarray(0, Math.min(block.length, length - offset)), offset);
    offset += block.length;
    previous = block;
  }
  return out;
}

/** Section 7.2 ExpandLabel. */
export async function expandLabel(
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  const fullLabel = utf8(LABEL_PREFIX + label);
  const info = concat(u16(length), u8(fullLabel.length), fullLabel, u8(context.length), context);
  return await hkdfExpand(secret, info, length);
}

/** Key and IV of one direction, derived from a traffic secret (section 7.3). */
export interface TrafficKeys {
  key: Uint8Array;
  iv: Uint8Array;
}

/** Derives the AES-256-GCM key and IV of a traffic secret. */
export async function trafficKeys(secret: Uint8Array): Promise<TrafficKeys> {
  return {
    key: await expandLabel(secret, LABEL_KEY, new Uint8Array(0), KEY_LENGTH),
    iv: await expandLabel(secret, LABEL_IV, new Uint8Array(0), IV_LENGTH),
  };
}

/** Section 8.4: the next traffic secret of a direction after a key update. */
export async function nextTrafficSecret(secret: Uint8Array): Promise<Uint8Array> {
  return await expandLabel(secret, LABEL_KEY_UPDATE, new Uint8Array(0), HASH_LENGTH);
}

/** Section 5.3: Finished verify_data = HMAC(finished_key, TH). */
export async function finishedMac(
  trafficSecret: Uint8Array,
  transcriptHash: Uint8Array,
): Promise<Uint8Array> {
  const finishedKey = await expandLabel(
    trafficSecret,
    LABEL_FINISHED,
    new Uint8Array(0),
    HASH_LENGTH,
  );
  return await hmac(finishedKey, transcriptHash);
}

/** Handshake secrets (section 7.3, up to the handshake traffic secrets). */
export interface HandshakeSecrets {
  handshakeSecret: Uint8Array;
  clientHandshakeTraffic: Uint8Array;
  serverHandshakeTraffic: Uint8Array;
}

/** Derives the handshake secrets from the shared secret and TH(ServerHello). */
export async function deriveHandshakeSecrets(
  sharedSecret: Uint8Array,
  thHello: Uint8Array,
): Promise<HandshakeSecrets> {
  const handshakeSecret = await hkdfExtract(utf8(HANDSHAKE_SALT), sharedSecret);
  return {
    handshakeSecret,
    clientHandshakeTraffic: await expandLabel(
      handshakeSecret,
      LABEL_CLIENT_HANDSHAKE,
      thHello,
      HASH_LENGTH,
    ),
    serverHandshakeTraffic: await expandLabel(
      handshakeSecret,
      LABEL_SERVER_HANDSHAKE,
      thHello,
      HASH_LENGTH,
    ),
  };
}

/** Application secrets (section 7.3, after the client Finished). */
export interface ApplicationSecrets {
  masterSecret: Uint8Array;
  clientApplicationTraffic: Uint8Array;
  serverApplicationTraffic: Uint8Array;
  verificationCode: Uint8Array;
}

/** Derives the master secret and the application secrets from TH(client Finished). */
export async function deriveApplicationSecrets(
  handshakeSecret: Uint8Array,
  thFinal: Uint8Array,
): Promise<ApplicationSecrets> {
  const derived = await expandLabel(
    handshakeSecret,
    LABEL_DERIVED,
    await sha256(new Uint8Array(0)),
    HASH_LENGTH,
  );
  const masterSecret = await hkdfExtract(derived, new Uint8Array(HASH_LENGTH));
  return {
    masterSecret,
    clientApplicationTraffic: await expandLabel(
      masterSecret,
      LABEL_CLIENT_APPLICATION,
      thFinal,
      HASH_LENGTH,
    ),
    serverApplicationTraffic: await expandLabel(
      masterSecret,
      LABEL_SERVER_APPLICATION,
      thFinal,
      HASH_LENGTH,
    ),
    verificationCode: await expandLabel(masterSecret, LABEL_VERIFICATION_CODE, thFinal, 8),
  };
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
 * everything appended so far.
 */
export class Transcript {
  #parts: Uint8Array[] = [];

  /** Appends one message's bytes. */
  add(message: Uint8Array): void {
    this.#parts.push(message.slice());
  }

  /** TH of the transcript so far. */
  async hash(): Promise<Uint8Array> {
    return await sha256(concat(...this.#parts));
  }
}
