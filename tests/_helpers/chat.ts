/**
 * Chat end-to-end fixtures: `listen`/`dial` subprocesses in `--json` (or `--relay-only`) mode
 * whose stdout is parsed as ChatEvent JSON lines as they arrive, so a test can wait for the event
 * it needs; a fixture that owns the throwaway identities and stops every process it started.
 *
 * Everything runs `main.ts` with the compile task's permission flags (tests/_helpers/cli.ts) on
 * 127.0.0.1 with port 0. Waits have deadlines only so a broken build fails with the events seen
 * instead of hanging; no test asserts on timing.
 *
 * @module
 */

import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { assertNoUncaught, spawnCli } from "./cli.ts";
import { LineWatcher, makePeer, type TestPeer } from "./peers.ts";

/** How long a wait may take before it fails with what was seen (generous: loaded CI machines). */
export const WAIT_MS = 20_000;

/** A message event. */
export type MessageEvent = ChatEvent & { type: "message" };

/**
 * Parses a process's stdout as one JSON object per line as the lines arrive, and lets a test wait
 * until the events seen so far satisfy a condition. Lines that are not valid JSON are kept in
 * `invalid` (a test asserts there are none).
 */
export class JsonEventWatcher {
  readonly lines: string[] = [];
  readonly events: ChatEvent[] = [];
  /** Lines that did not parse as a JSON object with a string `type` and a numeric `time`. */
  readonly invalid: string[] = [];
  /** Resolves when stdout has ended. */
  readonly done: Promise<void>;
  #ended = false;
  #waiters = new Set<() => void>();

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const decoder = new TextDecoder();
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
        pending += decoder.decode();
        if (pending !== "") this.#push(pending); // a last line without "\n" is a defect too
      } finally {
        this.#ended = true;
        this.#wake();
      }
    })();
  }

  #push(line: string): void {
    this.lines.push(line);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      this.invalid.push(line);
      return;
    }
    const event = value as { type?: unknown; time?: unknown } | null;
    if (
      typeof event !== "object" || event === null || typeof event.type !== "string" ||
      typeof event.time !== "number"
    ) {
      this.invalid.push(line);
      return;
    }
    this.events.push(value as ChatEvent);
    this.#wake();
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /**
   * Resolves once `condition(events)` holds; rejects when stdout ends without it (the process
   * exited) or after `timeoutMs`, with `what` and the events seen.
   */
  until(
    condition: (events: ChatEvent[]) => boolean,
    what: string,
    timeoutMs = WAIT_MS,
  ): Promise<void> {
    if (condition(this.events)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        finish();
        reject(new Error(`${what}: ${why}; events seen:\n${this.lines.join("\n")}`));
      };
      const timer = setTimeout(() => fail(`not seen within ${timeoutMs} ms`), timeoutMs);
      const check = () => {
        if (condition(this.events)) {
          finish();
          resolve();
        } else if (this.#ended) {
          fail("the process's output ended first");
        }
      };
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Resolves with the first event matching `predicate` (already seen or still to come). */
  async waitFor<T extends ChatEvent>(
    predicate: (event: ChatEvent) => event is T,
    what: string,
    timeoutMs?: number,
  ): Promise<T>;
  async waitFor(
    predicate: (event: ChatEvent) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<ChatEvent>;
  async waitFor(
    predicate: (event: ChatEvent) => boolean,
    what: string,
    timeoutMs = WAIT_MS,
  ): Promise<ChatEvent> {
    await this.until((events) => events.some(predicate), what, timeoutMs);
    return this.events.find(predicate)!;
  }

  /** Events of one type, in arrival order. */
  ofType<K extends ChatEvent["type"]>(type: K): (ChatEvent & { type: K })[] {
    return this.events.filter((event): event is ChatEvent & { type: K } => event.type === type);
  }

  /** Message events whose author has `fingerprint`, in arrival order. */
  messagesFrom(fingerprint: string): MessageEvent[] {
    return this.ofType("message").filter((event) => event.from.fingerprint === fingerprint);
  }
}

/** A running `listen` or `dial` in chat mode. */
export class ChatProcess {
  readonly label: string;
  readonly child: Deno.ChildProcess;
  /** stdout as ChatEvents. */
  readonly out: JsonEventWatcher;
  /** stderr lines (status, warnings, errors). */
  readonly err: LineWatcher;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdinClosed = false;
  readonly #env: Record<string, string>;

  constructor(label: string, args: string[], env: Record<string, string>) {
    this.label = label;
    this.#env = env;
    this.child = spawnCli(args, { env });
    this.out = new JsonEventWatcher(this.child.stdout);
    this.err = new LineWatcher(this.child.stderr);
    this.#stdin = this.child.stdin.getWriter();
  }

  /** Types lines (a newline is added to each), in order, in one write. */
  async send(...lines: string[]): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(lines.map((line) => `${line}\n`).join("")));
  }

  /** End of input: in chat mode, leaving the room. */
  async closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#stdin.close().catch(() => {});
  }

  /** Sends a signal; a process that has already exited is left alone. */
  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // TypeError: it has already exited
    }
  }

  /**
   * Waits for the exit and the end of both output streams; rejects, with the stderr so far, when
   * the process is still running after `timeoutMs` (it is left to `stop()`).
   */
  async finished(
    timeoutMs = WAIT_MS,
  ): Promise<{ code: number; signal: Deno.Signal | null; stderr: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.label} did not exit; stderr:\n${this.err.text}`)),
        timeoutMs,
      );
    });
    try {
      const [status] = await Promise.race([
        Promise.all([this.child.status, this.out.done, this.err.done]),
        deadline,
      ]);
      assertNoUncaught(this.err.text, this.#env, this.label);
      return { code: status.code, signal: status.signal, stderr: this.err.text };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the process if it still runs (SIGKILL) and waits for it and its streams. */
  async stop(): Promise<void> {
    await this.closeStdin();
    this.kill("SIGKILL");
    await Promise.all([this.child.status, this.out.done, this.err.done]);
  }

  /** The `error:` lines on stderr. */
  errorLines(): string[] {
    return this.err.lines.filter((line) => line.startsWith("securechat: error:"));
  }
}

/** A chat listener, with the port it listens on. */
export class ChatListener extends ChatProcess {
  port = 0;
}

/**
 * Owns a temporary SECURECHAT_HOME root with one identity per name, and every process started
 * through it; disposing stops them all (SIGKILL if still running) and removes the root.
 *
 * @example `await using chat = await ChatFixture.create(["alice", "bob"]);`
 */
export class ChatFixture implements AsyncDisposable {
  readonly root: string;
  readonly peers: Record<string, TestPeer>;
  readonly #processes: ChatProcess[] = [];

  private constructor(root: string, peers: Record<string, TestPeer>) {
    this.root = root;
    this.peers = peers;
  }

  /** Makes an ed25519 identity per name (keygen's comment is the name). */
  static async create(
    names: string[],
    types: Record<string, "ed25519" | "rsa-pss"> = {},
  ): Promise<ChatFixture> {
    const root = await Deno.makeTempDir({ prefix: "securechat-chat-" });
    try {
      const made = await Promise.all(
        names.map((name) => makePeer(root, name, types[name] ?? "ed25519")),
      );
      return new ChatFixture(root, Object.fromEntries(made.map((peer) => [peer.name, peer])));
    } catch (error) {
      await Deno.remove(root, { recursive: true });
      throw error;
    }
  }

  /** The identity called `name`. */
  peer(name: string): TestPeer {
    const peer = this.peers[name];
    if (peer === undefined) throw new RangeError(`no test peer "${name}"`);
    return peer;
  }

  /** Fingerprint of `name`'s key, as keygen printed it. */
  fingerprint(name: string): string {
    return this.peer(name).fingerprint;
  }

  /**
   * Starts `listen --port 0` as `name` with `args` (e.g. `["--json"]` or `["--relay-only"]`) and
   * waits for the "listening on" line.
   */
  async listen(name: string, args: string[]): Promise<ChatListener> {
    const process = new ChatListener(
      `listener ${name}`,
      ["listen", "--port", "0", ...args],
      this.peer(name).env,
    );
    this.#processes.push(process);
    const line = await process.err.waitFor(/listening on/, WAIT_MS);
    process.port = Number(/:(\d+) as /.exec(line)?.[1]);
    return process;
  }

  /** Starts `dial 127.0.0.1:PORT` as `name` with `args` (default `["--json"]`). */
  dial(name: string, port: number, args: string[] = ["--json"]): ChatProcess {
    const process = new ChatProcess(
      `dialer ${name}`,
      ["dial", `127.0.0.1:${port}`, ...args],
      this.peer(name).env,
    );
    this.#processes.push(process);
    return process;
  }

  /** Dials in `--json` mode and waits until the dialer has its roster (it is in the room). */
  async join(name: string, port: number, args: string[] = []): Promise<ChatProcess> {
    const process = this.dial(name, port, ["--json", ...args]);
    await process.out.waitFor((event) => event.type === "roster", `${name} gets its roster`);
    return process;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await Promise.all(this.#processes.map((process) => process.stop()));
    } finally {
      await Deno.remove(this.root, { recursive: true });
    }
  }
}

/** Whether `event` is a message from `fingerprint` with `text` (and `kind`, when given). */
export function isMessage(
  event: ChatEvent,
  fingerprint: string,
  text: string,
  kind?: MessageEvent["kind"],
): event is MessageEvent {
  return event.type === "message" && event.from.fingerprint === fingerprint &&
    event.text === text && (kind === undefined || event.kind === kind);
}

/** Whether `event` is a join (`type` "join") or leave of the member with `fingerprint`. */
export function isMembership(
  event: ChatEvent,
  type: "join" | "leave",
  fingerprint: string,
): boolean {
  return (event.type === "join" || event.type === "leave") && event.type === type &&
    event.member.fingerprint === fingerprint;
}

/** The names and fingerprints of a member list, sorted by name (for deepStrictEqual). */
export function who(members: MemberInfo[]): { name: string; fingerprint: string }[] {
  return members.map(({ name, fingerprint }) => ({ name, fingerprint }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** `count` numbered lines: "`prefix` 1" … "`prefix` `count`". */
export function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}`);
}
