/**
 * The Wycheproof files the tests read are in the repository, as published: a missing file is an
 * error naming its path (never a skip), every file a test names is carried and listed in
 * tests/vectors/wycheproof/README.md, nothing else is carried, and each file still has the size and
 * SHA-256 listed there (upstream's bytes; no reformat or line-ending conversion).
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { toHex } from "../../lib/core/bytes.ts";
import { loadWycheproof, loadWycheproofGroups, WYCHEPROOF_DIR } from "../_helpers/wycheproof.ts";

const TESTS = new URL("../", import.meta.url);

/** The rows of the README's table: file name, size in bytes, SHA-256 in hex. */
async function listedFiles(): Promise<Map<string, { bytes: number; sha256: string }>> {
  const readme = await Deno.readTextFile(new URL("README.md", WYCHEPROOF_DIR));
  const rows = new Map<string, { bytes: number; sha256: string }>();
  for (
    const [, name, bytes, sha256] of readme.matchAll(/^\| (\S+) +\| (\d+) +\| ([0-9a-f]{64}) +\|/gm)
  ) {
    rows.set(name!, { bytes: Number(bytes), sha256: sha256! });
  }
  return rows;
}

/** Every test module under tests/ (the helper's callers among them). */
async function testModules(dir: URL): Promise<URL[]> {
  const found: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) found.push(...await testModules(new URL(`${entry.name}/`, dir)));
    else if (entry.name.endsWith(".ts")) found.push(new URL(entry.name, dir));
  }
  return found;
}

Deno.test("loadWycheproofGroups() and loadWycheproof() throw, naming the path, for a missing file", async () => {
  const path = fileURLToPath(new URL("no_such_vectors.json", WYCHEPROOF_DIR));
  for (const load of [loadWycheproofGroups, loadWycheproof]) {
    await rejects(load("no_such_vectors.json"), (error: unknown) => {
      ok(error instanceof Error, `expected an Error, got ${error}`);
      ok(error.message.includes(path), error.message);
      ok(error.message.includes("is missing"), error.message);
      return true;
    });
  }
});

Deno.test("every Wycheproof file a test names is carried in tests/vectors/wycheproof/ and listed in its README", async () => {
  const named = new Set<string>();
  for (const module of await testModules(TESTS)) {
    if (module.href === import.meta.url) continue;
    const text = await Deno.readTextFile(module);
    if (!text.includes("_helpers/wycheproof.ts")) continue;
    for (const [, name] of text.matchAll(/"([a-z0-9_]+_test\.json)"/g)) named.add(name!);
  }
  ok(named.size >= 10, `only ${named.size} vector files named: ${[...named]}`);

  const carried = new Set<string>();
  for await (const entry of Deno.readDir(WYCHEPROOF_DIR)) {
    if (entry.name.endsWith(".json")) carried.add(entry.name);
  }
  const listed = new Set(
    [...(await listedFiles()).keys()].filter((name) => name.endsWith(".json")),
  );
  deepStrictEqual([...named].filter((name) => !carried.has(name)), [], "named but not carried");
  deepStrictEqual([...carried].sort(), [...named].sort(), "carried files are exactly those named");
  deepStrictEqual(
    [...listed].sort(),
    [...carried].sort(),
    "README lists exactly the carried files",
  );
});

Deno.test("each carried Wycheproof file and its LICENSE have the size and SHA-256 the README lists", async () => {
  const listed = await listedFiles();
  ok(listed.has("LICENSE"), "LICENSE listed");
  for (const [name, expected] of listed) {
    const bytes = await Deno.readFile(new URL(name, WYCHEPROOF_DIR));
    strictEqual(bytes.length, expected.bytes, `${name}: size`);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    strictEqual(toHex(digest), expected.sha256, `${name}: SHA-256`);
  }
});
