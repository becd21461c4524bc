/**
 * Identity keys: generation (RSA-PSS or Ed25519), fingerprints, transcript signatures, and the key
 * files (`id`: PKCS#8 PEM, mode 0600, optionally passphrase-encrypted; `id.pub`: SPKI PEM), each
 * with a `Comment:` line before the PEM block (lib/pem.ts). On Windows, which has no file modes,
 * the modes are not set or checked: the private key is protected by the access control list of
 * its folder (by default the user profile, readable by its owner and administrators only).
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
 * It does not check trust (lib/known_hosts.ts, lib/authorized_keys.ts) and never prompts:
 * passphrases come from a callback.
 *
 * WebCrypto quirks handled here:
 * - WebCrypto cannot derive a public key from a private one; we export the private key as JWK
 *   (which holds `x` for Ed25519, `n` and `e` for RSA) and import those as the public key.
 * - WebCrypto exports RSA-PSS keys with the `rsaEncryption` OID and rejects `id-RSASSA-PSS` on
 *   import, so PSS-OID keys are rewritten to `rsaEncryption` before import.
 * - Private keys in an `Identity` are non-extractable; the PKCS#8 bytes from `generateIdentity()`
 *   are the caller's to write and wipe. JWK strings and PEM text cannot be wiped.
 *
 * @module
 */

import { own, sha256, toBase64, utf8, wipe } from "./bytes.ts";
import { ProtocolError, SecurechatError } from "./errors.ts";
import { decodePem, encodePem, type PemBlock } from "./pem.ts";
import { decryptPrivateKeyInfo, encryptPrivateKeyInfo, parsePrivateKeyInfo } from "./pkcs8.ts";
import { dirName, exists, writeFileAtomic } from "./paths.ts";
import { type KeyType, parseSpki, privateKeyForImport, PSS_SALT_LENGTH, RSA_BITS } from "./spki.ts";

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
/** Largest key file we read. */
const MAX_KEY_FILE_SIZE = 64 * 1024;

const CONVERT_HINT = "convert it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW";

/**
 * Says what is wrong with a comment, if anything: longer than 64 UTF-8 bytes, or containing
 * control characters (it is shown on the peer's terminal).
 *
 * @returns the problem, or undefined when the comment is acceptable
 */
