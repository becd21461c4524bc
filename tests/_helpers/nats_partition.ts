/**
 * A plain TCP proxy that a test can cut: it forwards bytes unchanged between whoever connects and
 * one target port on 127.0.0.1, until `cut()` closes every connection it carries and refuses new
 * ones (each is accepted and closed at once, so the dialer sees the connection end before any
 * byte, as after a refusal) until `heal()`. tests/_helpers/nats_servers.ts puts one on every route
 * between two nats-server nodes, so that cutting the ones of a node is a network partition of
 * that node (PROTOCOL.md 16.4: what the cluster does when a node is cut off).
 *
 * What it does not do: parse or alter the bytes (tests/_helpers/proxy.ts does, for securechat
 * frames), delay them, or cut one direction only. The listening socket stays bound while cut, so
 * no other process can take the port before `heal()`.
 *
 * @module
 */

/** One proxy, listening on 127.0.0.1. */
export interface CuttableProxy {
  /** The port it listens on. */
  readonly port: number;
  /** Connections it carries now. */
  readonly open: number;
  /** Whether it is cut (`cut()` without `heal()` since). */
  readonly isCut: boolean;
  /** Closes every connection it carries and refuses new ones. */
  cut(): void;
  /** Accepts and forwards again after `cut()`. */
  heal(): void;
  /** Stops listening, closes every connection and waits until all its tasks are done. */
  close(): Promise<void>;
}

/** Both ends of one forwarded connection. */
interface Pair {
  readonly inbound: Deno.TcpConn;
  readonly outbound: Deno.TcpConn;
}

/** Copies `from` to `to` until either ends; a closed or reset socket ends the copy quietly. */
async function copy(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const read = await from.read(buffer);
      if (read === null) return;
      let written = 0;
      while (written < read) written += await to.write(buffer.subarray(written, read));
    }
  } catch {
    // cut, or the other side went away: the pair is closed below
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/**
 * Starts a proxy on a free port of 127.0.0.1 forwarding to `targetPort` on 127.0.0.1. The target
 * need not listen yet: a connection that finds no target is closed.
 *
 * @param targetPort where the bytes go
 * @returns the running proxy; `close()` it in a finally
 */
export function startCuttableProxy(targetPort: number): CuttableProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pairs = new Set<Pair>();
  const tasks = new Set<Promise<void>>();
  let cut = false;
  let closed = false;

  const track = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };

  const forward = async (inbound: Deno.TcpConn) => {
    let outbound: Deno.TcpConn;
    try {
      outbound = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      closeQuietly(inbound);
      return;
    }
    // cut() may have come while connecting: this connection must not outlive it.
    if (cut || closed) {
      closeQuietly(inbound);
      closeQuietly(outbound);
      return;
    }
    const pair = { inbound, outbound };
    pairs.add(pair);
    // When one direction ends, end the other too: a route is useless half open.
    const copies = [copy(inbound, outbound), copy(outbound, inbound)];
    await Promise.race(copies);
    closeQuietly(inbound);
    closeQuietly(outbound);
    await Promise.all(copies);
    pairs.delete(pair);
  };

  const cutAll = () => {
    for (const pair of pairs) {
      closeQuietly(pair.inbound);
      closeQuietly(pair.outbound);
    }
  };

  const acceptLoop = async () => {
    try {
      for await (const conn of listener) {
        if (cut || closed) {
          closeQuietly(conn);
          continue;
        }
        track(forward(conn));
      }
    } catch {
      // the listener was closed
    }
  };
  const accepting = acceptLoop();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get open() {
      return pairs.size;
    },
    get isCut() {
      return cut;
    },
    cut() {
      cut = true;
      cutAll();
    },
    heal() {
      cut = false;
    },
    async close() {
      if (closed) return;
      closed = true;
      listener.close();
      cutAll();
      await accepting;
      while (tasks.size > 0) await Promise.all([...tasks]);
    },
  };
}
