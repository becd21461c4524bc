/**
 * End-to-end fixtures: throwaway identities, a listener subprocess whose port and status lines the
 * test can wait for, and dialer subprocesses. Everything runs `main.ts` with the compile task's
 * permission flags (tests/_helpers/cli.ts) on 127.0.0.1.
 *
 * @module
 */

import { concat } from "../../lib/core/bytes.ts";
import { assertNoUncaught, type CliResult, runCli, spawnCli } from "./cli.ts";

const decoder = new TextDecoder();

/** A throwaway identity in its own SECURECHAT_HOME. */
export interface TestPeer {
  name: string;
  home: string;
  fingerprint: string;
  env: Record<string, string>;
}

/** Makes an unencrypted identity (ed25519 unless asked) in `root/name`. */
export async function makePeer(
  root: string,
  name: string,
  type: "ed25519" | "rsa-pss" = "ed25519",
): Promise<TestPeer> {
  const home = `${root}/${name}`;
  const env = { SECURECHAT_HOME: home };
  const result = await runCli(
    ["keygen", "--type", type, "--comment", name, "--no-passphrase"],
    { env },
  );
  if (result.code !== 0) throw new Error(`keygen ${name} failed: ${result.stderr}`);
  const fingerprint = /SHA256:[A-Za-z0-9+/]{43}/.exec(result.stdout)?.[0];
  if (!fingerprint) throw new Error(`keygen printed no fingerprint: ${result.stdout}`);
  return { name, home, fingerprint, env };
}

/**
 * Collects a stream's text lines and lets a test (or a benchmark) wait for a line that matches.
 * With `keep`, only the first `keep - 1` lines and the latest one are kept (a relay may log
 * thousands); waiting fails as soon as the stream ends without the line.
 */
export class LineWatcher {
  readonly lines: string[] = [];
  #waiters: { pattern: RegExp; resolve: (line: string | undefined) => void }[] = [];
  #keep: number;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, options: { keep?: number } = {}) {
    this.#keep = options.keep ?? Infinity;
    this.done = (async () => {
      let pending = "";
      try {
        for await (const chunk of stream) {
          pending += decoder.decode(chunk, { stream: true });
          let newline;
          while ((newline = pending.indexOf("\n")) >= 0) {
            this.#push(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
          }
        }
        if (pending !== "") this.#push(pending);
      } finally {
        for (const waiter of this.#waiters.splice(0)) waiter.resolve(undefined);
      }
    })();
    this.done.catch(() => {}); // a broken stream shows as a missing line; awaiting it still throws
  }

  #push(line: string) {
    if (this.lines.length < this.#keep) this.lines.push(line);
    else this.lines[this.#keep - 1] = line;
    for (const waiter of [...this.#waiters]) {
      if (waiter.pattern.test(line)) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  }

  /**
   * Resolves with the first line matching `pattern`.
   *
   * @throws {Error} after `timeoutMs`, or when the stream ended without such a line
   */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.lines.find((line) => pattern.test(line));
    if (seen !== undefined) return seen;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const line = await new Promise<string | undefined>((resolve) => {
      timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== resolve);
        resolve(undefined);
      }, timeoutMs);
      this.#waiters.push({ pattern, resolve });
    });
    clearTimeout(timer);
    if (line === undefined) {
      throw new Error(`no line matching ${pattern} in:\n${this.lines.join("\n")}`);
    }
    return line;
  }

  /** All lines so far, joined. */
  get text(): string {
    return this.lines.join("\n");
  }
}

/** A running securechat process with its stdout collected and stderr watched. */
export interface RunningPeer {
  child: Deno.ChildProcess;
  stderr: LineWatcher;
  /** Everything the process wrote to stdout, once it exited. */
  stdout: Promise<Uint8Array>;
  /** Writes to stdin; `closeStdin()` sends end of input. */
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  closeStdin(): Promise<void>;
  /** Exit code, stdout and stderr, once the process has exited. */
  finished(): Promise<{ code: number; stdout: Uint8Array; stderr: string }>;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return concat(...chunks);
}

/** Starts securechat with `args`. */
export function startPeer(args: string[], env: Record<string, string>): RunningPeer {
  const child = spawnCli(args, { env });
  const stderr = new LineWatcher(child.stderr);
  const stdout = collect(child.stdout);
  const stdin = child.stdin.getWriter();
  return {
    child,
    stderr,
    stdout,
    stdin,
    closeStdin: () => stdin.close().catch(() => {}),
    async finished() {
      const [status, out] = await Promise.all([child.status, stdout, stderr.done]);
      assertNoUncaught(stderr.text, env, args[0]);
      return { code: status.code, stdout: out, stderr: stderr.text };
    },
  };
}

/** Starts `securechat listen --port 0` and waits until it prints its port. */
export async function startListener(
  peer: TestPeer,
  extraArgs: string[] = [],
): Promise<RunningPeer & { port: number }> {
  const running = startPeer(["listen", "--port", "0", "--pipe", ...extraArgs], peer.env);
  const line = await running.stderr.waitFor(/listening on/);
  const port = Number(/:(\d+) as /.exec(line)?.[1]);
  return { ...running, port };
}

/** Starts `securechat dial 127.0.0.1:PORT`. */
export function startDialer(peer: TestPeer, port: number, extraArgs: string[] = []): RunningPeer {
  return startPeer(["dial", `127.0.0.1:${port}`, "--pipe", ...extraArgs], peer.env);
}

/** Runs a dialer to completion with `input` on stdin. */
export async function dialOnce(
  peer: TestPeer,
  port: number,
  input: Uint8Array | string,
  extraArgs: string[] = [],
): Promise<CliResult> {
  return await runCli(["dial", `127.0.0.1:${port}`, "--pipe", ...extraArgs], {
    env: peer.env,
    stdin: input,
  });
}

/** SHA-256 as hex. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Random bytes of any length (getRandomValues fills at most 64 KiB per call). */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(i + 65536, length)));
  }
  return out;
}

/** Writes `data` to a writer in chunks, then closes it. */
export async function feed(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  data: Uint8Array,
  chunk = 1 << 20,
): Promise<void> {
  for (let i = 0; i < data.length; i += chunk) {
    await writer.write(data.subarray(i, Math.min(i + chunk, data.length)));
  }
  await writer.close();
}
