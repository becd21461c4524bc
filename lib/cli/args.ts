/**
 * Command-line flag parsing on top of `node:util` parseArgs, turning its errors into one-line
 * `UsageError`s that name the flag (exit 2).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../core/errors.ts";

/** One flag: a boolean switch or a flag that takes a string value. */
export interface FlagSpec {
  type: "boolean" | "string";
  short?: string;
  multiple?: boolean;
}

/** Parsed flags and positional arguments. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` for `command` against `spec`.
 *
 * @throws {UsageError} naming the unknown flag, the flag missing its value, or the misused switch
 */
export function parseFlags(
  command: string,
  spec: Record<string, FlagSpec>,
  args: string[],
  options: { maxPositionals?: number } = {},
): ParsedArgs {
  const hint = [`run "securechat ${command} --help" for the flags it takes`];
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs({ args, options: spec, allowPositionals: true, strict: true }) as ParsedArgs;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // node:util names a flag as '--port', '-x' or, when it has a short form, '-p, --port <value>'.
    const flag = /'(?:-\w, )?(--?[^' ,]+)/.exec(message)?.[1] ?? "";
    const code = (error as { code?: string }).code ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`unknown flag "${flag}" for "securechat ${command}"`, { hints: hint });
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      if (/argument missing/.test(message)) {
        throw new UsageError(`flag "${flag}" needs a value`, { hints: hint });
      }
      throw new UsageError(`flag "${flag}" takes no value`, { hints: hint });
    }
    throw new UsageError(`cannot parse the command line: ${message}`, { hints: hint });
  }
  const max = options.maxPositionals ?? 0;
  if (parsed.positionals.length > max) {
    const extra = parsed.positionals[max];
    throw new UsageError(`unexpected argument "${extra}" for "securechat ${command}"`, {
      hints: hint,
    });
  }
  return parsed;
}

/** Reads a string flag. */
export function stringFlag(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === "string" ? value : undefined;
}

/** Reads a boolean flag. */
export function booleanFlag(parsed: ParsedArgs, name: string): boolean {
  return parsed.values[name] === true;
}

/**
 * Parses an integer flag within bounds.
 *
 * @throws {UsageError} when the value is not a whole number in range
 */
export function integerFlag(
  parsed: ParsedArgs,
  name: string,
  bounds: { min: number; max: number; fallback: number },
): number {
  const raw = stringFlag(parsed, name);
  if (raw === undefined) return bounds.fallback;
  if (!/^\d+$/.test(raw)) {
    throw new UsageError(`flag "--${name}" takes a whole number, got "${raw}"`);
  }
  const value = Number(raw);
  if (value < bounds.min || value > bounds.max) {
    throw new UsageError(
      `flag "--${name}" must be between ${bounds.min} and ${bounds.max}, got ${value}`,
    );
  }
  return value;
}
