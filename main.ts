/**
 * securechat entry point: parses the command word, dispatches to `lib/cli/<command>.ts`, and maps
 * errors to exit codes. Nothing else happens here.
 *
 * @module
 */

import { reportError, reportUncaught } from "./lib/cli/output.ts";
import { findCommand } from "./lib/cli/commands.ts";
import { COMMAND_SUMMARIES, mainUsage, VERSION } from "./lib/cli/usage.ts";
import { UsageError } from "./lib/core/errors.ts";
import { print } from "./lib/cli/output.ts";

/** Runs securechat with `args` and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      print(mainUsage());
      return command === undefined ? 2 : 0;
    }
    if (command === "--version" || command === "-V" || command === "version") {
      print(`securechat ${VERSION}`);
      return 0;
    }
    const load = findCommand(command);
    if (load === undefined) {
      throw new UsageError(`unknown command "${command}"`, {
        hints: [`commands: ${Object.keys(COMMAND_SUMMARIES).join(", ")}; run "securechat --help"`],
      });
    }
    const module = await load();
    return await module.run(rest);
  } catch (error) {
    return reportError(error);
  }
}

/**
 * The last resort: an error or rejection that escaped every handler (a bug) ends the process
 * with one error line and the internal-error exit code, never with the runtime's stack trace.
 */
function installLastResort(): void {
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    Deno.exit(reportUncaught(event.reason));
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    Deno.exit(reportUncaught(event.error));
  });
}

if (import.meta.main) {
  installLastResort();
  // Exit explicitly: a pending stdin read (pipe mode, prompts) would otherwise keep us alive.
  Deno.exit(await main(Deno.args));
}
