/**
 * PEM textual encoding of DER structures (RFC 7468), with one line of explanatory text before the
 * BEGIN line that holds the key's comment:
 *
 * ```
 * Comment: alice@laptop
 * -----BEGIN PUBLIC KEY-----
 * MCowBQYDK2VwAyEA...
 * -----END PUBLIC KEY-----
 * ```
 *
 * RFC 7468 section 5.2 lets parsers ignore text outside the encapsulation boundaries, and
 * OpenSSL does (`openssl pkey -in id` reads these files unchanged), so the comment costs no
 * compatibility. We write the strict form (section 3: 64-character lines, LF endings) and read
 * the lax one (CRLF endings, blank lines and spaces inside the base64 body).
 *
 * Not supported: RFC 1421 headers (`Proc-Type: 4,ENCRYPTED` from OpenSSL's legacy
 * "RSA PRIVATE KEY" files) and more than one block per file (the first one wins).
 *
 * @module
 */

import { fromBase64, toBase64 } from "../core/bytes.ts";

/** The labels securechat writes (RFC 7468 sections 10, 11 and 13). */
export type PemLabel = "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "PUBLIC KEY";

/** Prefix of the explanatory line that carries a key's comment. */
export const COMMENT_PREFIX = "Comment: ";

/** One decoded PEM block. */
export interface PemBlock {
  /** The label between "BEGIN " and the dashes, e.g. "PUBLIC KEY". */
  label: string;
  /** The decoded DER bytes. */
  der: Uint8Array;
  /** Text of the first `Comment:` line before BEGIN, trimmed; "" when there is none. */
  comment: string;
}

/**
 * Encodes `der` as a PEM block, preceded by a `Comment:` line when `comment` is not empty.
 *
 * @param label the block's label
 * @param der the DER bytes
 * @param options.comment one line of text; it must not contain line breaks
 * @returns the PEM text, ending with a newline
 * @throws {RangeError} when the comment contains a line break
 *
 * @example
 * ```ts
 * import { decodePem, encodePem } from "./pem.ts";
 * import assert from "node:assert/strict";
 *
 * const text = encodePem("PUBLIC KEY", Uint8Array.of(1, 2, 3), { comment: "alice" });
 * assert.equal(text, "Comment: alice\n-----BEGIN PUBLIC KEY-----\nAQID\n-----END PUBLIC KEY-----\n");
 * assert.deepEqual(decodePem(text).der, Uint8Array.of(1, 2, 3));
 * ```
 */
export function encodePem(
  label: PemLabel,
  der: Uint8Array,
  options: { comment?: string } = {},
): string {
  const comment = options.comment ?? "";
  if (/[\r\n]/.test(comment)) throw new RangeError("a PEM comment must be one line");
  const base64 = toBase64(der);
  const lines: string[] = [];
  if (comment !== "") lines.push(COMMENT_PREFIX + comment);
  lines.push(`-----BEGIN ${label}-----`);
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  lines.push(`-----END ${label}-----`, "");
  return lines.join("\n");
}

/**
 * Decodes the first PEM block of `text`, and the comment line before it.
 *
 * @param text the file's contents
 * @returns the block's label, DER bytes and comment
 * @throws {SyntaxError} when there is no BEGIN line, no matching END line, or bad base64
 */
export function decodePem(text: string): PemBlock {
  const lines = text.split(/\r?\n/);
  const begin = lines.findIndex((line) => /^-----BEGIN [^-]*-----\s*$/.test(line));
  if (begin < 0) throw new SyntaxError('not a PEM file: no "-----BEGIN ...-----" line');
  const label = /^-----BEGIN ([^-]*)-----/.exec(lines[begin]!)![1]!;
  let comment = "";
  for (const line of lines.slice(0, begin)) {
    if (line.startsWith("Comment:")) {
      comment = line.slice("Comment:".length).trim();
      break;
    }
  }
  const endLine = `-----END ${label}-----`;
  const end = lines.findIndex((line, index) => index > begin && line.trimEnd() === endLine);
  if (end < 0) throw new SyntaxError(`malformed PEM: no "${endLine}" line`);
  const body = lines.slice(begin + 1, end);
  if (body.some((line) => line.includes(":"))) {
    throw new SyntaxError("unsupported PEM: RFC 1421 headers (such as Proc-Type) are not accepted");
  }
  let der: Uint8Array;
  try {
    der = fromBase64(body.join(""));
  } catch {
    throw new SyntaxError(`malformed PEM: the "${label}" block is not valid base64`);
  }
  if (der.length === 0) throw new SyntaxError(`malformed PEM: empty "${label}" block`);
  return { label, der, comment };
}
