// deno-lint-ignore-file no-console
/**
 * The only printer of status, warnings, errors and hints. Everything goes to stderr, so stdout
 * stays reserved for data (pipe mode) and machine output.
 *
 * Line shapes (STYLE.md, age): `securechat: error: <message>`, `securechat: hint: <hint>`,
 * `securechat: warning: <message>`, and plain status lines `securechat: <message>`.
 *
 * @module
 */

import { EXIT, SecurechatError } from "../core/errors.ts";

const PREFIX = "securechat:";

/** Prints a status line to stderr. */
export function status(message: string): void {
  console.error(`${PREFIX} ${message}`);
}

/** Prints a warning line to stderr. */
export function warning(message: string): void {
  console.error(`${PREFIX} warning: ${message}`);
}

/** Prints a hint line to stderr. */
export function hint(message: string): void {
  console.error(`${PREFIX} hint: ${message}`);
}

/** Prints lines to stdout (help texts, fingerprints). */
export function print(text: string): void {
  console.log(text);
}

/**
 * Prints an error and its hints, and returns the exit code the process should end with.
 * Unknown errors are shown by message only: a stack trace helps nobody at a terminal.
 */
export function reportError(error: unknown): number {
  if (error instanceof SecurechatError) {
    console.error(`${PREFIX} error: ${error.message}`);
    for (const line of error.hints) hint(line);
    return error.exitCode;
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    console.error(`${PREFIX} error: permission denied: ${(error as Error).message}`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  console.error(`${PREFIX} error: ${message}`);
  if (Deno.env.get("SECURECHAT_DEBUG") && error instanceof Error) console.error(error.stack);
  return 1;
}

/**
 * Printed before the error line of `reportUncaught()` when SECURECHAT_STRICT_REJECTIONS is set:
 * the end-to-end helpers set it and fail a test whose child prints it.
 */
export const UNCAUGHT_MARKER = "securechat: internal: uncaught error";

/**
 * The last resort for an error that escaped every handler (a bug): one error line, no stack
 * trace, and the internal-error exit code. main.ts calls it from its global listeners.
 */
export function reportUncaught(error: unknown): number {
  let strict = false;
  try {
    strict = Deno.env.get("SECURECHAT_STRICT_REJECTIONS") === "1";
  } catch {
    // No env permission: not under test.
  }
  if (strict) console.error(UNCAUGHT_MARKER);
  const message = error instanceof Error ? error.message : String(error);
  console.error(`${PREFIX} error: internal error: ${message}`);
  hint("this is a bug in securechat: please report it with the command you ran");
  if (strict && error instanceof Error) console.error(error.stack);
  return EXIT.internal;
}
