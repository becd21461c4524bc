/**
 * Trust files: `known_hosts` (the listener keys a dialer has met) and `authorized_keys` (the dialer
 * keys a listener admits). Parse, look up, append. Trust always rests on a key's fingerprint, never
 * on the name a peer claims (docs/PROTOCOL.md section 5.3); the checks here are the "caller checks
 * trust" steps of sections 6.1 and 6.2, and a failed check ends the handshake with alert
 * `bad_certificate` (section 9).
 *
 * What it does not do: compute fingerprints (lib/identity.ts does), decide whether to trust on first
 * contact (the dial command does, and then calls {@linkcode addKnownHost}), print anything, read
 * host patterns or hashed host names (one literal HOST:PORT per line), or lock across processes.
 * Appends are serialized within one process; two processes recording a first contact at the same
 * moment may lose one record, which the next dial records again.
 *
 * File formats. Both files are UTF-8 text, one entry per line. Blank lines and lines whose first
 * non-blank character is `#` are ignored; fields are separated by spaces or tabs; CRLF line endings
 * and a leading byte order mark are tolerated. A line that does not parse is an error naming the
 * file and line number: we never guess what a damaged trust file meant.
 *
 * ```text
 * # known_hosts: HOST:PORT SHA256:<fingerprint> [comment...]
 * example.org:65432 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU alice's laptop
 * [::1]:65432 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
 *
 * # authorized_keys: SHA256:<fingerprint> NAME [comment...]
 * SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU bob@desk
 * ```
 *
 * - `HOST:PORT` is compared in the form {@linkcode canonicalHostPort} gives (lowercase names, IDN
 *   names as `xn--` punycode, IPv6 in brackets and compressed), so a hand-written
 *   `Example.ORG:65432` still matches.
 * - A host may be listed on several lines. A key is accepted when any of its lines carries the
 *   key's fingerprint, as in OpenSSH: this lets a listener owner announce a new key before retiring
 *   the old one, and it never accepts a fingerprint the user did not write down. When the host is
 *   listed but no line matches, the key has changed, and the error names every line to remove.
 * - An `authorized_keys` NAME is required: 1 to 64 characters, no spaces, no control characters,
 *   not starting with `#`. It is the name the listener shows for that peer; the rest of the line is
 *   a free comment. The output of `securechat fingerprint FILE` can be appended as it is. Only this
 *   one form is read; the reversed `NAME SHA256:...` is an error with a hint.
 *
 * @module
 */

import { concat } from "./bytes.ts";
import { EXIT, SecurechatError, TrustError } from "./errors.ts";
import { dirName, joinPath, securechatHome, writeFileAtomic } from "./paths.ts";

/** Text before the base64 part of every fingerprint. */
export const FINGERPRINT_PREFIX = "SHA256:";
/** Unpadded standard base64 of 32 bytes: 43 characters, the last carrying 2 zero bits. */
const FINGERPRINT_BASE64_LENGTH = 43;
/** Base64 characters whose two low bits are zero: the only possible last characters. */
const FINGERPRINT_LAST_CHARACTERS = "AEIMQUYcgkosw048";
const FINGERPRINT_FORM =
  'a fingerprint reads "SHA256:" followed by 43 base64 characters, as "securechat fingerprint" prints it';
