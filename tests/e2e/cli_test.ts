/**
 * The command line as a user meets it: help and version, and every kind of bad invocation giving
 * one error line naming the problem, with the documented exit code.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { COMMAND_FLAGS } from "../../lib/cli/flags.ts";
import { COMMAND_SUMMARIES, USAGE } from "../../lib/cli/usage.ts";
import { runCli } from "../_helpers/cli.ts";
import { dialOnce, makePeer, startListener } from "../_helpers/peers.ts";

/** Error lines only (hints excluded). */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.startsWith("securechat: error:"));
}

const HOME = { SECURECHAT_HOME: "/nonexistent/securechat-cli-test" };

const CASES: { args: string[]; code: number; stdout?: RegExp; error?: RegExp }[] = [
  { args: ["--help"], code: 0, stdout: /Usage:\n {2}securechat <command> \[flags\]/ },
  { args: ["-h"], code: 0, stdout: /Commands:/ },
  { args: ["--version"], code: 0, stdout: new RegExp(`^securechat ${denoJson.version}\\n$`) },
  { args: ["-V"], code: 0, stdout: new RegExp(`^securechat ${denoJson.version}\\n$`) },
  { args: [], code: 2, stdout: /Usage:/ },
  { args: ["frobnicate"], code: 2, error: /unknown command "frobnicate"/ },
  { args: ["listen", "--bogus"], code: 2, error: /unknown flag "--bogus" for "securechat listen"/ },
  { args: ["dial", "-x", "host"], code: 2, error: /unknown flag "-x" for "securechat dial"/ },
  { args: ["listen", "--port"], code: 2, error: /flag "--port" needs a value/ },
  { args: ["listen", "--port", "99999"], code: 2, error: /"--port" must be between 0 and 65535/ },
  {
    args: ["listen", "--port", "http"],
    code: 2,
    error: /"--port" takes a whole number, got "http"/,
  },
  { args: ["listen", "--pipe=yes"], code: 2, error: /flag "--pipe" takes no value/ },
  { args: ["listen", "--suites", "rot13"], code: 2, error: /unknown suite "rot13"/ },
  { args: ["listen", "--handshake-timeout", "0"], code: 2, error: /between 1 and 3600/ },
  { args: ["listen", "extra"], code: 2, error: /unexpected argument "extra"/ },
  {
    args: ["listen", "--pipe", "--max-waiting", "4"],
    code: 2,
    error: /"--max-waiting" is for pipe mode with --keep-open/,
  },
  {
    args: ["listen", "--pipe", "--keep-open", "--max-waiting", "0"],
    code: 2,
    error: /"--max-waiting" must be between 1 and 100000/,
  },
  { args: ["dial"], code: 2, error: /missing the listener to dial/ },
  { args: ["dial", "host:0"], code: 2, error: /port must be a number from 1 to 65535/ },
  { args: ["dial", "host", "--expect", "MD5:abc"], code: 2, error: /fingerprint/ },
  { args: ["dial", "127.0.0.1:1"], code: 1, error: /run "securechat keygen" first|no such|cannot/ },
];

for (const { args, code, stdout, error } of CASES) {
  Deno.test(`securechat ${args.join(" ") || "(no arguments)"} exits ${code}`, async () => {
    const result = await runCli(args, { env: HOME });
    strictEqual(result.code, code, result.stderr);
    if (stdout) match(result.stdout, stdout);
    if (error) {
      const lines = errorLines(result.stderr);
      strictEqual(lines.length, 1, result.stderr);
      match(lines[0]!, error);
      strictEqual(result.stdout, "", "errors never go to stdout");
    }
  });
}

Deno.test("every command has a flag table and a help text, and --help lists every command", async () => {
  deepStrictEqual(Object.keys(COMMAND_FLAGS), Object.keys(COMMAND_SUMMARIES));
  deepStrictEqual(Object.keys(USAGE), Object.keys(COMMAND_SUMMARIES));
  const result = await runCli(["--help"], { env: HOME });
  for (const [name, summary] of Object.entries(COMMAND_SUMMARIES)) {
    ok(result.stdout.includes(`  ${name}  `), `securechat --help lists "${name}"`);
    ok(result.stdout.includes(summary), `securechat --help gives "${name}" its summary`);
  }
});

// The flag lists come from the tables parseFlags() uses (lib/cli/flags.ts), so a flag added to a
// command without a line in its help text fails here, and so does a help text naming a flag the
// command rejects.
for (const [command, flags] of Object.entries(COMMAND_FLAGS)) {
  Deno.test(`securechat ${command} --help mentions each of its flags and no other`, async () => {
    const result = await runCli([command, "--help"], { env: HOME });
    strictEqual(result.code, 0, result.stderr);
    strictEqual(result.stderr, "");
    match(result.stdout, new RegExp(`^Usage:\n {2}securechat ${command}`));
    for (const [name, spec] of Object.entries(flags)) {
      const form = spec.short === undefined ? `--${name}` : `-${spec.short}, --${name}`;
      match(
        result.stdout,
        new RegExp(`^ +${form}(?![\\w-])`, "m"),
        `"${command} --help" lists ${form}`,
      );
    }
    const mentioned = new Set(
      [...result.stdout.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1]!),
    );
    for (const name of mentioned) {
      ok(name in flags, `"${command} --help" mentions --${name}, which it does not accept`);
    }
  });
}

Deno.test("listen and dial use a passphrase-protected key from SECURECHAT_PASSPHRASE", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-cli-" });
  try {
    const env = { SECURECHAT_HOME: `${root}/carol`, SECURECHAT_PASSPHRASE: "correct horse" };
    const made = await runCli(["keygen", "--type", "ed25519", "--comment", "carol"], { env });
    strictEqual(made.code, 0, made.stderr);
    match(await Deno.readTextFile(`${root}/carol/id`), /ENCRYPTED PRIVATE KEY/);
    const alice = await makePeer(root, "alice");
    const carol = { name: "carol", home: `${root}/carol`, fingerprint: "", env };
    const listener = await startListener(carol);
    await listener.closeStdin();
    const result = await dialOnce(alice, listener.port, "to carol\n");
    strictEqual(result.code, 0, result.stderr);
    const l = await listener.finished();
    strictEqual(new TextDecoder().decode(l.stdout), "to carol\n");

    // Without the passphrase, and with stdin not a terminal, there is no way to ask: one clear line.
    const noPass = await runCli(["listen", "--port", "0"], {
      env: { SECURECHAT_HOME: env.SECURECHAT_HOME },
    });
    strictEqual(noPass.code === 0, false);
    strictEqual(errorLines(noPass.stderr).length, 1, noPass.stderr);
    const wrong = await runCli(["listen", "--port", "0"], {
      env: { SECURECHAT_HOME: env.SECURECHAT_HOME, SECURECHAT_PASSPHRASE: "wrong" },
    });
    strictEqual(wrong.code, 1, wrong.stderr);
    deepStrictEqual(errorLines(wrong.stderr).length, 1);
    match(wrong.stderr, /wrong passphrase or corrupted file/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
