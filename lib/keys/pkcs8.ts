/**
 * PKCS#8 private keys: the plain `PrivateKeyInfo` structure (RFC 5958 section 2) and its
 * passphrase-encrypted form `EncryptedPrivateKeyInfo` (RFC 5958 section 3) with PBES2
 * (RFC 8018 section 6.2): PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2, RFC 8018 appendix B.1.2)
 * and AES-256-CBC with PKCS#7 padding (RFC 8018 appendix B.2.5).
 *
 * We write exactly one shape: 600,000 PBKDF2 iterations (OWASP's 2023 figure for
 * PBKDF2-HMAC-SHA256), a 16-byte random salt and a 16-byte random IV. We read that shape from any
 * encoder, which includes `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256` (OpenSSL
 * 3's default for `-topk8`, with an 8-byte salt and 2,048 iterations). Every other scheme (PBES1,
 * PKCS#12 PBE, scrypt, HMAC-SHA1, other ciphers) is refused with a hint to convert the file.
 *
 * Caveats:
 * - A wrong passphrase is detected by the CBC padding check or, in about 1 case in 256 where the
 *   garbage happens to end in valid padding, by the decrypted `PrivateKeyInfo` failing to parse.
 *   CBC has no MAC: the decryption is not authenticated, and a tampered file can only be told
 *   apart from a wrong passphrase in that it still fails with the right one.
 * - The passphrase is used as its UTF-8 bytes, without Unicode normalization, as OpenSSL does.
 * - The iteration count read from a file is capped at {@linkcode MAX_PBKDF2_ITERATIONS}, so a
 *   crafted file cannot make us spin for hours.
 * - The derived AES key passes through JavaScript memory (wiped right after import) because it
 *   comes from {@linkcode pbkdf2HmacSha256}, the one PBKDF2 function the public vectors test.
 *
 * @module
 */

import { own, wipe } from "../core/bytes.ts";
import {
  DerReader,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  TAG,
} from "./der.ts";
import { SecurechatError } from "../core/errors.ts";

/** PBKDF2 iterations we write. */
export const PBKDF2_ITERATIONS = 600_000;
/** Largest iteration count we accept from a file (about 15 s of PBKDF2 on a laptop). */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;
/** Salt length we write, in bytes. */
export const SALT_LENGTH = 16;

/** Object identifiers used here, with the RFC that assigns them. */
export const OID = {
  /** RFC 8018 appendix A.4 */
  pbes2: "1.2.840.113549.1.5.13",
  /** RFC 8018 appendix A.2 */
  pbkdf2: "1.2.840.113549.1.5.12",
  /** RFC 8018 appendix B.1.2 */
  hmacWithSha256: "1.2.840.113549.2.9",
  /** NIST CSOR, RFC 8018 appendix B.2.5 */
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
} as const;

/** Names of schemes people meet in the wild, for error messages. */
const KNOWN_NAMES: Record<string, string> = {
  "1.2.840.113549.1.5.3": "PBES1 with MD5 and DES",
  "1.2.840.113549.1.5.10": "PBES1 with SHA-1 and DES",
  "1.2.840.113549.1.12.1.3": "PKCS#12 PBE with SHA-1 and 3DES",
  "1.2.840.113549.1.12.1.6": "PKCS#12 PBE with SHA-1 and RC2",
  "1.3.6.1.4.1.11591.4.11": "scrypt",
  "1.2.840.113549.2.7": "HMAC-SHA1",
  "1.2.840.113549.2.11": "HMAC-SHA512",
  "2.16.840.1.101.3.4.1.2": "AES-128-CBC",
  "2.16.840.1.101.3.4.1.22": "AES-192-CBC",
  "1.2.840.113549.3.7": "3DES-CBC",
};

const CONVERT_HINT =
  "re-encrypt it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in OLD -out NEW";

/** The fields of a `PrivateKeyInfo` (RFC 5958 `OneAsymmetricKey`) that callers need. */
export interface PrivateKeyInfo {
  /** 0 (PKCS#8 v1) or 1 (RFC 5958 v2, which may carry the public key). */
  version: number;
  /** Algorithm OID, e.g. "1.2.840.113549.1.1.1" for RSA. */
  algorithm: string;
  /** The algorithm's parameters element, whole (tag, length, contents), if present. */
  parameters: Uint8Array | undefined;
  /** The contents of the `privateKey` OCTET STRING (a view). */
  privateKey: Uint8Array;
}

/**
 * Parses a `PrivateKeyInfo` (RFC 5958 section 2), checking its outer shape only.
 *
 * @param der the DER encoding
 * @returns its version, algorithm and private key bytes
 * @throws {SyntaxError} when the structure is malformed
 */
