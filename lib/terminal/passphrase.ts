/**
 * Where private-key passphrases come from, in a fixed order: `--passphrase-file F` (its first
 * line), then the `SECURECHAT_PASSPHRASE` environment variable, then a prompt on the terminal.
 *
 * `passphraseSource()` is for reading an existing key and is lazy: nothing is read or asked until
 * the key turns out to be encrypted. `newPassphrase()` is for keygen: on a terminal it asks twice
 * and refuses a mismatch, and it never falls back to writing an unencrypted key; that takes an
 * explicit `--no-passphrase`.
 *
 * Caveat: an environment variable is visible to other processes of the same user (and to
 * `/proc/PID/environ`); a file with mode 0600 is the better choice for scripts.
 *
 * @module
 */

import { wipe } from "../core/bytes.ts";
import { SecurechatError, UsageError } from "../core/errors.ts";
import { readSecret } from "./tty.ts";

/** The environment variable that may hold the passphrase. */
export const PASSPHRASE_ENV = "SECURECHAT_PASSPHRASE";

/** Where to look for a passphrase. */
export interface PassphraseOptions {
  /** `--passphrase-file F`: the passphrase is the first line of F. */
  passphraseFile?: string | undefined;
  /** The key file, named in the terminal prompt. */
  keyPath?: string | undefined;
}

/**
 * Returns a callback that fetches the passphrase of an existing key when called: from
 * `options.passphraseFile`, else `SECURECHAT_PASSPHRASE`, else a prompt on the terminal.
 *
 * @param options where to look
 * @returns the callback, for `loadIdentity()`
 */
export function passphraseSource(options: PassphraseOptions = {}): () => Promise<string> {
  return async () => {
    if (options.passphraseFile !== undefined) {
      return await readPassphraseFile(options.passphraseFile);
    }
    const fromEnv = Deno.env.get(PASSPHRASE_ENV);
    if (fromEnv) return fromEnv;
    const what = options.keyPath === undefined ? "the private key" : `"${options.keyPath}"`;
    return await readSecret(`passphrase for ${what}: `);
  };
}

/**
 * Gets the passphrase for a new key: from `options.passphraseFile`, else
 * `SECURECHAT_PASSPHRASE`, else asked twice on the terminal (stdin must be a terminal).
 *
 * @param options where to look
 * @returns a non-empty passphrase
 * @throws {UsageError} when there is no source (stdin is not a terminal), the two entries differ,
 *   or the passphrase is empty
 * @throws {SecurechatError} code "passphrase_file" when the file cannot be read
 */
export async function newPassphrase(options: PassphraseOptions = {}): Promise<string> {
  if (options.passphraseFile !== undefined) return await readPassphraseFile(options.passphraseFile);
  const fromEnv = Deno.env.get(PASSPHRASE_ENV);
  if (fromEnv) return fromEnv;
  // Only stdin counts here, not /dev/tty: a keygen in a script must not stop to ask.
  if (!Deno.stdin.isTerminal()) {
    throw new UsageError("cannot ask for a passphrase for the new key: stdin is not a terminal", {
      hints: [
        `set ${PASSPHRASE_ENV}, pass --passphrase-file F, or pass --no-passphrase to write the key unencrypted`,
      ],
    });
  }
  const first = await readSecret("passphrase for the new key: ");
  if (first === "") {
    throw new UsageError("the passphrase is empty", {
      hints: ["to write the key unencrypted, pass --no-passphrase"],
    });
  }
  const second = await readSecret("same passphrase again: ");
  if (first !== second) throw new UsageError("the two passphrases differ");
  return first;
}

/**
 * Reads the first line of a passphrase file, without its line ending.
 *
 * @throws {SecurechatError} code "passphrase_file" when the file is missing, unreadable or empty
 */
async function readPassphraseFile(path: string): Promise<string> {
  // Read at most 4 KiB: enough for any passphrase, and `/dev/zero` cannot hang us.
  const buffer = new Uint8Array(4096);
  let length = 0;
  try {
    using file = await Deno.open(path);
    while (length < buffer.length) {
      const count = await file.read(buffer.subarray(length));
      if (count === null) break;
      length += count;
    }
  } catch (error) {
    const detail = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new SecurechatError(
      "passphrase_file",
      `cannot read passphrase file "${path}": ${detail}`,
      1,
      {
        cause: error,
      },
    );
  }
  const text = new TextDecoder().decode(buffer.subarray(0, length));
  wipe(buffer);
  const line = text.split("\n", 1)[0]!.replace(/\r$/, "");
  if (line === "") {
    throw new SecurechatError("passphrase_file", `passphrase file "${path}" is empty`);
  }
  return line;
}
