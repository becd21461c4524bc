import { equal, rejects, strictEqual } from "node:assert/strict";
import { SecurechatError } from "../../lib/core/errors.ts";
import type { ByteSource } from "../../lib/core/io.ts";
import { colorEnabled, MAX_SECRET_LENGTH, readSecretLine } from "../../lib/terminal/tty.ts";

/** A reader that hands out `chunks` one per read (split when too big), then end of input. */
function scripted(...chunks: (string | number[])[]): ByteSource {
  const queue = chunks.map((chunk) =>
    typeof chunk === "string" ? new TextEncoder().encode(chunk) : Uint8Array.from(chunk)
  );
  return {
    read(buffer) {
      const chunk = queue.shift();
      if (chunk === undefined) return Promise.resolve(null);
      // Like a real read, hand out at most what fits and keep the rest for the next call.
      const count = Math.min(chunk.length, buffer.length);
      buffer.set(chunk.subarray(0, count));
      if (count < chunk.length) queue.unshift(chunk.subarray(count));
      return Promise.resolve(count);
    },
  };
}

function cancelled(error: unknown): boolean {
  return error instanceof SecurechatError && error.code === "cancelled";
}

Deno.test("`readSecretLine()` edits the line as a terminal user expects", async () => {
  const cases: [string, ByteSource, string][] = [
    ["Enter as CR", scripted("secret\r"), "secret"],
    ["Enter as LF", scripted("secret\n"), "secret"],
    ["split over reads", scripted("se", "cr", "et", "\r"), "secret"],
    ["stops at the first Enter", scripted("one\rtwo\r"), "one"],
    ["DEL", scripted("secrex\x7ft\r"), "secret"],
    ["BS", scripted("secrex\bt\r"), "secret"],
    ["backspace on empty line", scripted("\x7f\x7fok\r"), "ok"],
    ["backspace removes a whole UTF-8 character", scripted("caf\u00e9\x7fe\r"), "cafe"],
    ["backspace removes an emoji", scripted("a\u{1F511}\x7fb\r"), "ab"],
    ["Ctrl-U erases the line", scripted("wrong\x15right\r"), "right"],
    ["Ctrl-D inside a line is ignored", scripted("ab\x04c\r"), "abc"],
    ["other control bytes are dropped", scripted("a\x1bb\x00c\r"), "abc"],
    ["tab is kept", scripted("a\tb\r"), "a\tb"],
    ["empty line", scripted("\r"), ""],
  ];
  for (const [name, reader, expected] of cases) {
    strictEqual(await readSecretLine(reader), expected, name);
  }
});

Deno.test("`readSecretLine()` cancels on Ctrl-C, Ctrl-D on an empty line, and end of input", async () => {
  await rejects(readSecretLine(scripted("abc\x03def\r")), cancelled);
  await rejects(readSecretLine(scripted("\x04")), cancelled);
  await rejects(readSecretLine(scripted("abc")), cancelled);
  await rejects(readSecretLine(scripted()), cancelled);
});

Deno.test("`readSecretLine()` refuses a line longer than MAX_SECRET_LENGTH", async () => {
  strictEqual((await readSecretLine(scripted("x".repeat(MAX_SECRET_LENGTH), "\r"))).length, 1024);
  await rejects(
    readSecretLine(scripted("x".repeat(MAX_SECRET_LENGTH), "x\r")),
    (error: unknown) => (error as SecurechatError).code === "secret_too_long",
  );
});

Deno.test("`colorEnabled()` follows NO_COLOR, TERM=dumb and whether stdout is a terminal", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const cases: [string, boolean, Record<string, string>, boolean][] = [
    ["a terminal", true, { TERM: "xterm-256color" }, true],
    ["not a terminal", false, { TERM: "xterm-256color" }, false],
    ["NO_COLOR=1", true, { NO_COLOR: "1" }, false],
    ["NO_COLOR empty counts as unset", true, { NO_COLOR: "" }, true],
    ["TERM=dumb", true, { TERM: "dumb" }, false],
  ];
  for (const [name, isTerminal, vars, expected] of cases) {
    equal(colorEnabled({ isTerminal, env: env(vars) }), expected, name);
  }
});
