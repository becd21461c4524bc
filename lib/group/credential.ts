/**
 * The securechat credential: what a room member's MLS basic credential holds, binding its
 * securechat identity key (the key its fingerprint names) to the MLS signature key of its leaf.
 *
 * Mirrors docs/PROTOCOL.md section 13.2:
 *
 * ```
 * version u8 (1) || name_length u8 (1..64) || name || spki_length u16 || spki
 *   || sig_length u16 || signature
 * signature over "securechat/2 mls credential" || 0x00 || cipher_suite u16
 *   || signature_key_length u16 || signature_key || name_length u8 || name || spki_length u16 || spki
 * ```
 *
 * `verifyCredential()` is the Authentication Service's decision: the encoding must be exact (no
 * trailing bytes, the SPKI in its canonical form so one key has one encoding), the name 1 to 64
 * bytes of UTF-8, and the identity key's signature must verify. It does not decide who may be in
 * the room (admins.ts and the people at the keyboard do that), and it does not touch MLS: the
 * caller passes the leaf's signature key and the group's suite id.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { generateIdentity } from "../keys/identity.ts";
 * import { makeCredential, verifyCredential } from "./credential.ts";
 * const { identity } = await generateIdentity({ type: "ed25519", comment: "alice" });
 * const signatureKey = crypto.getRandomValues(new Uint8Array(32));
 * const bytes = await makeCredential(identity, "alice", signatureKey, 83);
 * const verified = await verifyCredential(bytes, signatureKey, 83);
 * strictEqual(verified.fingerprint, identity.fingerprint);
 * strictEqual(verified.name, "alice");
 * ```
 *
 * @module
 */

import { concat, constantTimeEqual, sha256, u16, u8, utf8 } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";
import { FieldReader } from "../core/field_reader.ts";
import {
  type Identity,
  importPublicIdentity,
  type PublicIdentity,
  signTranscript,
  verifyTranscript,
} from "../keys/identity.ts";

/** Section 13.2: the only credential version. */
export const CREDENTIAL_VERSION = 1;
/** Section 13.2: the context string the identity key signs under, spelled as in the spec. */
export const CREDENTIAL_CONTEXT = "securechat/2 mls credential";
/** Section 13.2: the longest name, in UTF-8 bytes. */
export const MAX_NAME_LENGTH = 64;

/** A credential whose signature verified: who the leaf's holder is. */
export interface VerifiedCredential {
  /** The name the member asked to be shown as: a claim, never trust. */
  name: string;
  /** The identity key, imported. */
  identity: PublicIdentity;
  /** `SHA256:` + unpadded base64 of the SPKI (section 5.4): who the member is. */
  fingerprint: string;
  /** The 32 raw bytes of SHA-256(spki): the author id of sections 13.4 and 14. */
  author: Uint8Array;
}

/**
 * Makes our credential for one MLS leaf.
 *
 * @param identity our identity key, which signs the binding
 * @param name the name to be shown as, 1..64 bytes of UTF-8
 * @param signaturePublicKey the leaf's MLS signature public key
 * @param suiteId the group's cipher suite id (83)
 * @returns the credential's bytes, for the basic credential's `identity` field
 * @throws {RangeError} when the name is empty or longer than 64 bytes, or the key or suite id
 *   does not fit its field
 */
export async function makeCredential(
  identity: Identity,
  name: string,
  signaturePublicKey: Uint8Array,
  suiteId: number,
): Promise<Uint8Array> {
  const nameBytes = utf8(name);
  if (nameBytes.length < 1 || nameBytes.length > MAX_NAME_LENGTH) {
    throw new RangeError(`room name must be 1 to ${MAX_NAME_LENGTH} bytes of UTF-8`);
  }
  const signed = signedPart(suiteId, signaturePublicKey, nameBytes, identity.spki);
  const signature = await signTranscript(identity, signed);
  return concat(
    u8(CREDENTIAL_VERSION),
    u8(nameBytes.length),
    nameBytes,
    u16(identity.spki.length),
    identity.spki,
    u16(signature.length),
    signature,
  );
}

/**
 * Checks a credential as the Authentication Service (section 13.2).
 *
 * @param bytes the basic credential's `identity` field
 * @param signaturePublicKey the MLS signature public key of the leaf that carries it
 * @param suiteId the group's cipher suite id
 * @returns the verified name, identity, fingerprint and author id
 * @throws {ProtocolError} code "bad_credential" (or "unsupported_key" for a key we cannot use)
 *   on any malformed field, trailing bytes, a non-canonical key, or a signature that does not
 *   verify; never anything else
 */
export async function verifyCredential(
  bytes: Uint8Array,
  signaturePublicKey: Uint8Array,
  suiteId: number,
): Promise<VerifiedCredential> {
  const reader = new FieldReader(bytes, "room credential", "bad_credential");
  const version = reader.u8("version");
  if (version !== CREDENTIAL_VERSION) reader.fail(`unknown version ${version}`);
  const nameLength = reader.u8("name length");
  if (nameLength === 0) reader.fail("empty name");
  const name = reader.text(nameLength, MAX_NAME_LENGTH, "name");
  const spki = reader.take(reader.u16("spki length"), "spki");
  const signature = reader.take(reader.u16("signature length"), "signature");
  reader.end();
  const identity = await importPublicIdentity(spki);
  // One key, one encoding: an RSA key sent under the id-RSASSA-PSS OID would verify under its
  // canonical form too, and two encodings of one member are one too many.
  if (!constantTimeEqual(identity.spki, spki)) {
    reader.fail("the identity key is not in its canonical encoding");
  }
  const signed = signedPart(suiteId, signaturePublicKey, utf8(name), spki);
  if (!await verifyTranscript(identity, signed, signature)) {
    throw new ProtocolError(
      "bad_credential",
      `room credential of "${identity.fingerprint}" does not verify: it may be forged or tampered with`,
    );
  }
  return { name, identity, fingerprint: identity.fingerprint, author: await sha256(spki) };
}

/** What the identity key signs (section 13.2). */
function signedPart(
  suiteId: number,
  signatureKey: Uint8Array,
  name: Uint8Array,
  spki: Uint8Array,
): Uint8Array {
  return concat(
    utf8(CREDENTIAL_CONTEXT),
    u8(0),
    u16(suiteId),
    u16(signatureKey.length),
    signatureKey,
    u8(name.length),
    name,
    u16(spki.length),
    spki,
  );
}
