/**
 * KeyPackages: making ours (a fresh signature key, our credential, the admins extension in the
 * capabilities, a lifetime of 24 hours), and the checks an admin runs on a newcomer's before
 * admitting it.
 *
 * Mirrors docs/PROTOCOL.md sections 13.1 (KeyPackages carry a lifetime of at most 25 hours; the
 * admitting member refuses one outside its lifetime), 13.2 (the credential) and 13.3 (every
 * KeyPackage lists the admins extension in its capabilities). The library's own checks (the
 * KeyPackage's signatures, uniqueness in the tree) run in group.ts against the group state.
 *
 * @module
 */

import type { Identity } from "../keys/identity.ts";
import { ADMINS_EXTENSION_TYPE } from "./admins.ts";
import { makeCredential } from "./credential.ts";
import {
  type CiphersuiteImpl,
  defaultCapabilities,
  generateKeyPackageWithKey,
  type KeyPackage,
  MLS_VERSION,
  type PrivateKeyPackage,
  SUITE_ID,
  SUITE_NAME,
} from "./mls.ts";

/** Our KeyPackages start to be valid this many seconds before they are made (clock skew). */
export const KEY_PACKAGE_NOT_BEFORE_SECONDS = 5n * 60n;
/** Our KeyPackages stay valid this many seconds after they are made. */
export const KEY_PACKAGE_NOT_AFTER_SECONDS = 24n * 3600n;
/** Section 13.1: the longest lifetime an admin accepts. */
export const MAX_KEY_PACKAGE_LIFETIME_SECONDS = 25n * 3600n;
/**
 * An admin does not commit a KeyPackage that expires within this many seconds: ts-mls checks
 * the lifetime again when it makes the commit, and one that expires in between would fail
 * inside the library (see mls.ts `checkAddAlone()`).
 */
export const KEY_PACKAGE_EXPIRY_MARGIN_SECONDS = 60n;

/** Now, in seconds since the epoch, as MLS lifetimes count. */
export function nowSeconds(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

/**
 * Makes a KeyPackage for one room: a new MLS signature key, our credential binding it to our
 * identity key, and new HPKE keys.
 *
 * @param name the name to be shown as (1..64 bytes of UTF-8)
 * @throws {RangeError} on a bad name
 */
export async function makeKeyPackage(
  identity: Identity,
  name: string,
  cs: CiphersuiteImpl,
): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  const signatureKeys = await cs.signature.keygen();
  const credential = await makeCredential(identity, name, signatureKeys.publicKey, SUITE_ID);
  const capabilities = defaultCapabilities();
  capabilities.extensions.push(ADMINS_EXTENSION_TYPE);
  const now = nowSeconds();
  const lifetime = {
    notBefore: now - KEY_PACKAGE_NOT_BEFORE_SECONDS,
    notAfter: now + KEY_PACKAGE_NOT_AFTER_SECONDS,
  };
  return await generateKeyPackageWithKey(
    { credentialType: "basic", identity: credential },
    capabilities,
    lifetime,
    [],
    signatureKeys,
    cs,
  );
}

/**
 * What is wrong with a newcomer's KeyPackage before the library looks at it: the version and
 * suite, the lifetime (at most 25 hours, covering now, not about to end), the capabilities
 * (our version, suite, basic credentials and the admins extension), a basic credential.
 *
 * @param now seconds since the epoch
 * @returns the problem, or undefined
 */
export function keyPackageProblem(keyPackage: KeyPackage, now: bigint): string | undefined {
  if (keyPackage.version !== MLS_VERSION) return `MLS version ${keyPackage.version}`;
  if (keyPackage.cipherSuite !== SUITE_NAME) return `cipher suite ${keyPackage.cipherSuite}`;
  const leaf = keyPackage.leafNode;
  if (leaf.leafNodeSource !== "key_package") return "its leaf is not a KeyPackage leaf";
  const { notBefore, notAfter } = leaf.lifetime;
  if (notAfter < notBefore || notAfter - notBefore > MAX_KEY_PACKAGE_LIFETIME_SECONDS) {
    return "its lifetime is longer than 25 hours";
  }
  if (now < notBefore) return "its lifetime has not begun";
  if (now + KEY_PACKAGE_EXPIRY_MARGIN_SECONDS > notAfter) return "it has expired";
  const caps = leaf.capabilities;
  if (!caps.versions.includes(MLS_VERSION) || !caps.ciphersuites.includes(SUITE_NAME)) {
    return "its capabilities lack the room's version or suite";
  }
  if (!caps.credentials.includes("basic")) return "its capabilities lack basic credentials";
  if (!caps.extensions.includes(ADMINS_EXTENSION_TYPE)) {
    return "its capabilities lack the admins extension";
  }
  if (leaf.credential.credentialType !== "basic") return "its credential is not basic";
  return undefined;
}
