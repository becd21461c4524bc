/**
 * Identity keys: generation (RSA-PSS or Ed25519), fingerprints, transcript signatures, and the
 * check of the comment (display name) a key carries. Reading and writing the key files is
 * lib/keys/identity_file.ts's job.
 *
 * Mirrors docs/PROTOCOL.md section 5.3: an Identity carries a DER SubjectPublicKeyInfo, RSA
 * (`rsaEncryption`, modulus 2048..8192 bits, exponent 65537) or Ed25519 (RFC 8410); signatures are
 * RSA-PSS (SHA-256, MGF1-SHA-256, salt length 32) or pure Ed25519. The fingerprint is
 * `SHA256:` + unpadded base64 of SHA-256 over the SPKI DER, as OpenSSH prints it.
 *
 * Keys received from the network go through `importPublicIdentity()`, which parses the DER itself
 * before WebCrypto sees it and throws nothing but `ProtocolError`. One key has one fingerprint:
 * the SPKI is re-encoded canonically, so an RSA key in an `id-RSASSA-PSS` SPKI (what `openssl
 * genpkey -algorithm RSA-PSS` writes; accepted when its parameters allow SHA-256, MGF1-SHA-256
 * and salt length 32) gets the fingerprint of its `rsaEncryption` form, which is what we send.
 *
 * It does not check trust (lib/trust/known_hosts.ts, lib/trust/authorized_keys.ts).
 *
 * WebCrypto quirks handled here:
 * - WebCrypto exports RSA-PSS keys with the `rsaEncryption` OID and rejects `id-RSASSA-PSS` on
 *   import, so PSS-OID keys are rewritten to `rsaEncryption` before import.
 * - Private keys in an `Identity` are non-extractable; the PKCS#8 bytes from `generateIdentity()`
 *   are the caller's to write and wipe.
 *
 * @module
 */

import { fromBase64, own, toBase64, utf8 } from "../core/bytes.ts";
import { sha256Sync } from "../crypto/key_schedule.ts";
import { ProtocolError } from "../core/errors.ts";
import { type KeyType, parseSpki, PSS_SALT_LENGTH, RSA_BITS } from "./spki.ts";
import { hasUnsafeCharacter } from "../core/text.ts";

export type { KeyType } from "./spki.ts";

/** A public key with what we derive from it. */
export interface PublicIdentity {
  type: KeyType;
  publicKey: CryptoKey;
  /** Canonical DER SubjectPublicKeyInfo: what we send and what the fingerprint covers. */
  spki: Uint8Array;
  /** `SHA256:` + unpadded base64. */
  fingerprint: string;
  /** RSA modulus size. */
  bits?: number;
}

/** Our own key pair. */
export interface Identity extends PublicIdentity {
  /** Non-extractable signing key. */
  privateKey: CryptoKey;
  /** Display name sent to peers (the `Comment:` line), at most {@linkcode MAX_COMMENT_LENGTH} bytes. */
  comment: string;
}

/** Longest comment, in UTF-8 bytes: the Identity message's `name` field holds 64. */
export const MAX_COMMENT_LENGTH = 64;
/**
 * Says what is wrong with a comment, if anything: longer than 64 UTF-8 bytes, or containing
 * control or bidirectional formatting characters (it is shown on the peer's terminal; see
 * `lib/core/text.ts`).
 *
 * @returns the problem, or undefined when the comment is acceptable
 */
export function commentProblem(comment: string): string | undefined {
  if (utf8(comment).length > MAX_COMMENT_LENGTH) {
    return `longer than ${MAX_COMMENT_LENGTH} bytes`;
  }
  if (hasUnsafeCharacter(comment)) {
    return "contains control or bidirectional formatting characters";
  }
  return undefined;
}

/**
 * Generates a new identity key pair.
 *
 * @param options.type "rsa-pss" or "ed25519"
 * @param options.bits RSA modulus size, 2048..8192 in steps of 8 (default 3072); RSA only
 * @param options.comment the display name (see {@linkcode commentProblem})
 * @returns the identity and its PKCS#8 DER, for `writeIdentity()`; the caller wipes it
 * @throws {RangeError} on bad bits, bits for Ed25519, or a bad comment
 */
