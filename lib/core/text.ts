/**
 * The one home of "which characters a peer may not put on our terminal". Every string that a peer
 * chooses (handshake names, identity comments, chat texts, offer names, manifest paths, reasons)
 * is checked or cleaned here, with the same sets, so that the sets cannot drift apart again.
 *
 * The sets, each named for what it defends against:
 * - {@linkcode CONTROL_CHARACTERS}: C0 controls, DEL and C1 controls. ESC (0x1B) and CSI (0x9B)
 *   let a peer move the cursor, rewrite earlier lines, retitle the window or inject "keystrokes"
 *   through answerback sequences.
 * - {@linkcode LINE_BREAKS}: tab, newline, VT, FF, CR, NEL and the Unicode line and paragraph
 *   separators: a text that starts a new line can forge a line that looks like someone else's.
 *   When text is shown they become a space, so words do not run together.
 * - {@linkcode BIDI_FORMATTING}: embeddings and overrides (U+202A-U+202E), isolates
 *   (U+2066-U+2069) and the implicit marks ALM, LRM, RLM (U+061C, U+200E, U+200F). They reorder
 *   what is shown around them (Trojan Source, CVE-2021-42574: `invoice\u202Egpj.exe` shows as
 *   `invoiceexe.jpg`). Right-to-left scripts display correctly without them; a peer loses
 *   nothing but the means to disguise text.
 *
 * Everything else in Unicode (accents, CJK, emoji, ZWJ sequences) is kept. Look-alike characters
 * are not detected: a member is identified by its fingerprint, never by its name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasUnsafeCharacter, replaceUnsafe, toTerminalLine } from "./text.ts";
 * assert.equal(toTerminalLine("hi\x1b[2J\nbob: lies\u202e"), "hi[2J bob: lies");
 * assert.equal(replaceUnsafe("eve\u202egnp"), "eve?gnp");
 * assert.equal(hasUnsafeCharacter("café 👋"), false);
 * ```
 *
 * @module
 */

/** C0 controls, DEL and C1 controls. */
// deno-lint-ignore no-control-regex
export const CONTROL_CHARACTERS: RegExp = /[\u0000-\u001f\u007f-\u009f]/u;

/** Characters a terminal may start a new line at (a subset of the controls, plus U+2028/U+2029). */
export const LINE_BREAKS: RegExp = /[\t\n\v\f\r\u0085\u2028\u2029]/u;

/** Bidirectional formatting characters: embeddings, overrides, isolates and implicit marks. */
export const BIDI_FORMATTING: RegExp = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

const ANY_UNSAFE = union(CONTROL_CHARACTERS, LINE_BREAKS, BIDI_FORMATTING);

function union(...sets: RegExp[]): RegExp {
  return new RegExp(sets.map((set) => set.source).join("|"), "u");
}

function global(set: RegExp): RegExp {
  return new RegExp(set.source, "gu");
}

const ALL_UNSAFE = global(ANY_UNSAFE);
const ALL_LINE_BREAKS = global(LINE_BREAKS);

/**
 * Says whether `text` holds a character of any of the three sets, or a lone surrogate.
 *
 * @param text untrusted text
 * @returns true when the text could drive or disguise what the terminal shows
 */
export function hasUnsafeCharacter(text: string): boolean {
  return ANY_UNSAFE.test(text) || !text.isWellFormed();
}

/**
 * Replaces every unsafe character with "?": for names and identifiers, where a visible mark
 * tells the user that something was there.
 *
 * @param text untrusted text
 * @returns the text with each unsafe character replaced by "?" (lone surrogates become U+FFFD)
 */
export function replaceUnsafe(text: string): string {
  return text.toWellFormed().replace(ALL_UNSAFE, "?");
}

/**
 * Makes untrusted text safe to show on one terminal line: lone surrogates become U+FFFD, line
 * breaks become a space, and every other control and bidi formatting character is removed.
 *
 * @param text untrusted text
 * @returns the text on one line, with no escape sequence and no reordering character
 */
export function toTerminalLine(text: string): string {
  return text.toWellFormed().replace(ALL_LINE_BREAKS, " ").replace(ALL_UNSAFE, "");
}
