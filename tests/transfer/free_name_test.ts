/**
 * lib/transfer/free_name.ts: a received file's temporary `.part` name, and the free "name (n).ext" it is
 * published under when its name is taken. Each test works in its own temporary folder, removed
 * afterwards. (Publishing through a real sink is tested in file_sink_test.ts.)
 */

import { ok, rejects, strictEqual } from "node:assert/strict";
import { SecurechatError } from "../../lib/core/errors.ts";
import {
  freeName,
  MAX_FREE_NAME_TRIES,
  partPath,
  recordPath,
} from "../../lib/transfer/free_name.ts";
import { joinPath } from "../../lib/core/paths.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { tempDir } from "../_helpers/files.ts";

const POSIX = Deno.build.os !== "windows";

Deno.test("partPath() and recordPath() append securechat's own suffixes, not a browser's .part", () => {
  strictEqual(partPath("/x/report.pdf"), "/x/report.pdf.securechat-part");
  strictEqual(partPath("Makefile"), "Makefile.securechat-part");
  strictEqual(recordPath("/x/report.pdf"), "/x/report.pdf.securechat-resume");
});

Deno.test("freeName() returns the path itself when nothing is there", async () => {
  await using dir = await tempDir();
  const path = joinPath(dir.path, "report.pdf");
  strictEqual(await freeName(path), path);
});

Deno.test("freeName() numbers taken names before the extension, in sequence", async () => {
  await using dir = await tempDir();
  const cases: [string, string[]][] = [
    ["report.pdf", ["report (1).pdf", "report (2).pdf", "report (3).pdf"]],
    ["Makefile", ["Makefile (1)", "Makefile (2)"]],
    [".bashrc", [".bashrc (1)", ".bashrc (2)"]],
    [".config.json", [".config (1).json"]],
    ["archive.tar.gz", ["archive.tar (1).gz"]],
    ["café ☕.txt", ["café ☕ (1).txt"]],
  ];
  for (const [name, expected] of cases) {
    const path = joinPath(dir.path, name);
    await Deno.writeTextFile(path, "taken");
    for (const next of expected) {
      const free = await freeName(path);
      strictEqual(free, joinPath(dir.path, next), name);
      await Deno.writeTextFile(free, "taken");
    }
  }
});

Deno.test("freeName() skips a gap-free run and counts folders as taken", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(joinPath(dir.path, "a.txt"), "");
  await Deno.mkdir(joinPath(dir.path, "a (1).txt"));
  await Deno.writeTextFile(joinPath(dir.path, "a (3).txt"), "");
  strictEqual(await freeName(joinPath(dir.path, "a.txt")), joinPath(dir.path, "a (2).txt"));
});

Deno.test({
  name: "freeName() counts a dangling symbolic link as taken (lstat)",
  ignore: !POSIX,
  fn: async () => {
    await using dir = await tempDir();
    await Deno.symlink(joinPath(dir.path, "nowhere"), joinPath(dir.path, "x.txt"));
    strictEqual(await freeName(joinPath(dir.path, "x.txt")), joinPath(dir.path, "x (1).txt"));
  },
});

Deno.test("freeName() keeps a numbered 255-byte name within 255 bytes", async () => {
  await using dir = await tempDir();
  const name = "é".repeat(125) + ".txt"; // 250 + 4 bytes
  await Deno.writeTextFile(joinPath(dir.path, name), "");
  const free = await freeName(joinPath(dir.path, name));
  const base = free.slice(dir.path.length + 1);
  ok(base.endsWith(" (1).txt"), base);
  ok(new TextEncoder().encode(base).length <= 255, base);
  ok(base.isWellFormed());
  await Deno.writeTextFile(free, "");
});

Deno.test("freeName() gives up after 10,000 numbered names", async () => {
  await using dir = await tempDir();
  strictEqual(MAX_FREE_NAME_TRIES, 10_000);
  await Deno.writeTextFile(joinPath(dir.path, "f"), "");
  for (let n = 1; n <= MAX_FREE_NAME_TRIES; n++) {
    using _ = await Deno.open(joinPath(dir.path, `f (${n})`), { write: true, createNew: true });
  }
  await rejects(freeName(joinPath(dir.path, "f")), isCode(SecurechatError, "no_free_name"));
  await Deno.remove(joinPath(dir.path, "f (10000)"));
  strictEqual(await freeName(joinPath(dir.path, "f")), joinPath(dir.path, "f (10000)"));
});