export function parsePrivateKeyInfo(der: Uint8Array): PrivateKeyInfo {
  const outer = new DerReader(der, "private key");
  const info = outer.sequence("PrivateKeyInfo");
  outer.end("PrivateKeyInfo");
  const version = info.smallInteger("version", 1);
  const { oid, parameters } = info.algorithmIdentifier("privateKeyAlgorithm");
  const privateKey = info.octetString("privateKey");
  // RFC 5958: attributes [0] IMPLICIT, then publicKey [1] IMPLICIT (v2 only).
  if (info.peekTag() === 0xa0) info.any("attributes");
  if (version === 1 && info.peekTag() === 0x81) info.any("publicKey");
  info.end("PrivateKeyInfo");
  return { version, algorithm: oid, parameters: parameters?.encoded, privateKey };
}

/** Options of {@linkcode encryptPrivateKeyInfo}; tests inject salt and IV for vectors. */
export interface EncryptOptions {
  /** PBKDF2 iterations (default {@linkcode PBKDF2_ITERATIONS}). */
  iterations?: number;
  /** 16 bytes (default random). */
  salt?: Uint8Array;
  /** 16 bytes (default random). */
  iv?: Uint8Array;
}

/**
 * Encrypts a `PrivateKeyInfo` into an `EncryptedPrivateKeyInfo` (RFC 5958 section 3) with
 * PBES2, PBKDF2-HMAC-SHA256 and AES-256-CBC.
 *
 * @param privateKeyInfo the plain PKCS#8 DER (not modified)
 * @param passphrase the passphrase; must not be empty
 * @returns the DER encoding of the EncryptedPrivateKeyInfo
 * @throws {RangeError} on an empty passphrase or out-of-range options
 *
 * @example
 * ```ts
 * import { decryptPrivateKeyInfo, encryptPrivateKeyInfo } from "./pkcs8.ts";
 * import assert from "node:assert/strict";
 *
 * const info = Uint8Array.of(0x30, 0x0a, 2, 1, 0, 0x30, 3, 6, 1, 0x2a, 4, 0);
 * const sealed = await encryptPrivateKeyInfo(info, "hunter2", { iterations: 1000 });
 * assert.deepEqual(await decryptPrivateKeyInfo(sealed, "hunter2"), info);
 * ```
 */
export async function encryptPrivateKeyInfo(
  privateKeyInfo: Uint8Array,
  passphrase: string,
  options: EncryptOptions = {},
): Promise<Uint8Array> {
  if (passphrase === "") throw new RangeError("the passphrase must not be empty");
  const iterations = options.iterations ?? PBKDF2_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new RangeError(`PBKDF2 iterations out of range: ${iterations}`);
  }
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(SALT_LENGTH));
  const iv = options.iv ?? crypto.getRandomValues(new Uint8Array(16));
  if (salt.length !== SALT_LENGTH || iv.length !== 16) {
    throw new RangeError("salt and IV must be 16 bytes each");
  }
  const key = await deriveKey(passphrase, salt, iterations, "encrypt");
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-CBC", iv: own(iv) }, key, own(privateKeyInfo)),
  );
  // RFC 8018 appendix A.4 (PBES2-params) and A.2 (PBKDF2-params); keyLength is optional and
  // omitted, as OpenSSL does, since AES-256-CBC fixes it.
  return encodeSequence(
    encodeSequence(
      encodeOid(OID.pbes2),
      encodeSequence(
        encodeSequence(
          encodeOid(OID.pbkdf2),
          encodeSequence(
            encodeOctetString(salt),
            encodeInteger(iterations),
            encodeSequence(encodeOid(OID.hmacWithSha256), encodeNull()),
          ),
        ),
        encodeSequence(encodeOid(OID.aes256Cbc), encodeOctetString(iv)),
      ),
    ),
    encodeOctetString(ciphertext),
  );
}

/**
 * Decrypts an `EncryptedPrivateKeyInfo` made with PBES2, PBKDF2-HMAC-SHA256 and AES-256-CBC.
 *
 * @param der the DER encoding of the EncryptedPrivateKeyInfo
 * @param passphrase the passphrase
 * @returns the plain PrivateKeyInfo DER; the caller wipes it after use
 * @throws {SyntaxError} when the structure is malformed
 * @throws {SecurechatError} code "unsupported_key_encryption" for any other scheme, or code
 *   "bad_passphrase" (exit 1) when the passphrase is wrong or the ciphertext corrupted
 */