/** NAME in authorized_keys: no separators, no control or format characters, no leading `#`. */
const NAME_PATTERN = /^[^\p{C}\p{Z}#][^\p{C}\p{Z}]{0,63}$/u;
const MAX_COMMENT_LENGTH = 200;

/** Outcome of checking a host key against known_hosts. */
export type HostCheck =
  | { status: "match"; line: number }
  | { status: "unknown" }; // first contact; caller then records it with addKnownHost

/** One entry of an authorized_keys file. */
export interface AuthorizedKey {
  /** The key's fingerprint, `SHA256:` and 43 base64 characters. */
  fingerprint: string;
  /** The name the listener shows for this peer. */
  name: string;
  /** 1-based line number in the file. */
  line: number;
}

/** The default known_hosts file: `$SECURECHAT_HOME/known_hosts`. @throws {SecurechatError} `no_home` */
export function knownHostsPath(): string {
  return joinPath(securechatHome(), "known_hosts");
}

/** The default authorized_keys file: `$SECURECHAT_HOME/authorized_keys`. @throws {SecurechatError} `no_home` */
export function authorizedKeysPath(): string {
  return joinPath(securechatHome(), "authorized_keys");
}

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

/**
 * The form a listener address takes in known_hosts: `host:port`, with host names lowercased and
 * IDN names in `xn--` punycode, IPv4 literals in dotted decimal, IPv6 literals compressed and in
 * brackets (an interface zone such as `%eth0` is kept).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(canonicalHostPort("Example.ORG", 65432), "example.org:65432");
 * strictEqual(canonicalHostPort("::1", 65432), "[::1]:65432");
 * strictEqual(canonicalHostPort("[0:0:0:0:0:0:0:1]", 65432), "[::1]:65432");
 * ```
 *
 * @param host a host name, IPv4 address, or IPv6 address with or without brackets
 * @param port a TCP port, 1 to 65535
 * @returns `host:port` in canonical form
 * @throws {SecurechatError} code `bad_host` or `bad_port`, exit code 2 like a `UsageError`
 */
export function canonicalHostPort(host: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new SecurechatError(
      "bad_port",
      `invalid port "${port}": expected a whole number from 1 to 65535`,
      EXIT.usage,
    );
  }
  return `${canonicalHost(host)}:${port}`;
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
 * Looks a listener's key up in known_hosts.
 *
 * @param file the known_hosts file; a missing file lists no hosts
 * @param hostPort the address dialed, as {@linkcode canonicalHostPort} gives it
 * @param fingerprint the fingerprint of the key the listener proved it holds
 * @returns `match` with the line that lists this key, or `unknown` when the host is not listed
 * @throws {TrustError} code `host_key_changed` when the host is listed only with other keys
 * @throws {SecurechatError} `bad_known_hosts` (a malformed line), `known_hosts_unreadable`,
 *   `bad_host`, `bad_port` or `bad_fingerprint` (bad arguments)
 */
export async function checkKnownHost(
  file: string,
  hostPort: string,
  fingerprint: string,
): Promise<HostCheck> {
  const host = parseHostPort(hostPort);
  const key = parseFingerprint(fingerprint);
  const content = await readTrustFile(KNOWN, file);
  const listed = parseKnownHosts(file, content).filter((entry) => entry.host === host);
  const match = listed.find((entry) => entry.fingerprint === key);
  if (match) return { status: "match", line: match.line };
  if (listed.length === 0) return { status: "unknown" };
  throw hostKeyChanged(file, host, listed, key);
}

/**
 * Records a listener's key in known_hosts: reads the file, appends one line, and replaces the file
 * atomically, keeping every other byte (and its permissions, and a symlink's target) as it was. A
 * missing file is created with mode 0644, and a missing folder with mode 0700. Recording a key
 * that is already listed for the host does nothing; calls within one process run one at a time.
 *
 * @param file the known_hosts file
 * @param hostPort the address dialed, as {@linkcode canonicalHostPort} gives it
 * @param fingerprint the listener key's fingerprint
 * @param comment free text after the fingerprint, e.g. the name the listener claims; control
 *   characters and line breaks become spaces, so an untrusted name cannot add a line
 * @throws {TrustError} code `host_key_changed` when the host is already listed with other keys
 *   (the record is refused: it must never replace a check)
 * @throws {SecurechatError} `bad_known_hosts`, `known_hosts_unreadable`, `known_hosts_unwritable`,
 *   `bad_host`, `bad_port` or `bad_fingerprint`
 */
export async function addKnownHost(
  file: string,
  hostPort: string,
  fingerprint: string,
  comment?: string,
): Promise<void> {
  const previous = appending.get(file) ?? Promise.resolve();
  const current = previous.then(() => appendKnownHost(file, hostPort, fingerprint, comment));
  const settled = current.then(() => {}, () => {});
  appending.set(file, settled);
  settled.then(() => {
    if (appending.get(file) === settled) appending.delete(file);
  });
  await current;
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

// ---------------------------------------------------------------------------------------------
// Internals

/** How messages name each file, its malformed-line code, and the form its lines take. */
interface FileKind {
  title: string;
  bad: string;
  unreadable: string;
  form: string;
}
const KNOWN: FileKind = {
  title: "known hosts",
  bad: "bad_known_hosts",
  unreadable: "known_hosts_unreadable",
  form: "HOST:PORT SHA256:<fingerprint>",
};
const AUTHORIZED: FileKind = {
  title: "authorized keys",
  bad: "bad_authorized_keys",
  unreadable: "authorized_keys_unreadable",
  form: "SHA256:<fingerprint> NAME",
};

interface HostEntry {
  host: string;
  fingerprint: string;
  line: number;
}

/** Pending appends per file, so two adds in one process never read the same old content. */
const appending = new Map<string, Promise<void>>();
const decoder = new TextDecoder("utf-8", { fatal: true });

async function appendKnownHost(
  file: string,
  hostPort: string,
  fingerprint: string,
  comment: string | undefined,
): Promise<void> {
  const host = parseHostPort(hostPort);
  const key = parseFingerprint(fingerprint);
  // Write through a symlink (dotfile managers) rather than replacing it with a plain file.
  const target = await Deno.realPath(file).catch(() => file);
  const content = await readTrustFile(KNOWN, target);
  const listed = parseKnownHosts(file, content).filter((entry) => entry.host === host);
  if (listed.some((entry) => entry.fingerprint === key)) return;
  if (listed.length > 0) throw hostKeyChanged(file, host, listed, key);
  try {
    let mode = 0o644;
    if (content === undefined) await Deno.mkdir(dirName(target), { recursive: true, mode: 0o700 });
    else mode = ((await Deno.stat(target)).mode ?? mode) & 0o777;
    const old = content ?? new Uint8Array();
    const firstBreak = old.indexOf(0x0a);
    const newline = firstBreak > 0 && old[firstBreak - 1] === 0x0d ? "\r\n" : "\n";
    const separator = old.length > 0 && old.at(-1) !== 0x0a ? newline : "";
    const note = comment?.replace(/[\p{C}\p{Z}\s]+/gu, " ").trim().slice(0, MAX_COMMENT_LENGTH);
    const entry = `${separator}${host} ${key}${note ? ` ${note}` : ""}${newline}`;
    await writeFileAtomic(target, concat(old, new TextEncoder().encode(entry)), { mode });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    const message = `cannot record host key in "${file}": ${describeFileError(error)}`;
    throw new SecurechatError("known_hosts_unwritable", message, EXIT.failure, { cause: error });
  }
}

/** The file's bytes; a missing known_hosts is undefined (no hosts), a missing authorized_keys an error. */
async function readTrustFile(kind: FileKind, file: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(file);
  } catch (error) {
    const missing = error instanceof Deno.errors.NotFound;
    if ((missing && kind === KNOWN) || error instanceof Deno.errors.NotCapable) {
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

function parseKnownHosts(file: string, content: Uint8Array | undefined): HostEntry[] {
  const entries: HostEntry[] = [];
  for (const { line, fields: [first = "", second] } of splitLines(KNOWN, file, content)) {
    if (second === undefined || first.startsWith(FINGERPRINT_PREFIX)) {
      throw badLine(KNOWN, file, line, `expected "${KNOWN.form} [comment]"`);
    }
    const host = atLine(KNOWN, file, line, () => parseHostPort(first));
    const fingerprint = atLine(KNOWN, file, line, () => parseFingerprint(second));
    entries.push({ host, fingerprint, line });
  }
  return entries;
}

/** Splits into numbered lines of fields, skipping blanks and comments. */
function splitLines(
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
function atLine<T>(kind: FileKind, file: string, line: number, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof SecurechatError)) throw error;
    throw badLine(kind, file, line, error.message, { cause: error });
  }
}

function badLine(
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

/** Parses and canonicalizes `HOST:PORT` (IPv6 in brackets). */
function parseHostPort(text: string): string {
  const match = /^(\[[^\]]*\]|[^:[\]]+):([0-9]{1,5})$/.exec(text);
  if (!match) {
    throw new SecurechatError(
      "bad_host",
      `invalid address ${
        quote(text)
      }: expected "HOST:PORT", with an IPv6 address in brackets as in "[::1]:65432"`,
      EXIT.usage,
    );
  }
  return canonicalHostPort(match[1]!, Number(match[2]));
}

function canonicalHost(host: string): string {
  const fail = () =>
    new SecurechatError(
      "bad_host",
      `invalid host ${quote(host)}: expected a host name, an IPv4 address or an IPv6 address`,
      EXIT.usage,
    );
  const bracketed = host.startsWith("[") && host.endsWith("]");
  const bare = bracketed ? host.slice(1, -1) : host;
  if (bare.includes(":")) {
    const [address = "", zone, ...rest] = bare.split("%");
    const zoneOk = zone === undefined || /^[A-Za-z0-9_.-]{1,64}$/.test(zone);
    if (rest.length > 0 || !zoneOk || !/^[0-9A-Fa-f:.]+$/.test(address)) throw fail();
    const parsed = urlHostname(`[${address}]`) ?? "";
    if (!parsed.startsWith("[")) throw fail();
    return zone === undefined ? parsed : `${parsed.slice(0, -1)}%${zone}]`;
  }
  // Only letters, digits, marks, "." "_" "-": the URL parser would read "@", "#", "/", "%" as URL
  // syntax. It then lowercases, maps IDN names to punycode and IPv4 literals to dotted decimal.
  if (bracketed || !/^[\p{L}\p{M}\p{N}._-]+$/u.test(bare)) throw fail();
  const parsed = urlHostname(bare);
  if (parsed === undefined) throw fail();
  return parsed;
}

function urlHostname(host: string): string | undefined {
  try {
    return new URL(`http://${host}/`).hostname || undefined;
  } catch {
    return undefined;
  }
}

function hostKeyChanged(file: string, host: string, listed: HostEntry[], got: string): TrustError {
  const expected = [...new Set(listed.map((entry) => `"${entry.fingerprint}"`))].join(" or ");
  const lines = listed.map((entry) => entry.line);
  const which = lines.length === 1
    ? `line ${lines[0]}`
    : `lines ${lines.slice(0, -1).join(", ")} and ${lines.at(-1)}`;
  return new TrustError(
    "host_key_changed",
    `host key for "${host}" changed: expected ${expected}, got "${got}"`,
    {
      hints: [
        "someone may be intercepting this connection (a man-in-the-middle attack), or the listener's key was replaced",
        'ask the listener\'s owner for their fingerprint ("securechat fingerprint") and compare it over a channel you trust',
        `if the change is expected, remove ${which} of "${file}" and dial again`,
      ],
    },
  );
}

function describeFileError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "it does not exist";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a folder";
  return error instanceof Error ? error.message : String(error);
}

/** Quotes an untrusted value for a message: control characters escaped, long values cut. */
function quote(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  const escaped = shown.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`,
  );
  return `"${escaped}"`;
}
