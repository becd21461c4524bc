/**
 * The command table: each subcommand's module, loaded on demand so `--help` stays fast. Only
 * `main.ts` imports it; the names and summaries live in `usage.ts`, which the commands import.
 *
 * @module
 */

import type { CommandName } from "./usage.ts";

/** What a command module exports. */
export interface CommandModule {
  run(args: string[]): Promise<number>;
}

/** Loads each subcommand's module; keyed like `COMMAND_SUMMARIES`, which the type enforces. */
export const COMMANDS: Record<CommandName, () => Promise<CommandModule>> = {
  keygen: () => import("./keygen.ts"),
  fingerprint: () => import("./fingerprint.ts"),
  listen: () => import("./listen.ts"),
  dial: () => import("./dial.ts"),
  relay: () => import("./relay_command.ts"),
  completions: () => import("./completions.ts"),
};

/**
 * The loader of `name`, if it names a command.
 *
 * @param name the first argument on the command line
 * @returns the loader, or undefined for an unknown word (never a property of Object.prototype)
 */
export function findCommand(name: string): (() => Promise<CommandModule>) | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name as CommandName] : undefined;
}