export function commentProblem(comment: string): string | undefined {
  if (utf8(comment).length > MAX_COMMENT_LENGTH) {
    return `longer than ${MAX_COMMENT_LENGTH} bytes`;
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(comment)) {
    return "contains control characters";
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
 * The fingerprint of a DER SubjectPublicKeyInfo, as OpenSSH prints it.
 *
 * @returns `SHA256:` followed by unpadded standard base64 of SHA-256(spki)
 */
export async function fingerprintOf(spki: Uint8Array): Promise<string> {
  return "SHA256:" + toBase64(await sha256(spki)).replace(/=+$/, "");
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
  const fingerprint = await fingerprintOf(spki);
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

/**
 * Loads our identity from a private key file (PEM PKCS#8, plain or encrypted).
 *
 * @param path the private key file
 * @param options.passphrase called only when the key is encrypted
 * @returns the identity, with the comment of the file's `Comment:` line
 * @throws {SecurechatError} (exit 1) with code "no_identity" (no such file),
 *   "key_permissions_too_open" (group or others may read it; POSIX only), "bad_passphrase",
 *   "unsupported_key_encryption", "unsupported_key" or "bad_key_file"
 */
export async function loadIdentity(
  path: string,
  options: { passphrase: () => Promise<string> },
): Promise<Identity> {
  const block = await readKeyFile(path, { privateKey: true });
  if (block.label === "PUBLIC KEY") {
    throw fileError("bad_key_file", `cannot load private key "${path}": it is a public key`, [
      'give the private key file, the one without ".pub"',
    ]);
  }
  return await openPrivateKey(path, block, options.passphrase);
}

/**
 * Loads a public identity from a `.pub` file (SPKI PEM) or from a private key file.
 *
 * @param path the key file
 * @param options.passphrase needed only when `path` is an encrypted private key
 * @returns the public identity and the comment of the file's `Comment:` line
 * @throws {SecurechatError} as {@linkcode loadIdentity}, except for file permissions
 */
export async function loadPublicIdentityFile(
  path: string,
  options: { passphrase?: () => Promise<string> } = {},
): Promise<{ identity: PublicIdentity; comment: string }> {
  const block = await readKeyFile(path, { privateKey: false });
  if (block.label !== "PUBLIC KEY") {
    const passphrase = options.passphrase;
    if (block.label === "ENCRYPTED PRIVATE KEY" && passphrase === undefined) {
      throw fileError("bad_key_file", `cannot load key "${path}": it is encrypted`, [
        "give its passphrase, or the public key file",
      ]);
    }
    const identity = await openPrivateKey(path, block, passphrase ?? (() => Promise.resolve("")));
    const { privateKey: _, comment, ...publicPart } = identity;
    return { identity: publicPart, comment };
  }
  try {
    return { identity: await importPublicIdentity(block.der), comment: block.comment };
  } catch (error) {
    throw rewrap(error, `cannot load public key "${path}"`);
  }
}

/**
 * Writes a key pair: PATH (PKCS#8 PEM, encrypted when a passphrase is given, mode 0600) and
 * PATH.pub (SPKI PEM, mode 0644), both with a `Comment:` line; each written atomically. Creates
 * the parent folder with mode 0700 when missing.
 *
 * @param path the private key path
 * @param pkcs8 the private key's PKCS#8 DER (not wiped here)
 * @param identity the key pair, for its SPKI and comment
 * @param options.passphrase encrypt with this passphrase (PBES2, lib/pkcs8.ts)
 * @param options.force replace existing files
 * @throws {SecurechatError} code "identity_exists" when either file exists and `force` is false
 */
export async function writeIdentity(
  path: string,
  pkcs8: Uint8Array,
  identity: Identity,
  options: { passphrase?: string; force: boolean },
): Promise<void> {
  const publicPath = `${path}.pub`;
  if (!options.force) await refuseExistingIdentity(path);
  const folder = dirName(path);
  if (!(await exists(folder))) await Deno.mkdir(folder, { recursive: true, mode: 0o700 });

  const comment = { comment: identity.comment };
  let privatePem: string;
  if (options.passphrase !== undefined) {
    const encrypted = await encryptPrivateKeyInfo(pkcs8, options.passphrase);
    privatePem = encodePem("ENCRYPTED PRIVATE KEY", encrypted, comment);
  } else {
    privatePem = encodePem("PRIVATE KEY", pkcs8, comment);
  }
  const privateBytes = utf8(privatePem);
  try {
    await writeFileAtomic(path, privateBytes, { mode: 0o600, createNew: !options.force });
  } finally {
    wipe(privateBytes);
  }
  const publicPem = encodePem("PUBLIC KEY", identity.spki, comment);
  await writeFileAtomic(publicPath, utf8(publicPem), { mode: 0o644, createNew: !options.force });
  // The umask may have narrowed 0644; a public key is meant to be read by all.
  if (Deno.build.os !== "windows") await Deno.chmod(publicPath, 0o644);
}

/**
 * Refuses to go on when PATH or PATH.pub exists, so that keygen fails before it prompts.
 *
 * @throws {SecurechatError} code "identity_exists" naming the existing file
 */
export async function refuseExistingIdentity(path: string): Promise<void> {
  for (const target of [path, `${path}.pub`]) {
    if (!(await exists(target))) continue;
    const message = `cannot write key "${target}": the file already exists`;
    throw fileError("identity_exists", message, [
      "use --force to replace it; the old key cannot be recovered",
    ]);
  }
}

/** Reads, checks and PEM-decodes a key file. */
async function readKeyFile(path: string, options: { privateKey: boolean }): Promise<PemBlock> {
  const context = `cannot load ${options.privateKey ? "private key" : "key"} "${path}"`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw rewrap(error, context);
    const hints = options.privateKey ? ['run "securechat keygen" first'] : [];
    throw fileError("no_identity", `${context}: no such file`, hints);
  }
  if (!info.isFile) throw fileError("bad_key_file", `${context}: not a regular file`);
  if (info.size > MAX_KEY_FILE_SIZE) {
    throw fileError("bad_key_file", `${context}: too large to be a key file`);
  }
  // OpenSSH's rule: a private key that group or others may read is refused, not warned about.
  // Windows has no POSIX modes (Deno's mode there does not describe who may read the file): the
  // key is protected by its folder's access control list instead, as keygen tells the user.
  if (
    options.privateKey && Deno.build.os !== "windows" && info.mode !== null &&
    (info.mode & 0o077) !== 0
  ) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
    throw fileError("key_permissions_too_open", `permissions ${mode} for "${path}" are too open`, [
      `a private key must be readable by you alone: run chmod 600 ${path}`,
    ]);
  }
  try {
    return decodePem(await Deno.readTextFile(path));
  } catch (error) {
    throw rewrap(error, context);
  }
}

/** Decrypts (if needed) and imports a private key block, deriving its public part. */
async function openPrivateKey(
  path: string,
  block: PemBlock,
  passphrase: () => Promise<string>,
): Promise<Identity> {
  const problem = commentProblem(block.comment);
  if (problem !== undefined) {
    throw fileError("bad_key_file", `cannot load key "${path}": its comment is ${problem}`, [
      'shorten its "Comment:" line',
    ]);
  }
  let der: Uint8Array;
  if (block.label === "PRIVATE KEY") {
    der = block.der;
  } else if (block.label === "ENCRYPTED PRIVATE KEY") {
    try {
      der = await decryptPrivateKeyInfo(block.der, await passphrase());
    } catch (error) {
      if (error instanceof SecurechatError && error.code === "bad_passphrase") {
        throw rewrap(error, `cannot decrypt private key "${path}"`);
      }
      throw rewrap(error, `cannot load private key "${path}"`);
    }
  } else {
    const message = `cannot load private key "${path}": unsupported PEM block "${block.label}"`;
    throw fileError("bad_key_file", message, [CONVERT_HINT]);
  }
  let pkcs8: Uint8Array | undefined;
  try {
    const prepared = privateKeyForImport(der, parsePrivateKeyInfo(der));
    pkcs8 = prepared.pkcs8;
    const algorithm = algorithmOf(prepared.type);
    // WebCrypto has no "public key of this private key": go through JWK (x, or n and e).
    const jwk = await crypto.subtle.exportKey(
      "jwk",
      await crypto.subtle.importKey("pkcs8", own(pkcs8), algorithm, true, ["sign"]),
    );
    const publicJwk: JsonWebKey = prepared.type === "ed25519"
      ? { kty: "OKP", crv: "Ed25519", x: jwk.x ?? "" }
      : { kty: "RSA", n: jwk.n ?? "", e: jwk.e ?? "" };
    const publicKey = await crypto.subtle.importKey("jwk", publicJwk, algorithm, true, ["verify"]);
    const publicIdentity = await importPublicIdentity(
      new Uint8Array(await crypto.subtle.exportKey("spki", publicKey)),
    );
    const privateKey = await crypto.subtle.importKey("pkcs8", own(pkcs8), algorithm, false, [
      "sign",
    ]);
    return { ...publicIdentity, privateKey, comment: block.comment };
  } catch (error) {
    throw rewrap(error, `cannot load private key "${path}"`);
  } finally {
    wipe(der, pkcs8);
  }
}

function algorithmOf(type: KeyType): RsaHashedImportParams | Algorithm {
  return type === "ed25519" ? { name: "Ed25519" } : RSA_PSS;
}

function signatureAlgorithm(type: KeyType): RsaPssParams | Algorithm {
  return type === "ed25519"
    ? { name: "Ed25519" }
    : { name: "RSA-PSS", saltLength: PSS_SALT_LENGTH };
}

const RSA_PSS = { name: "RSA-PSS", hash: "SHA-256" } as const;

function fileError(code: string, message: string, hints: string[] = []): SecurechatError {
  return new SecurechatError(code, message, 1, { hints });
}

/** Adds file context to an error, keeping its code and hints; exit 1 (a local file, not a peer). */
function rewrap(error: unknown, context: string): SecurechatError {
  if (error instanceof SecurechatError) {
    return new SecurechatError(error.code, `${context}: ${error.message}`, 1, {
      hints: error.hints,
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new SecurechatError("bad_key_file", `${context}: ${detail}`, 1, { cause: error });
}
