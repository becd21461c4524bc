import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { LineEditor, parseKeys } from "../../lib/terminal/line_editor.ts";
import { TerminalScreen } from "../../lib/terminal/terminal_screen.ts";

const CLEAR = "\r\x1b[2K";

/** Captures writes, one string per write. */
class Capture {
  readonly writes: string[] = [];
  fail: Error | undefined;
  write(bytes: Uint8Array): Promise<number> {
    if (this.fail) return Promise.reject(this.fail);
    this.writes.push(new TextDecoder().decode(bytes));
    return Promise.resolve(bytes.length);
  }
}

function setup(prompt = "bob> ") {
  const editor = new LineEditor();
  const output = new Capture();
  const raw: boolean[] = [];
  /** What the status area shows; `widths` records the columns each draw asked it for. */
  const status = { lines: [] as string[], widths: [] as number[] };
  const screen = new TerminalScreen(editor, {
    prompt,
    writer: output,
    raw: { setRaw: (mode) => void raw.push(mode) },
    columns: () => 40,
    status: (columns) => {
      status.widths.push(columns);
      return status.lines;
    },
  });
  const type = (text: string) => editor.feed(parseKeys(new TextEncoder().encode(text)));
  return { editor, output, raw, screen, status, type };
}

/** Moves up `rows` status rows from the prompt row and clears to the end of the screen. */
const up = (rows: number) => `\r\x1b[${rows}A\x1b[J`;

Deno.test("`TerminalScreen` draws the prompt, prints above it and restores the terminal", async () => {
  const { output, raw, screen, type } = setup();
  await screen.start();
  eql(raw, [true]);
  eql(output.writes, [`${CLEAR}bob> \r\x1b[5C`]);
  type("héllo wörld\x1b[D\x1b[D");
  await screen.redraw();
  equal(output.writes.at(-1), `${CLEAR}bob> héllo wörld\r\x1b[14C`);
  await screen.printAbove(["one", "two"]);
  equal(output.writes.at(-1), `${CLEAR}one\r\ntwo\r\nbob> héllo wörld\r\x1b[14C`);
  await screen.bell();
  equal(output.writes.at(-1), "\x07");
  type("\x01中");
  await screen.redraw();
  equal(
    output.writes.at(-1),
    `${CLEAR}bob> 中héllo wörld\r\x1b[7C`,
    "a wide character is 2 columns",
  );
  await screen.stop();
  eql(raw, [true, false]);
  equal(output.writes.at(-1), CLEAR);
  const count = output.writes.length;
  await screen.stop();
  await screen.printAbove(["late"]);
  eql(raw, [true, false], "stop() is idempotent");
  equal(output.writes.length, count, "nothing is drawn after stop()");
});

Deno.test("`TerminalScreen` draws nothing before start() and refuses a second start()", async () => {
  const { output, raw, screen } = setup();
  await screen.printAbove(["early"]);
  await screen.redraw();
  eql(output.writes, []);
  await screen.start();
  await rejects(screen.start(), TypeError);
  await screen.stop();
  eql(raw, [true, false]);
});

Deno.test("`TerminalScreen` keeps the first write error and still leaves raw mode", async () => {
  const { output, raw, screen } = setup();
  await screen.start();
  output.fail = new Error("EIO");
  await screen.printAbove(["lost"]);
  equal((screen.error as Error).message, "EIO");
  output.fail = undefined;
  await screen.redraw();
  equal(output.writes.length, 1, "drawing stopped at the error");
  await screen.stop();
  eql(raw, [true, false]);
});

Deno.test("`TerminalScreen.start()` fails without a terminal and there is nothing to undo", async () => {
  const screen = new TerminalScreen(new LineEditor(), {
    writer: new Capture(),
    raw: {
      setRaw() {
        throw new Error("not a terminal");
      },
    },
  });
  await rejects(screen.start(), /not a terminal/);
  await screen.stop();
  equal(screen.error, undefined);
});

Deno.test("`TerminalScreen` redraws the status area in place between printed lines and the prompt", async () => {
  const { output, screen, status, type } = setup();
  await screen.start();
  type("hel");
  status.lines = ["a.bin [#...] 10%"];
  await screen.redraw();
  equal(output.writes.at(-1), `${CLEAR}a.bin [#...] 10%\r\nbob> hel\r\x1b[8C`, "one status row");
  status.lines = ["a.bin [##..] 50%"];
  await screen.redraw();
  equal(
    output.writes.at(-1),
    `${up(1)}a.bin [##..] 50%\r\nbob> hel\r\x1b[8C`,
    "rewritten in place: up over the status row, clear down, draw again",
  );
  await screen.printAbove(["alice: hi"]);
  equal(
    output.writes.at(-1),
    `${up(1)}alice: hi\r\na.bin [##..] 50%\r\nbob> hel\r\x1b[8C`,
    "printed lines go above the status area",
  );
  status.lines = ["a.bin [###.] 75%", "b.txt [#...] 25%"];
  type("lo");
  await screen.redraw();
  equal(
    output.writes.at(-1),
    `${up(1)}a.bin [###.] 75%\r\nb.txt [#...] 25%\r\nbob> hello\r\x1b[10C`,
    "typing redraws the status too",
  );
  status.lines = [];
  await screen.printAbove(["a.bin done"]);
  equal(output.writes.at(-1), `${up(2)}a.bin done\r\nbob> hello\r\x1b[10C`, "status gone");
  await screen.redraw();
  equal(output.writes.at(-1), `${CLEAR}bob> hello\r\x1b[10C`, "back to the prompt row alone");
  ok(status.widths.every((columns) => columns === 40), "the status is asked with the width");
  await screen.stop();
});

Deno.test("`TerminalScreen.stop()` clears the status area and the prompt row", async () => {
  const { output, raw, screen, status } = setup();
  await screen.start();
  status.lines = ["one", "two"];
  await screen.redraw();
  await screen.stop();
  eql(raw, [true, false]);
  equal(output.writes.at(-1), up(2), "the shell prompt starts where the status area began");
});
