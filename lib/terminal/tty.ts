/**
 * The terminal outside the chat screen: reads secrets (passphrases) without echo, and decides on
 * colour. It and `lib/terminal/terminal_screen.ts` (the chat's prompt and status rows) are the only modules
 * that switch raw mode on and off.
 *
 * `readSecret()` prompts on stdin when stdin is a terminal, else on `/dev/tty` (POSIX), so that
 * `tar c dir | securechat dial host` can still ask for a passphrase while stdin carries data. With
 * no terminal at all it fails with a hint naming the non-interactive sources.
 * `colorEnabled()` is the colour decision (`NO_COLOR`, `TERM=dumb`, stdout a terminal).
 *
 * Deno quirk: Deno 2 (checked on 2.9.6, denoland/deno#27980) requires `--allow-all` to open
 * `/dev/tty` (and `/dev/fd/N` when it resolves to a terminal), because writing to the terminal can
 * inject keystrokes. The shipped binary runs with `--allow-read --allow-write`, so there the
 * `/dev/tty` fallback fails with `NotCapable` and we report "no terminal"; it works under `-A`.
 *
 * Caveats:
 * - Raw mode is full raw, not cbreak: Ctrl-C arrives as byte 0x03 and cancels the prompt through
 *   `finally`, instead of a SIGINT that would kill the process with echo still off.
 * - The secret is returned as a JavaScript string, which cannot be wiped; the byte buffer it was
 *   typed into is.
 * - Only UTF-8 terminals are supported; backspace removes one whole UTF-8 character.
 * - A pending read on `Deno.stdin` cannot be cancelled and keeps the process alive, which is why
 *   `main.ts` ends with `Deno.exit()`.
 *
 * @module
 */

import { wipe } from "../core/bytes.ts";
import { SecurechatError } from "../core/errors.ts";
import { type ByteSink, type ByteSource, writeAll } from "../core/io.ts";

/** Longest secret accepted, in bytes: a paste of a whole file is a mistake, not a passphrase. */
export const MAX_SECRET_LENGTH = 1024;

const CTRL_C = 0x03;
const CTRL_D = 0x04;
const CTRL_U = 0x15;
const BACKSPACE = 0x08;
const DELETE = 0x7f;
const CR = 0x0d;
const LF = 0x0a;

/** A terminal we can prompt on: stdin itself, or `/dev/tty` opened for the prompt. */
interface Terminal {
  reader: ByteSource & { setRaw(mode: boolean): void };
  writer: ByteSink;
  close(): void;
}

/**
 * Prompts on the terminal and reads a line without echo.
 *
 * @param prompt text shown before the cursor, e.g. `passphrase for "~/.securechat/id": `
 * @returns the line typed, without its line ending
 * @throws {SecurechatError} code "no_terminal" when there is no terminal to ask on, code
 *   "cancelled" on Ctrl-C, Ctrl-D on an empty line or end of input
 */
export async function readSecret(prompt: string): Promise<string> {
  const terminal = await openTerminal();
  try {
    await writeAll(terminal.writer, new TextEncoder().encode(prompt));
    terminal.reader.setRaw(true);
    try {
      return await readSecretLine(terminal.reader);
    } finally {
      terminal.reader.setRaw(false);
      await writeAll(terminal.writer, new TextEncoder().encode("\n"));
    }
  } finally {
    terminal.close();
  }
}

/**
 * The line editor behind {@linkcode readSecret}, over any reader of raw terminal bytes: reads
 * until Enter (CR or LF), handling backspace (DEL or BS, one UTF-8 character), Ctrl-U (erase
 * the line), Ctrl-C and Ctrl-D on an empty line (cancel); other control bytes are dropped.
 *
 * @param reader the raw-mode terminal, or a test's scripted bytes
 * @returns the line, decoded as UTF-8
 * @throws {SecurechatError} code "cancelled", or "secret_too_long" past {@linkcode MAX_SECRET_LENGTH}
 *
 * @example
 * ```ts
 * import { readSecretLine } from "./tty.ts";
 * import assert from "node:assert/strict";
 *
 * const chunks = [new TextEncoder().encode("pa\x7fxss\r")];
 * const reader = {
 *   read(buffer: Uint8Array) {
 *     const chunk = chunks.shift();
 *     if (chunk === undefined) return Promise.resolve(null);
 *     buffer.set(chunk);
 *     return Promise.resolve(chunk.length);
 *   },
 * };
 * assert.equal(await readSecretLine(reader), "pxss");
 * ```
 */
