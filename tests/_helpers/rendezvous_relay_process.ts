/**
 * A rendezvous relay (lib/rendezvous/rendezvous_relay.ts) in a process of its own, with the
 * shipped binary's permission flags, for load and flood tests: floods then cost the relay's CPU
 * and memory, not the test's, and the relay's memory can be measured alone. The parent starts it
 * with `startRelayProcess()`; the child prints where it listens and its key, answers each `stats`
 * line on stdin with its stats and memory (after a full garbage collection), writes the relay's
 * log to stderr, and closes the relay (telling waiting listeners) when stdin ends.
 *
 * What it does not do: parse flags or handle signals as `securechat relay` does; it is the library
 * object served on 127.0.0.1, port 0.
 *
 * Usage (child): deno run --v8-flags=--expose-gc <flags> rendezvous_relay_process.ts OPTIONS_JSON
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { writeAll } from "../../lib/core/io.ts";
import { generateIdentity } from "../../lib/keys/identity.ts";
import {
  RendezvousRelay,
  type RendezvousRelayOptions,
  type RendezvousStats,
} from "../../lib/rendezvous/rendezvous_relay.ts";
import { compilePermissionFlags } from "./cli.ts";
import { LineWatcher } from "./peers.ts";

/** The options a test may give the relay (the identity is made by the child). */
export type RelayProcessOptions = Omit<RendezvousRelayOptions, "identity" | "log" | "now" | "room">;

/** What a `stats` request answers. */
export interface RelayProcessStats {
  stats: RendezvousStats;
  /** Bytes, from `Deno.memoryUsage()` after a full garbage collection. */
  rss: number;
  heapUsed: number;
  external: number;
}

/** A relay process. */
export interface RelayProcess {
  port: number;
  fingerprint: string;
  pid: number;
  /** The relay's log lines (stderr). */
  log: LineWatcher;
  stats(): Promise<RelayProcessStats>;
  /** Ends stdin (the relay closes), waits for the exit; throws if the process failed. */
  stop(): Promise<void>;
  /** True while the process runs. */
  alive(): Promise<boolean>;
}

/** Splits a stream into lines. */
async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
}

/** Starts a relay process with `options`; resolves once it listens. */
export async function startRelayProcess(options: RelayProcessOptions = {}): Promise<RelayProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--v8-flags=--expose-gc",
      ...compilePermissionFlags(),
      fileURLToPath(import.meta.url),
      JSON.stringify(options),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const log = new LineWatcher(child.stderr);
  const lines = linesOf(child.stdout);
  const next = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the relay process ended:\n${log.text}`);
    return value;
  };
  const writer = child.stdin.getWriter();
  const ready = JSON.parse(await next()) as { port: number; fingerprint: string };
  // Requests are answered in order: one at a time keeps the answers paired with them.
  let chain: Promise<unknown> = Promise.resolve();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    ...ready,
    pid: child.pid,
    log,
    stats() {
      const answer = chain.then(async () => {
        await writer.write(new TextEncoder().encode("stats\n"));
        return JSON.parse(await next()) as RelayProcessStats;
      });
      chain = answer.catch(() => {});
      return answer;
    },
    async stop() {
      await writer.close().catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const { code } = await status;
      clearTimeout(timer);
      await log.done.catch(() => {});
      if (code !== 0) throw new Error(`the relay process exited with ${code}:\n${log.text}`);
    },
    alive: () =>
      Promise.race([
        status.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(!exited), 100)),
      ]),
  };
}

/** The child: a relay on 127.0.0.1 port 0 until stdin ends. */
async function main(optionsJson: string): Promise<void> {
  const options = JSON.parse(optionsJson) as RelayProcessOptions;
  const { identity } = await generateIdentity({ type: "ed25519", comment: "relay" });
  const encoder = new TextEncoder();
  const relay = new RendezvousRelay({
    ...options,
    identity,
    log: (line) => Deno.stderr.writeSync(encoder.encode(`${line}\n`)),
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  relay.serve(listener);
  const out = (value: unknown) =>
    writeAll(Deno.stdout, encoder.encode(`${JSON.stringify(value)}\n`));
  await out({ port: listener.addr.port, fingerprint: identity.fingerprint });
  const gc = (globalThis as { gc?: () => void }).gc;
  for await (const line of linesOf(Deno.stdin.readable)) {
    if (line.trim() !== "stats") continue;
    gc?.();
    const memory = Deno.memoryUsage();
    const answer: RelayProcessStats = {
      stats: relay.stats,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
    };
    await out(answer);
  }
  await relay.close();
}

if (import.meta.main) await main(Deno.args[0] ?? "{}");
