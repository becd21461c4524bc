/**
 * lib/transfer/safe_path.ts: every hostile manifest path is refused with its reason, ordinary names (unicode,
 * deep folders, dotfiles) pass unchanged, the caps hold at their boundaries, and a symbolic link
 * planted in the target folder never redirects a write outside it. Filesystem tests work in their
 * own temporary folders, removed afterwards.
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import { FileSink } from "../../lib/transfer/file_sink.ts";
import { joinPath } from "../../lib/core/paths.ts";
import {
  MAX_DISPLAY_NAME,
  resolveInside,
  safeRelativePath,
  sanitizeDisplayName,
} from "../../lib/transfer/safe_path.ts";
import { tempDir } from "../_helpers/files.ts";

const POSIX = Deno.build.os !== "windows";

/** Checks that `error` is the unsafe_path ProtocolError and that its message gives `reason`. */
function isUnsafe(reason: string | RegExp) {
  return (error: unknown) => {
    ok(error instanceof ProtocolError, `${error}`);
    strictEqual(error.code, "unsafe_path");
    ok(error.message.startsWith('refusing path "'), error.message);
    if (typeof reason === "string") ok(error.message.includes(reason), error.message);
    else ok(reason.test(error.message), error.message);
    // The message names the path without letting its characters reach the terminal raw.
    // deno-lint-ignore no-control-regex
    ok(!/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(error.message));
    ok(error.message.isWellFormed());
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// safeRelativePath(): hostile paths

const seg = (n: number, char = "a") => char.repeat(n);

/** [what it is, the path, words the error message must contain]. */
const HOSTILE: [string, string, string | RegExp][] = [
  ["an empty path", "", "it is empty"],
  ["an empty segment in the middle", "a//b", "empty segment"],
  ["a trailing slash", "a/", "empty segment"],
  ["a lone slash", "/", "it is absolute"],
  ["a POSIX absolute path", "/etc/passwd", "it is absolute"],
  ["a backslash-rooted path", "\\x", "it is absolute"],
  ["a UNC path with slashes", "//server/share", "it is absolute"],
  ["a UNC path with backslashes", "\\\\server\\share\\x", "it is absolute"],
  ["a Windows device path", "\\\\?\\C:\\x", "it is absolute"],
  ["a drive-absolute path", "C:\\x", "drive letter"],
  ["a drive-absolute path with a slash", "c:/Windows/x", "drive letter"],
  ["a drive-relative path", "C:x", "drive letter"],
  ["a bare drive", "Z:", "drive letter"],
  ['a "." path', ".", '"." segment'],
  ['a ".." path', "..", '".." segment'],
  ['a leading ".."', "../x", '".." segment'],
  ['a ".." that climbs out after a folder', "a/../../x", '".." segment'],
  ['a ".." at the end', "a/..", '".." segment'],
  ['a "." segment', "a/./b", '"." segment'],
  ["a backslash separator", "a\\b", "backslash"],
  ["a backslash traversal", "..\\..\\x", "backslash"],
  ["NUL", "a\0b", "control character U+0000"],
  ["a newline", "a\nb", "control character U+000A"],
  ["a carriage return", "evil\r.txt", "control character U+000D"],
  ["a tab", "a\tb", "control character U+0009"],
  ["an ANSI escape", "a\x1b[31mred", "control character U+001B"],
  ["DEL", "a\x7f", "control character U+007F"],
  ["a C1 NEL", "a\u0085b", "control character U+0085"],
  ["a C1 CSI", "a\u009b2J", "control character U+009B"],
  ["a line separator", "a\u2028b", "control character U+2028"],
  ["a right-to-left override", "invoice\u202egpj.exe", "bidirectional formatting character U+202E"],
  ["a left-to-right embedding", "\u202ax", "bidirectional formatting character U+202A"],
  ["a left-to-right isolate", "x/\u2066y", "bidirectional formatting character U+2066"],
  ["a pop directional isolate", "x\u2069", "bidirectional formatting character U+2069"],
  ["a right-to-left mark", "\u200fabc", "bidirectional formatting character U+200F"],
  ["an Arabic letter mark", "a\u061cb", "bidirectional formatting character U+061C"],
  ["a lone surrogate", "a\ud800b", "lone surrogate"],
  ["a 256-byte segment", seg(256), "longer than 255 bytes"],
  ["a 256-byte segment of 2-byte characters", seg(128, "é"), "longer than 255 bytes"],
  ["a 256-byte segment of emoji", seg(64, "😀"), "longer than 255 bytes"],
  ["a 4097-byte path", Array(16).fill(seg(255)).join("/") + "/" + seg(16), "longer than 4096"],
  ["a huge path", seg(1_000_000), "longer than 4096"],
  ["65 segments", Array(65).fill("a").join("/"), "more than 64 segments"],
  ['"CON"', "CON", "Windows device name"],
  ['"con.txt"', "con.txt", "Windows device name"],
  ['"Nul.tar.gz" in a folder', "folder/Nul.tar.gz", "Windows device name"],
  ['"AUX .txt" (spaces before the dot)', "AUX .txt", "Windows device name"],
  ['"prn" as a folder', "prn/x", "Windows device name"],
  ['"COM1"', "COM1", "Windows device name"],
  ['"lpt9.log"', "lpt9.log", "Windows device name"],
  ['"COM¹" (superscript digit)', "COM\u00b9", "Windows device name"],
  ['"CONIN$"', "CONIN$", "Windows device name"],
  ['"conout$.txt"', "conout$.txt", "Windows device name"],
  ["a trailing dot", "file.", "ends with a dot or space"],
  ["a trailing space", "file ", "ends with a dot or space"],
  ["a folder with a trailing dot", "dir./x", "ends with a dot or space"],
  ['"CON " (device name hidden by a trailing space)', "CON ", "ends with a dot or space"],
  ['"..." (only dots)', "...", "only dots"],
  ['"...." as a folder', "a/..../b", "only dots"],
  ['"<"', "a<b", 'contains "<"'],
  ['">"', "a>b", 'contains ">"'],
  ['":" (an NTFS alternate data stream)', "file.txt:hidden", 'contains ":"'],
  ["a quote", 'a"b', 'contains """'],
  ['"|"', "a|b", 'contains "|"'],
  ['"?"', "what?", 'contains "?"'],
  ['"*"', "*.txt", 'contains "*"'],
];

for (const [label, path, reason] of HOSTILE) {
  Deno.test(`safeRelativePath() refuses ${label}`, () => {
    throws(() => safeRelativePath(path), isUnsafe(reason));
  });
}

Deno.test("safeRelativePath() refuses a value that is not a string", () => {
  for (const value of [null, undefined, 42, ["a"]]) {
    throws(() => safeRelativePath(value as unknown as string), isUnsafe("not a string"));
  }
});

Deno.test("safeRelativePath() hostile table has at least 40 distinct paths", () => {
  ok(new Set(HOSTILE.map(([, path]) => path)).size >= 40);
});

Deno.test("safeRelativePath() names path traversal in a hint for .., absolute and drive paths", () => {
  for (const path of ["../x", "/etc/passwd", "C:\\x", "a\\..\\b"]) {
    throws(() => safeRelativePath(path), (error: unknown) => {
      ok(error instanceof ProtocolError);
      ok(error.hints.some((hint) => hint.includes("path traversal")), path);
      return true;
    });
  }
  throws(() => safeRelativePath("CON"), (error: unknown) => {
    ok(error instanceof ProtocolError);
    eql(error.hints, []);
    return true;
  });
});

Deno.test("safeRelativePath() escapes the refused path in its message", () => {
  throws(() => safeRelativePath('a\x1b]0;pwned\x07"\u202e'), (error: unknown) => {
    ok(error instanceof ProtocolError);
    ok(error.message.includes('"a\\u{1b}]0;pwned\\u{7}\\"\\u{202e}"'), error.message);
    return true;
  });
  throws(() => safeRelativePath("../" + seg(500)), (error: unknown) => {
    ok(error instanceof ProtocolError);
    ok(error.message.length < 300, `${error.message.length}`);
    ok(error.message.includes("\u2026"));
    return true;
  });
});

// ---------------------------------------------------------------------------------------------
// safeRelativePath(): ordinary paths

const VALID: string[] = [
  "a",
  "report.pdf",
  "Makefile",
  ".bashrc",
  ".config/x",
  ".config/nvim/init.lua",
  "photos/2024/café.jpg",
  "日本語/ファイル.txt",
  "Ελληνικά/αρχείο",
  "family 👨‍👩‍👧.png",
  "عربي/ملف.txt",
  "a b/c d.txt",
  " leading space",
  "a..b",
  "..a",
  ".a.b",
  "archive.tar.gz",
  "CONSOLE.txt",
  "connect",
  "nul_device",
  "COM10",
  "LPT0",
  "auxiliary/file",
  "CON-tent.md",
  "100%/done#1 & [x] {y} (z) = 'ok'!",
  "~",
  "-rf",
  "x/y/z/w/v/u/t/s/r/q/p/o/n/m/l/k",
];

Deno.test("safeRelativePath() accepts ordinary names and returns their segments", () => {
  for (const path of VALID) {
    const segments = safeRelativePath(path);
    eql(segments, path.split("/"), path);
    strictEqual(segments.join("/"), path);
  }
});

Deno.test("safeRelativePath() accepts each cap exactly and refuses one more", () => {
  // 255-byte segments, in ASCII, 2-byte and 4-byte characters.
  for (const [char, count] of [["a", 255], ["é", 127], ["😀", 63]] as const) {
    const ok255 = seg(count, char) + (char === "é" ? "a" : char === "😀" ? "abc" : "");
    strictEqual(new TextEncoder().encode(ok255).length, 255);
    eql(safeRelativePath(ok255), [ok255]);
    throws(() => safeRelativePath(ok255 + "b"), isUnsafe("longer than 255 bytes"));
  }
  // 64 segments.
  const deep = Array.from({ length: 64 }, (_, i) => `d${i}`).join("/");
  strictEqual(safeRelativePath(deep).length, 64);
  throws(() => safeRelativePath(deep + "/x"), isUnsafe("more than 64 segments"));
  // 4096 bytes: 15 segments of 255, one of 200 and one of 55, with 16 slashes.
  const long = [...Array(15).fill(seg(255)), seg(200), seg(55)].join("/");
  strictEqual(long.length, 4096);
  strictEqual(safeRelativePath(long).length, 17);
  throws(() => safeRelativePath(long + "b"), isUnsafe("longer than 4096 bytes"));
});

// ---------------------------------------------------------------------------------------------
// sanitizeDisplayName()

Deno.test("sanitizeDisplayName() removes controls and bidi characters and keeps one line", () => {
  strictEqual(sanitizeDisplayName("invoice\u202egpj.exe"), "invoicegpj.exe");
  strictEqual(sanitizeDisplayName("a\x1b[2Jb"), "a[2Jb");
  strictEqual(sanitizeDisplayName("line1\nline2\r\tx\u2028y"), "line1 line2  x y");
  strictEqual(sanitizeDisplayName("\u0000\u0007\u007f\u009b\u2066\u2069\u200e\u200f\u061c"), "");
  strictEqual(sanitizeDisplayName("a\ud800b"), "a\ufffdb");
});

Deno.test("sanitizeDisplayName() keeps unicode names unchanged", () => {
  for (const name of ["café.jpg", "日本語/ファイル.txt", "family 👨‍👩‍👧.png", "عربي", ""]) {
    strictEqual(sanitizeDisplayName(name), name);
  }
});

Deno.test("sanitizeDisplayName() caps names at 200 code points, ending with …", () => {
  strictEqual(sanitizeDisplayName(seg(200)), seg(200));
  const cut = sanitizeDisplayName(seg(201));
  strictEqual([...cut].length, MAX_DISPLAY_NAME);
  ok(cut.endsWith("\u2026"));
  // Counted in code points: an emoji is never split into a lone surrogate.
  const emoji = sanitizeDisplayName(seg(300, "😀"));
  strictEqual([...emoji].length, 200);
  ok(emoji.isWellFormed());
});

// ---------------------------------------------------------------------------------------------
// resolveInside()

/** Sorted names of everything below `dir`, as slash paths. */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    out.push(prefix + entry.name);
    if (entry.isDirectory) {
      out.push(...await tree(joinPath(dir, entry.name), `${prefix}${entry.name}/`));
    }
  }
  return out.sort();
}

