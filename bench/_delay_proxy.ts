/**
 * A userspace TCP proxy on 127.0.0.1 that adds latency: every chunk read from one side is written
 * to the other `--delay` milliseconds after it was read (default 25, so 50 ms round trip), in the
 * order read. No bandwidth limit and no loss: only the round trip changes, so a protocol whose
 * flow-control window is smaller than the bandwidth-delay product shows it.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/_delay_proxy.ts TARGET_PORT [--delay MS]
 * # prints "listening on 127.0.0.1:PORT" on stderr, then forwards each connection to TARGET_PORT
 * ```
 *
 * Half-closes are passed on once the chunks before them were delivered. Runs until killed.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** How many bytes one read takes at most; each chunk read is its own buffer (it waits queued). */
const READ_BYTES = 256 * 1024;

/** One direction: reads `from`, writes each chunk to `to` `delayMs` after it was read. */
async function forward(from: Deno.TcpConn, to: Deno.TcpConn, delayMs: number): Promise<void> {
  const queue: { due: number; bytes: Uint8Array }[] = [];
  let ended = false;
  let wake: () => void = () => {};
  const writer = (async () => {
    while (true) {
      const next = queue.shift();
      if (next === undefined) {
        if (ended) break;
        await new Promise<void>((resolve) => wake = resolve);
        continue;
      }
      const wait = next.due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      let done = 0;
      while (done < next.bytes.length) done += await to.write(next.bytes.subarray(done));
    }
    await to.closeWrite().catch(() => {});
  })();
  try {
    while (true) {
      const buffer = new Uint8Array(READ_BYTES);
      const n = await from.read(buffer);
      if (n === null) break;
      queue.push({ due: performance.now() + delayMs, bytes: buffer.subarray(0, n) });
      wake();
    }
  } finally {
    ended = true;
    wake();
    await writer;
  }
}

async function serve(client: Deno.TcpConn, targetPort: number, delayMs: number): Promise<void> {
  let server: Deno.TcpConn | undefined;
  try {
    server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    client.setNoDelay(true);
    server.setNoDelay(true);
    await Promise.all([
      forward(client, server, delayMs),
      forward(server, client, delayMs),
    ]);
  } catch {
    // A reset on either side ends the connection; the other side sees it closed.
  } finally {
    for (const conn of [client, server]) {
      try {
        conn?.close();
      } catch {
        // Already closed.
      }
    }
  }
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { delay: { type: "string", default: "25" } },
    allowPositionals: true,
  });
  const targetPort = Number(positionals[0]);
  const delayMs = Number(values.delay);
  if (!Number.isInteger(targetPort) || targetPort < 1 || !(delayMs >= 0)) {
    throw new RangeError("usage: _delay_proxy.ts TARGET_PORT [--delay MS]");
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // deno-lint-ignore no-console
  console.error(`listening on 127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) void serve(conn, targetPort, delayMs);
}

if (import.meta.main) await main(Deno.args);
