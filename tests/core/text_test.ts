import { strictEqual } from "node:assert/strict";
import {
  BIDI_FORMATTING,
  CONTROL_CHARACTERS,
  hasUnsafeCharacter,
  LINE_BREAKS,
  replaceUnsafe,
  toTerminalLine,
} from "../../lib/core/text.ts";
import { sanitize } from "../../lib/terminal/chat_view.ts";
import { commentProblem } from "../../lib/keys/identity.ts";
import { safeRelativePath, sanitizeDisplayName } from "../../lib/transfer/safe_path.ts";
import { decodeIdentity, encodeIdentity } from "../../lib/protocol/messages.ts";
import { ProtocolError } from "../../lib/core/errors.ts";

const hex = (char: string) => `U+${char.codePointAt(0)!.toString(16).toUpperCase()}`;

const CONTROLS = ["\u0000", "\u0007", "\u0008", "\u001b", "\u007f", "\u009b", "\u0090"];
const BREAKS = ["\t", "\n", "\v", "\f", "\r", "\u0085", "\u2028", "\u2029"];
const BIDI = [
  "\u061c", // ARABIC LETTER MARK
  "\u200e", // LEFT-TO-RIGHT MARK
  "\u200f", // RIGHT-TO-LEFT MARK
  "\u202a",
  "\u202b",
  "\u202c",
  "\u202d",
  "\u202e", // RIGHT-TO-LEFT OVERRIDE
  "\u2066",
  "\u2067",
  "\u2068",
  "\u2069",
];
const SAFE = ["alice", "Zoë's laptop 🔐", "名前", "שלום", "a b-c_d.e@f", "\u00a0", "~", "👩‍💻"];

Deno.test("the three sets hold exactly the characters their docs name", () => {
  for (const char of CONTROLS) strictEqual(CONTROL_CHARACTERS.test(char), true, hex(char));
  for (const char of BREAKS) strictEqual(LINE_BREAKS.test(char), true, hex(char));
  for (const char of BIDI) strictEqual(BIDI_FORMATTING.test(char), true, hex(char));
  for (const text of SAFE) {
    for (const set of [CONTROL_CHARACTERS, LINE_BREAKS, BIDI_FORMATTING]) {
      strictEqual(set.test(text), false, `${text} ${set}`);
    }
  }
});

Deno.test("`hasUnsafeCharacter()` finds every character of every set and lone surrogates", () => {
  for (const char of [...CONTROLS, ...BREAKS, ...BIDI, "\ud800"]) {
    strictEqual(hasUnsafeCharacter(`a${char}b`), true, hex(char));
  }
  for (const text of SAFE) strictEqual(hasUnsafeCharacter(text), false, text);
});

Deno.test("`replaceUnsafe()` replaces each unsafe character with ? and keeps the rest", () => {
  for (const char of [...CONTROLS, ...BREAKS, ...BIDI]) {
    strictEqual(replaceUnsafe(`a${char}b`), "a?b", hex(char));
  }
  strictEqual(replaceUnsafe("\u001b[31mred\u001b[0m"), "?[31mred?[0m");
  strictEqual(replaceUnsafe("alice\u202Eexe.txt"), "alice?exe.txt");
  for (const text of SAFE) strictEqual(replaceUnsafe(text), text);
});

Deno.test("`toTerminalLine()` turns line breaks into spaces and removes the other characters", () => {
  for (const char of BREAKS) strictEqual(toTerminalLine(`a${char}b`), "a b", hex(char));
  for (const char of [...CONTROLS, ...BIDI]) {
    strictEqual(toTerminalLine(`a${char}b`), "ab", hex(char));
  }
  strictEqual(toTerminalLine("a\ud800b"), "a\ufffdb");
  strictEqual(toTerminalLine("hi\x1b[2J\nbob: lies\u202e"), "hi[2J bob: lies");
  for (const text of SAFE) strictEqual(toTerminalLine(text), text);
});

Deno.test("every place that shows or checks peer text uses the same sets", () => {
  // Regression: four modules kept their own sets, and the chat view's lacked U+061C, U+200E and
  // U+200F, so a chat text could carry them while a name or a file name could not.
  const spki = new Uint8Array(44).fill(3);
  for (const char of [...CONTROLS, ...BREAKS, ...BIDI]) {
    const text = `a${char}b`;
    strictEqual(sanitize(text), toTerminalLine(text), `chat view ${hex(char)}`);
    strictEqual(sanitizeDisplayName(text), toTerminalLine(text), `display name ${hex(char)}`);
    strictEqual(commentProblem(text) !== undefined, true, `identity comment ${hex(char)}`);
    let refused = false;
    try {
      safeRelativePath(text);
    } catch (error) {
      refused = error instanceof ProtocolError;
    }
    strictEqual(refused, true, `manifest path ${hex(char)}`);
    const hello = decodeIdentity(encodeIdentity({ spki, name: text }));
    strictEqual(hello.name, replaceUnsafe(text), `handshake name ${hex(char)}`);
  }
});
