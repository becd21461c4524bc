/**
 * `securechat completions bash|zsh|fish`, run as a real subprocess: each script is valid for its
 * shell (`bash -n`, `zsh -n`, `fish -n`), names every command and flag of the tables parseFlags()
 * uses, and completes what it should when the shell runs it (bash and fish can be asked
 * non-interactively). A shell that is not installed skips its test with a notice, and so do all
 * three on Windows, where none can be relied on.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { COMMAND_FLAGS } from "../../lib/cli/flags.ts";
import { FLAG_VALUES, flagDescription } from "../../lib/cli/completions.ts";
import { COMMAND_SUMMARIES, VERSION } from "../../lib/cli/usage.ts";
import { runCli } from "../_helpers/cli.ts";

const WINDOWS = Deno.build.os === "windows";

async function shellRuns(shell: string): Promise<boolean> {
  if (WINDOWS) return false;
  try {
    const { success } = await new Deno.Command(shell, {
      args: ["-c", "exit 0"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

const HAS = {
  bash: await shellRuns("bash"),
  zsh: await shellRuns("zsh"),
  fish: await shellRuns("fish"),
};
for (const [shell, present] of Object.entries(HAS)) {
  if (!present) {
    // deno-lint-ignore no-console
    console.warn(
      `completions_test.ts: SKIPPED the ${shell} checks: ${shell} is not installed` +
        (WINDOWS ? " (Windows)" : `; install ${shell} to check its completion script`),
    );
  }
}

/** The script for `shell`, from a real `securechat completions SHELL`. */
async function script(shell: string): Promise<string> {
  const result = await runCli(["completions", shell]);
  strictEqual(result.code, 0, result.stderr);
  strictEqual(result.stderr, "");
  return result.stdout;
}

/** Runs `shell args...` with the script in a file; returns its stdout, failing on an error. */
async function inShell(shell: string, args: (file: string) => string[]): Promise<string> {
  const file = await Deno.makeTempFile({ prefix: "securechat_completion_", suffix: `.${shell}` });
  try {
    await Deno.writeTextFile(file, await script(shell));
    const output = await new Deno.Command(shell, {
      args: args(file),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { HOME: Deno.env.get("HOME") ?? "/tmp" },
      clearEnv: true,
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    ok(output.success, `${shell} ${args("FILE").join(" ")} failed: ${stderr}`);
    strictEqual(stderr, "", `${shell} printed errors`);
    return new TextDecoder().decode(output.stdout);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("completion scripts name every command and every flag, for this version", async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const text = await script(shell);
    ok(text.includes(`completion for securechat ${VERSION}`), `${shell}: header`);
    for (const [command, flags] of Object.entries(COMMAND_FLAGS)) {
      ok(text.includes(command), `${shell}: ${command}`);
      for (const name of Object.keys(flags)) {
        const spelled = shell === "fish" ? `-l ${name}` : `--${name}`;
        ok(text.includes(spelled), `${shell}: ${command} ${spelled}`);
      }
    }
  }
});

Deno.test("every flag has a description from its help text, and every value flag a kind", () => {
  for (const [command, flags] of Object.entries(COMMAND_FLAGS)) {
    for (const [name, spec] of Object.entries(flags)) {
      const description = flagDescription(command, name);
      ok(description !== undefined && description.length > 0, `${command} --${name}`);
      ok(!description.includes("  "), `${command} --${name}: "${description}"`);
      if (spec.type === "string") ok(name in FLAG_VALUES, `FLAG_VALUES has --${name}`);
    }
  }
  strictEqual(
    flagDescription("keygen", "passphrase-file"),
    "read the passphrase from file F (else SECURECHAT_PASSPHRASE, else ask twice on the terminal)",
  );
});

Deno.test("securechat completions refuses a missing or unknown shell with exit 2", async () => {
  const missing = await runCli(["completions"]);
  strictEqual(missing.code, 2);
  match(
    missing.stderr,
    /^securechat: error: missing the shell: securechat completions bash\|zsh\|fish$/m,
  );
  const unknown = await runCli(["completions", "tcsh"]);
  strictEqual(unknown.code, 2);
  match(unknown.stderr, /^securechat: error: unknown shell "tcsh": expected bash, zsh, fish$/m);
  strictEqual(unknown.stdout, "");
});

Deno.test({
  name: "bash: the script passes bash -n and completes commands, flags and values",
  ignore: !HAS.bash,
  async fn() {
    await inShell("bash", (file) => ["-n", file]);
    // Ask the completion function what it offers, as bash does on Tab.
    const ask = (words: string[]) =>
      inShell("bash", (file) => [
        "-c",
        `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _securechat; ` +
        `printf '%s\\n' "\${COMPREPLY[@]}"`,
        "bash",
        file,
        ...words,
      ]);
    const lines = async (words: string[]) => (await ask(words)).split("\n").filter(Boolean);
    deepStrictEqual(await lines(["securechat", ""]), [
      ...Object.keys(COMMAND_SUMMARIES),
      "--help",
      "--version",
    ]);
    deepStrictEqual(await lines(["securechat", "keygen", "--t"]), ["--type"]);
    deepStrictEqual(await lines(["securechat", "keygen", "--type", ""]), ["rsa-pss", "ed25519"]);
    deepStrictEqual(await lines(["securechat", "listen", "--max-m"]), ["--max-members"]);
    deepStrictEqual(await lines(["securechat", "listen", "-p", ""]), [], "a port is free text");
    deepStrictEqual(await lines(["securechat", "dial", "--suites", "x25519-"]), [
      "x25519-mlkem768",
    ]);
    deepStrictEqual(await lines(["securechat", "completions", "z"]), ["zsh"]);
  },
});

Deno.test({
  name: "zsh: the script passes zsh -n",
  ignore: !HAS.zsh,
  async fn() {
    await inShell("zsh", (file) => ["-n", file]);
    match(await script("zsh"), /^#compdef securechat$/m);
  },
});

Deno.test({
  name: "fish: the script passes fish -n and completes commands, flags and values",
  ignore: !HAS.fish,
  async fn() {
    await inShell("fish", (file) => ["-n", file]);
    const ask = async (line: string) =>
      (await inShell("fish", (file) => ["-c", `source ${file}; complete -C '${line}'`]))
        .split("\n").filter(Boolean).map((entry) => entry.split("\t")[0]);
    deepStrictEqual((await ask("securechat ")).sort(), Object.keys(COMMAND_SUMMARIES).sort());
    deepStrictEqual(await ask("securechat keygen --ty"), ["--type"]);
    deepStrictEqual((await ask("securechat keygen --type ")).sort(), ["ed25519", "rsa-pss"]);
    deepStrictEqual(await ask("securechat dial --exp"), ["--expect"]);
  },
});
