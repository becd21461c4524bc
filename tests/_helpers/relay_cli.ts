/**
 * End-to-end fixtures for meeting through a rendezvous relay (docs/PROTOCOL.md 15): throwaway
 * identities, a `securechat relay` process on 127.0.0.1 whose port and key the test knows, and
 * `listen --via` / `dial --via` / `dial --room` processes, with stdout collected as bytes (pipes,
 * transfers) or parsed as `--json` chat events (tests/_helpers/chat.ts). Everything runs `main.ts` with the shipped
 * permission flags (tests/_helpers/cli.ts). Disposing the fixture stops every process it started
 * (SIGKILL by its handle, if still running) and removes the identities.
 *
 * @module
 */

import { ChatProcess, WAIT_MS } from "./chat.ts";
import type { LineWatcher } from "./peers.ts";
import { makePeer, type RunningPeer, startPeer, type TestPeer } from "./peers.ts";

/** A running `securechat relay`. */
export interface RelayProcess extends RunningPeer {
  port: number;
  /** `127.0.0.1:PORT`, the address clients give. */
  address: string;
}

/** Options of {@linkcode ViaRelayFixture.startRelay}. */
export interface StartRelayOptions {
  /** The port (default 0: a free one). */
  port?: number;
  /** More flags (limits). */
  args?: string[];
}

/** Identities, a relay, and every process started, for one test. */
export class ViaRelayFixture implements AsyncDisposable {
  readonly root: string;
  readonly #peers: Record<string, TestPeer>;
  readonly #stops: (() => Promise<void>)[] = [];

  private constructor(root: string, peers: Record<string, TestPeer>) {
    this.root = root;
    this.#peers = peers;
  }

  /** Makes an ed25519 identity for each name; "operator" is the relay's. */
  static async create(names: string[]): Promise<ViaRelayFixture> {
    const root = await Deno.makeTempDir({ prefix: "securechat-via-" });
    try {
      const made = await Promise.all(
        ["operator", ...names].map((name) => makePeer(root, name)),
      );
      return new ViaRelayFixture(root, Object.fromEntries(made.map((peer) => [peer.name, peer])));
    } catch (error) {
      await Deno.remove(root, { recursive: true });
      throw error;
    }
  }

  /** The identity called `name`. */
  peer(name: string): TestPeer {
    const peer = this.#peers[name];
    if (peer === undefined) throw new RangeError(`no test peer "${name}"`);
    return peer;
  }

  /** Fingerprint of `name`'s key. */
  fingerprint(name: string): string {
    return this.peer(name).fingerprint;
  }

  /** `--relay-key` with the operator's fingerprint: the relay pinned. */
  get pin(): string[] {
    return ["--relay-key", this.fingerprint("operator")];
  }

  /** Starts `securechat relay` as the operator and waits for its "listening" line. */
  async startRelay(options: StartRelayOptions = {}): Promise<RelayProcess> {
    const running = this.#track(
      startPeer(
        ["relay", "--port", String(options.port ?? 0), ...options.args ?? []],
        this.peer("operator").env,
      ),
    );
    const line = await running.stderr.waitFor(/relay listening on/, WAIT_MS);
    const port = Number(/:(\d+) as /.exec(line)?.[1]);
    return { ...running, port, address: `127.0.0.1:${port}` };
  }

  /** Starts `securechat ARGS` as `name`: stdin written by the test, stdout collected as bytes. */
  start(name: string, args: string[]): RunningPeer {
    return this.#track(startPeer(args, this.peer(name).env));
  }

  /** Starts `securechat` as `name` in chat mode: `--json` events on stdout, parsed. */
  chat(name: string, args: string[]): ChatProcess {
    const process = new ChatProcess(`${args[0]} ${name}`, [...args, "--json"], this.peer(name).env);
    this.#stops.push(() => process.stop());
    return process;
  }

  #track(running: RunningPeer): RunningPeer {
    this.#stops.push(async () => {
      await running.closeStdin();
      try {
        running.child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await running.child.status;
      await running.stdout.catch(() => {});
    });
    return running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await Promise.all(this.#stops.map((stop) => stop()));
    } finally {
      await Deno.remove(this.root, { recursive: true });
    }
  }
}

/**
 * Resolves once `count` lines of `watcher` match `pattern` (a relay's log counts registrations
 * this way).
 *
 * @throws {Error} after `timeoutMs`, with the lines seen
 */
export async function waitForLines(
  watcher: LineWatcher,
  pattern: RegExp,
  count: number,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (watcher.lines.filter((line) => pattern.test(line)).length < count) {
    if (Date.now() > deadline) {
      throw new Error(`fewer than ${count} lines matching ${pattern} in:\n${watcher.text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The `securechat: error:` lines of a process's stderr. */
export function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.startsWith("securechat: error:"));
}
