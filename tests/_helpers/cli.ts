/**
 * Runs `main.ts` as a real subprocess with exactly the permission flags that `deno task compile`
 * bakes into the shipped binary (`PERMISSION_FLAGS` of scripts/compile.ts, the one list of them),
 * so the tests exercise the shipped permission set.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { ENTRY, PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { UNCAUGHT_MARKER } from "../../lib/cli/output.ts";

/** Absolute path of the repository root, in the platform's form (no trailing separator). */
export const ROOT_DIR: string = fileURLToPath(new URL("../../", import.meta.url))
  .replace(/[\\/]$/, "");

/** Absolute path of main.ts: the entry point `deno task compile` builds. */
export const MAIN: string = ENTRY;

/** The `--allow-*` flags of the shipped binary, in order. */
export function compilePermissionFlags(): string[] {
  return [...PERMISSION_FLAGS];
}

/** Options for one securechat subprocess. */
export interface CliOptions {
  env?: Record<string, string>;
  stdin?: Uint8Array | string;
  cwd?: string;
}

/** Result of one finished securechat subprocess. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
}

/** The argv that starts securechat through `deno run` with the shipped permissions. */
export function cliCommand(args: string[]): { cmd: string; args: string[] } {
  return {
    cmd: Deno.execPath(),
    args: ["run", "--quiet", "--no-prompt", ...compilePermissionFlags(), MAIN, ...args],
  };
}

/** Starts securechat as a child process with piped stdio. */
export function spawnCli(args: string[], options: CliOptions = {}): Deno.ChildProcess {
  const { cmd, args: argv } = cliCommand(args);
  return new Deno.Command(cmd, {
    args: argv,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", SECURECHAT_STRICT_REJECTIONS: "1", ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn();
}

/**
 * Throws when a child's stderr shows an error that escaped every handler: the marker main.ts's
 * last resort prints under SECURECHAT_STRICT_REJECTIONS (set by `spawnCli()`), the runtime's own
 * "Uncaught" report, or a stack trace line (unless the child ran with SECURECHAT_DEBUG, which
 * prints stacks on purpose). Every helper that waits for a child's exit calls it, so such a crash
 * fails the test even where the exit code and error line happen to look right.
 */
export function assertNoUncaught(
  stderr: string,
  env: Record<string, string> = {},
  label = "securechat",
): void {
  const crash = stderr.split("\n").find((line) =>
    line.includes(UNCAUGHT_MARKER) || line.includes("error: Uncaught") ||
    line.includes("Uncaught (in promise)") || (!env.SECURECHAT_DEBUG && /^\s+at /.test(line))
  );
  if (crash !== undefined) {
    throw new Error(
      `${label} crashed with an uncaught error ("${crash.trim()}"); stderr:\n${stderr}`,
    );
  }
}

/** Runs securechat to completion, feeding `stdin`, and collects its output. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  const writer = child.stdin.getWriter();
  const input = typeof options.stdin === "string"
    ? new TextEncoder().encode(options.stdin)
    : options.stdin;
  if (input !== undefined) await writer.write(input).catch(() => {});
  await writer.close().catch(() => {});
  const output = await child.output();
  const decoder = new TextDecoder();
  const stderr = decoder.decode(output.stderr);
  assertNoUncaught(stderr, options.env);
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr,
    stdoutBytes: output.stdout,
  };
}