/** What a receiver does with one manifest entry: resolve, then write through a FileSink. */
async function receive(root: string, path: string, data: Uint8Array): Promise<string> {
  const target = await resolveInside(root, safeRelativePath(path));
  const sink = await FileSink.open(target, { size: data.length, sha256: await sha256(data) });
  await sink.write(0, data);
  return await sink.finish();
}

const DATA = new TextEncoder().encode("payload");

Deno.test("resolveInside() joins the segments under the root", async () => {
  await using root = await tempDir();
  strictEqual(
    await resolveInside(root.path, ["a", "b", "c.txt"]),
    joinPath(root.path, "a/b/c.txt"),
  );
  await Deno.mkdir(joinPath(root.path, "a", "b"), { recursive: true });
  await Deno.writeTextFile(joinPath(root.path, "a", "b", "c.txt"), "existing");
  strictEqual(
    await resolveInside(root.path, ["a", "b", "c.txt"]),
    joinPath(root.path, "a/b/c.txt"),
  );
  strictEqual(await resolveInside(root.path, ["a", "b"]), joinPath(root.path, "a/b"));
  strictEqual(await resolveInside(root.path, [".config", "x"]), joinPath(root.path, ".config/x"));
});

Deno.test("resolveInside() validates the segments again", async () => {
  await using root = await tempDir();
  await rejects(resolveInside(root.path, ["..", "x"]), isUnsafe('".." segment'));
  await rejects(resolveInside(root.path, ["a/b"]), isUnsafe("a segment contains a slash"));
  await rejects(resolveInside(root.path, ["a\\..\\..\\b"]), isUnsafe("backslash"));
  await rejects(resolveInside(root.path, []), isUnsafe("it is empty"));
});

