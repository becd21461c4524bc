/**
 * A pure line editor for the chat prompt: keys in, edit actions out (`LineEditor`), and the layout
 * of the edited line on a one-row prompt (`layoutLine`, `charWidth`). Keys come from
 * `lib/terminal/key_parser.ts` (re-exported here: `parseKeys`, `KeyParser`). No I/O, no clock:
 * `lib/terminal/tty.ts` draws, and `lib/terminal/chat_terminal.ts` connects the two.
 *
 * What it does not do: multi-row editing (a long line scrolls horizontally instead), completion,
 * reverse search, undo, or kill-ring yanking.
 *
 * Caveats:
 * - The cursor moves by Unicode code point, not by grapheme cluster: a flag or a ZWJ emoji
 *   sequence takes several Left presses, and a combining mark (width 0) seems not to move it.
 * - Widths follow a simplified wcwidth: East Asian Wide/Fullwidth blocks and emoji with default
 *   emoji presentation are 2 columns, combining marks and zero-width characters 0, the rest 1.
 *   Terminals disagree on some (variation selectors, ambiguous width), which at worst offsets the
 *   cursor on the prompt row; the text sent is never affected.
 * - Ctrl-C quits even with text on the line (the chat's /help says so); Tab types a space, since
 *   readers strip tabs (`lib/terminal/chat_view.ts`).
 *
 * @module
 */

import type { Key } from "./key_parser.ts";

export { type Key, type KeyName, KeyParser, parseKeys } from "./key_parser.ts";

/** Longest line the editor accepts, in code points; more input rings the bell and is dropped. */
export const MAX_LINE_LENGTH = 4000;

/** Submitted lines kept for Up/Down. */
export const HISTORY_SIZE = 200;

/** What feeding keys asks of the caller. After `submit` the buffer is empty. */
export type EditorAction =
  | { type: "submit"; line: string }
  | { type: "quit" }
  | { type: "redraw" }
  | { type: "bell" };

/** Options for {@linkcode LineEditor}. */
export interface LineEditorOptions {
  /** Longest line in code points (default {@linkcode MAX_LINE_LENGTH}). */
  maxLength?: number;
  /** History entries kept (default {@linkcode HISTORY_SIZE}). */
  historySize?: number;
}

/**
 * The line being typed, its cursor and the history of submitted lines. Feed it keys; it returns
 * what the caller must do (submit a line, quit, redraw the prompt, ring the bell).
 *
 * @example
 * ```ts
 * import { LineEditor, parseKeys } from "./line_editor.ts";
 * import assert from "node:assert/strict";
 *
 * const editor = new LineEditor();
 * const actions = editor.feed(parseKeys(new TextEncoder().encode("helo\x1b[Dl\r")));
 * assert.deepEqual(actions.filter((a) => a.type === "submit"), [{ type: "submit", line: "hello" }]);
 * ```
 */
export class LineEditor {
  #chars: string[] = [];
  #cursor = 0;
  #history: string[] = [];
  /** Index into history while browsing; history.length means the draft line. */
  #browsing = 0;
  #draft: string[] = [];
  readonly #maxLength: number;
  readonly #historySize: number;

  /** @param options length and history caps */
  constructor(options: LineEditorOptions = {}) {
    this.#maxLength = options.maxLength ?? MAX_LINE_LENGTH;
    this.#historySize = options.historySize ?? HISTORY_SIZE;
  }

  /** The line as typed so far. */
  get line(): string {
    return this.#chars.join("");
  }

  /** The line's code points (what the cursor indexes). */
  get chars(): readonly string[] {
    return this.#chars;
  }

  /** Cursor position in code points, 0 to `chars.length`. */
  get cursor(): number {
    return this.#cursor;
  }

  /** Submitted non-empty lines, oldest first. */
  get history(): readonly string[] {
    return this.#history;
  }

  /**
   * Applies keys in order.
   *
   * @param keys decoded key presses
   * @returns actions in order; runs of `redraw` or `bell` are collapsed into one
   */
  feed(keys: Iterable<Key>): EditorAction[] {
    const actions: EditorAction[] = [];
    for (const key of keys) {
      for (const action of this.#apply(key)) {
        const last = actions[actions.length - 1];
        if ((action.type === "redraw" || action.type === "bell") && last?.type === action.type) {
          continue;
        }
        actions.push(action);
      }
    }
    return actions;
  }

