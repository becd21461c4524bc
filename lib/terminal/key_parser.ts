/**
 * Decodes raw terminal input (raw mode, UTF-8) into key presses: `KeyParser` for a stream whose
 * reads may split a UTF-8 character or an escape sequence, `parseKeys` for one complete chunk.
 * Pure: no I/O. `lib/terminal/line_editor.ts` applies the keys.
 *
 * Understood: printable code points, Enter (CR, LF, CR LF once), Tab, Backspace (DEL and BS),
 * Delete (ESC[3~), arrows (ESC[A-D and ESC O A-D, Ctrl/Alt-Left/Right as word moves), Home/End
 * (ESC[H, ESC[F, ESC[1~, ESC[7~, ESC[4~, ESC[8~, ESC O H/F), and the readline control keys
 * Ctrl-A B C D E F K L N P U W.
 *
 * What it does not do: it has no timeout, so a lone Escape waits for the next byte; Escape
 * followed by a printable character drops the Escape and keeps the character (no typed character
 * is lost), Alt-b, Alt-f and Alt-Backspace move or delete by word. Bracketed paste markers
 * (ESC[200~, ESC[201~) and unknown sequences are dropped, as are invalid UTF-8, C1 controls and
 * C0 controls without a meaning.
 *
 * @module
 */

/** Longest escape sequence we wait for; a longer unfinished one is dropped as garbage. */
const MAX_ESCAPE_LENGTH = 32;

/** An editing key without a payload (see {@linkcode Key}). */
export type KeyName =
  | "enter"
  | "tab"
  | "backspace"
  | "delete"
  | "left"
  | "right"
  | "wordLeft"
  | "wordRight"
  | "up"
  | "down"
  | "home"
  | "end"
  | "killBefore"
  | "killAfter"
  | "deleteWordBefore"
  | "interrupt"
  | "eof"
  | "refresh";

/** A decoded key press: one printable code point, or an editing key. */
export type Key = { type: "char"; char: string } | { type: KeyName };

const CONTROL_KEYS: Partial<Record<number, KeyName>> = {
  0x01: "home", // Ctrl-A
  0x02: "left", // Ctrl-B
  0x03: "interrupt", // Ctrl-C (raw mode: a byte, not SIGINT)
  0x04: "eof", // Ctrl-D
  0x05: "end", // Ctrl-E
  0x06: "right", // Ctrl-F
  0x08: "backspace", // BS (Ctrl-H)
  0x09: "tab",
  0x0a: "enter", // LF
  0x0b: "killAfter", // Ctrl-K
  0x0c: "refresh", // Ctrl-L
  0x0d: "enter", // CR: what Enter sends in raw mode
  0x0e: "down", // Ctrl-N
  0x10: "up", // Ctrl-P
  0x15: "killBefore", // Ctrl-U
  0x17: "deleteWordBefore", // Ctrl-W
  0x7f: "backspace", // DEL: what Backspace sends on most terminals
};

/** Final bytes of `ESC [ ... X` and `ESC O X` that need no parameter. */
const FINAL_KEYS: Partial<Record<string, KeyName>> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

/** Parameters of `ESC [ N ~` (VT220 editing keypad). 200/201 (bracketed paste) map to nothing. */
const TILDE_KEYS: Partial<Record<string, KeyName>> = {
  "1": "home",
  "7": "home",
  "4": "end",
  "8": "end",
  "3": "delete",
};

/** `ESC X` (Alt or Meta as an Escape prefix). */
const ALT_KEYS: Partial<Record<number, KeyName>> = {
  0x62: "wordLeft", // Alt-b
  0x66: "wordRight", // Alt-f
  0x7f: "deleteWordBefore", // Alt-Backspace
};

const INCOMPLETE = -1;

/**
 * Decodes raw terminal input into keys across reads: a UTF-8 character or an escape sequence split
 * between two reads is kept pending until the rest arrives. Invalid UTF-8, C0/C1 control
 * characters without a meaning and unknown escape sequences are dropped. CR LF counts as one Enter.
 */
export class KeyParser {
  #pending: Uint8Array = new Uint8Array(0);
  #afterCR = false;

