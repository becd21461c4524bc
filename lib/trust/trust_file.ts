/**
 * The line-oriented format shared by the trust files (`known_hosts`, lib/trust/known_hosts.ts, and
 * `authorized_keys`, lib/trust/authorized_keys.ts): reading a file, splitting it into numbered lines of
 * fields, the fingerprint field both carry, and errors that name the file and line. Trust always
 * rests on a key's fingerprint, never on the name a peer claims (docs/PROTOCOL.md section 5.3).
 *
 * What it does not do: know what the fields of a line mean (the two file modules do), compute
 * fingerprints (lib/keys/identity.ts does), or write files.
 *
 * Format. Both files are UTF-8 text, one entry per line. Blank lines and lines whose first non-blank
 * character is `#` are ignored; fields are separated by spaces or tabs; CRLF line endings and a
 * leading byte order mark are tolerated. A line that does not parse is an error naming the file and
 * line number: we never guess what a damaged trust file meant.
 *
 * @module
 */

import { EXIT, SecurechatError } from "../core/errors.ts";

/** Text before the base64 part of every fingerprint. */
export const FINGERPRINT_PREFIX = "SHA256:";
/** Unpadded standard base64 of 32 bytes: 43 characters, the last carrying 2 zero bits. */
const FINGERPRINT_BASE64_LENGTH = 43;
/** Base64 characters whose two low bits are zero: the only possible last characters. */
const FINGERPRINT_LAST_CHARACTERS = "AEIMQUYcgkosw048";
const FINGERPRINT_FORM =
  'a fingerprint reads "SHA256:" followed by 43 base64 characters, as "securechat fingerprint" prints it';

/**
 * Checks a fingerprint's exact form: `SHA256:` then 43 characters of unpadded standard base64
 * encoding 32 bytes. Only the canonical spelling is accepted (no `=` padding, no base64url, no
 * surrounding spaces, a last character with zero trailing bits), so fingerprints compare as strings.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 *
 * const fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
 * strictEqual(parseFingerprint(fp), fp);
 * throws(() => parseFingerprint(fp + "="), { code: "bad_fingerprint" });
 * throws(() => parseFingerprint("MD5:" + fp.slice(7)), { code: "bad_fingerprint" });
 * ```
 *
 * @param text the fingerprint as written by the user or read from a file
 * @returns the same fingerprint
 * @throws {SecurechatError} code `bad_fingerprint`, exit code 2 like a `UsageError`
 */
export function parseFingerprint(text: string): string {
  const fail = (reason: string) =>
    new SecurechatError(
      "bad_fingerprint",
      `invalid fingerprint ${quote(text)}: ${reason}`,
      EXIT.usage,
      {
        hints: [FINGERPRINT_FORM],
      },
    );
  if (!text.startsWith(FINGERPRINT_PREFIX)) throw fail('it does not start with "SHA256:"');
  const body = text.slice(FINGERPRINT_PREFIX.length);
  if (body.includes("=")) throw fail('remove the "=" padding: expected 43 base64 characters');
  const stray = /[^A-Za-z0-9+/]/u.exec(body);
  if (stray) throw fail(`${quote(stray[0])} is not a standard base64 character`);
  if (body.length !== FINGERPRINT_BASE64_LENGTH) {
    throw fail(`expected 43 base64 characters after "SHA256:", found ${body.length}`);
  }
  // 43 characters carry 258 bits for a 256-bit hash: the last character's 2 low bits must be 0,
  // or two spellings would name the same hash.
  if (!FINGERPRINT_LAST_CHARACTERS.includes(body.at(-1)!)) {
    throw fail(`the last character ${quote(body.at(-1)!)} cannot end a SHA-256 fingerprint`);
  }
  return text;
}

/** How messages name each file, its malformed-line code, and the form its lines take. */
export interface FileKind {
  title: string;
  bad: string;
  unreadable: string;
  form: string;
  /** A missing file reads as empty (known_hosts: no hosts) rather than as an error. */
  optional: boolean;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** The file's bytes; a missing optional file (known_hosts) is undefined, any other an error. */
export async function readTrustFile(kind: FileKind, file: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(file);
  } catch (error) {
    const missing = error instanceof Deno.errors.NotFound;
    if ((missing && kind.optional) || error instanceof Deno.errors.NotCapable) {
      if (missing) return undefined;
      throw error;
    }
    const message = `cannot read ${kind.title} "${file}": ${describeFileError(error)}`;
    const hints = missing
      ? [`ask each peer for the output of "securechat fingerprint" and add it to "${file}"`]
      : [];
    throw new SecurechatError(kind.unreadable, message, EXIT.failure, { cause: error, hints });
  }
}

/** Splits into numbered lines of fields, skipping blanks and comments. */
export function splitLines(
  kind: FileKind,
  file: string,
  content: Uint8Array | undefined,
): { line: number; fields: string[] }[] {
  const lines = [];
  let start = 0;
  for (let line = 1; content !== undefined && start < content.length; line++) {
    const found = content.indexOf(0x0a, start);
    const end = found < 0 ? content.length : found;
    let text: string;
    try {
      text = decoder.decode(content.subarray(start, end));
    } catch {
      throw badLine(kind, file, line, "it is not valid UTF-8 text");
    }
    start = end + 1;
    if (line === 1 && text.startsWith("\uFEFF")) text = text.slice(1);
    const trimmed = text.replace(/\r$/, "").replace(/^[ \t]+|[ \t]+$/g, "");
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    lines.push({ line, fields: trimmed.split(/[ \t]+/) });
  }
  return lines;
}

/** Runs a field parser, turning its error into one that names the file and line. */
export function atLine<T>(kind: FileKind, file: string, line: number, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof SecurechatError)) throw error;
    throw badLine(kind, file, line, error.message, { cause: error });
  }
}

/** The error for a line that does not parse: it names the file and line, and what a line reads. */
export function badLine(
  kind: FileKind,
  file: string,
  line: number,
  detail: string,
  options: { hints?: string[]; cause?: unknown } = {},
): SecurechatError {
  return new SecurechatError(
    kind.bad,
    `cannot read ${kind.title} "${file}": line ${line}: ${detail}`,
    EXIT.failure,
    {
      cause: options.cause,
      hints: [
        ...options.hints ?? [],
        `each line reads "${kind.form} [comment]"; fix line ${line} of "${file}"`,
      ],
    },
  );
}

/** Says why a trust file could not be read or written, for a message. */
export function describeFileError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "it does not exist";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a folder";
  return error instanceof Error ? error.message : String(error);
}

/** Quotes an untrusted value for a message: control characters escaped, long values cut. */
export function quote(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  const escaped = shown.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`,
  );
  return `"${escaped}"`;
}
