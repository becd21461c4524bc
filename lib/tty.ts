/**
 * The terminal: the only module that switches raw mode on and off, decides on colour and moves
 * the cursor. It reads secrets (passphrases) without echo, and draws the chat prompt.
 *
 * `readSecret()` prompts on stdin when stdin is a terminal, else on `/dev/tty` (POSIX), so that
 * `tar c dir | securechat dial host` can still ask for a passphrase while stdin carries data. With
 * no terminal at all it fails with a hint naming the non-interactive sources.
 *
 * `TerminalScreen` owns raw mode, the prompt row of the chat and a status area of a few rows right
 * above it (live transfer progress): lines printed above never garble what is being typed, since
 * every write clears the status rows and the prompt row, prints, and draws the status and the
 * prompt again, the prompt with the line and cursor of a `LineEditor` (`lib/line_editor.ts`).
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
 * - `TerminalScreen` writes CR LF: raw mode may turn off output post-processing (OPOST), and then
 *   a bare LF moves down without returning to the first column.
 * - The status area is erased by moving up as many rows as were drawn, so its lines must be
 *   narrower than the terminal (`renderTransferStatus()` in `lib/chat_view.ts` sees to that). A
 *   terminal that reflows rows when it is made narrower can leave a stale status row above the
 *   new one after a resize; the next output is right again.
 * - A pending read on `Deno.stdin` cannot be cancelled and keeps the process alive, which is why
 *   `main.ts` ends with `Deno.exit()`.
 *
 * @module
 */

import { wipe } from "./bytes.ts";
import { SecurechatError } from "./errors.ts";
import { writeAll } from "./frame.ts";
import { charWidth, layoutLine } from "./line_editor.ts";

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
  reader: Reader & { setRaw(mode: boolean): void };
  writer: Writer;
  close(): void;
}

/** Where raw terminal bytes come from. */
export interface Reader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Where terminal output goes: `Deno.stdout`, or a test's capture. */
export interface Writer {
  write(bytes: Uint8Array): Promise<number>;
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
export async function readSecretLine(reader: Reader): Promise<string> {
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

/** What a {@linkcode TerminalScreen} shows on the prompt row: a `LineEditor` fits. */
export interface PromptLine {
  /** The line's code points. */
  readonly chars: readonly string[];
  /** Cursor position in code points. */
  readonly cursor: number;
}

/** Switches raw mode: `Deno.stdin`, or a test's recorder. */
export interface RawMode {
  setRaw(mode: boolean): void;
}

/** Options for {@linkcode TerminalScreen}. */
export interface TerminalScreenOptions {
  /** Shown before the line (default "> "); must be free of control characters. */
  prompt?: string;
  /** Where output goes (default `Deno.stdout`). */
  writer?: Writer;
  /** Raw mode switch (default `Deno.stdin`). */
  raw?: RawMode;
  /** Terminal width in columns (default `Deno.consoleSize()`, 80 when that fails). */
  columns?: () => number;
  /**
   * The status area above the prompt, asked for at every draw with the terminal width: display
   * lines (sanitized, each narrower than `columns`, without line endings), none to show nothing.
   * Default: no status area.
   */
  status?: (columns: number) => readonly string[];
  /**
   * Install SIGINT, SIGTERM, SIGHUP (SIGINT, SIGBREAK on Windows) and SIGWINCH handlers, and an
   * `unload` hook that leaves raw mode if the process exits without `stop()`. Default: when `raw`
   * is `Deno.stdin` (the default), since only then is a real terminal at stake.
   */
  signals?: boolean;
  /**
   * Called on SIGINT, SIGTERM, SIGHUP or SIGBREAK while started (to close the chat, which then
   * calls `stop()`). Default: `stop()`, then exit with 128 + the signal number.
   */
  onSignal?: (signal: Deno.Signal) => void;
}

const CLEAR_ROW = "\r\x1b[2K";
const ENDING_SIGNALS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGTERM: 15,
  SIGBREAK: 21,
};

/**
 * The chat's terminal: owns raw mode, the prompt row and the status rows above it. Every output
 * clears the status rows and the prompt row, prints, and draws the status (from the `status`
 * option) and the prompt again, the prompt with the editor's line and cursor, so incoming lines
 * never mix with what is being typed and the status stays in place under them. A line wider
 * than the terminal scrolls horizontally (`layoutLine()`), keeping the prompt on one row. Writes
 * are queued so they never interleave; the methods never reject: the first write error stops
 * drawing and is kept in `error`.
 *
 * `stop()` must run on every exit path (`try`/`finally`); signals and `Deno.exit()` elsewhere are
 * covered by the `signals` option.
 */
export class TerminalScreen {
  readonly #line: PromptLine;
  readonly #prompt: string;
  readonly #promptWidth: number;
  readonly #writer: Writer;
  readonly #raw: RawMode;
  readonly #columns: () => number;
  readonly #status: ((columns: number) => readonly string[]) | undefined;
  readonly #signals: boolean;
  readonly #onSignal: ((signal: Deno.Signal) => void) | undefined;
  #state: "new" | "started" | "stopped" = "new";
  #queue: Promise<void> = Promise.resolve();
  #error: unknown = undefined;
  #start = 0;
  /** Status rows on the screen above the prompt row, as the queued writes leave them. */
  #statusRows = 0;
  #listeners: [Deno.Signal, () => void][] = [];
  readonly #unload = () => this.#leaveRaw();

