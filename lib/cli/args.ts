/**
 * Command-line flag parsing: `--name value`, `--name=value`, `-n value`, `-nvalue`, boolean
 * switches (also grouped, `-ab`), repeated flags where the spec says `multiple`, and `--` before
 * positionals that start with a dash. Every error is a one-line `UsageError` that names the flag
 * (exit 2).
 *
 * Our own rather than `node:util`'s parseArgs: importing `node:util` loads Deno's Node
 * compatibility layer, 6-10 ms of every command's start (measured by importing it alone), a large
 * part of a pipe's time to ready (`deno task bench --only ready`).
 *
 * @module
 */

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
  const parsed: ParsedArgs = { values: {}, positionals: [] };
  const byShort = new Map<string, string>();
  for (const [name, flag] of Object.entries(spec)) {
    if (flag.short !== undefined) byShort.set(flag.short, name);
  }
  const set = (name: string, value: string | boolean) => {
    if (spec[name]!.multiple) {
      const list = (parsed.values[name] ?? []) as (string | boolean)[];
      parsed.values[name] = [...list, value] as string[] | boolean[];
    } else {
      parsed.values[name] = value;
    }
  };
  const unknown = (flag: string) =>
    new UsageError(`unknown flag "${flag}" for "securechat ${command}"`, { hints: hint });
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      parsed.positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      const name = equals < 0 ? arg.slice(2) : arg.slice(2, equals);
      const flag = Object.hasOwn(spec, name) ? spec[name] : undefined;
      if (flag === undefined) throw unknown(`--${name}`);
      if (flag.type === "boolean") {
        if (equals >= 0) throw new UsageError(`flag "--${name}" takes no value`, { hints: hint });
        set(name, true);
      } else if (equals >= 0) {
        set(name, arg.slice(equals + 1));
      } else {
        set(name, separateValue(name, args[i + 1], hint));
        i++;
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      // One or more short switches; a short flag that takes a value ends the group.
      for (let j = 1; j < arg.length; j++) {
        const name = byShort.get(arg[j]!);
        if (name === undefined) throw unknown(`-${arg[j]}`);
        if (spec[name]!.type === "boolean") {
          set(name, true);
          continue;
        }
        const attached = arg.slice(j + 1);
        if (attached !== "") {
          set(name, attached);
        } else {
          set(name, separateValue(name, args[i + 1], hint));
          i++;
        }
        break;
      }
      continue;
    }
    parsed.positionals.push(arg);
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

/**
 * The value given as the next argument. One that starts with a dash is refused (as node:util's
 * parser did): `--accept-files --pipe` is a forgotten value, not a folder named "--pipe". Such a
 * value can still be given as `--name=-x`.
 */
function separateValue(name: string, value: string | undefined, hint: string[]): string {
  if (value === undefined) throw new UsageError(`flag "--${name}" needs a value`, { hints: hint });
  if (value.startsWith("-") && value !== "-") {
    throw new UsageError(
      `flag "--${name}" needs a value, got the flag-like "${value}" (write --${name}=${value} if it is one)`,
      { hints: hint },
    );
  }
  return value;
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