export async function generateIdentity(
  options: { type: KeyType; bits?: number; comment: string },
): Promise<{ identity: Identity; pkcs8: Uint8Array }> {
  const problem = commentProblem(options.comment);
  if (problem !== undefined) throw new RangeError(`comment ${problem}`);
  let pair: CryptoKeyPair;
  if (options.type === "rsa-pss") {
    const bits = options.bits ?? RSA_BITS.default;
    if (!Number.isInteger(bits) || bits < RSA_BITS.min || bits > RSA_BITS.max || bits % 8 !== 0) {
      throw new RangeError(`RSA key size out of range: ${bits}`);
    }
    pair = await crypto.subtle.generateKey(
      { ...RSA_PSS, modulusLength: bits, publicExponent: Uint8Array.of(1, 0, 1) },
      true,
      ["sign", "verify"],
    );
  } else if (options.type === "ed25519") {
    if (options.bits !== undefined) throw new RangeError("bits applies to rsa-pss keys only");
    pair = await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as CryptoKeyPair;
  } else {
    throw new RangeError(`unknown key type: ${options.type}`);
  }
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const publicIdentity = await importPublicIdentity(spki);
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    own(pkcs8),
    algorithmOf(options.type),
    false,
    ["sign"],
  );
  return { identity: { ...publicIdentity, privateKey, comment: options.comment }, pkcs8 };
}

/**
 * The raw 32-byte author id of a fingerprint (the SHA-256 it spells): how rooms and transfers name
 * a member on the wire (docs/PROTOCOL.md 13.4, 14.1).
 *
 * @throws {TypeError} when `fingerprint` is not "SHA256:" and the unpadded base64 of 32 bytes
 */
export function authorOf(fingerprint: string): Uint8Array {
  const prefix = "SHA256:";
  const author = fingerprint.startsWith(prefix)
    ? fromBase64(fingerprint.slice(prefix.length))
    : new Uint8Array(0);
  if (author.length !== 32) throw new TypeError(`not a member fingerprint: "${fingerprint}"`);
  return author;
}

/** The fingerprint of a raw 32-byte author id. */
export function fingerprintOfAuthor(author: Uint8Array): string {
  return "SHA256:" + toBase64(author).replace(/=+$/, "");
}

/**
 * The fingerprint of a DER SubjectPublicKeyInfo, as OpenSSH prints it.
 *
 * @returns `SHA256:` followed by unpadded standard base64 of SHA-256(spki)
 */
export function fingerprintOf(spki: Uint8Array): Promise<string> {
  return Promise.resolve(fingerprintOfSync(spki));
}

/** {@linkcode fingerprintOf}, synchronously (a WebCrypto digest is a round trip to another thread). */
export function fingerprintOfSync(spki: Uint8Array): string {
  return "SHA256:" + toBase64(sha256Sync(spki)).replace(/=+$/, "");
}

/**
 * Parses and imports a public key received from a peer or read from a file.
 *
 * @param spki DER SubjectPublicKeyInfo: RSA (`rsaEncryption`, or `id-RSASSA-PSS` with compatible
 *   parameters), modulus 2048..8192 bits, exponent 65537; or Ed25519
 * @returns the key, its canonical SPKI and its fingerprint
 * @throws {ProtocolError} code "unsupported_key" on anything else, malformed or not; never
 *   anything but ProtocolError
 */
export async function importPublicIdentity(spki: Uint8Array): Promise<PublicIdentity> {
  try {
    return await importSpki(spki);
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    const detail = error instanceof SyntaxError ? error.message : `malformed public key: ${error}`;
    throw new ProtocolError("unsupported_key", detail, { cause: error });
  }
}

async function importSpki(der: Uint8Array): Promise<PublicIdentity> {
  const { type, spki, bits } = parseSpki(der);
  const publicKey = await crypto.subtle.importKey("spki", own(spki), algorithmOf(type), true, [
    "verify",
  ]);
  const fingerprint = fingerprintOfSync(spki);
  return { type, publicKey, spki, fingerprint, ...(bits === undefined ? {} : { bits }) };
}

/**
 * Signs `message` with our identity key: RSA-PSS (SHA-256, salt 32) or Ed25519.
 *
 * @returns the signature
 */
export async function signTranscript(identity: Identity, message: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.sign(signatureAlgorithm(identity.type), identity.privateKey, own(message)),
  );
}

/**
 * Verifies a peer's signature over `message`.
 *
 * @returns true when it verifies; false otherwise, including for signatures of the wrong length
 */
export async function verifyTranscript(
  peer: PublicIdentity,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  try {
    return await crypto.subtle.verify(
      signatureAlgorithm(peer.type),
      peer.publicKey,
      own(signature),
      own(message),
    );
  } catch {
    return false;
  }
}

/** The WebCrypto import parameters of a key of `type` (lib/keys/identity_file.ts imports with them). */
export function algorithmOf(type: KeyType): RsaHashedImportParams | Algorithm {
  return type === "ed25519" ? { name: "Ed25519" } : RSA_PSS;
}

function signatureAlgorithm(type: KeyType): RsaPssParams | Algorithm {
  return type === "ed25519"
    ? { name: "Ed25519" }
    : { name: "RSA-PSS", saltLength: PSS_SALT_LENGTH };
}

const RSA_PSS = { name: "RSA-PSS", hash: "SHA-256" } as const;
