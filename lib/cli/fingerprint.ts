/**
 * `securechat fingerprint [FILE]`: prints `SHA256:<fingerprint> <comment>` for a public key file
 * (default `$SECURECHAT_HOME/id.pub`) or a private key file, the line that `authorized_keys`
 * takes. The fingerprint covers the canonical SPKI DER (lib/keys/spki.ts), so it matches what a peer
 * sees in the handshake.
 *
 * @module
 */

import { loadPublicIdentityFile } from "../keys/identity_file.ts";
import { SecurechatError } from "../core/errors.ts";
import { passphraseSource } from "../terminal/passphrase.ts";
import { joinPath, securechatHome } from "../core/paths.ts";
import { booleanFlag, parseFlags, stringFlag } from "./args.ts";
import { FINGERPRINT_FLAGS } from "./flags.ts";
import { print } from "./output.ts";
import { USAGE } from "./usage.ts";

/**
 * Runs `securechat fingerprint`.
 *
 * @param args the arguments after "fingerprint"
 * @returns the exit code
 * @throws {UsageError} on bad flags or more than one FILE
 * @throws {SecurechatError} when the file is missing or not a supported key
 */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("fingerprint", FINGERPRINT_FLAGS, args, { maxPositionals: 1 });
  if (booleanFlag(parsed, "help")) {
    print(USAGE.fingerprint!);
    return 0;
  }
  const explicit = parsed.positionals[0];
  const path = explicit ?? joinPath(securechatHome(), "id.pub");
  const passphrase = passphraseSource({
    passphraseFile: stringFlag(parsed, "passphrase-file"),
    keyPath: path,
  });
  let loaded;
  try {
    loaded = await loadPublicIdentityFile(path, { passphrase });
  } catch (error) {
    // Our own id.pub is missing: the fix is to create it.
    if (
      explicit === undefined && error instanceof SecurechatError && error.code === "no_identity"
    ) {
      throw new SecurechatError(error.code, error.message, error.exitCode, {
        hints: ['run "securechat keygen" first'],
        cause: error,
      });
    }
    throw error;
  }
  const { identity, comment } = loaded;
  print(comment === "" ? identity.fingerprint : `${identity.fingerprint} ${comment}`);
  return 0;
}
