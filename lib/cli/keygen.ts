/**
 * `securechat keygen`: creates the identity key pair, `$SECURECHAT_HOME/id` (PKCS#8 PEM, mode
 * 0600, encrypted with a passphrase unless `--no-passphrase`) and `id.pub` (SPKI PEM).
 *
 * Unsafe defaults are refused, not warned about: an existing key is never replaced without
 * `--force`, and a keygen that cannot ask for a passphrase (no terminal, no
 * `SECURECHAT_PASSPHRASE`, no `--passphrase-file`) fails instead of writing an unencrypted key.
 *
 * Status lines go to stderr; stdout gets one line, `SHA256:... comment`, for scripts.
 *
 * @module
 */

import { wipe } from "../core/bytes.ts";
import { UsageError } from "../core/errors.ts";
import {
  commentProblem,
  generateIdentity,
  type KeyType,
  MAX_COMMENT_LENGTH,
} from "../keys/identity.ts";
import { refuseExistingIdentity, writeIdentity } from "../keys/identity_file.ts";
import { newPassphrase } from "../terminal/passphrase.ts";
import { isWithin, joinPath, securechatHome } from "../core/paths.ts";
import { RSA_BITS } from "../keys/spki.ts";
import { booleanFlag, parseFlags, stringFlag } from "./args.ts";
import { KEYGEN_FLAGS } from "./flags.ts";
import { print, status, warning } from "./output.ts";
import { USAGE } from "./usage.ts";

const TYPES: readonly KeyType[] = ["rsa-pss", "ed25519"];
const RSA_SIZES: readonly number[] = [3072, 4096];

/**
 * Runs `securechat keygen`.
 *
 * @param args the arguments after "keygen"
 * @returns the exit code
 * @throws {UsageError} on bad flags, a bad comment, or no way to get a passphrase
 * @throws {SecurechatError} code "identity_exists" when the key exists and `--force` is absent
 */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("keygen", KEYGEN_FLAGS, args);
  if (booleanFlag(parsed, "help")) {
    print(USAGE.keygen!);
    return 0;
  }

  const type = (stringFlag(parsed, "type") ?? "rsa-pss") as KeyType;
  if (!TYPES.includes(type)) {
    throw new UsageError(`unknown key type "${type}": expected "rsa-pss" or "ed25519"`);
  }
  const bitsText = stringFlag(parsed, "bits");
  let bits: number | undefined;
  if (bitsText !== undefined) {
    if (type !== "rsa-pss") throw new UsageError(`flag "--bits" applies to --type rsa-pss only`);
    bits = Number(bitsText);
    if (!RSA_SIZES.includes(bits)) {
      throw new UsageError(`flag "--bits" must be 3072 or 4096, got "${bitsText}"`);
    }
  }
  const noPassphrase = booleanFlag(parsed, "no-passphrase");
  const passphraseFile = stringFlag(parsed, "passphrase-file");
  if (noPassphrase && passphraseFile !== undefined) {
    throw new UsageError(`flags "--no-passphrase" and "--passphrase-file" exclude each other`);
  }
  const comment = (stringFlag(parsed, "comment") ?? defaultComment()).trim();
  const problem = commentProblem(comment);
  if (problem !== undefined) {
    throw new UsageError(`the comment is ${problem}`, {
      hints: [`peers see it as your name; keep it to one line of ${MAX_COMMENT_LENGTH} bytes`],
    });
  }
  const out = stringFlag(parsed, "out") ?? joinPath(securechatHome(), "id");
  const force = booleanFlag(parsed, "force");

  // Fail before the passphrase prompt and the slow RSA keygen; writeIdentity checks again.
  if (!force) await refuseExistingIdentity(out);

  const passphrase = noPassphrase ? undefined : await newPassphrase({ passphraseFile });
  status(
    type === "rsa-pss"
      ? `generating an RSA-PSS ${bits ?? RSA_BITS.default}-bit key pair`
      : "generating an Ed25519 key pair",
  );
  const { identity, pkcs8 } = await generateIdentity({
    type,
    comment,
    ...(bits === undefined ? {} : { bits }),
  });
  try {
    await writeIdentity(out, pkcs8, identity, {
      force,
      ...(passphrase === undefined ? {} : { passphrase }),
    });
  } finally {
    wipe(pkcs8);
  }
  const protection = passphrase === undefined ? "not encrypted" : "encrypted with your passphrase";
  status(`wrote private key "${out}" (${protection})`);
  status(`wrote public key "${out}.pub"`);
  if (Deno.build.os === "windows") await reportWindowsProtection(out);
  status(`fingerprint: ${identity.fingerprint}`);
  print(comment === "" ? identity.fingerprint : `${identity.fingerprint} ${comment}`);
  return 0;
}

/**
 * Windows has no file modes, so the 0600 we ask for means nothing there: a key is as private as
 * the access control list it inherits from its folder. The user profile folder's list admits only
 * its owner, administrators and SYSTEM, so a key inside it is protected; elsewhere we cannot tell
 * (reading ACLs would need a subprocess, which the binary is not allowed), so we say so.
 */
async function reportWindowsProtection(out: string): Promise<void> {
  const real = (path: string) => Deno.realPath(path).catch(() => path);
  const profile = Deno.env.get("USERPROFILE");
  if (profile !== undefined && isWithin(await real(out), await real(profile))) {
    status(
      "Windows has no file modes: the private key is protected by the access control list of " +
        "your user profile folder, which only you and administrators can read",
    );
    return;
  }
  warning(
    `"${out}" is outside your user profile folder and Windows has no file modes: ` +
      `check who may read it with: icacls "${out}"`,
  );
}

/** `user@host` from the environment; Deno.hostname() would need --allow-sys. */
function defaultComment(): string {
  const user = Deno.env.get("USER") ?? Deno.env.get("USERNAME") ?? "";
  const host = Deno.env.get("HOSTNAME") ?? Deno.env.get("COMPUTERNAME") ?? "";
  if (user === "") return host;
  return host === "" ? user : `${user}@${host}`;
}
