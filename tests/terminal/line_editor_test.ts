import { deepStrictEqual as eql, equal } from "node:assert/strict";
import {
  charWidth,
  type EditorAction,
  HISTORY_SIZE,
  layoutLine,
  LineEditor,
  MAX_LINE_LENGTH,
  parseKeys,
} from "../../lib/terminal/line_editor.ts";

/** Types raw terminal input (escape sequences included) into the editor. */
function type(editor: LineEditor, input: string): EditorAction[] {
  return editor.feed(parseKeys(new TextEncoder().encode(input)));
}

/** The line with "|" at the cursor. */
function show(editor: LineEditor): string {
  const chars = [...editor.chars];
  chars.splice(editor.cursor, 0, "|");
  return chars.join("");
}

const LEFT = "\x1b[D";
const RIGHT = "\x1b[C";
const UP = "\x1b[A";
const DOWN = "\x1b[B";

Deno.test("`LineEditor.feed()` applies every editing key", () => {
  const cases: [string, string, string][] = [
    ["typing", "hello", "hello|"],
    ["insert in the middle", `hllo${LEFT.repeat(3)}e`, "he|llo"],
    ["Backspace (DEL)", "hellp\x7fo", "hello|"],
    ["Backspace (BS)", "hellp\bo", "hello|"],
    ["Backspace at the start does nothing", `ab\x01\x7f`, "|ab"],
    ["Delete under the cursor", `abc${LEFT.repeat(2)}\x1b[3~`, "a|c"],
    ["Delete at the end does nothing", "abc\x1b[3~", "abc|"],
    ["Left stops at the start", `ab${LEFT.repeat(5)}`, "|ab"],
    ["Right stops at the end", `ab${LEFT}${RIGHT.repeat(5)}`, "ab|"],
    ["Home, End", `abc\x1b[Hx\x1b[Fy`, "xabcy|"],
    ["Home, End (VT220)", `abc\x1b[1~x\x1b[4~y`, "xabcy|"],
    ["Home, End (SS3)", `abc\x1bOHx\x1bOFy`, "xabcy|"],
    ["Ctrl-A, Ctrl-E", `abc\x01x\x05y`, "xabcy|"],
    ["Ctrl-U clears before the cursor", `hello world${LEFT.repeat(5)}\x15`, "|world"],
    ["Ctrl-K clears after the cursor", `hello world${LEFT.repeat(5)}\x0b`, "hello |"],
    ["Ctrl-W deletes the word before", "say hello  \x17", "say |"],
    ["Ctrl-W twice", "say hello\x17\x17", "|"],
    ["Ctrl-W mid-word", `say hello${LEFT.repeat(2)}\x17`, "say |lo"],
    ["Ctrl-W at the start does nothing", "ab\x01\x17", "|ab"],
    ["Alt-Backspace is Ctrl-W", "say hello\x1b\x7f", "say |"],
    ["word left, word right", `one two three\x1b[1;5D\x1b[1;5D`, "one |two three"],
    ["word right", `one two three\x01\x1bf\x1bf`, "one two| three"],
    ["Ctrl-D deletes under the cursor", `abc${LEFT}\x04`, "ab|"],
    ["Ctrl-D at the end of a line does nothing", "abc\x04", "abc|"],
    ["Tab types a space", "a\tb", "a b|"],
    ["é is one code point", `café\x7fe${LEFT}${LEFT}x`, "cax|fe"],
    ["an emoji is one code point", `a🔑b${LEFT}\x7f`, "a|b"],
    ["Left over an emoji", `🔑🔒${LEFT}x`, "🔑x|🔒"],
    ["bracketed paste", "\x1b[200~pasted\x1b[201~", "pasted|"],
    ["unknown sequences change nothing", "a\x1b[99~\x1bOPb", "ab|"],
  ];
  for (const [name, input, expected] of cases) {
    const editor = new LineEditor();
    type(editor, input);
    equal(show(editor), expected, name);
  }
});

Deno.test("`LineEditor.feed()` submits on Enter and quits on Ctrl-C or Ctrl-D on an empty line", () => {
  const editor = new LineEditor();
  eql(type(editor, "hi there\r"), [{ type: "redraw" }, { type: "submit", line: "hi there" }, {
    type: "redraw",
  }]);
  equal(show(editor), "|", "the buffer is empty after submit");
  eql(type(editor, "\r"), [{ type: "submit", line: "" }, { type: "redraw" }]);
  eql(type(editor, "a\rb\r"), [
    { type: "redraw" },
    { type: "submit", line: "a" },
    { type: "redraw" },
    { type: "submit", line: "b" },
    { type: "redraw" },
  ]);
  eql(type(editor, "\x04"), [{ type: "quit" }], "Ctrl-D on an empty line");
  eql(type(editor, "typed\x03"), [{ type: "redraw" }, { type: "quit" }], "Ctrl-C with text");
  eql(type(editor, "\x1b[D\x1b[D"), [{ type: "redraw" }], "runs of redraws collapse");
  eql(type(editor, "\x1b[99~"), [], "nothing changed, nothing to draw");
});