Deno.test("resolveInside() refuses a path beneath an existing file", async () => {
  await using root = await tempDir();
  await Deno.writeTextFile(joinPath(root.path, "a"), "a file");
  await rejects(
    resolveInside(root.path, ["a", "b"]),
    isUnsafe('"a" in the target folder is not a folder'),
  );
});

Deno.test("resolveInside() throws NotFound when the root does not exist", async () => {
  await using root = await tempDir();
  await rejects(resolveInside(joinPath(root.path, "missing"), ["x"]), Deno.errors.NotFound);
});

Deno.test({
  name: "resolveInside() refuses a planted folder link to outside, and nothing is written there",
  ignore: !POSIX,
  fn: async () => {
    await using root = await tempDir();
    await using outside = await tempDir("securechat_outside_");
    await Deno.symlink(outside.path, joinPath(root.path, "evil"));
    for (const path of ["evil/x.txt", "evil/deeper/x.txt", "evil/.bashrc"]) {
      await rejects(
        receive(root.path, path, DATA),
        isUnsafe('"evil" in the target folder is a symbolic link'),
      );
    }
    eql(await tree(outside.path), []);
    eql(await tree(root.path), ["evil"]);
  },
});

Deno.test({
  name: "resolveInside() refuses a link deeper in the target folder",
  ignore: !POSIX,
  fn: async () => {
    await using root = await tempDir();
    await using outside = await tempDir("securechat_outside_");
    await Deno.mkdir(joinPath(root.path, "a", "b"), { recursive: true });
    await Deno.symlink(outside.path, joinPath(root.path, "a", "b", "c"));
    await rejects(
      receive(root.path, "a/b/c/d/e.txt", DATA),
      isUnsafe('"a/b/c" in the target folder is a symbolic link'),
    );
    eql(await tree(outside.path), []);
  },
});

