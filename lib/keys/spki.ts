/**
 * Key structures, checked and re-encoded before WebCrypto sees them: the SubjectPublicKeyInfo of
 * a peer's identity (RFC 5280 section 4.1.2.7) and the algorithm of a PKCS#8 private key.
 *
 * Mirrors docs/PROTOCOL.md section 5.3: RSA with `rsaEncryption` (RFC 8017 appendix A.1), modulus
 * 2048..8192 bits, exponent 65537; or Ed25519 (RFC 8410 section 3). Also accepted: RSA keys
 * labelled `id-RSASSA-PSS` (RFC 4055 section 3.1, what `openssl genpkey -algorithm RSA-PSS`
 * writes) whose parameters are absent or allow our one scheme (SHA-256, MGF1-SHA-256, salt 32).
 *
 * Every accepted key gets one canonical SPKI encoding (`rsaEncryption` with NULL parameters, or
 * Ed25519 without parameters), so one key has one fingerprint whatever label it arrived with.
 * WebCrypto rejects `id-RSASSA-PSS` on import, which is a second reason to rewrite it.
 *
 * Pure DER work: no WebCrypto, no I/O. Malformed DER throws `SyntaxError`; well-formed keys we do
 * not accept throw `ProtocolError` code "unsupported_key" with alert `illegal_parameter`.
 *
 * @module
 */

import {
  DerReader,
  encodeBitString,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  TAG,
} from "./der.ts";
import { ProtocolError } from "../core/errors.ts";
import type { PrivateKeyInfo } from "./pkcs8.ts";

/** Identity key types, as named on the command line. */
export type KeyType = "rsa-pss" | "ed25519";

/** Object identifiers of key algorithms. */
export const KEY_OID = {
  /** RFC 8017 appendix A.1 */
  rsaEncryption: "1.2.840.113549.1.1.1",
  /** RFC 4055 section 3.1 */
  rsassaPss: "1.2.840.113549.1.1.10",
  /** RFC 4055 section 2.2 */
  mgf1: "1.2.840.113549.1.1.8",
  /** RFC 8410 section 3 */
  ed25519: "1.3.101.112",
  /** NIST CSOR */
  sha256: "2.16.840.1.101.3.4.2.1",
} as const;

/** Accepted RSA modulus sizes, in bits (docs/PROTOCOL.md section 5.3). */
export const RSA_BITS = { min: 2048, max: 8192, default: 3072 } as const;

/** RSA-PSS salt length, in bytes (docs/PROTOCOL.md section 5.3). */
export const PSS_SALT_LENGTH = 32;

/** Names of key types people try, for error messages. */
const KEY_NAMES: Record<string, string> = {
  "1.2.840.10045.2.1": "EC",
  "1.2.840.10040.4.1": "DSA",
  "1.3.101.110": "X25519",
  "1.3.101.111": "X448",
  "1.3.101.113": "Ed448",
};

/** An accepted public key, in canonical form. */
export interface ParsedSpki {
  type: KeyType;
  /** The canonical DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
  /** RSA modulus size in bits. */
  bits: number | undefined;
}

/**
 * Parses a DER SubjectPublicKeyInfo and returns its canonical encoding.
 *
 * @param der the SPKI as received
 * @returns the key type, canonical SPKI and (RSA) modulus size
 * @throws {SyntaxError} when the DER is malformed
 * @throws {ProtocolError} code "unsupported_key" for another key type, size or exponent
 */
export function parseSpki(der: Uint8Array): ParsedSpki {
  const outer = new DerReader(der, "public key");
  const info = outer.sequence("SubjectPublicKeyInfo");
  outer.end("SubjectPublicKeyInfo");
  const { oid, parameters } = info.algorithmIdentifier("algorithm");
  const key = info.bitString("subjectPublicKey");
  info.end("SubjectPublicKeyInfo");

  if (oid === KEY_OID.ed25519) {
    // RFC 8410 section 3: parameters MUST be absent; the key is 32 bytes.
    if (parameters !== undefined) info.fail("Ed25519 parameters must be absent");
    if (key.length !== 32) info.fail(`Ed25519 key of ${key.length} bytes`);
    const spki = encodeSequence(encodeSequence(encodeOid(KEY_OID.ed25519)), encodeBitString(key));
    return { type: "ed25519", spki, bits: undefined };
  }
  if (oid !== KEY_OID.rsaEncryption && oid !== KEY_OID.rsassaPss) throw unsupportedType(oid);
  // RFC 8017 appendix A.1: rsaEncryption parameters are NULL.
  if (oid === KEY_OID.rsaEncryption && parameters?.tag !== TAG.null) {
    info.fail("rsaEncryption parameters must be NULL");
  }
  if (oid === KEY_OID.rsassaPss) checkPssParameters(parameters?.encoded);
  // RFC 8017 appendix A.1.1: RSAPublicKey ::= SEQUENCE { modulus, publicExponent }
  const rsa = new DerReader(key, "public key");
  const fields = rsa.sequence("RSAPublicKey");
  rsa.end("RSAPublicKey");
  const modulus = fields.unsignedInteger("modulus");
  const exponent = fields.unsignedInteger("publicExponent");
  fields.end("RSAPublicKey");
  const bits = (modulus.length - 1) * 8 + modulus[0]!.toString(2).length;
  if (bits < RSA_BITS.min || bits > RSA_BITS.max) {
    throw unsupportedKey(
      `RSA key of ${bits} bits: only ${RSA_BITS.min} to ${RSA_BITS.max} bits are accepted`,
    );
  }
  if (exponent.length !== 3 || exponent[0] !== 1 || exponent[1] !== 0 || exponent[2] !== 1) {
    throw unsupportedKey("RSA public exponent is not 65537");
  }
  if ((modulus[modulus.length - 1]! & 1) === 0) fields.fail("even RSA modulus");
  const spki = encodeSequence(
    encodeSequence(encodeOid(KEY_OID.rsaEncryption), encodeNull()),
    encodeBitString(encodeSequence(encodeInteger(modulus), encodeInteger(exponent))),
  );
  return { type: "rsa-pss", spki, bits };
}

