/**
 * Release engineering (issue 7): the workflow files parse as YAML and say what they must (the
 * three CI platforms and their checks, every release target, the tag check, SHA256SUMS, the smoke
 * job), the version comes from deno.json alone, `deno task compile` fails with one clear line when
 * Deno's runtime cannot be downloaded, the smoke script passes on the real program, and the
 * documents a release ships exist and agree with deno.json.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
// npm:yaml, pinned exactly in deno.json (jsr.io is unreachable here); deno.lock holds its hash.
import { parse } from "yaml";
import denoJson from "../deno.json" with { type: "json" };
import { COMMAND_SUMMARIES } from "../lib/cli/usage.ts";
import { tagProblem } from "../scripts/check_tag.ts";
import { isRuntimeDownloadFailure, PERMISSION_FLAGS, TARGETS } from "../scripts/compile.ts";
import { MAIN, ROOT_DIR } from "./_helpers/cli.ts";

const root = new URL("../", import.meta.url);
const PINNED_DENO = "2.9.6";
const WINDOWS = Deno.build.os === "windows";

// deno-lint-ignore no-explicit-any
type Yaml = any;

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}

async function workflow(name: string): Promise<Yaml> {
  return parse(await Deno.readTextFile(new URL(`.github/workflows/${name}`, root)));
}

function steps(job: Yaml): Step[] {
  ok(Array.isArray(job?.steps), "the job has steps");
  return job.steps as Step[];
}

function runs(job: Yaml): string {
  return steps(job).map((step) => step.run ?? "").join("\n");
}

async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; clearEnv?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
    clearEnv: options.clearEnv ?? false,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

// ---------------------------------------------------------------------------------------------
// The workflows

Deno.test("ci.yml runs fmt, lint, check and the tests on Linux, macOS and Windows", async () => {
  const ci = await workflow("ci.yml");
  ok("push" in ci.on && "pull_request" in ci.on, "on push and pull request");
  const jobs = Object.values(ci.jobs) as Yaml[];
  const test = jobs.find((job) => Array.isArray(job.strategy?.matrix?.os));
  ok(test !== undefined, "a job with an os matrix");
  strictEqual(test["runs-on"], "${{ matrix.os }}");
  const os: string[] = test.strategy.matrix.os;
  for (const platform of ["ubuntu-", "macos-", "windows-"]) {
    ok(os.some((name) => name.startsWith(platform)), `the matrix has ${platform}*`);
  }
  const setup = steps(test).filter((step) => step.uses?.startsWith("denoland/setup-deno@"));
  strictEqual(setup.length, 1);
  strictEqual(setup[0]!.with?.["deno-version"], PINNED_DENO);
  const commands = runs(test);
  for (const command of ["deno fmt --check", "deno lint", "deno check", "deno task test"]) {
    ok(commands.includes(command), `ci.yml runs ${command}`);
  }
  // Exactly the commands of `deno task check`, so a green laptop means a green CI.
  const lines = commands.split("\n").map((line) => line.trim());
  for (const command of denoJson.tasks.check.split("&&").map((part) => part.trim())) {
    ok(lines.includes(command), `ci.yml runs "${command}" as deno task check does`);
  }
});

Deno.test("release.yml checks the tag, builds every target, sums, smoke-tests, then publishes", async () => {
  const release = await workflow("release.yml");
  deepStrictEqual(release.on.push.tags, ["v*"]);
  const { version, build, checksums, smoke, release: publish } = release.jobs;

  // The tag is checked against deno.json before anything is built.
  ok(runs(version).includes('deno run scripts/check_tag.ts "$GITHUB_REF_NAME"'));
  ok(runs(version).includes("CHANGELOG.md"), "the changelog has a section for the version");
  ok([build.needs].flat().includes("version"));

  // Every target deno compile 2.9 supports, each built by the compile task.
  deepStrictEqual(build.strategy.matrix.target, [...TARGETS]);
  deepStrictEqual([...TARGETS].sort(), [
    "aarch64-apple-darwin",
    "aarch64-pc-windows-msvc",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
  ]);
  ok(runs(build).includes('deno task compile --target "$TARGET"'));
  match(runs(build), /securechat-\$VERSION-\$TARGET/, "archives are named by target");

  // SHA256SUMS over every archive.
  ok([checksums.needs].flat().includes("build"));
  match(runs(checksums), /sha256sum securechat-\* > SHA256SUMS/);

  // The smoke job takes the Linux x86_64 archive as a user would: checksum, unpack, run.
  ok([smoke.needs].flat().includes("checksums"));
  const downloads = steps(smoke).filter((s) => s.uses?.startsWith("actions/download-artifact@"));
  deepStrictEqual(
    downloads.map((s) => s.with?.name),
    ["securechat-x86_64-unknown-linux-gnu", "SHA256SUMS"],
  );
  match(runs(smoke), /sha256sum --check --ignore-missing SHA256SUMS/);
  match(runs(smoke), /scripts\/smoke\.sh "smoke\/securechat-\$VERSION-x86_64-unknown-linux-gnu\//);

  // Published only after the smoke test, with every archive and SHA256SUMS.
  ok([publish.needs].flat().includes("smoke"));
  strictEqual(publish.permissions?.contents, "write");
  match(runs(publish), /gh release create "\$GITHUB_REF_NAME" out\/securechat-\* out\/SHA256SUMS/);
});

Deno.test("every workflow pins Deno to the version .ci/run installs", async () => {
  const ciRun = await Deno.readTextFile(new URL(".ci/run", root)).catch(() => undefined);
  if (ciRun !== undefined) match(ciRun, new RegExp(`DENO_VERSION="${PINNED_DENO}"`));
  let pinned = 0;
  for (const name of ["ci.yml", "release.yml"]) {
    const file = await workflow(name);
    for (const job of Object.values(file.jobs) as Yaml[]) {
      for (const step of steps(job).filter((s) => s.uses?.startsWith("denoland/setup-deno@"))) {
        strictEqual(step.with?.["deno-version"], PINNED_DENO, `${name}: ${step.name ?? step.uses}`);
        pinned++;
      }
    }
  }
  ok(pinned >= 3);
});

// ---------------------------------------------------------------------------------------------
// The version: one place, checked against the tag

Deno.test("tagProblem() accepts only v + deno.json's version", () => {
  strictEqual(tagProblem(`v${denoJson.version}`, denoJson.version), undefined);
  strictEqual(tagProblem(`refs/tags/v${denoJson.version}`, denoJson.version), undefined);
  strictEqual(tagProblem("v1.2.3-rc.1", "1.2.3-rc.1"), undefined);
  match(tagProblem("v0.2.0", "0.1.0")!, /tag "v0\.2\.0" does not match deno\.json's version/);
  match(tagProblem("0.1.0", "0.1.0")!, /expected tag "v0\.1\.0"/);
  match(tagProblem("v1", "1")!, /not a semantic version/);
});

Deno.test("scripts/check_tag.ts prints the version for the right tag and fails for another", async () => {
  const script = new URL("scripts/check_tag.ts", root).href;
  const good = await run(Deno.execPath(), ["run", script, `v${denoJson.version}`]);
  strictEqual(good.code, 0, good.stderr);
  strictEqual(good.stdout, `${denoJson.version}\n`);
  const bad = await run(Deno.execPath(), ["run", script, "v99.0.0"]);
  strictEqual(bad.code, 1);
  strictEqual(bad.stdout, "");
  match(bad.stderr, /^check_tag: error: tag "v99\.0\.0" does not match deno\.json's version/);
});

// `securechat --version` itself is checked against deno.json in tests/e2e/cli_test.ts.

// ---------------------------------------------------------------------------------------------
// deno task compile

/** A TCP port on 127.0.0.1 that nothing listens on (a proxy there refuses every download). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Makes `deno task compile ARGS` run where dl.deno.land cannot be reached, with or without a
 * network: a fresh DENO_DIR (no cached runtime) and a proxy that refuses every connection.
 * deno.json's npm imports (this test's yaml) are cached into that DENO_DIR first, with the network
 * as it is, because deno loads them before running any task.
 */