  /**
   * Parses the next chunk of input.
   *
   * @param bytes what one read returned
   * @returns the keys completed by this chunk, in order
   */
  feed(bytes: Uint8Array): Key[] {
    let data = bytes;
    if (this.#pending.length > 0) {
      data = new Uint8Array(this.#pending.length + bytes.length);
      data.set(this.#pending);
      data.set(bytes, this.#pending.length);
    }
    const keys: Key[] = [];
    let i = 0;
    while (i < data.length) {
      const byte = data[i]!;
      const afterCR = this.#afterCR;
      this.#afterCR = byte === 0x0d;
      if (byte === 0x0a && afterCR) {
        i++;
      } else if (byte === 0x1b) {
        const length = escapeLength(data, i, keys);
        if (length === INCOMPLETE) break;
        i += length;
      } else if (byte < 0x20 || byte === 0x7f) {
        const name = CONTROL_KEYS[byte];
        if (name !== undefined) keys.push({ type: name });
        i++;
      } else {
        const length = utf8Length(data, i, keys);
        if (length === INCOMPLETE) break;
        i += length;
      }
    }
    this.#pending = data.slice(i);
    return keys;
  }
}

/**
 * Parses a complete chunk of input into keys; an unfinished character or sequence at the end is
 * dropped. Use a {@linkcode KeyParser} for a stream.
 *
 * @param bytes raw terminal input
 * @returns the keys it contains
 *
 * @example
 * ```ts
 * import { parseKeys } from "./key_parser.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseKeys(new TextEncoder().encode("é\x1b[D\r")), [
 *   { type: "char", char: "é" },
 *   { type: "left" },
 *   { type: "enter" },
 * ]);
 * ```
 */
export function parseKeys(bytes: Uint8Array): Key[] {
  return new KeyParser().feed(bytes);
}

/** Parses the escape sequence at `data[start]`; returns the bytes it spans, or INCOMPLETE. */
function escapeLength(data: Uint8Array, start: number, keys: Key[]): number {
  if (start + 1 >= data.length) return INCOMPLETE;
  const second = data[start + 1]!;
  if (second === 0x4f) { // ESC O X (SS3: application cursor keys)
    if (start + 2 >= data.length) return INCOMPLETE;
    const name = FINAL_KEYS[String.fromCharCode(data[start + 2]!)];
    if (name !== undefined) keys.push({ type: name });
    return 3;
  }
  if (second !== 0x5b) { // not CSI
    const name = ALT_KEYS[second];
    if (name === undefined) return 1; // drop the Escape, keep what follows (see module doc)
    keys.push({ type: name });
    return 2;
  }
  // CSI: ESC [ parameters (0x30-0x3F)* intermediates (0x20-0x2F)* final (0x40-0x7E), ECMA-48 5.4
  let i = start + 2;
  while (i < data.length && data[i]! >= 0x30 && data[i]! <= 0x3f) i++;
  while (i < data.length && data[i]! >= 0x20 && data[i]! <= 0x2f) i++;
  if (i >= data.length) return i - start >= MAX_ESCAPE_LENGTH ? i - start : INCOMPLETE;
  const final = data[i]!;
  if (final < 0x40 || final > 0x7e) return i - start; // malformed: drop it, parse the byte anew
  const parameters = new TextDecoder().decode(data.subarray(start + 2, i)).split(";");
  const modifier = parameters[1] ?? "1";
  const char = String.fromCharCode(final);
  let name = char === "~" ? TILDE_KEYS[parameters[0]!] : FINAL_KEYS[char];
  // xterm modifiers: ESC[1;5D is Ctrl-Left, ESC[1;3D Alt-Left.
  if ((modifier === "5" || modifier === "3") && (name === "left" || name === "right")) {
    name = name === "left" ? "wordLeft" : "wordRight";
  }
  if (name !== undefined) keys.push({ type: name });
  return i + 1 - start;
}

/** Decodes the UTF-8 character at `data[start]`; returns the bytes it spans, or INCOMPLETE. */
function utf8Length(data: Uint8Array, start: number, keys: Key[]): number {
  const lead = data[start]!;
  const length = utf8SequenceLength(lead);
  if (length === 0) return 1; // a stray continuation byte or an invalid lead: drop it
  let codePoint = length === 1 ? lead : lead & (0xff >> (length + 1));
  for (let k = 1; k < length; k++) {
    if (start + k >= data.length) return INCOMPLETE;
    const next = data[start + k]!;
    if ((next & 0xc0) !== 0x80) return k; // truncated character: drop it, parse `next` anew
    codePoint = (codePoint << 6) | (next & 0x3f);
  }
  const minimum = [0, 0, 0x80, 0x800, 0x10000][length]!;
  const valid = codePoint >= minimum && codePoint <= 0x10ffff &&
    !(codePoint >= 0xd800 && codePoint <= 0xdfff) && !(codePoint >= 0x80 && codePoint <= 0x9f);
  if (valid) keys.push({ type: "char", char: String.fromCodePoint(codePoint) });
  return length;
}

/** Bytes in the UTF-8 sequence led by `lead` (RFC 3629 section 4), 0 for an invalid lead byte. */
function utf8SequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}
