/**
 * Calls into a helper process of the room benchmarks (the timed relay, the member pools): the
 * parent writes one JSON request a line to the child's stdin, the child answers each with one
 * JSON line on stdout, `{ id, value }` or `{ id, error }`. The child's stderr is kept (its last
 * lines) for error messages.
 *
 * @module
 */

import { compilePermissionFlags } from "../tests/_helpers/cli.ts";

/** A reply to the request with the same `id`. */
type Reply = { id: number; value: unknown } | { id: number; error: string };

/** Splits a byte stream into lines of text. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
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

/** A helper process, called by request. */
export class ChildRpc {
  readonly pid: number;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #nextId = 0;
  #pending = new Map<number, { resolve: (value: unknown) => void; reject: (e: Error) => void }>();
  #stderr: string[] = [];
  #done: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.pid = child.pid;
    this.#writer = child.stdin.getWriter();
    const replies = (async () => {
      for await (const line of lines(child.stdout)) {
        if (line.trim() === "") continue;
        const reply = JSON.parse(line) as Reply;
        const pending = this.#pending.get(reply.id);
        if (!pending) continue;
        this.#pending.delete(reply.id);
        if ("error" in reply) pending.reject(new Error(reply.error));
        else pending.resolve(reply.value);
      }
    })();
    const errors = (async () => {
      for await (const line of lines(child.stderr)) {
        this.#stderr.push(line);
        if (this.#stderr.length > 40) this.#stderr.shift();
      }
    })();
    this.#done = Promise.all([replies, errors, child.status]).then(() => {
      const gone = new Error(`helper process ${this.pid} ended:\n${this.tail()}`);
      for (const pending of this.#pending.values()) pending.reject(gone);
      this.#pending.clear();
    });
  }

  /**
   * Starts `bench/<script>` with the shipped binary's permission flags.
   *
   * @param args the script's arguments
   */
  static spawn(script: string, args: string[] = []): ChildRpc {
    const path = decodeURIComponent(new URL(`./${script}`, import.meta.url).pathname);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", ...compilePermissionFlags(), path, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    return new ChildRpc(child);
  }

  /** Sends `request` and resolves with the child's answer (rejects with its error). */
  call(request: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const line = JSON.stringify({ ...request, id }) + "\n";
      this.#writer.write(new TextEncoder().encode(line)).catch(reject);
    });
  }

  /** The child's last lines of stderr. */
  tail(): string {
    return this.#stderr.join("\n");
  }

  /** Closes the child's stdin (it exits once its requests are answered), SIGKILL after 20 s. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // It has exited.
      }
    }, 20_000);
    await this.#done.catch(() => {});
    clearTimeout(timer);
  }
}

/**
 * The child's side: answers every request line on stdin with `answer`, one JSON line each on
 * stdout, concurrently; resolves once stdin is closed and every answer is written.
 */
export async function serveRpc(
  answer: (request: Record<string, unknown>) => Promise<unknown>,
): Promise<void> {
  const encoder = new TextEncoder();
  const writer = Deno.stdout.writable.getWriter();
  let written = Promise.resolve();
  const reply = (line: Reply) => {
    written = written.then(() => writer.write(encoder.encode(JSON.stringify(line) + "\n")));
  };
  const answers: Promise<void>[] = [];
  for await (const line of lines(Deno.stdin.readable)) {
    if (line.trim() === "") continue;
    const request = JSON.parse(line) as Record<string, unknown> & { id: number };
    answers.push(
      answer(request).then(
        (value) => reply({ id: request.id, value: value ?? null }),
        (error) =>
          reply({ id: request.id, error: error instanceof Error ? error.message : String(error) }),
      ),
    );
  }
  await Promise.all(answers);
  await written;
}