/**
 * Finds the key type of a PKCS#8 private key and, for an `id-RSASSA-PSS` key, rewrites it as
 * `rsaEncryption` so WebCrypto imports it.
 *
 * @param der the PrivateKeyInfo DER
 * @param info the same, parsed (lib/keys/pkcs8.ts `parsePrivateKeyInfo()`)
 * @returns the key type and the PKCS#8 to import: `der` itself, or a new array the caller wipes
 * @throws {ProtocolError} code "unsupported_key" for other key types or PSS parameters
 */
export function privateKeyForImport(
  der: Uint8Array,
  info: PrivateKeyInfo,
): { type: KeyType; pkcs8: Uint8Array } {
  if (info.algorithm === KEY_OID.ed25519) return { type: "ed25519", pkcs8: der };
  if (info.algorithm === KEY_OID.rsaEncryption) return { type: "rsa-pss", pkcs8: der };
  if (info.algorithm !== KEY_OID.rsassaPss) throw unsupportedType(info.algorithm);
  checkPssParameters(info.parameters);
  const pkcs8 = encodeSequence(
    encodeInteger(0),
    encodeSequence(encodeOid(KEY_OID.rsaEncryption), encodeNull()),
    encodeOctetString(info.privateKey),
  );
  return { type: "rsa-pss", pkcs8 };
}

/**
 * Checks the RSASSA-PSS-params (RFC 4055 section 3.1) of a PSS-only key against our scheme.
 * Absent parameters leave the key unrestricted; an absent field takes its RFC default (SHA-1,
 * MGF1-SHA-1), which rules the key out.
 */
function checkPssParameters(encoded: Uint8Array | undefined): void {
  if (encoded === undefined) return;
  const reader = new DerReader(encoded, "public key");
  const params = reader.sequence("RSASSA-PSS-params");
  reader.end("RSASSA-PSS-params");
  const mismatch = () =>
    unsupportedKey("RSA-PSS key restricted to parameters other than SHA-256, MGF1, salt 32");
  const requireSha256 = (reader: DerReader, name: string) => {
    const { oid, parameters } = reader.algorithmIdentifier(name);
    if (oid !== KEY_OID.sha256 || (parameters !== undefined && parameters.tag !== TAG.null)) {
      throw mismatch();
    }
  };
  if (params.peekTag() !== 0xa0) throw mismatch();
  requireSha256(params.explicit(0, "hashAlgorithm"), "hashAlgorithm");
  if (params.peekTag() !== 0xa1) throw mismatch();
  const mgf = params.explicit(1, "maskGenAlgorithm").algorithmIdentifier("maskGenAlgorithm");
  if (mgf.oid !== KEY_OID.mgf1 || mgf.parameters === undefined) throw mismatch();
  requireSha256(new DerReader(mgf.parameters.encoded, "public key"), "MGF1 hash");
  // A key's saltLength is the least a signature may use (RFC 4055 section 3.1).
  if (params.peekTag() === 0xa2) {
    const salt = params.explicit(2, "saltLength").smallInteger("saltLength", 0xffff);
    if (salt > PSS_SALT_LENGTH) throw mismatch();
  }
  if (params.peekTag() === 0xa3) {
    if (params.explicit(3, "trailerField").smallInteger("trailerField", 0xff) !== 1) {
      throw mismatch();
    }
  }
  params.end("RSASSA-PSS-params");
}

function unsupportedType(oid: string): ProtocolError {
  const name = KEY_NAMES[oid] ?? `OID ${oid}`;
  return unsupportedKey(`key type "${name}": only RSA and Ed25519 are accepted`);
}

function unsupportedKey(detail: string): ProtocolError {
  return new ProtocolError("unsupported_key", `unsupported key: ${detail}`, {
    alert: "illegal_parameter",
  });
}
