/**
 * The chat's screen: `TerminalScreen` owns raw mode while the chat runs, the prompt row and a
 * status area of a few rows right above it (live transfer progress): lines printed above never
 * garble what is being typed, since every write clears the status rows and the prompt row, prints,
 * and draws the status and the prompt again, the prompt with the line and cursor of a
 * `LineEditor` (`lib/terminal/line_editor.ts`). It and `lib/terminal/tty.ts` (secret input, the colour decision)
 * are the only modules that switch raw mode on and off; it alone moves the cursor.
 *
 * Caveats:
 * - `TerminalScreen` writes CR LF: raw mode may turn off output post-processing (OPOST), and then
 *   a bare LF moves down without returning to the first column.
 * - The status area is erased by moving up as many rows as were drawn, so its lines must be
 *   narrower than the terminal (`renderTransferStatus()` in `lib/terminal/transfer_view.ts` sees to that).
 *   A terminal that reflows rows when it is made narrower can leave a stale status row above the
 *   new one after a resize; the next output is right again.
 *
 * @module
 */

import { type ByteSink, writeAll } from "../core/io.ts";
import { charWidth, layoutLine } from "./line_editor.ts";

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
  writer?: ByteSink;
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
  readonly #writer: ByteSink;
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
   * @param lines display lines, already sanitized (`lib/terminal/chat_view.ts`), without line endings
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
