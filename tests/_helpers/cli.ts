/**
 * Runs `main.ts` as a real subprocess with exactly the permission flags that `deno task compile`
 * bakes into the shipped binary, so the tests exercise the shipped permission set.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };

const ROOT = new URL("../../", import.meta.url);

/** Absolute path of the repository root. */
export const ROOT_DIR: string = decodeURIComponent(ROOT.pathname).replace(/\/$/, "");

/** Absolute path of main.ts. */
export const MAIN: string = `${ROOT_DIR}/main.ts`;

/** The `--allow-*` flags of the compile task, in order. */
export function compilePermissionFlags(): string[] {
  const task = denoJson.tasks.compile;
  return task.split(/\s+/).filter((word) => word.startsWith("--allow-"));
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
    env: { NO_COLOR: "1", ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn();
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
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    stdoutBytes: output.stdout,
  };
}