  /**
   * @param line what the prompt row shows, usually the chat's `LineEditor`
   * @param options output, raw mode, prompt and signal handling
   */
  constructor(line: PromptLine, options: TerminalScreenOptions = {}) {
    this.#line = line;
    this.#prompt = options.prompt ?? "> ";
    this.#promptWidth = [...this.#prompt].reduce((sum, char) => sum + charWidth(char), 0);
    this.#writer = options.writer ?? Deno.stdout;
    this.#raw = options.raw ?? Deno.stdin;
    this.#columns = options.columns ?? consoleColumns;
    this.#status = options.status;
    this.#signals = options.signals ?? this.#raw === Deno.stdin;
    this.#onSignal = options.onSignal;
  }

  /** The first write error, if any; drawing stopped there. */
  get error(): unknown {
    return this.#error;
  }

  /**
   * Enables raw mode, installs the signal handlers (see options) and draws the status and the
   * prompt.
   *
   * @throws {Error} whatever `setRaw(true)` throws (stdin not a terminal); nothing to undo then
   */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new TypeError("TerminalScreen.start() called twice");
    this.#raw.setRaw(true);
    this.#state = "started";
    if (this.#signals) this.#installHooks();
    await this.redraw();
  }

  /**
   * Prints lines above the status area and the prompt, then redraws both: the status as the
   * `status` option gives it now, the prompt with the current line and cursor.
   *
   * @param lines display lines, already sanitized (`lib/chat_view.ts`), without line endings
   */
  printAbove(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return this.#queue;
    return this.#draw(lines.map((line) => line + "\r\n").join(""));
  }

  /** Redraws the status area and the prompt row in place (after typing, or a status change). */
  redraw(): Promise<void> {
    return this.#draw("");
  }

  /** Rings the terminal bell (a line too long, for instance). */
  bell(): Promise<void> {
    return this.#write("\x07");
  }

  /**
   * Leaves raw mode (first, synchronously, so it happens even if a write hangs), removes the
   * handlers, and clears the status area and the prompt row so the shell prompt starts on a clean
   * row. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#state !== "started") {
      this.#state = "stopped";
      return;
    }
    this.#leaveRaw();
    for (const [signal, handler] of this.#listeners) Deno.removeSignalListener(signal, handler);
    this.#listeners = [];
    if (this.#signals) globalThis.removeEventListener("unload", this.#unload);
    await this.#write(this.#erase(), true);
  }

  #leaveRaw(): void {
    if (this.#state !== "started") return;
    this.#state = "stopped";
    this.#raw.setRaw(false);
  }

  /** Queues: erase the status and prompt rows, print `above`, draw the status and the prompt. */
  #draw(above: string): Promise<void> {
    if (this.#state !== "started") return this.#queue;
    return this.#write(this.#erase() + above + this.#statusText() + this.#promptRow());
  }

  /**
   * Moves to the first status row (the prompt row when there is none) and clears from there
   * down. Without a status it is only CR and "erase line", as it was before the status area.
   */
  #erase(): string {
    const rows = this.#statusRows;
    this.#statusRows = 0;
    return rows === 0 ? CLEAR_ROW : `\r\x1b[${rows}A\x1b[J`;
  }

  /** The status lines, each ended by CR LF; records the rows they take for the next erase. */
  #statusText(): string {
    const lines = this.#status?.(this.#columns()) ?? [];
    this.#statusRows = lines.length;
    return lines.map((line) => line + "\r\n").join("");
  }

  /** Queues `text`, built now so writes land in call order (the row counts depend on it). */
  #write(text: string, evenStopped = false): Promise<void> {
    if (this.#state !== "started" && !evenStopped) return this.#queue;
    const bytes = new TextEncoder().encode(text);
    this.#queue = this.#queue.then(async () => {
      if (this.#error !== undefined) return;
      try {
        await writeAll(this.#writer, bytes);
      } catch (error) {
        this.#error = error;
      }
    });
    return this.#queue;
  }

  /** The prompt, the visible part of the line, and the cursor moved to its column. */
  #promptRow(): string {
    const { chars, cursor } = this.#line;
    const room = this.#columns() - this.#promptWidth;
    const layout = layoutLine(chars, cursor, room, this.#start);
    this.#start = layout.start;
    const column = this.#promptWidth + layout.cursorColumn;
    return this.#prompt + layout.text + "\r" + (column > 0 ? `\x1b[${column}C` : "");
  }

  #installHooks(): void {
    const signals: Deno.Signal[] = Deno.build.os === "windows"
      ? ["SIGINT", "SIGBREAK"]
      : ["SIGINT", "SIGTERM", "SIGHUP", "SIGWINCH"];
    for (const signal of signals) {
      const handler = signal === "SIGWINCH" ? () => void this.redraw() : () => this.#ended(signal);
      Deno.addSignalListener(signal, handler);
      this.#listeners.push([signal, handler]);
    }
    globalThis.addEventListener("unload", this.#unload);
  }

  #ended(signal: Deno.Signal): void {
    if (this.#onSignal !== undefined) return this.#onSignal(signal);
    void this.stop().then(() => Deno.exit(128 + (ENDING_SIGNALS[signal] ?? 0)));
  }
}

function consoleColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80; // stdout is not a terminal
  }
}
