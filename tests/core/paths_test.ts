/**
 * lib/core/paths.ts: where securechat keeps its files, path joining, and atomic writes (content,
 * mode, createNew, no temporary files left behind, readers never see a half-written file).
 * Every test works in its own temporary folder and restores the environment it changes.
 */

import { deepStrictEqual as eql, fail, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { constantTimeEqual } from "../../lib/core/bytes.ts";
import { SecurechatError } from "../../lib/core/errors.ts";
import {
  dirName,
  exists,
  isWithin,
  joinPath,
  securechatHome,
  writeFileAtomic,
} from "../../lib/core/paths.ts";

const windows = Deno.build.os === "windows";
const sep = windows ? "\\" : "/";
/** A POSIX-spelled path in the platform's spelling. */
const native = (path: string) => path.replaceAll("/", sep);

/** Runs `fn` with the given variables set (undefined: unset), then restores them. */
async function withEnv<T>(
  vars: Record<string, string | undefined>,
  fn: () => T | Promise<T>,
): Promise<T> {
  const saved = Object.keys(vars).map((name) => [name, Deno.env.get(name)] as const);
  const apply = (name: string, value: string | undefined) =>
    value === undefined ? Deno.env.delete(name) : Deno.env.set(name, value);
  try {
    for (const [name, value] of Object.entries(vars)) apply(name, value);
    return await fn();
  } finally {
    for (const [name, value] of saved) apply(name, value);
  }
}

/** A temporary folder, removed with everything in it when the test leaves its scope. */
async function tempDir() {
  const path = await Deno.makeTempDir({ prefix: "securechat_paths_test_" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** Sorted entry names of a folder. */
async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

function pattern(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 31 + seed) & 0xff);
}

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// securechatHome()

Deno.test("securechatHome() returns SECURECHAT_HOME when it is set", async () => {
  await withEnv({ SECURECHAT_HOME: "/srv/securechat", HOME: "/home/alice" }, () => {
    strictEqual(securechatHome(), "/srv/securechat");
  });
  await withEnv({ SECURECHAT_HOME: "relative/keys" }, () => {
    strictEqual(securechatHome(), "relative/keys");
  });
});

Deno.test("securechatHome() falls back to HOME/.securechat", async () => {
  await withEnv({ SECURECHAT_HOME: undefined, HOME: "/home/alice" }, () => {
    strictEqual(securechatHome(), native("/home/alice/.securechat"));
  });
  await withEnv({ SECURECHAT_HOME: undefined, HOME: "/home/alice/" }, () => {
    strictEqual(securechatHome(), native("/home/alice/.securechat"));
  });
  // An empty SECURECHAT_HOME counts as unset.
  await withEnv({ SECURECHAT_HOME: "", HOME: "/home/bob" }, () => {
    strictEqual(securechatHome(), native("/home/bob/.securechat"));
  });
});

Deno.test("securechatHome() falls back to USERPROFILE when HOME is unset", async () => {
  await withEnv(
    { SECURECHAT_HOME: undefined, HOME: undefined, USERPROFILE: "/profiles/carol" },
    () => strictEqual(securechatHome(), native("/profiles/carol/.securechat")),
  );
});

Deno.test("securechatHome() throws no_home with a hint when no home folder is set", async () => {
  await withEnv({ SECURECHAT_HOME: undefined, HOME: undefined, USERPROFILE: undefined }, () => {
    throws(() => securechatHome(), (error: unknown) => {
      ok(error instanceof SecurechatError);
      strictEqual(error.code, "no_home");
      ok(error.hints.some((hint) => hint.includes("SECURECHAT_HOME")), `${error.hints}`);
      return true;
    });
  });
});

Deno.test("securechatHome() leaves the environment as it was (withEnv restores it)", async () => {
  const before = Deno.env.get("SECURECHAT_HOME");
  await withEnv({ SECURECHAT_HOME: "/tmp/elsewhere" }, () => {});
  strictEqual(Deno.env.get("SECURECHAT_HOME"), before);
});

// ---------------------------------------------------------------------------------------------
// joinPath() and dirName()

Deno.test("joinPath() joins with one platform separator", () => {
  const cases: [string[], string][] = [
    [["a", "b", "c"], "a/b/c"],
    [["/home/alice", ".securechat"], "/home/alice/.securechat"],
    [["/home/alice/", ".securechat", "id"], "/home/alice/.securechat/id"],
    [["a//", "//b"], "a/b"],
    [["/"], "/"],
    [["single"], "single"],
  ];
  for (const [parts, expected] of cases) {
    strictEqual(joinPath(...parts), native(expected), JSON.stringify(parts));
  }
});

Deno.test("dirName() gives the folder part of a path", () => {
  const cases: [string, string][] = [
    ["a/b/c", "a/b"],
    ["/home/alice/.securechat/id", "/home/alice/.securechat"],
    ["./id", "."],
    ["id", "."],
    ["", "."],
    ["/id", "/"],
    ["/", "/"],
    ["C:\\Users\\alice\\id", "C:\\Users\\alice"],
    ["keys\\id", "keys"],
    ["a/b\\c", "a/b"],
  ];
  for (const [path, expected] of cases) strictEqual(dirName(path), expected, path);
});

Deno.test("dirName() of joinPath() gives the folder back", () => {
  strictEqual(dirName(joinPath("/home", "alice", "id")), native("/home/alice"));
});

// ---------------------------------------------------------------------------------------------
// writeFileAtomic()

Deno.test("writeFileAtomic() writes the content with mode 0600", async () => {
  await using dir = await tempDir();
  const target = joinPath(dir.path, "id");
  const data = pattern(1000, 1);
  await writeFileAtomic(target, data, { mode: 0o600 });
  eql(await Deno.readFile(target), data);
  if (!windows) strictEqual((await Deno.stat(target)).mode! & 0o777, 0o600);
  eql(await names(dir.path), ["id"]);
  const empty = joinPath(dir.path, "empty");
  await writeFileAtomic(empty, new Uint8Array(0));
  strictEqual((await Deno.stat(empty)).size, 0);
});

Deno.test({
  name: "writeFileAtomic() gives a replaced file the new mode, not the old one",
  ignore: windows,
  fn: async () => {
    await using dir = await tempDir();
    const target = joinPath(dir.path, "id");
    await Deno.writeTextFile(target, "old");
    await Deno.chmod(target, 0o644);
    await writeFileAtomic(target, encoder.encode("new"), { mode: 0o600 });
    strictEqual(await Deno.readTextFile(target), "new");
    strictEqual((await Deno.stat(target)).mode! & 0o777, 0o600);
  },
});

Deno.test("writeFileAtomic() with createNew refuses an existing file and leaves it alone", async () => {
  await using dir = await tempDir();
  const target = joinPath(dir.path, "id");
  await Deno.writeTextFile(target, "old key");
  const before = await Deno.stat(target);
  await rejects(
    writeFileAtomic(target, encoder.encode("new key"), { mode: 0o600, createNew: true }),
    Deno.errors.AlreadyExists,
  );
  strictEqual(await Deno.readTextFile(target), "old key");
  const after = await Deno.stat(target);
  strictEqual(after.mtime?.getTime(), before.mtime?.getTime());
  strictEqual(after.mode, before.mode);
  eql(await names(dir.path), ["id"]);
  // Without createNew the same call replaces it.
  await writeFileAtomic(target, encoder.encode("new key"), { createNew: false });
  strictEqual(await Deno.readTextFile(target), "new key");
});

Deno.test({
  name: "writeFileAtomic() with createNew refuses a dangling symlink and creates nothing",
  ignore: windows,
  fn: async () => {
    await using dir = await tempDir();
    const link = joinPath(dir.path, "id");
    await Deno.symlink(joinPath(dir.path, "elsewhere"), link);
    await rejects(
      writeFileAtomic(link, encoder.encode("key"), { createNew: true }),
      Deno.errors.AlreadyExists,
    );
    eql(await names(dir.path), ["id"]);
    ok((await Deno.lstat(link)).isSymlink);
  },
});

Deno.test("writeFileAtomic() leaves no temporary files after repeated writes", async () => {
  await using dir = await tempDir();
  const target = joinPath(dir.path, "known_hosts");
  for (let i = 0; i < 5; i++) {
    await writeFileAtomic(target, pattern(100 * i, i), { mode: 0o600 });
    eql(await Deno.readFile(target), pattern(100 * i, i));
  }
  eql(await names(dir.path), ["known_hosts"]);
});

Deno.test("writeFileAtomic() leaves no temporary files when it fails", async () => {
  await using dir = await tempDir();
  // Into a folder that does not exist.
  await rejects(
    writeFileAtomic(joinPath(dir.path, "missing", "id"), encoder.encode("key")),
    Deno.errors.NotFound,
  );
  eql(await names(dir.path), []);
  // Over a folder: the temporary file is written, then the rename fails.
  const folder = joinPath(dir.path, "id");
  await Deno.mkdir(folder);
  await Deno.writeTextFile(joinPath(folder, "inside"), "x");
  await rejects(writeFileAtomic(folder, encoder.encode("key"), { mode: 0o600 }));
  eql(await names(dir.path), ["id"]);
  ok((await Deno.stat(folder)).isDirectory);
  eql(await names(folder), ["inside"]);
});

Deno.test("writeFileAtomic() replaces a file so readers see the old or the new content, never a mix", async () => {
  await using dir = await tempDir();
  const target = joinPath(dir.path, "id");
  const size = 1024 * 1024;
  const old = new Uint8Array(size).fill(0x11);
  const next = pattern(size, 7);
  await Deno.writeFile(target, old);
  let done = false;
  const writing = writeFileAtomic(target, next, { mode: 0o600 }).finally(() => done = true);
  let reads = 0;
  while (!done) {
    const seen = await Deno.readFile(target);
    reads++;
    ok(
      constantTimeEqual(seen, old) || constantTimeEqual(seen, next),
      `read ${reads} saw ${seen.length} bytes that are neither the old nor the new content`,
    );
  }
  await writing;
  ok(reads > 0);
  ok(constantTimeEqual(await Deno.readFile(target), next), "the result is exactly the new content");
  // A shorter replacement leaves no tail of the longer old content.
  await writeFileAtomic(target, encoder.encode("short"));
  strictEqual(await Deno.readTextFile(target), "short");
  eql(await names(dir.path), ["id"]);
});

// Regression: createNew used exists() then rename(), which a second writer could race.
Deno.test({
  name: "writeFileAtomic() with createNew never replaces a file created while it writes",
  fn: async () => {
    await using dir = await tempDir();
    const target = joinPath(dir.path, "id");
    const data = new Uint8Array(16 * 1024 * 1024);
    for (let attempt = 0; attempt < 5; attempt++) {
      await Deno.remove(target).catch(() => {});
      let settled = false;
      const writing = writeFileAtomic(target, data, { createNew: true }).then(
        () => "written",
        (error: unknown) => error,
      ).finally(() => settled = true);
      let raced = false;
      while (!settled) {
        const entries = await names(dir.path);
        if (entries.includes("id")) break; // the writer got there first; try again
        if (entries.some((name) => name.startsWith("id.tmp-"))) {
          // The existence check has passed: the temporary file is being written.
          await Deno.writeTextFile(target, "created meanwhile", { createNew: true })
            .then(() => raced = true, () => {});
          break;
        }
      }
      const outcome = await writing;
      if (!raced) continue;
      ok(outcome instanceof Deno.errors.AlreadyExists, `expected AlreadyExists, got ${outcome}`);
      strictEqual(await Deno.readTextFile(target), "created meanwhile");
      eql(await names(dir.path), ["id"]);
      return;
    }
    fail("could not create the file between the check and the rename in 5 attempts");
  },
});

// ---------------------------------------------------------------------------------------------
// exists()

Deno.test("exists() is true for a file and a folder, false for a missing path", async () => {
  await using dir = await tempDir();
  const file = joinPath(dir.path, "file");
  await Deno.writeTextFile(file, "x");
  ok(await exists(file));
  ok(await exists(dir.path));
  ok(!(await exists(joinPath(dir.path, "missing"))));
  ok(!(await exists(joinPath(dir.path, "missing", "deeper"))));
});

Deno.test({
  name: "exists() is true for a dangling symlink",
  ignore: windows,
  fn: async () => {
    await using dir = await tempDir();
    const link = joinPath(dir.path, "link");
    await Deno.symlink(joinPath(dir.path, "nowhere"), link);
    ok(await exists(link));
  },
});

// ---------------------------------------------------------------------------------------------
// isWithin(): keygen's "is the key inside the user profile" check on Windows

const WITHIN_CASES: [path: string, folder: string, windows: boolean, expected: boolean][] = [
  ["C:\\Users\\Ann\\.securechat\\id", "C:\\Users\\Ann", true, true],
  ["c:/users/ann/.securechat/id", "C:\\Users\\Ann\\", true, true],
  ["C:\\Users\\Ann", "C:\\Users\\Ann", true, true],
  ["C:\\Users\\Annie\\.securechat\\id", "C:\\Users\\Ann", true, false],
  ["C:\\Temp\\id", "C:\\Users\\Ann", true, false],
  ["D:\\Users\\Ann\\id", "C:\\Users\\Ann", true, false],
  ["/home/ann/.securechat/id", "/home/ann", false, true],
  ["/home/ann/.securechat/id", "/home/ann/", false, true],
  ["/home/annie/id", "/home/ann", false, false],
  ["/home/Ann/id", "/home/ann", false, false],
  ["/etc/id", "/", false, true],
];

Deno.test("isWithin() compares Windows paths without case or separator differences", () => {
  for (const [path, folder, windows, expected] of WITHIN_CASES) {
    strictEqual(isWithin(path, folder, { windows }), expected, `${path} in ${folder}`);
  }
});
