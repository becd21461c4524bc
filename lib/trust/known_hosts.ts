/**
 * `known_hosts`: the listener keys a dialer has met. Look up, record, and the `HOST:PORT` form the
 * file is keyed on. The checks here are the "caller checks trust" step of docs/PROTOCOL.md section
 * 6.1 (the initiator checking ServerIdentity); a failed check ends the handshake with alert
 * `bad_certificate` (section 9). The line format is that of lib/trust/trust_file.ts.
 *
 * What it does not do: decide whether to trust on first contact (the dial command does, and then
 * calls {@linkcode addKnownHost}), print anything, read host patterns or hashed host names (one
 * literal HOST:PORT per line), or lock across processes. Appends are serialized within one
 * process; two processes recording a first contact at the same moment may lose one record, which
 * the next dial records again.
 *
 * ```text
 * # known_hosts: HOST:PORT SHA256:<fingerprint> [comment...]
 * example.org:65432 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU alice's laptop
 * [::1]:65432 SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
 * ```
 *
 * - `HOST:PORT` is compared in the form {@linkcode canonicalHostPort} gives (lowercase names, IDN
 *   names as `xn--` punycode, IPv6 in brackets and compressed), so a hand-written
 *   `Example.ORG:65432` still matches.
 * - A host may be listed on several lines. A key is accepted when any of its lines carries the
 *   key's fingerprint, as in OpenSSH: this lets a listener owner announce a new key before retiring
 *   the old one, and it never accepts a fingerprint the user did not write down. When the host is
 *   listed but no line matches, the key has changed, and the error names every line to remove.
 *
 * @module
 */

import { concat } from "../core/bytes.ts";
import { EXIT, SecurechatError, TrustError } from "../core/errors.ts";
import { dirName, joinPath, securechatHome, writeFileAtomic } from "../core/paths.ts";
import {
  atLine,
  badLine,
  describeFileError,
  type FileKind,
  FINGERPRINT_PREFIX,
  parseFingerprint,
  quote,
  readTrustFile,
  splitLines,
} from "./trust_file.ts";

const MAX_COMMENT_LENGTH = 200;

/** Outcome of checking a host key against known_hosts. */
export type HostCheck =
  | { status: "match"; line: number }
  | { status: "unknown" }; // first contact; caller then records it with addKnownHost

/** The default known_hosts file: `$SECURECHAT_HOME/known_hosts`. @throws {SecurechatError} `no_home` */
export function knownHostsPath(): string {
  return joinPath(securechatHome(), "known_hosts");
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
 * The keys known_hosts lists for a host, for a dialer that needs a listener's fingerprint before
 * it connects (`dial NAME --via RELAY`, docs/PROTOCOL.md 15.3).
 *
 * @param file the known_hosts file; a missing file lists no hosts
 * @param hostPort the address, as {@linkcode canonicalHostPort} gives it
 * @returns the fingerprints of its lines, in file order, each once (none when it is not listed)
 * @throws {SecurechatError} `bad_known_hosts`, `known_hosts_unreadable`, `bad_host` or `bad_port`
 */
export async function knownHostKeys(file: string, hostPort: string): Promise<string[]> {
  const host = parseHostPort(hostPort);
  const content = await readTrustFile(KNOWN, file);
  const listed = parseKnownHosts(file, content).filter((entry) => entry.host === host);
  return [...new Set(listed.map((entry) => entry.fingerprint))];
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

const KNOWN: FileKind = {
  title: "known hosts",
  bad: "bad_known_hosts",
  unreadable: "known_hosts_unreadable",
  form: "HOST:PORT SHA256:<fingerprint>",
  optional: true,
};

interface HostEntry {
  host: string;
  fingerprint: string;
  line: number;
}

/** Pending appends per file, so two adds in one process never read the same old content. */
const appending = new Map<string, Promise<void>>();

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