async function offlineCompiler(denoDir: string, scratch: string) {
  // Unset, not empty: deno takes DENORT_BIN="" as a path.
  const { DENORT_BIN: _, ...inherited } = Deno.env.toObject();
  const prepared = await run(Deno.execPath(), ["install", "-q"], {
    env: { ...inherited, DENO_DIR: denoDir },
    cwd: ROOT_DIR,
    clearEnv: true,
  });
  strictEqual(prepared.code, 0, `deno install: ${prepared.stderr}`);
  const proxy = `http://127.0.0.1:${closedPort()}`;
  const env: Record<string, string> = {
    ...inherited,
    DENO_DIR: denoDir,
    HTTPS_PROXY: proxy,
    HTTP_PROXY: proxy,
    "https_proxy": proxy,
    "http_proxy": proxy,
    NO_PROXY: "",
    "no_proxy": "",
  };
  return async (args: string[]) => {
    const out = `${scratch}/out`;
    const result = await run(
      Deno.execPath(),
      ["task", "-q", "compile", ...args, "--output", `${out}/securechat`],
      { env, cwd: ROOT_DIR, clearEnv: true },
    );
    const written = await Array.fromAsync(Deno.readDir(out)).catch(() => []);
    return { ...result, written: written.map((entry) => entry.name) };
  };
}