Deno.test("`LineEditor.feed()` browses history and keeps the line being edited", () => {
  const editor = new LineEditor();
  type(editor, "first\rsecond\r\r   \rsecond\r");
  eql(editor.history, ["first", "second"], "no empty, blank or repeated entries");
  type(editor, "draft");
  type(editor, UP);
  equal(show(editor), "second|");
  type(editor, UP);
  equal(show(editor), "first|");
  eql(type(editor, UP), [], "Up at the oldest entry does nothing");
  equal(show(editor), "first|");
  type(editor, `${DOWN}${DOWN}`);
  equal(show(editor), "draft|", "the draft comes back");
  eql(type(editor, DOWN), [], "Down at the draft does nothing");
  type(editor, `${UP}!`);
  equal(show(editor), "second!|", "a recalled line can be edited");
  type(editor, `${UP}${DOWN}`);
  equal(show(editor), "second|", "edits of a recalled line are not kept in history");
  type(editor, "\x10\x10\r");
  eql(editor.history, ["first", "second", "first"], "Ctrl-P, then submit a recalled line");
  type(editor, `${UP}`);
  equal(show(editor), "first|", "browsing starts again from the newest");
});

Deno.test("`LineEditor` keeps at most `historySize` lines of history", () => {
  const editor = new LineEditor({ historySize: 3 });
  type(editor, "1\r2\r3\r4\r");
  eql(editor.history, ["2", "3", "4"]);
  type(editor, UP.repeat(5));
  equal(show(editor), "2|");
  equal(new LineEditor().feed([]).length, 0);
  equal(HISTORY_SIZE, 200);
});

Deno.test("`LineEditor` caps the line at `MAX_LINE_LENGTH` code points and rings the bell", () => {
  equal(MAX_LINE_LENGTH, 4000);
  const editor = new LineEditor();
  eql(type(editor, "x".repeat(MAX_LINE_LENGTH - 1)), [{ type: "redraw" }]);
  eql(type(editor, "🔑"), [{ type: "redraw" }], "max - 1 + 1: still fits");
  equal(editor.chars.length, MAX_LINE_LENGTH);
  eql(type(editor, "y"), [{ type: "bell" }], "max + 1 is refused");
  eql(type(editor, "y".repeat(50)), [{ type: "bell" }], "a long paste rings once");
  equal(editor.line, "x".repeat(MAX_LINE_LENGTH - 1) + "🔑");
  eql(type(editor, "\x7fz"), [{ type: "redraw" }], "room again after a Backspace");
  const small = new LineEditor({ maxLength: 3 });
  eql(type(small, "abcd\r"), [
    { type: "redraw" },
    { type: "bell" },
    { type: "submit", line: "abc" },
    {
      type: "redraw",
    },
  ]);
});

Deno.test("`charWidth()` counts wide characters as 2 and marks as 0", () => {
  const cases: [string, number][] = [
    ["a", 1],
    ["é", 1],
    ["\u0301", 0], // combining acute accent
    ["\u200d", 0], // zero-width joiner
    ["\ufe0f", 0], // variation selector 16
    ["中", 2],
    ["한", 2],
    ["ア", 2],
    ["ｱ", 1], // halfwidth katakana
    ["Ａ", 2], // fullwidth A
    ["😀", 2],
    ["🔑", 2],
    ["✓", 1], // text-presentation symbol
    ["\u{20000}", 2], // CJK extension B
  ];
  for (const [char, width] of cases) equal(charWidth(char), width, char);
});

Deno.test("`layoutLine()` scrolls horizontally to keep the cursor on one row", () => {
  const chars = [..."abcdefghij"];
  eql(layoutLine(chars, 10, 20), { start: 0, text: "abcdefghij", cursorColumn: 10 }, "fits");
  eql(layoutLine(chars, 10, 6), { start: 5, text: "fghij", cursorColumn: 5 }, "cursor at the end");
  eql(layoutLine(chars, 7, 6, 5), { start: 5, text: "fghij", cursorColumn: 2 }, "window kept");
  eql(layoutLine(chars, 3, 6, 5), { start: 3, text: "defgh", cursorColumn: 0 }, "scrolls left");
  eql(layoutLine(chars, 0, 6, 5), { start: 0, text: "abcde", cursorColumn: 0 }, "home");
  eql(layoutLine([], 0, 6, 4), { start: 0, text: "", cursorColumn: 0 }, "empty after submit");
  eql(layoutLine(chars, 2, 0), { start: 1, text: "b", cursorColumn: 1 }, "one column at least");
  const wide = [..."中文中文中"];
  eql(layoutLine(wide, 5, 6), { start: 3, text: "文中", cursorColumn: 4 }, "wide never split");
  eql(layoutLine(wide, 1, 6), { start: 0, text: "中文", cursorColumn: 2 });
});
