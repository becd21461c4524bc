/**
 * What `listen` and `dial` share: the session flags, loading our identity, the suite and timeout
 * flags, the local pipe ends, and the lines that tell the user who the peer is.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { VerifiedPeer } from "../handshake.ts";
import { type Identity, loadIdentity } from "../identity.ts";
import { parseSuiteList, type SuiteName } from "../kex.ts";
import { passphraseSource } from "../passphrase.ts";
import { joinPath, securechatHome } from "../paths.ts";
import type { PipeEnds } from "../pipe.ts";
import { type FlagSpec, integerFlag, type ParsedArgs, stringFlag } from "./args.ts";
import { status } from "./output.ts";

/** Flags both `listen` and `dial` take. */
export const SESSION_FLAGS: Record<string, FlagSpec> = {
  identity: { type: "string", short: "i" },
  "passphrase-file": { type: "string" },
  suites: { type: "string" },
  pipe: { type: "boolean" },
  "handshake-timeout": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Loads the private key named by `--identity` (default `$SECURECHAT_HOME/id`). */
export async function loadOwnIdentity(parsed: ParsedArgs): Promise<Identity> {
  const path = stringFlag(parsed, "identity") ?? joinPath(securechatHome(), "id");
  const passphraseFile = stringFlag(parsed, "passphrase-file");
  return await loadIdentity(path, {
    passphrase: passphraseSource(passphraseFile === undefined ? {} : { passphraseFile }),
  });
}

/** `--handshake-timeout` in milliseconds (default 10 s). */
export function handshakeTimeoutMs(parsed: ParsedArgs): number {
  return integerFlag(parsed, "handshake-timeout", { min: 1, max: 3600, fallback: 10 }) * 1000;
}

/** `--suites`, or the fallback. @throws {UsageError} for an unknown suite */
export function suitesFlag(parsed: ParsedArgs, fallback: SuiteName[]): SuiteName[] {
  const raw = stringFlag(parsed, "suites");
  if (raw === undefined) return fallback;
  try {
    return parseSuiteList(raw);
  } catch (error) {
    throw new UsageError(`flag "--suites": ${(error as Error).message}`);
  }
}

/**
 * The process's stdin and stdout as pipe ends. With `keepOutputOpen` (a listener serving one peer
 * after another) the peer's close_notify does not close stdout, so the next peer can use it.
 */
export function standardPipeEnds(options: { keepOutputOpen?: boolean } = {}): PipeEnds {
  const stdout = Deno.stdout;
  return {
    input: Deno.stdin,
    output: options.keepOutputOpen ? { write: (data: Uint8Array) => stdout.write(data) } : stdout,
    inputIsTerminal: Deno.stdin.isTerminal(),
  };
}

/** Prints who the peer is and the verification code. */
export function announcePeer(
  where: string,
  peer: VerifiedPeer,
  details: { suite: string; verificationCode: string; name?: string },
): void {
  const name = details.name ?? peer.name;
  const label = name === "" ? "" : `"${name}" `;
  status(`${where}: ${label}${peer.identity.fingerprint} (suite ${details.suite})`);
  status(`verification code: ${details.verificationCode}`);
}
