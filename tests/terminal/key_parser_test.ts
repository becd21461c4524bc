import { deepStrictEqual as eql } from "node:assert/strict";
import { type Key, KeyParser, parseKeys } from "../../lib/terminal/key_parser.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const char = (c: string): Key => ({ type: "char", char: c });
const chars = (text: string): Key[] => [...text].map(char);

/** Feeds `bytes` to a fresh parser cut at the given offsets, and returns all keys. */
function feedSplit(bytes: Uint8Array, cuts: number[]): Key[] {
  const parser = new KeyParser();
  const keys: Key[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    keys.push(...parser.feed(bytes.subarray(from, cut)));
    from = cut;
  }
  return keys;
}

Deno.test("`parseKeys()` decodes every editing key", () => {
  const cases: [string, string | number[], Key[]][] = [
    ["printable ASCII", "hi !~", chars("hi !~")],
    ["UTF-8 two, three and four bytes", "é中🔑", chars("é中🔑")],
    ["Enter as CR", "\r", [{ type: "enter" }]],
    ["Enter as LF", "\n", [{ type: "enter" }]],
    ["CR LF is one Enter", "a\r\nb", [char("a"), { type: "enter" }, char("b")]],
    ["CR CR is two", "\r\r", [{ type: "enter" }, { type: "enter" }]],
    ["LF LF is two", "\n\n", [{ type: "enter" }, { type: "enter" }]],
    ["Backspace as DEL", "\x7f", [{ type: "backspace" }]],
    ["Backspace as BS", "\x08", [{ type: "backspace" }]],
    ["Tab", "\t", [{ type: "tab" }]],
    ["Delete", "\x1b[3~", [{ type: "delete" }]],
    ["Delete with a modifier", "\x1b[3;5~", [{ type: "delete" }]],
    ["Left, Right (CSI)", "\x1b[D\x1b[C", [{ type: "left" }, { type: "right" }]],
    ["Left, Right (SS3)", "\x1bOD\x1bOC", [{ type: "left" }, { type: "right" }]],
    ["Up, Down (CSI)", "\x1b[A\x1b[B", [{ type: "up" }, { type: "down" }]],
    ["Up, Down (SS3)", "\x1bOA\x1bOB", [{ type: "up" }, { type: "down" }]],
    ["Home, End (CSI H F)", "\x1b[H\x1b[F", [{ type: "home" }, { type: "end" }]],
    ["Home, End (CSI 1~ 4~)", "\x1b[1~\x1b[4~", [{ type: "home" }, { type: "end" }]],
    ["Home, End (CSI 7~ 8~)", "\x1b[7~\x1b[8~", [{ type: "home" }, { type: "end" }]],
    ["Home, End (SS3)", "\x1bOH\x1bOF", [{ type: "home" }, { type: "end" }]],
    ["Ctrl-Left, Ctrl-Right", "\x1b[1;5D\x1b[1;5C", [{ type: "wordLeft" }, { type: "wordRight" }]],
    ["Alt-Left, Alt-Right", "\x1b[1;3D\x1b[1;3C", [{ type: "wordLeft" }, { type: "wordRight" }]],
    ["Shift-Left is Left", "\x1b[1;2D", [{ type: "left" }]],
    ["Alt-b, Alt-f", "\x1bb\x1bf", [{ type: "wordLeft" }, { type: "wordRight" }]],
    ["Alt-Backspace", "\x1b\x7f", [{ type: "deleteWordBefore" }]],
    ["Ctrl-A, Ctrl-E", "\x01\x05", [{ type: "home" }, { type: "end" }]],
    ["Ctrl-B, Ctrl-F", "\x02\x06", [{ type: "left" }, { type: "right" }]],
    ["Ctrl-P, Ctrl-N", "\x10\x0e", [{ type: "up" }, { type: "down" }]],
    ["Ctrl-U, Ctrl-K", "\x15\x0b", [{ type: "killBefore" }, { type: "killAfter" }]],
    ["Ctrl-W", "\x17", [{ type: "deleteWordBefore" }]],
    ["Ctrl-C, Ctrl-D", "\x03\x04", [{ type: "interrupt" }, { type: "eof" }]],
    ["Ctrl-L", "\x0c", [{ type: "refresh" }]],
  ];
  for (const [name, input, expected] of cases) {
    const bytes = typeof input === "string" ? encode(input) : Uint8Array.from(input);
    eql(parseKeys(bytes), expected, name);
  }
});