export async function decryptPrivateKeyInfo(
  der: Uint8Array,
  passphrase: string,
): Promise<Uint8Array> {
  const outer = new DerReader(der, "encrypted private key");
  const info = outer.sequence("EncryptedPrivateKeyInfo");
  outer.end("EncryptedPrivateKeyInfo");

  const scheme = info.algorithmIdentifier("encryptionAlgorithm");
  if (scheme.oid !== OID.pbes2) unsupported("encryption scheme", scheme.oid);
  const pbes2 = paramsReader(scheme.parameters, "PBES2-params");

  const kdf = pbes2.algorithmIdentifier("keyDerivationFunc");
  if (kdf.oid !== OID.pbkdf2) unsupported("key derivation", kdf.oid);
  const pbkdf2 = paramsReader(kdf.parameters, "PBKDF2-params");
  const salt = pbkdf2.octetString("salt");
  if (salt.length < 8 || salt.length > 64) pbkdf2.fail(`salt of ${salt.length} bytes`);
  const iterations = pbkdf2.smallInteger("iterationCount", MAX_PBKDF2_ITERATIONS);
  if (iterations < 1) pbkdf2.fail("iteration count of 0");
  if (pbkdf2.peekTag() === TAG.integer && pbkdf2.smallInteger("keyLength", 1024) !== 32) {
    pbkdf2.fail("keyLength does not match AES-256");
  }
  // RFC 8018 appendix A.2: an absent prf means the default, HMAC-SHA1.
  if (pbkdf2.done) unsupported("PBKDF2 pseudorandom function", "1.2.840.113549.2.7");
  const prf = pbkdf2.algorithmIdentifier("prf");
  if (prf.oid !== OID.hmacWithSha256) unsupported("PBKDF2 pseudorandom function", prf.oid);
  if (prf.parameters !== undefined && prf.parameters.tag !== TAG.null) {
    pbkdf2.fail("prf parameters are not NULL");
  }
  pbkdf2.end("PBKDF2-params");

  const cipher = pbes2.algorithmIdentifier("encryptionScheme");
  if (cipher.oid !== OID.aes256Cbc) unsupported("cipher", cipher.oid);
  const ivElement = cipher.parameters;
  if (ivElement?.tag !== TAG.octetString || ivElement.content.length !== 16) {
    return pbes2.fail("the AES-256-CBC IV is not a 16-byte OCTET STRING");
  }
  const iv = ivElement.content;
  pbes2.end("PBES2-params");

  const ciphertext = info.octetString("encryptedData");
  info.end("EncryptedPrivateKeyInfo");
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) {
    info.fail("encryptedData is not a whole number of AES blocks");
  }

  const key = await deriveKey(passphrase, salt, iterations, "decrypt");
  let plaintext: Uint8Array;
  try {
    plaintext = new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-CBC", iv: own(iv) }, key, own(ciphertext)),
    );
  } catch (error) {
    throw badPassphrase(error);
  }
  try {
    parsePrivateKeyInfo(plaintext);
  } catch (error) {
    wipe(plaintext);
    throw badPassphrase(error);
  }
  return plaintext;
}

/**
 * PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2): the derivation behind every passphrase-protected
 * key, exported so that public vectors (Wycheproof `pbkdf2_hmacsha256_test.json`) run through it.
 *
 * @param password the passphrase bytes (UTF-8 for a passphrase; any bytes are accepted)
 * @param salt the salt (its length policy is the file parser's, not this function's)
 * @param iterations 1 to {@linkcode MAX_PBKDF2_ITERATIONS}
 * @param length output length in bytes, 1 to 1024
 * @returns the derived key; the caller wipes it
 * @throws {RangeError} when iterations or length are out of range
 */
export async function pbkdf2HmacSha256(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new RangeError(`PBKDF2 iterations out of range: ${iterations}`);
  }
  if (!Number.isInteger(length) || length < 1 || length > 1024) {
    throw new RangeError(`PBKDF2 output length out of range: ${length}`);
  }
  // No copy of an ArrayBuffer-backed password: a copy would escape the caller's wipe().
  const secret = password.buffer instanceof ArrayBuffer
    ? password as Uint8Array<ArrayBuffer>
    : own(password);
  const base = await crypto.subtle.importKey("raw", secret, "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: own(salt), iterations },
      base,
      length * 8,
    ),
  );
}

/** PBKDF2-HMAC-SHA256 into a non-extractable AES-256-CBC key. */
async function deriveKey(
  passphrase: string,
  salt: Uint8Array,
  iterations: number,
  usage: "encrypt" | "decrypt",
): Promise<CryptoKey> {
  const secret = new TextEncoder().encode(passphrase);
  let keyBytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    keyBytes = await pbkdf2HmacSha256(secret, salt, iterations, 32);
    return await crypto.subtle.importKey("raw", keyBytes, "AES-CBC", false, [usage]);
  } finally {
    wipe(secret, keyBytes);
  }
}

/** A reader over AlgorithmIdentifier parameters that must be a SEQUENCE. */
function paramsReader(
  parameters: { tag: number; content: Uint8Array } | undefined,
  name: string,
): DerReader {
  const reader = new DerReader(parameters?.content ?? new Uint8Array(), "encrypted private key");
  if (parameters?.tag !== TAG.sequence) reader.fail(`${name} is not a SEQUENCE`);
  return reader;
}

function unsupported(what: string, oid: string): never {
  const name = KNOWN_NAMES[oid] ?? `OID ${oid}`;
  throw new SecurechatError(
    "unsupported_key_encryption",
    `unsupported ${what} "${name}": only PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC is supported`,
    1,
    { hints: [CONVERT_HINT] },
  );
}

function badPassphrase(cause: unknown): SecurechatError {
  return new SecurechatError("bad_passphrase", "wrong passphrase or corrupted file", 1, {
    cause,
  });
}