Deno.test("deno task compile fails in one clear line when the Deno runtime cannot be downloaded", async (t) => {
  const scratch = await Deno.makeTempDir({ prefix: "securechat_compile_test_" });
  try {
    const compile = await offlineCompiler(`${scratch}/deno_dir`, scratch);

    await t.step("for this machine: one error line and one hint, no backtrace", async () => {
      const result = await compile([]);
      strictEqual(result.code, 1, result.stderr);
      const lines = result.stderr.trim().split("\n");
      match(
        lines[0]!,
        /^compile: error: deno compile could not download the Deno runtime for this machine \(no network access to dl\.deno\.land\?\): \S/,
      );
      match(lines[1]!, /^compile: hint: /);
      strictEqual(lines.length, 2, result.stderr);
      deepStrictEqual(result.written, [], "no binary, no temporary file left");
    });

    // Proves deno 2.9.6 accepts every release target: it gets as far as the download.
    for (const target of TARGETS) {
      await t.step(`--target ${target} gets as far as the download`, async () => {
        const result = await compile(["--target", target]);
        strictEqual(result.code, 1, result.stderr);
        match(result.stderr, new RegExp(`could not download the Deno runtime for ${target} `));
      });
    }

    await t.step("an unknown target is refused before deno runs", async () => {
      const result = await compile(["--target", "riscv64-unknown-linux-gnu"]);
      strictEqual(result.code, 2);
      match(result.stderr, /^compile: error: unknown target "riscv64-unknown-linux-gnu"/);
    });
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("isRuntimeDownloadFailure() tells the runtime download from other compile errors", () => {
  ok(isRuntimeDownloadFailure(
    "error: Writing deno compile executable to temporary file 'x.tmp'\n\nCaused by:\n" +
      "    0: Setting up base binary.\n    1: error sending request for url " +
      "(https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip)",
  ));
  ok(!isRuntimeDownloadFailure("error: TS2322 [ERROR]: Type 'string' is not assignable"));
  ok(!isRuntimeDownloadFailure('error: Module not found "file:///x/main.ts"'));
});

// ---------------------------------------------------------------------------------------------
// The release smoke test, run here on main.ts

Deno.test({
  name: "scripts/smoke.sh passes on the program and fails on a wrong version",
  // A bash script run by the release job on Linux; Windows has no bash to rely on.
  ignore: WINDOWS,
  async fn() {
    const scratch = await Deno.makeTempDir({ prefix: "securechat_smoke_test_" });
    try {
      // Stands in for the compiled binary: main.ts with exactly the binary's permissions.
      const binary = `${scratch}/securechat`;
      const argv = [Deno.execPath(), "run", "--quiet", "--no-prompt", ...PERMISSION_FLAGS, MAIN];
      const quoted = argv.map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(" ");
      await Deno.writeTextFile(binary, `#!/bin/sh\nexec ${quoted} "$@"\n`, { mode: 0o755 });
      const smoke = `${ROOT_DIR}/scripts/smoke.sh`;
      const good = await run("bash", [smoke, binary, denoJson.version]);
      strictEqual(good.code, 0, good.stderr);
      match(good.stderr, /smoke: ok: --version prints "securechat /);
      match(good.stderr, /smoke: ok: keygen wrote both identities/);
      match(good.stderr, /smoke: ok: loopback listen\/dial pipe moved 1 MiB each way intact/);
      match(good.stderr, /smoke: all checks passed/);
      const bad = await run("bash", [smoke, binary, "0.0.0-wrong"]);
      strictEqual(bad.code, 1);
      match(bad.stderr, /smoke: FAILED: --version printed "securechat \S+", expected/);
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// The documents a release ships

Deno.test("CHANGELOG.md has a section for deno.json's version and an Unreleased one", async () => {
  const changelog = await Deno.readTextFile(new URL("CHANGELOG.md", root));
  match(changelog, /^## \[Unreleased\]$/m);
  match(
    changelog,
    new RegExp(`^## \\[${denoJson.version.replaceAll(".", "\\.")}\\] - \\d{4}-\\d\\d-\\d\\d$`, "m"),
  );
});

Deno.test("README documents every command, install with checksums, and links the docs", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  for (const command of Object.keys(COMMAND_SUMMARIES)) {
    match(readme, new RegExp(`securechat ${command}\\b`), `README shows "securechat ${command}"`);
  }
  for (
    const heading of ["Install", "Quick start", "How trust works", "Threat model", "Exit codes"]
  ) {
    match(readme, new RegExp(`^##+ ${heading}`, "m"), `README has a "${heading}" section`);
  }
  match(readme, /SHA256SUMS/);
  match(readme, /npm install -g deno@2\.9\.6/);
  for (const link of ["docs/PROTOCOL.md", "SECURITY.md", "CHANGELOG.md"]) {
    ok(readme.includes(`](${link})`), `README links ${link}`);
    await Deno.stat(new URL(link, root));
  }
  const security = await Deno.readTextFile(new URL("SECURITY.md", root));
  match(security, /security advisor/i);
});