  #apply(key: Key): EditorAction[] {
    const chars = this.#chars;
    const at = this.#cursor;
    switch (key.type) {
      case "char":
      case "tab": // a tab would be stripped by every reader (lib/terminal/chat_view.ts): type a space
        if (chars.length >= this.#maxLength) return [{ type: "bell" }];
        chars.splice(at, 0, "char" in key ? key.char : " ");
        this.#cursor++;
        break;
      case "enter":
        return this.#submit();
      case "interrupt":
        return [{ type: "quit" }];
      case "eof":
        if (chars.length === 0) return [{ type: "quit" }];
        if (at === chars.length) return [];
        chars.splice(at, 1);
        break;
      case "backspace":
        if (at === 0) return [];
        chars.splice(at - 1, 1);
        this.#cursor--;
        break;
      case "delete":
        if (at === chars.length) return [];
        chars.splice(at, 1);
        break;
      case "left":
      case "right":
      case "home":
      case "end":
      case "wordLeft":
      case "wordRight":
        this.#cursor = this.#moved(key.type);
        if (this.#cursor === at) return [];
        break;
      case "killBefore":
      case "deleteWordBefore": {
        const from = key.type === "killBefore" ? 0 : this.#moved("wordLeft");
        if (from === at) return [];
        chars.splice(from, at - from);
        this.#cursor = from;
        break;
      }
      case "killAfter":
        if (at === chars.length) return [];
        chars.length = at;
        break;
      case "up":
      case "down":
        return this.#browse(key.type === "up" ? -1 : 1);
      case "refresh":
        break;
    }
    return [{ type: "redraw" }];
  }

  /** Where a movement key puts the cursor; words are separated by whitespace (like Ctrl-W). */
  #moved(key: "left" | "right" | "home" | "end" | "wordLeft" | "wordRight"): number {
    const chars = this.#chars;
    const space = (i: number) => /\s/u.test(chars[i]!);
    let at = this.#cursor;
    switch (key) {
      case "left":
        return Math.max(0, at - 1);
      case "right":
        return Math.min(chars.length, at + 1);
      case "home":
        return 0;
      case "end":
        return chars.length;
      case "wordLeft":
        while (at > 0 && space(at - 1)) at--;
        while (at > 0 && !space(at - 1)) at--;
        return at;
      case "wordRight":
        while (at < chars.length && space(at)) at++;
        while (at < chars.length && !space(at)) at++;
        return at;
    }
  }

  #submit(): EditorAction[] {
    const line = this.line;
    if (line.trim() !== "" && this.#history[this.#history.length - 1] !== line) {
      this.#history.push(line);
      if (this.#history.length > this.#historySize) this.#history.shift();
    }
    this.#browsing = this.#history.length;
    this.#draft = [];
    this.#chars = [];
    this.#cursor = 0;
    return [{ type: "submit", line }, { type: "redraw" }];
  }

  /** Up (-1) or Down (+1) through history; the draft line is kept at the end of the list. */
  #browse(step: -1 | 1): EditorAction[] {
    const history = this.#history;
    const next = this.#browsing + step;
    if (next < 0 || next > history.length) return [];
    if (this.#browsing === history.length) this.#draft = this.#chars;
    this.#browsing = next;
    this.#chars = next === history.length ? this.#draft : [...history[next]!];
    this.#cursor = this.#chars.length;
    return [{ type: "redraw" }];
  }
}

// East Asian Wide and Fullwidth blocks (Unicode UAX #11), simplified to whole blocks.
const WIDE_RANGES: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], // Hangul Jamo initial consonants
  [0x2e80, 0x303e], // CJK radicals, Kangxi, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, CJK compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe30, 0xfe4f], // CJK compatibility forms
  [0xff00, 0xff60], // Fullwidth forms
  [0xffe0, 0xffe6], // Fullwidth signs
  [0x20000, 0x3fffd], // CJK extensions B and later
];
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\u200b-\u200f\u2060\ufeff\ufe00-\ufe0f]$/u;
const EMOJI = /^\p{Emoji_Presentation}$/u;

/**
 * Display width of one code point in terminal columns: 0, 1 or 2 (see the module doc for the
 * simplifications).
 *
 * @param char one code point
 * @returns columns it takes
 */
export function charWidth(char: string): 0 | 1 | 2 {
  const codePoint = char.codePointAt(0) ?? 0;
  if (codePoint < 0x300) return 1; // fast path: ASCII and Latin
  if (ZERO_WIDTH.test(char)) return 0;
  if (EMOJI.test(char)) return 2;
  for (const [low, high] of WIDE_RANGES) if (codePoint >= low && codePoint <= high) return 2;
  return 1;
}

/** The part of the line a one-row prompt shows (see {@linkcode layoutLine}). */
export interface LineLayout {
  /** First code point shown. */
  start: number;
  /** The text shown, never wider than the columns given. */
  text: string;
  /** Cursor column relative to the start of `text`. */
  cursorColumn: number;
}

/**
 * Lays out a line on one terminal row of `columns` columns, scrolling horizontally so the cursor
 * stays visible: the window only moves when the cursor would leave it (like readline's
 * horizontal-scroll mode), so pass the previous `start` back in.
 *
 * @param chars the line's code points
 * @param cursor cursor position in code points
 * @param columns columns available for the line (the prompt already subtracted), at least 1
 * @param previousStart the `start` of the previous layout (0 at first)
 * @returns what to show and where the cursor goes
 */
export function layoutLine(
  chars: readonly string[],
  cursor: number,
  columns: number,
  previousStart = 0,
): LineLayout {
  const room = Math.max(1, columns - 1); // the last column stays free for the cursor at the end
  let start = Math.min(previousStart, cursor);
  let width = 0;
  for (let i = start; i < cursor; i++) width += charWidth(chars[i]!);
  while (width > room && start < cursor) width -= charWidth(chars[start++]!);
  let text = "";
  let used = 0;
  for (let i = start; i < chars.length; i++) {
    const w = charWidth(chars[i]!);
    if (used + w > room) break;
    text += chars[i];
    used += w;
  }
  return { start, text, cursorColumn: width };
}
