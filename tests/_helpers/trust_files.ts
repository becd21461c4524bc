/**
 * Fixtures for the trust file tests (trust_file, known_hosts, authorized_keys): real fingerprints,
 * temporary folders and files, and an error predicate.
 *
 * @module
 */

import { match, ok, strictEqual } from "node:assert/strict";
import { sha256, toBase64, utf8 } from "../../lib/core/bytes.ts";
import { SecurechatError } from "../../lib/core/errors.ts";

/** A real fingerprint: SHA-256 of `seed`, unpadded standard base64. */
export async function fingerprintOf(seed: string): Promise<string> {
  return "SHA256:" + toBase64(await sha256(utf8(seed))).replace(/=+$/, "");
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "securechat_trust_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with `name` written to a temporary folder holding `content`. */
export function withFile(
  content: string | Uint8Array,
  fn: (file: string, dir: string) => Promise<void>,
): Promise<void> {
  return withTempDir(async (dir) => {
    const file = `${dir}/trust_file`;
    await Deno.writeFile(file, typeof content === "string" ? utf8(content) : content);
    await fn(file, dir);
  });
}

export function isError(code: string, message?: string | RegExp) {
  return (error: unknown) => {
    ok(error instanceof SecurechatError, `expected a SecurechatError, got ${error}`);
    strictEqual(error.code, code);
    if (typeof message === "string") strictEqual(error.message, message);
    else if (message) match(error.message, message);
    return true;
  };
}
