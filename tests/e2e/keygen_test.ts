/**
 * `securechat keygen` and `securechat fingerprint` as real processes with the shipped permission
 * flags, each run in its own SECURECHAT_HOME: the files and modes they leave, what they print,
 * and the refusals (existing key, no passphrase source, weak or unknown key types, open modes).
 */

import { deepStrictEqual as eql, match, ok, strictEqual } from "node:assert/strict";
import { type CliResult, runCli } from "../_helpers/cli.ts";
import { HAS_OPENSSL, NEEDS_OPENSSL, openssl, opensslFingerprint } from "../_helpers/openssl.ts";
import { USAGE } from "../../lib/cli/usage.ts";

const POSIX = Deno.build.os !== "windows";

/** Runs securechat in `home`, with no passphrase inherited from the test's environment. */
function inHome(
  home: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return runCli(args, { env: { SECURECHAT_HOME: home, SECURECHAT_PASSPHRASE: "", ...env } });
}

async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "securechat-keygen-" });
  try {
    await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** stderr without the status lines, so only errors and hints remain. */
function errorLines(result: CliResult): string[] {
  return result.stderr.split("\n").filter((line) => /^securechat: (error|hint):/.test(line));
}

Deno.test("`keygen --help` prints its usage, naming every flag, and exits 0", async () => {
  const result = await runCli(["keygen", "--help"]);
  strictEqual(result.code, 0);
  strictEqual(result.stdout.trimEnd(), USAGE.keygen);
  for (
    const flag of [
      "--type",
      "--bits",
      "--out",
      "--comment",
      "--force",
      "--no-passphrase",
      "--passphrase-file",
      "--help",
    ]
  ) {
    ok(result.stdout.includes(flag), flag);
  }
  strictEqual((await runCli(["fingerprint", "-h"])).stdout.trimEnd(), USAGE.fingerprint);
});

Deno.test("`keygen` refuses bad flags with exit 2 and one error line", async () => {
  await withHome(async (home) => {
    const cases: [string[], string][] = [
      [["--bits", "1024"], 'securechat: error: flag "--bits" must be 3072 or 4096, got "1024"'],
      [
        ["--type", "dsa"],
        'securechat: error: unknown key type "dsa": expected "rsa-pss" or "ed25519"',
      ],
      [
        ["--type", "ed25519", "--bits", "4096"],
        'securechat: error: flag "--bits" applies to --type rsa-pss only',
      ],
      [
        ["--no-passphrase", "--comment", "x".repeat(65)],
        "securechat: error: the comment is longer than 64 bytes",
      ],
      [
        ["--no-passphrase", "--passphrase-file", "f"],
        'securechat: error: flags "--no-passphrase" and "--passphrase-file" exclude each other',
      ],
      [["--frobnicate"], 'securechat: error: unknown flag "--frobnicate" for "securechat keygen"'],
    ];
    for (const [args, line] of cases) {
      const result = await inHome(home, ["keygen", ...args]);
      strictEqual(result.code, 2, args.join(" "));
      strictEqual(errorLines(result).filter((l) => l.includes("error:")).length, 1);
      strictEqual(errorLines(result)[0], line);
      strictEqual(result.stdout, "");
    }
    eql(await Array.fromAsync(Deno.readDir(home)), [], "nothing may be written");
  });
});

Deno.test("`keygen` without a passphrase source or a terminal fails instead of writing a plain key", async () => {
  await withHome(async (home) => {
    const result = await inHome(home, ["keygen", "--type", "ed25519"]);
    strictEqual(result.code, 2);
    eql(errorLines(result), [
      "securechat: error: cannot ask for a passphrase for the new key: stdin is not a terminal",
      "securechat: hint: set SECURECHAT_PASSPHRASE, pass --passphrase-file F, or pass --no-passphrase to write the key unencrypted",
    ]);
    eql(await Array.fromAsync(Deno.readDir(home)), []);
  });
});

Deno.test("`keygen --no-passphrase` writes id (0600) and id.pub (0644) and prints the fingerprint", async () => {
  await withHome(async (home) => {
    const result = await inHome(home, [
      "keygen",
      "--type",
      "ed25519",
      "--comment",
      "alice",
      "--no-passphrase",
    ]);
    strictEqual(result.code, 0, result.stderr);
    match(result.stdout, /^SHA256:[A-Za-z0-9+/]{43} alice\n$/);
    const fingerprint = result.stdout.split(" ")[0]!;
    match(result.stderr, new RegExp(`wrote private key ".*id" \\(not encrypted\\)`));
    ok(result.stderr.includes(`fingerprint: ${fingerprint}`));
    ok(
      (await Deno.readTextFile(`${home}/id`)).startsWith(
        "Comment: alice\n-----BEGIN PRIVATE KEY-----\n",
      ),
    );
    if (POSIX) {
      strictEqual((await Deno.stat(`${home}/id`)).mode! & 0o777, 0o600);
      strictEqual((await Deno.stat(`${home}/id.pub`)).mode! & 0o777, 0o644);
    }
    // `fingerprint` agrees, from id.pub by default and from the private key.
    const fromPub = await inHome(home, ["fingerprint"]);
    strictEqual(fromPub.code, 0, fromPub.stderr);
    strictEqual(fromPub.stdout, result.stdout);
    strictEqual((await inHome(home, ["fingerprint", `${home}/id`])).stdout, result.stdout);
    if (HAS_OPENSSL) strictEqual(await opensslFingerprint(`${home}/id.pub`), fingerprint);
  });
});

Deno.test("`keygen` refuses to replace an existing key without --force, and replaces it with it", async () => {
  await withHome(async (home) => {
    const args = ["keygen", "--type", "ed25519", "--no-passphrase", "--comment", "a"];
    const first = await inHome(home, args);
    strictEqual(first.code, 0, first.stderr);
    const again = await inHome(home, args);
    strictEqual(again.code, 1);
    eql(errorLines(again), [
      `securechat: error: cannot write key "${home}/id": the file already exists`,
      "securechat: hint: use --force to replace it; the old key cannot be recovered",
    ]);
    strictEqual((await inHome(home, ["fingerprint"])).stdout, first.stdout);
    const forced = await inHome(home, [...args, "--force"]);
    strictEqual(forced.code, 0, forced.stderr);
    ok(forced.stdout !== first.stdout);
    strictEqual((await inHome(home, ["fingerprint"])).stdout, forced.stdout);
  });
});

Deno.test("`keygen` with SECURECHAT_PASSPHRASE writes an encrypted RSA-PSS 3072 key", async () => {
  await withHome(async (home) => {
    const out = `${home}/keys/work`;
    const result = await inHome(home, ["keygen", "--out", out, "--comment", "bob@work"], {
      SECURECHAT_PASSPHRASE: "correct horse",
    });
    strictEqual(result.code, 0, result.stderr);
    match(result.stdout, /^SHA256:[A-Za-z0-9+/]{43} bob@work\n$/);
    match(result.stderr, /generating an RSA-PSS 3072-bit key pair/);
    match(result.stderr, /\(encrypted with your passphrase\)/);
    ok((await Deno.readTextFile(out)).includes("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    if (POSIX) strictEqual((await Deno.stat(`${home}/keys`)).mode! & 0o777, 0o700);

    // The private key file needs the passphrase: from a file, or refused without a terminal.
    await Deno.writeTextFile(`${home}/pass`, "correct horse\n");
    await Deno.writeTextFile(`${home}/wrong`, "incorrect horse\n");
    const withFile = await inHome(home, ["fingerprint", out, "--passphrase-file", `${home}/pass`]);
    strictEqual(withFile.stdout, result.stdout);
    const wrong = await inHome(home, ["fingerprint", out, "--passphrase-file", `${home}/wrong`]);
    strictEqual(wrong.code, 1);
    eql(errorLines(wrong), [
      `securechat: error: cannot decrypt private key "${out}": wrong passphrase or corrupted file`,
    ]);
    const none = await inHome(home, ["fingerprint", out]);
    strictEqual(none.code, 1);
    eql(errorLines(none), [
      `securechat: error: cannot load private key "${out}": cannot ask for the passphrase: stdin is not a terminal`,
      "securechat: hint: set SECURECHAT_PASSPHRASE or pass --passphrase-file F",
    ]);
  });
});

Deno.test({
  name: "openssl reads the encrypted key and the public key that `keygen` writes" + NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  fn: () =>
    withHome(async (home) => {
      await Deno.writeTextFile(`${home}/pass`, "pa ss\n");
      const made = await inHome(home, [
        "keygen",
        "--type",
        "ed25519",
        "--passphrase-file",
        `${home}/pass`,
      ]);
      strictEqual(made.code, 0, made.stderr);
      await openssl(["pkey", "-in", `${home}/id`, "-passin", "pass:pa ss", "-noout"]);
      await openssl(["pkey", "-pubin", "-in", `${home}/id.pub`, "-noout"]);
      strictEqual(await opensslFingerprint(`${home}/id.pub`), made.stdout.trim().split(" ")[0]);
    }),
});

Deno.test({
  name: "`listen` refuses a world-readable private key with OpenSSH's message",
  ignore: !POSIX,
  fn: () =>
    withHome(async (home) => {
      const made = await inHome(home, ["keygen", "--type", "ed25519", "--no-passphrase"]);
      strictEqual(made.code, 0, made.stderr);
      await Deno.chmod(`${home}/id`, 0o644);
      const result = await inHome(home, ["listen", "--port", "0"]);
      ok(result.code !== 0);
      eql(errorLines(result), [
        `securechat: error: permissions 0644 for "${home}/id" are too open`,
        `securechat: hint: a private key must be readable by you alone: run chmod 600 ${home}/id`,
      ]);
    }),
});

Deno.test("`fingerprint` without a key says to run keygen", async () => {
  await withHome(async (home) => {
    const result = await inHome(home, ["fingerprint"]);
    strictEqual(result.code, 1);
    eql(errorLines(result), [
      `securechat: error: cannot load key "${home}/id.pub": no such file`,
      'securechat: hint: run "securechat keygen" first',
    ]);
    const extra = await inHome(home, ["fingerprint", "a", "b"]);
    strictEqual(extra.code, 2);
  });
});
