/**
 * `authorized_keys`: the dialer keys a listener admits, each with the name the listener shows for
 * it. Parse and look up. The check here is the "caller checks trust" step of docs/PROTOCOL.md
 * section 6.2 (the responder checking ClientIdentity); a failed check ends the handshake with alert
 * `bad_certificate` (section 9). The line format is that of lib/trust/trust_file.ts.
 *
 * What it does not do: write the file (the user does, from `securechat fingerprint`) or print
 * anything.
 *
 * ```text
 * # authorized_keys: SHA256:<fingerprint> NAME [comment...]
 * SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU bob@desk
 * ```
 *
 * - NAME is required: 1 to 64 characters, no spaces, no control characters, not starting with
 *   `#`. It is the name the listener shows for that peer; the rest of the line is a free comment.
 *   The output of `securechat fingerprint FILE` can be appended as it is. Only this one form is
 *   read; the reversed `NAME SHA256:...` is an error with a hint.
 *
 * @module
 */

import { joinPath, securechatHome } from "../core/paths.ts";
import {
  atLine,
  badLine,
  type FileKind,
  FINGERPRINT_PREFIX,
  parseFingerprint,
  quote,
  readTrustFile,
  splitLines,
} from "./trust_file.ts";

/** NAME in authorized_keys: no separators, no control or format characters, no leading `#`. */
const NAME_PATTERN = /^[^\p{C}\p{Z}#][^\p{C}\p{Z}]{0,63}$/u;

/** One entry of an authorized_keys file. */
export interface AuthorizedKey {
  /** The key's fingerprint, `SHA256:` and 43 base64 characters. */
  fingerprint: string;
  /** The name the listener shows for this peer. */
  name: string;
  /** 1-based line number in the file. */
  line: number;
}

/** The default authorized_keys file: `$SECURECHAT_HOME/authorized_keys`. @throws {SecurechatError} `no_home` */
export function authorizedKeysPath(): string {
  return joinPath(securechatHome(), "authorized_keys");
}

/**
 * Finds the entry for a fingerprint; the first one when a key is listed twice.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 *
 * const fingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
 * const keys = [{ fingerprint, name: "bob", line: 2 }];
 * strictEqual(findAuthorizedKey(keys, fingerprint)?.name, "bob");
 * strictEqual(findAuthorizedKey(keys, "SHA256:other"), undefined);
 * ```
 *
 * @param keys entries from {@linkcode readAuthorizedKeys}
 * @param fingerprint the peer key's fingerprint
 * @returns the matching entry, or undefined when the key is not authorized
 */
export function findAuthorizedKey(
  keys: AuthorizedKey[],
  fingerprint: string,
): AuthorizedKey | undefined {
  return keys.find((key) => key.fingerprint === fingerprint);
}

/**
 * Reads an authorized_keys file.
 *
 * @param file the authorized_keys file
 * @returns the entries in file order (an empty file admits nobody)
 * @throws {SecurechatError} code `authorized_keys_unreadable` when the file is missing or cannot be
 *   read, `bad_authorized_keys` naming the file and line when a line is malformed
 */
export async function readAuthorizedKeys(file: string): Promise<AuthorizedKey[]> {
  const content = await readTrustFile(AUTHORIZED, file);
  const keys: AuthorizedKey[] = [];
  for (const { line, fields: [first = "", name] } of splitLines(AUTHORIZED, file, content)) {
    if (!first.startsWith(FINGERPRINT_PREFIX)) {
      const hints = name?.startsWith(FINGERPRINT_PREFIX)
        ? [`the fingerprint comes first: write "${name} ${first}"`]
        : /^(ssh-|ecdsa-|-----BEGIN)/.test(first)
        ? [
          'this file lists fingerprints, not keys: add what "securechat fingerprint KEY.pub" prints',
        ]
        : [];
      throw badLine(AUTHORIZED, file, line, `expected "${AUTHORIZED.form}"`, { hints });
    }
    const fingerprint = atLine(AUTHORIZED, file, line, () => parseFingerprint(first));
    if (name === undefined) {
      throw badLine(AUTHORIZED, file, line, `expected "${AUTHORIZED.form}", found no NAME`, {
        hints: [`add the name to show for this peer after the fingerprint: "${fingerprint} alice"`],
      });
    }
    if (!NAME_PATTERN.test(name)) {
      const detail = `invalid name ${quote(name)}: expected 1 to 64 printable characters`;
      throw badLine(AUTHORIZED, file, line, `${detail}, not starting with "#"`);
    }
    keys.push({ fingerprint, name, line });
  }
  return keys;
}

const AUTHORIZED: FileKind = {
  title: "authorized keys",
  bad: "bad_authorized_keys",
  unreadable: "authorized_keys_unreadable",
  form: "SHA256:<fingerprint> NAME",
  optional: false,
};
