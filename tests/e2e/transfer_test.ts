/**
 * File transfer end to end (docs/PROTOCOL.md section 14): real `main.ts` processes started with
 * the compile task's permission flags, real keys and crypto, real sockets on 127.0.0.1 with
 * `--port 0`. Contents are compared by SHA-256 computed here, never by `lib/`.
 *
 * Covered: a 200 MiB file through `dial --send` / `listen --receive`; folders of 150 and 1,000
 * small files (nested folders, empty files, non-ASCII names); resume after the dialer is SIGKILLed (the resend
 * sends only the rest); the listener SIGKILLed mid-transfer; `--max-file-size`; bad flags; chat
 * messages flowing during a transfer in `--json` chat mode.
 *
 * Waits have deadlines only so a broken build fails with what was seen instead of hanging; no test
 * asserts on timing. Every process a test starts is stopped (SIGKILL if still running) and its temp
 * folder removed when the test ends, pass or fail.
 */

import { deepStrictEqual, match, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { MAX_SLICE } from "../../lib/transfer/transfer_messages.ts";
import { assertNoUncaught, spawnCli } from "../_helpers/cli.ts";
import {
  hashTree,
  listNames,
  makeRandomTree,
  MiB,
  sha256File,
  sizeOrZero,
  writeRandomFile,
} from "../_helpers/files.ts";
import { LineWatcher, makePeer, type TestPeer } from "../_helpers/peers.ts";

/** Longest wait for anything a process should do (generous: a loaded 2-core machine). */
const DEADLINE_MS = 90_000;
const BIG = 200 * MiB;

const encoder = new TextEncoder();

/** Rejects with `what` and `context()` if `promise` has not settled within {@linkcode DEADLINE_MS}. */
async function within<T>(promise: Promise<T>, what: string, context: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not within ${DEADLINE_MS} ms\n${context()}`)),
      DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** One securechat subprocess with stdout and stderr watched line by line. */
class Proc {
  readonly label: string;
  readonly child: Deno.ChildProcess;
  readonly stdout: LineWatcher;
  readonly stderr: LineWatcher;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  exited = false;
  readonly #status: Promise<Deno.CommandStatus>;

  constructor(label: string, args: string[], env: Record<string, string>) {
    this.label = label;
    this.child = spawnCli(args, { env });
    this.stdout = new LineWatcher(this.child.stdout);
    this.stderr = new LineWatcher(this.child.stderr);
    this.#stdin = this.child.stdin.getWriter();
    this.#status = this.child.status.then((status) => {
      this.exited = true;
      return status;
    });
  }

  /** Types one line on stdin. */
  async type(line: string): Promise<void> {
    await this.#stdin.write(encoder.encode(line + "\n"));
  }

  /** Ends stdin (in chat mode: leave). */
  async closeStdin(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  kill(): void {
    if (!this.exited) this.child.kill("SIGKILL");
  }

  /** Waits for the exit; the code and all output. */
  async finished(): Promise<{ code: number; stderr: string[]; stdout: string[] }> {
    const status = await within(
      Promise.all([this.#status, this.stdout.done, this.stderr.done]).then(([s]) => s),
      `${this.label} exits`,
      () => this.context(),
    );
    assertNoUncaught(this.stderr.text, {}, this.label);
    return { code: status.code, stderr: this.stderr.lines, stdout: this.stdout.lines };
  }

  /** Stops the process if it still runs and releases its pipes (idempotent). */
  async stop(): Promise<void> {
    await this.closeStdin();
    try {
      this.kill();
    } catch {
      // It exited meanwhile.
    }
    await Promise.all([this.#status, this.stdout.done, this.stderr.done]);
  }

  context(): string {
    return `--- ${this.label} stderr:\n${this.stderr.text}\n--- ${this.label} stdout:\n${this.stdout.text}`;
  }
}

/** Throwaway identities, a temp folder and every process started; all cleaned up on dispose. */
class Fixture implements AsyncDisposable {
  readonly root: string;
  readonly #peers = new Map<string, TestPeer>();
  readonly #procs: Proc[] = [];

  private constructor(root: string) {
    this.root = root;
  }

  /** Makes `alice` (who sends) and `bob` (the listener's person). */
  static async create(): Promise<Fixture> {
    const root = await Deno.makeTempDir({ prefix: "securechat-e2e-transfer-" });
    const fixture = new Fixture(root);
    try {
      for (const name of ["alice", "bob"]) {
        fixture.#peers.set(name, await makePeer(`${root}/homes`, name));
      }
    } catch (error) {
      await Deno.remove(root, { recursive: true });
      throw error;
    }
    return fixture;
  }

  /** A new empty folder under the fixture's root. */
  async folder(name: string): Promise<string> {
    const path = `${this.root}/${name}`;
    await Deno.mkdir(path, { recursive: true });
    return path;
  }

  start(peer: string, args: string[]): Proc {
    const proc = new Proc(`${peer} ${args[0]}`, args, this.#peers.get(peer)!.env);
    this.#procs.push(proc);
    return proc;
  }

  /** Starts `listen --port 0 ...` as bob and waits for its port. */
  async listen(args: string[]): Promise<Proc & { port: number }> {
    const proc = this.start("bob", ["listen", "--port", "0", ...args]);
    const line = await proc.stderr.waitFor(/listening on 127\.0\.0\.1:\d+ as /, DEADLINE_MS);
    return Object.assign(proc, { port: Number(/:(\d+) as /.exec(line)![1]) });
  }

  /** Starts `dial 127.0.0.1:PORT ...` as alice. */
  dial(port: number, args: string[]): Proc {
    return this.start("alice", ["dial", `127.0.0.1:${port}`, ...args]);
  }

  /** Everything every process printed, for failure messages. */
  context(): string {
    return this.#procs.map((proc) => proc.context()).join("\n");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#procs.map((proc) => proc.stop()));
    await Deno.remove(this.root, { recursive: true });
  }
}

/** The last stderr line about the transfer of `name`, e.g. `"big.bin" to bob: done, ...`. */
function lastTransferLine(lines: string[], name: string): string {
  const line = lines.findLast((l) => l.startsWith(`securechat: "${name}" `));
  ok(line !== undefined, `no transfer line for "${name}" in:\n${lines.join("\n")}`);
  return line;
}

/** Lines in the `securechat: error: ...` shape. */
const errorLines = (lines: string[]) => lines.filter((l) => l.startsWith("securechat: error: "));

/** Parses "(resumed: 50.7 MiB not sent again)" into bytes. */
function resumedBytes(line: string): number | undefined {
  const found = /\(resumed: ([\d.]+) (B|KiB|MiB|GiB) not sent again\)/.exec(line);
  if (!found) return undefined;
  return Number(found[1]) * 1024 ** ["B", "KiB", "MiB", "GiB"].indexOf(found[2]!);
}

/** Waits until `path` holds more than `bytes`, while none of `alive` has exited. */
async function untilLarger(path: string, bytes: number, alive: Proc[], fx: Fixture) {
  const give = Date.now() + DEADLINE_MS;
  for (;;) {
    const size = await sizeOrZero(path);
    if (size > bytes) return size;
    const gone = alive.find((proc) => proc.exited);
    if (gone) {
      throw new Error(`${gone.label} exited before "${path}" passed ${bytes}\n${fx.context()}`);
    }
    if (Date.now() > give) throw new Error(`"${path}" stayed at ${size} bytes\n${fx.context()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A 200 MiB random file at `ROOT/out/big.bin`; its SHA-256. */
async function bigFile(fx: Fixture): Promise<{ path: string; sha256: string }> {
  const path = `${await fx.folder("out")}/big.bin`;
  return { path, sha256: await writeRandomFile(path, BIG) };
}

Deno.test("dial --send delivers a 200 MiB file to listen --receive: same SHA-256, both exit 0, no .part, a final verified line", async () => {
  await using fx = await Fixture.create();
  const source = await bigFile(fx);
  const dir = await fx.folder("in");
  const listener = await fx.listen(["--receive", dir]);
  const dialer = fx.dial(listener.port, ["--send", source.path]);

  const [sent, received] = await Promise.all([dialer.finished(), listener.finished()]);
  strictEqual(sent.code, 0, fx.context());
  strictEqual(received.code, 0, fx.context());
  deepStrictEqual(await listNames(dir), ["big.bin"]);
  strictEqual(await sha256File(`${dir}/big.bin`), source.sha256);
  match(lastTransferLine(sent.stderr, "big.bin"), /: done, 200\.0 MiB verified$/);
  match(lastTransferLine(received.stderr, "big.bin"), /: done, 200\.0 MiB verified saved to /);
  deepStrictEqual(errorLines([...sent.stderr, ...received.stderr]), []);
});

/**
 * Sends a random tree of `count` files of 0..4 KiB (nested folders, empty files, non-ASCII names)
 * and checks that the receiver holds the same relative paths with the same hashes, and nothing else.
 *
 * @returns the size of the tree's manifest (docs/PROTOCOL.md 14.3) in bytes
 */
async function sendTree(count: number): Promise<number> {
  await using fx = await Fixture.create();
  const tree = await makeRandomTree(`${await fx.folder("out")}/tree`, {
    count,
    maxSize: 4096,
    seed: 0x5ec0c4a7,
  });
  ok(tree.empty >= count / 40, `the tree has only ${tree.empty} empty files`);
  ok([...tree.files.keys()].some((path) => path.endsWith("/café.txt")));
  const dir = await fx.folder("in");
  // The tree holds ".hidden": accepted only with the flag (its refusal: transfer_hostile_test.ts).
  const listener = await fx.listen(["--receive", dir, "--allow-hidden-files"]);
  const dialer = fx.dial(listener.port, ["--send", `${fx.root}/out/tree`]);

  const [sent, received] = await Promise.all([dialer.finished(), listener.finished()]);
  strictEqual(sent.code, 0, fx.context());
  strictEqual(received.code, 0, fx.context());
  deepStrictEqual(await listNames(dir), ["tree"]);
  const byPath = ([a]: [string, string], [b]: [string, string]) => a < b ? -1 : a > b ? 1 : 0;
  deepStrictEqual([...await hashTree(dir)].sort(byPath), [...tree.files].sort(byPath));
  match(lastTransferLine(sent.stderr, "tree"), /: done, .* verified$/);
  match(lastTransferLine(received.stderr, "tree"), /: done, .* verified saved to /);
  // path_length u16 || path || size u64 || sha256 (32) per file.
  return [...tree.files.keys()].reduce((sum, path) => sum + 42 + encoder.encode(path).length, 0);
}

Deno.test("dial --send of a folder of 150 small files (nested, empty, non-ASCII names; one manifest slice) recreates it: same paths, same hashes", async () => {
  const manifest = await sendTree(150);
  ok(manifest <= MAX_SLICE, `the manifest takes ${manifest} bytes: more than one slice`);
});

Deno.test({
  name:
    "dial --send of a folder of 1,000 small files (nested, empty, non-ASCII names) recreates it: same paths, same hashes",
  // Regression: a manifest slice ending inside a path was reported as "not UTF-8".
  async fn() {
    const manifest = await sendTree(1000);
    ok(manifest > MAX_SLICE, `the manifest takes ${manifest} bytes: a single slice`);
  },
});

Deno.test("a transfer cut by SIGKILL of the dialer keeps only its part file and resume record; the resend resumes it and arrives identical", async () => {
  await using fx = await Fixture.create();
  const source = await bigFile(fx);
  const dir = await fx.folder("in");
  const part = `${dir}/big.bin.securechat-part`;

  // First attempt: kill the dialer once the receiver holds more than 50 MiB.
  const listener1 = await fx.listen(["--receive", dir]);
  const dialer1 = fx.dial(listener1.port, ["--send", source.path]);
  await untilLarger(part, 50 * MiB, [dialer1, listener1], fx);
  dialer1.kill();
  const cut = await listener1.finished();
  notStrictEqual(cut.code, 0, fx.context());
  deepStrictEqual(errorLines(cut.stderr).length, 1, fx.context());
  match(errorLines(cut.stderr)[0]!, /^securechat: error: receiving "big\.bin" failed: /);
  deepStrictEqual(await listNames(dir), ["big.bin.securechat-part", "big.bin.securechat-resume"]);
  const kept = await sizeOrZero(part);
  ok(kept > 50 * MiB && kept < BIG, `the .part holds ${kept} bytes`);

  // Second attempt: a new listener, the same file.
  const listener2 = await fx.listen(["--receive", dir]);
  const dialer2 = fx.dial(listener2.port, ["--send", source.path]);
  const [sent, received] = await Promise.all([dialer2.finished(), listener2.finished()]);
  strictEqual(sent.code, 0, fx.context());
  strictEqual(received.code, 0, fx.context());
  // No "big (1).bin", no .part: the .part itself became the file.
  deepStrictEqual(await listNames(dir), ["big.bin"]);
  strictEqual(await sha256File(`${dir}/big.bin`), source.sha256);

  // It really resumed: what was not sent again is what the .part held (to formatBytes' 0.1 MiB).
  const receiverLine = lastTransferLine(received.stderr, "big.bin");
  match(receiverLine, /: done, 200\.0 MiB verified /);
  const resumed = resumedBytes(receiverLine);
  ok(resumed !== undefined, `no "resumed:" in ${JSON.stringify(receiverLine)}`);
  ok(resumed > 40 * MiB, `resumed only ${resumed} bytes`);
  ok(Math.abs(resumed - kept) <= 0.05 * MiB, `resumed ${resumed} bytes, the .part held ${kept}`);
  const senderLine = lastTransferLine(sent.stderr, "big.bin");
  match(senderLine, /: done, 200\.0 MiB verified/);
  const senderResumed = resumedBytes(senderLine);
  if (senderResumed !== undefined) strictEqual(senderResumed, resumed);
});

/** Sends the big file and SIGKILLs the listener once the receiver holds more than 50 MiB. */
async function killListenerMidTransfer(fx: Fixture) {
  const source = await bigFile(fx);
  const dir = await fx.folder("in");
  const listener = await fx.listen(["--receive", dir]);
  const dialer = fx.dial(listener.port, ["--send", source.path]);
  await untilLarger(`${dir}/big.bin.securechat-part`, 50 * MiB, [dialer, listener], fx);
  listener.kill();
  await listener.finished();
  return { dir, result: await dialer.finished() };
}

Deno.test("dial --send exits non-zero saying why when the listener is SIGKILLed mid-transfer; only the part file and its record are left", async () => {
  await using fx = await Fixture.create();
  const { dir, result } = await killListenerMidTransfer(fx);
  notStrictEqual(result.code, 0, fx.context());
  match(
    errorLines(result.stderr)[0] ?? "",
    /^securechat: error: sending "big\.bin" failed: .*connection/,
  );
  deepStrictEqual(result.stderr.filter((l) => /^\s+at /.test(l)), [], "no stack trace");
  deepStrictEqual(await listNames(dir), ["big.bin.securechat-part", "big.bin.securechat-resume"]);
});

Deno.test({
  name: "dial --send reports a listener SIGKILLed mid-transfer in one `securechat: error:` line",
  // Regression: a killed listener was reported twice, not as one error line.
  async fn() {
    await using fx = await Fixture.create();
    const { result } = await killListenerMidTransfer(fx);
    notStrictEqual(result.code, 0);
    const failures = result.stderr.filter((l) => /error|failed/.test(l));
    strictEqual(failures.length, 1, failures.join("\n"));
    match(failures[0]!, /^securechat: error: .*big\.bin.*connection ended without close_notify/);
  },
});

Deno.test("listen --receive --max-file-size 1M rejects a 5 MiB offer: the dialer exits 1 saying so, nothing is written", async () => {
  await using fx = await Fixture.create();
  const source = `${await fx.folder("out")}/five.bin`;
  await writeRandomFile(source, 5 * MiB);
  const dir = await fx.folder("in");
  const listener = await fx.listen(["--receive", dir, "--max-file-size", "1M"]);
  const dialer = fx.dial(listener.port, ["--send", source]);

  const [sent, received] = await Promise.all([dialer.finished(), listener.finished()]);
  strictEqual(sent.code, 1, fx.context());
  match(errorLines(sent.stderr)[0] ?? "", /^securechat: error: "five\.bin" was rejected: .*limit/);
  notStrictEqual(received.code, 0, fx.context());
  match(errorLines(received.stderr)[0] ?? "", /^securechat: error: "five\.bin" was rejected: /);
  deepStrictEqual(await listNames(dir), []);
});

Deno.test("dial --send of a missing path exits non-zero with one error line naming it", async () => {
  await using fx = await Fixture.create();
  const dir = await fx.folder("in");
  const listener = await fx.listen(["--receive", dir]);
  const missing = `${fx.root}/no-such-file.bin`;
  const result = await fx.dial(listener.port, ["--send", missing]).finished();
  notStrictEqual(result.code, 0);
  const errors = errorLines(result.stderr);
  strictEqual(errors.length, 1, result.stderr.join("\n"));
  ok(errors[0]!.includes(`"${missing}"`), errors[0]);
  match(errors[0]!, /no such file/);
  deepStrictEqual(await listNames(dir), []);
});

Deno.test({
  name: "dial --send of a missing path fails before connecting",
  // Regression: --send checked its path only after connecting.
  async fn() {
    await using fx = await Fixture.create();
    // A TCP port that counts connections and hangs up at once: a dialer that connects fails fast.
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let accepted = 0;
    const serving = (async () => {
      try {
        for await (const conn of server) {
          accepted++;
          conn.close();
        }
      } catch {
        // The listener was closed.
      }
    })();
    const missing = `${fx.root}/no-such-file.bin`;
    let result;
    try {
      result = await fx.dial(server.addr.port, ["--send", missing]).finished();
    } finally {
      server.close();
      await serving;
    }
    notStrictEqual(result.code, 0);
    deepStrictEqual(errorLines(result.stderr), [
      `securechat: error: cannot send "${missing}": no such file or folder`,
    ]);
    strictEqual(accepted, 0, "the dialer connected before checking its file");
  },
});

for (
  const [label, args, code] of [
    ["listen --receive of a missing folder", ["listen", "--port", "0", "--receive", "MISSING"], 2],
    ["dial --send together with --pipe", ["dial", "127.0.0.1:1", "--send", "FILE", "--pipe"], 2],
    ["listen --receive together with --pipe", [
      "listen",
      "--port",
      "0",
      "--receive",
      "IN",
      "--pipe",
    ], 2],
    ["listen --max-file-size that is not a size", [
      "listen",
      "--port",
      "0",
      "--receive",
      "IN",
      "--max-file-size",
      "lots",
    ], 2],
  ] as const
) {
  Deno.test(`${label} exits ${code} with one error line`, async () => {
    await using fx = await Fixture.create();
    const dir = await fx.folder("in");
    const file = `${fx.root}/file.bin`;
    await Deno.writeFile(file, new Uint8Array(10));
    const argv = args.map((a) =>
      a === "MISSING" ? `${fx.root}/missing` : a === "IN" ? dir : a === "FILE" ? file : a
    );
    const result = await fx.start(argv[0] === "listen" ? "bob" : "alice", argv).finished();
    strictEqual(result.code, code, result.stderr.join("\n"));
    strictEqual(errorLines(result.stderr).length, 1, result.stderr.join("\n"));
    deepStrictEqual(
      result.stderr.filter((l) => !/^securechat: (error|hint): /.test(l)),
      [],
      "nothing but the error and its hints",
    );
    deepStrictEqual(await listNames(dir), []);
  });
}

type TransferEvent = ChatEvent & { type: "transfer" };

/** The `--json` lines of `proc` parsed so far. */
const events = (proc: Proc): ChatEvent[] => proc.stdout.lines.map((l) => JSON.parse(l));

Deno.test("chat messages keep flowing during a transfer: the host's --json stdout shows the member's message before the transfer's done", async () => {
  await using fx = await Fixture.create();
  const source = await bigFile(fx);
  const dir = await fx.folder("in");
  const host = await fx.listen(["--json", "--accept-files", dir]);
  const member = fx.dial(host.port, ["--json"]);
  await member.stdout.waitFor(/"type":"roster"/, DEADLINE_MS);

  await member.type(`/send ${source.path}`);
  // The host is receiving: a progress event with some bytes in it.
  await host.stdout.waitFor(
    /^(?=.*"type":"transfer")(?=.*"direction":"receive")(?=.*"bytes":[1-9])/,
    DEADLINE_MS,
  );
  const text = "still here while the file moves";
  await member.type(text);
  await host.stdout.waitFor(/^(?=.*"type":"transfer")(?=.*"state":"done")/, DEADLINE_MS);

  const seen = events(host);
  const message = seen.findIndex((e) => e.type === "message" && e.text === text);
  const done = seen.findIndex((e) => e.type === "transfer" && e.state === "done");
  ok(message >= 0, `the host never showed the message\n${fx.context()}`);
  const firstBytes = seen.findIndex((e) => e.type === "transfer" && e.bytes > 0);
  ok(
    firstBytes < message && message < done,
    `progress ${firstBytes}, message ${message}, done ${done}`,
  );
  const messageEvent = seen[message] as ChatEvent & { type: "message" };
  strictEqual(messageEvent.from.name, "alice");
  strictEqual(messageEvent.verified, true);
  const doneEvent = seen[done] as TransferEvent;
  strictEqual(doneEvent.direction, "receive");
  strictEqual(doneEvent.total, BIG);
  strictEqual(await sha256File(`${dir}/big.bin`), source.sha256);
  deepStrictEqual(await listNames(dir), ["big.bin"]);

  // The member sees its side end too, then both leave cleanly.
  await member.stdout.waitFor(/^(?=.*"type":"transfer")(?=.*"state":"done")/, DEADLINE_MS);
  await member.closeStdin();
  strictEqual((await member.finished()).code, 0, fx.context());
  await host.closeStdin();
  strictEqual((await host.finished()).code, 0, fx.context());
  deepStrictEqual(seen.filter((e) => e.type === "error" || e.type === "rejected"), []);
});