Deno.test({
  name: "resolveInside() refuses a link at the final name, dangling or not",
  ignore: !POSIX,
  fn: async () => {
    await using root = await tempDir();
    await using outside = await tempDir("securechat_outside_");
    const victim = joinPath(outside.path, "authorized_keys");
    await Deno.writeTextFile(victim, "original");
    await Deno.symlink(victim, joinPath(root.path, "keys"));
    await Deno.symlink(joinPath(outside.path, "new"), joinPath(root.path, "dangling"));
    await rejects(
      receive(root.path, "keys", DATA),
      isUnsafe('"keys" in the target folder is a symbolic link'),
    );
    await rejects(receive(root.path, "dangling", DATA), isUnsafe("is a symbolic link"));
    strictEqual(await Deno.readTextFile(victim), "original");
    eql(await tree(outside.path), ["authorized_keys"]);
  },
});

Deno.test({
  name: "resolveInside() refuses even a link that points inside the target folder",
  ignore: !POSIX,
  fn: async () => {
    await using root = await tempDir();
    await Deno.mkdir(joinPath(root.path, "real"));
    await Deno.symlink(joinPath(root.path, "real"), joinPath(root.path, "alias"));
    await rejects(resolveInside(root.path, ["alias", "x"]), isUnsafe("is a symbolic link"));
  },
});

Deno.test({
  name: "resolveInside() accepts a root that is itself a link (the user chose it)",
  ignore: !POSIX,
  fn: async () => {
    await using base = await tempDir();
    await Deno.mkdir(joinPath(base.path, "real"));
    const root = joinPath(base.path, "link");
    await Deno.symlink(joinPath(base.path, "real"), root);
    const final = await receive(root, "sub/file.txt", DATA);
    strictEqual(final, joinPath(root, "sub/file.txt"));
    strictEqual(await Deno.readTextFile(joinPath(base.path, "real/sub/file.txt")), "payload");
  },
});

Deno.test("resolveInside() with FileSink writes a nested file and nothing else", async () => {
  await using root = await tempDir();
  const final = await receive(root.path, "a/b/c.txt", DATA);
  strictEqual(final, joinPath(root.path, "a/b/c.txt"));
  eql(await tree(root.path), ["a", "a/b", "a/b/c.txt"]);
});