export async function readSecretLine(reader: ByteSource): Promise<string> {
  const line = new Uint8Array(MAX_SECRET_LENGTH);
  const chunk = new Uint8Array(256);
  let length = 0;
  try {
    while (true) {
      const count = await reader.read(chunk);
      if (count === null) throw cancelled();
      for (const byte of chunk.subarray(0, count)) {
        if (byte === CR || byte === LF) return new TextDecoder().decode(line.subarray(0, length));
        if (byte === CTRL_C || (byte === CTRL_D && length === 0)) throw cancelled();
        if (byte === CTRL_U) {
          length = 0;
        } else if (byte === BACKSPACE || byte === DELETE) {
          // Drop UTF-8 continuation bytes (10xxxxxx), then the lead byte.
          while (length > 0 && (line[length - 1]! & 0xc0) === 0x80) length--;
          if (length > 0) length--;
        } else if (byte >= 0x20 || byte === 0x09) {
          if (length === MAX_SECRET_LENGTH) {
            throw new SecurechatError(
              "secret_too_long",
              `cannot read the passphrase: longer than ${MAX_SECRET_LENGTH} bytes`,
            );
          }
          line[length++] = byte;
        }
      }
    }
  } finally {
    wipe(line, chunk);
  }
}

async function openTerminal(): Promise<Terminal> {
  if (Deno.stdin.isTerminal()) {
    return { reader: Deno.stdin, writer: Deno.stderr, close() {} };
  }
  if (Deno.build.os !== "windows") {
    let tty: Deno.FsFile | undefined;
    try {
      tty = await Deno.open("/dev/tty", { read: true, write: true });
    } catch {
      // ENXIO: no controlling terminal (a daemon, CI); NotCapable: no --allow-all (see above).
    }
    if (tty !== undefined && tty.isTerminal()) {
      const file = tty;
      return { reader: file, writer: file, close: () => file.close() };
    }
    tty?.close();
  }
  const message = "cannot ask for the passphrase: stdin is not a terminal";
  throw new SecurechatError("no_terminal", message, 1, {
    hints: ["set SECURECHAT_PASSPHRASE or pass --passphrase-file F"],
  });
}

function cancelled(): SecurechatError {
  return new SecurechatError("cancelled", "cancelled at the passphrase prompt");
}

/**
 * Whether chat output should be coloured: not when `NO_COLOR` is set to anything but the empty
 * string (no-color.org), not when `TERM=dumb`, else only when stdout is a terminal.
 *
 * @param options test seams: `isTerminal` (default `Deno.stdout.isTerminal()`) and `env` (default
 *   `Deno.env.get`; without `--allow-env` the variables count as unset)
 * @returns true to colour
 *
 * @example
 * ```ts
 * import { colorEnabled } from "./tty.ts";
 * import assert from "node:assert/strict";
 *
 * const env = (vars: Record<string, string>) => (name: string) => vars[name];
 * assert.equal(colorEnabled({ isTerminal: true, env: env({}) }), true);
 * assert.equal(colorEnabled({ isTerminal: true, env: env({ NO_COLOR: "1" }) }), false);
 * assert.equal(colorEnabled({ isTerminal: true, env: env({ TERM: "dumb" }) }), false);
 * assert.equal(colorEnabled({ isTerminal: false, env: env({}) }), false);
 * ```
 */
export function colorEnabled(
  options: { isTerminal?: boolean; env?: (name: string) => string | undefined } = {},
): boolean {
  const env = options.env ?? readEnv;
  const noColor = env("NO_COLOR");
  if (noColor !== undefined && noColor !== "") return false;
  if (env("TERM") === "dumb") return false;
  return options.isTerminal ?? Deno.stdout.isTerminal();
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}