Deno.test("`parseKeys()` drops what has no meaning", () => {
  const cases: [string, string | number[], Key[]][] = [
    ["bracketed paste markers", "\x1b[200~hi\x1b[201~", chars("hi")],
    ["unknown CSI", "a\x1b[99~\x1b[?25h\x1b[5Zb", chars("ab")],
    ["unknown SS3 (F1)", "a\x1bOPb", chars("ab")],
    ["malformed CSI: a control byte ends it", "\x1b[1\x03", [{ type: "interrupt" }]],
    ["other C0 controls", "\x00a\x07\x1cb", chars("ab")],
    ["Escape before a printable keeps the printable", "\x1bx", chars("x")],
    ["Escape Escape", "\x1b\x1b[D", [{ type: "left" }]],
    ["Escape before a control keeps the control", "\x1b\r", [{ type: "enter" }]],
    ["stray continuation bytes", [0x80, 0xbf, 0x61], chars("a")],
    ["invalid lead bytes", [0xc0, 0xc1, 0xf5, 0xff, 0x61], chars("a")],
    ["truncated character then ASCII", [0xc3, 0x61], chars("a")],
    ["truncated 4-byte character then ASCII", [0xf0, 0x9f, 0x61], chars("a")],
    ["overlong encoding", [0xe0, 0x80, 0xaf, 0x61], chars("a")],
    ["UTF-16 surrogate", [0xed, 0xa0, 0x80, 0x61], chars("a")],
    ["beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80, 0x61], chars("a")],
    ["C1 control U+009B (8-bit CSI)", [0xc2, 0x9b, 0x61], chars("a")],
    ["raw C1 byte 0x9B", [0x9b, 0x61], chars("a")],
  ];
  for (const [name, input, expected] of cases) {
    const bytes = typeof input === "string" ? encode(input) : Uint8Array.from(input);
    eql(parseKeys(bytes), expected, name);
  }
});

Deno.test("`KeyParser.feed()` gives the same keys however the input is split across reads", () => {
  const inputs = [
    "é中🔑x",
    "a\x1b[3~b\x1b[1;5Dc",
    "\x1bOH\x1b[200~p\x1b[201~\x1bb",
    "one\r\ntwo\r",
    "\x1b[99~\x1bx\x1b\x7f",
  ];
  for (const text of inputs) {
    const bytes = encode(text);
    const whole = parseKeys(bytes);
    for (let cut = 0; cut <= bytes.length; cut++) {
      eql(feedSplit(bytes, [cut]), whole, `${JSON.stringify(text)} cut at ${cut}`);
    }
    const everyByte = [...bytes.keys()].slice(1);
    eql(feedSplit(bytes, everyByte), whole, `${JSON.stringify(text)} byte by byte`);
  }
});

Deno.test("`KeyParser.feed()` keeps an unfinished character or sequence for the next read", () => {
  const parser = new KeyParser();
  eql(parser.feed(Uint8Array.of(0xf0, 0x9f)), []);
  eql(parser.feed(Uint8Array.of(0x94, 0x91)), chars("🔑"));
  eql(parser.feed(encode("\x1b")), []);
  eql(parser.feed(encode("[")), []);
  eql(parser.feed(encode("1;5")), []);
  eql(parser.feed(encode("D")), [{ type: "wordLeft" }]);
  eql(parser.feed(encode("\r")), [{ type: "enter" }]);
  eql(parser.feed(encode("\n")), [], "the LF of a CR LF split across reads");
  eql(parser.feed(encode("\n")), [{ type: "enter" }]);
});

Deno.test("`KeyParser.feed()` drops an escape sequence that never ends", () => {
  const parser = new KeyParser();
  eql(parser.feed(encode("\x1b[" + "1".repeat(29))), [], "waits below the cap");
  eql(parser.feed(encode("1".repeat(10))), [], "dropped past the cap");
  eql(parser.feed(encode("1~x")), chars("1~x"), "the rest reads as text");
});

Deno.test("`parseKeys()` drops an unfinished sequence at the end", () => {
  eql(parseKeys(Uint8Array.of(0x61, 0xe4, 0xb8)), chars("a"));
  eql(parseKeys(encode("a\x1b[1")), chars("a"));
});
