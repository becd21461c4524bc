/**
 * The key files: `id` (PKCS#8 PEM, mode 0600, optionally passphrase-encrypted) and `id.pub` (SPKI
 * PEM), each with a `Comment:` line before the PEM block (lib/keys/pem.ts) that holds the key's display
 * name. Loading checks the file before reading it (regular file, size, and on POSIX that only its
 * owner may read a private key); writing is atomic and refuses to replace a key without `force`.
 * On Windows, which has no file modes, the modes are not set or checked: the private key is
 * protected by the access control list of its folder (by default the user profile, readable by
 * its owner and administrators only).
 *
 * Not on the wire, so docs/PROTOCOL.md has no section for these files; the keys they hold are the
 * identities of section 5.3 (lib/keys/identity.ts). A key that cannot be loaded is a `SecurechatError`
 * with exit 1 that names the file.
 *
 * It never prompts: passphrases come from a callback.
 *
 * WebCrypto quirks handled here:
 * - WebCrypto cannot derive a public key from a private one; we export the private key as JWK
 *   (which holds `x` for Ed25519, `n` and `e` for RSA) and import those as the public key.
 * - PKCS#8 bytes are wiped once imported. JWK strings and PEM text cannot be wiped.
 *
 * @module
 */

import { own, utf8, wipe } from "../core/bytes.ts";
import { SecurechatError } from "../core/errors.ts";
import {
  algorithmOf,
  commentProblem,
  type Identity,
  importPublicIdentity,
  type PublicIdentity,
} from "./identity.ts";
import { decodePem, encodePem, type PemBlock } from "./pem.ts";
import { decryptPrivateKeyInfo, encryptPrivateKeyInfo, parsePrivateKeyInfo } from "./pkcs8.ts";
import { dirName, exists, writeFileAtomic } from "../core/paths.ts";
import { privateKeyForImport } from "./spki.ts";

/** Largest key file we read. */
const MAX_KEY_FILE_SIZE = 64 * 1024;

const CONVERT_HINT = "convert it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW";

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
 * @param options.passphrase encrypt with this passphrase (PBES2, lib/keys/pkcs8.ts)
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
