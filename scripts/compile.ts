/**
 * `deno task compile [--target TRIPLE] [--output PATH]`: builds the single securechat binary with
 * `deno compile`, for this machine or for one of {@linkcode TARGETS}.
 *
 * This file holds the one list of permissions the shipped binary has, {@linkcode PERMISSION_FLAGS}:
 * the end-to-end tests run main.ts with exactly these (tests/_helpers/cli.ts imports them), and the
 * release workflow (.github/workflows/release.yml) builds every target through this script, so
 * what is tested is what ships.
 *
 * `deno compile` needs the Deno runtime for the target (`denort`), which it downloads from Deno's
 * download host (dl.deno.land) the first time and then keeps in DENO_DIR. Where that host cannot
 * be reached (an offline machine, a sandbox) this script says so in one line instead of passing on
 * deno's backtrace. It works on GitHub's runners and on developers' laptops.
 *
 * @module
 */

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };

/** The permissions of the shipped binary, and of every end-to-end test of main.ts. */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  // Free space of the receive folder before a file is accepted (lib/transfer/receive_policy.ts).
  "--allow-sys=statfs",
];

/** The targets `deno compile` 2.9 builds for, and the release ships. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
  "aarch64-pc-windows-msvc",
];

/**
 * Modules that run in workers. `deno compile` bundles only what is imported, so each is named
 * with `--include`; tests/architecture_test.ts checks that every `new Worker` in lib/ is listed.
 */
export const WORKER_MODULES: readonly string[] = [
  fileURLToPath(new URL("../lib/crypto/aead_worker.ts", import.meta.url)),
  fileURLToPath(new URL("../lib/crypto/ffdhe_worker.ts", import.meta.url)),
];

/** The program's entry point, as a path. */
export const ENTRY: string = fileURLToPath(new URL("../main.ts", import.meta.url));

/**
 * The arguments of `deno` that build the binary.
 *
 * @param options.target a triple from {@linkcode TARGETS}, or undefined for this machine
 * @param options.output the binary's path (deno adds `.exe` for Windows targets)
 * @returns `["compile", ...PERMISSION_FLAGS, ..., "--include", worker, ..., ENTRY]`
 */
export function compileArgs(options: { target?: string | undefined; output: string }): string[] {
  return [
    "compile",
    ...PERMISSION_FLAGS,
    ...(options.target === undefined ? [] : ["--target", options.target]),
    ...WORKER_MODULES.flatMap((module) => ["--include", module]),
    "--output",
    options.output,
    ENTRY,
  ];
}

/** True when deno's error output says the runtime download failed. */
export function isRuntimeDownloadFailure(stderr: string): boolean {
  return /Setting up base binary|dl\.deno\.land|denort-[\w-]+\.zip|Download could not be found/
    .test(stderr);
}

const USAGE = `Usage:
  deno task compile [--target TRIPLE] [--output PATH]

Builds the securechat binary with the shipped permissions (${PERMISSION_FLAGS.join(" ")}).

Flags:
  --target TRIPLE   build for another platform: ${TARGETS.join(", ")}
                    (default: this machine)
  --output PATH     where to write the binary (default: securechat, securechat.exe on Windows)
  -h, --help        show this help`;

const encoder = new TextEncoder();

function say(line: string): void {
  Deno.stderr.writeSync(encoder.encode(`${line}\n`));
}

/** Runs the script; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let values: { target?: string | undefined; output?: string | undefined; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        target: { type: "string" },
        output: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    say(`compile: error: ${(error as Error).message}`);
    say(USAGE);
    return 2;
  }
  if (values.help) {
    say(USAGE);
    return 0;
  }
  const target = values.target;
  if (target !== undefined && !TARGETS.includes(target)) {
    say(`compile: error: unknown target "${target}": expected one of ${TARGETS.join(", ")}`);
    return 2;
  }
  const output = values.output ?? "securechat";
  await Deno.mkdir(dirname(output), { recursive: true });
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: compileArgs({ target, output }),
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
    env: { NO_COLOR: "1" }, // plain text, to recognise deno's messages
  }).output();
  const text = new TextDecoder().decode(stderr);
  const where = target ?? "this machine";
  if (code === 0) {
    Deno.stderr.writeSync(stderr);
    say(`compile: built securechat ${denoJson.version} for ${where}: ${output}`);
    return 0;
  }
  if (isRuntimeDownloadFailure(text)) {
    // deno's last "Caused by" line is the root cause (a DNS failure, a refused connection).
    const cause = text.split("Stack backtrace")[0]!.split("\n")
      .map((line) => line.trim())
      .filter((line) => /^\d+: /.test(line))
      .at(-1)?.replace(/^\d+: /, "");
    say(
      `compile: error: deno compile could not download the Deno runtime for ${where} ` +
        `(no network access to dl.deno.land?)${cause === undefined ? "" : `: ${cause}`}`,
    );
    say(
      "compile: hint: build where dl.deno.land is reachable (GitHub's runners, a laptop), or " +
        "point DENORT_BIN at a denort binary of the same Deno version",
    );
    return 1;
  }
  Deno.stderr.writeSync(stderr);
  say(`compile: error: deno compile failed for ${where} (exit code ${code})`);
  return 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
