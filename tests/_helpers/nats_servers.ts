/**
 * Real nats-server processes for tests: one JetStream server, or a cluster of them on loopback,
 * each with its own store in a temporary directory, stopped by PID. A test that needs NATS starts
 * its own servers here; when nats-server is missing it fails with how to install it (CI installs
 * it: .ci/run), it never skips.
 *
 * What it does not do: speak NATS (lib/cluster does, through the pinned client), or cut routes
 * between nodes (a partition is a node whose routes are stopped: `pause()` with SIGSTOP stands in
 * for a node that no longer answers, `kill()` for a node that is gone).
 *
 * @module
 */

/** One nats-server process. */
export interface NatsNode {
  readonly name: string;
  /** Client port on 127.0.0.1. */
  readonly port: number;
  /** `nats://127.0.0.1:PORT`. */
  readonly url: string;
  readonly pid: number;
  /** Stops the process with SIGKILL and waits for it; the store is kept for `restart()`. */
  kill(): Promise<void>;
  /** Starts the node again on the same ports and store (after `kill()`). */
  restart(): Promise<void>;
  /** SIGSTOP: the node holds its sockets but answers nothing. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
}

/** Servers started for one test. */
export interface NatsServers {
  readonly nodes: NatsNode[];
  /** Every node's URL, for a client that fails over. */
  readonly urls: string[];
  /** Stops every node and removes the stores. */
  stop(): Promise<void>;
}

/** The largest message a test server accepts: as a relay needs (PROTOCOL.md 16.6). */
export const TEST_MAX_PAYLOAD = 4 * 1024 * 1024;

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function requireNatsServer(): Promise<string> {
  for (
    const path of ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
  ) {
    try {
      await Deno.stat(path);
      return path;
    } catch {
      // try the next place
    }
  }
  throw new Error(
    "nats-server is not installed: `apt-get install nats-server` (.ci/run does it), " +
      "the cluster tests need a real one",
  );
}

/** Waits until something accepts TCP connections on `port`. */
async function waitForPort(port: number, child: Deno.ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`nats-server ${name} exited while starting`);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nats-server ${name} did not listen on ${port} within 15 s`);
}

/**
 * Starts `nodes` JetStream servers; more than one form a cluster (full mesh of routes). Waits
 * until each accepts clients; with a cluster, also until JetStream has a meta leader (a stream
 * can be made).
 */
export async function startNatsServers(nodes = 1): Promise<NatsServers> {
  const binary = await requireNatsServer();
  const root = await Deno.makeTempDir({ prefix: "securechat-nats-" });
  const ports = Array.from({ length: nodes }, () => ({ client: freePort(), route: freePort() }));
  const started: NatsNode[] = [];
  const children = new Map<string, Deno.ChildProcess>();

  const configOf = (index: number): string => {
    const name = `n${index + 1}`;
    const routes = ports
      .filter((_, other) => other !== index)
      .map((p) => `nats-route://127.0.0.1:${p.route}`);
    const cluster = nodes > 1
      ? `cluster {\n  name: securechat-test\n  listen: 127.0.0.1:${ports[index]!.route}\n` +
        `  routes: [${routes.join(", ")}]\n}\n`
      : "";
    return `server_name: ${name}\nlisten: 127.0.0.1:${ports[index]!.client}\n` +
      `max_payload: ${TEST_MAX_PAYLOAD}\n` +
      `jetstream {\n  store_dir: "${root}/${name}"\n}\n${cluster}`;
  };

  const spawn = async (index: number): Promise<Deno.ChildProcess> => {
    const name = `n${index + 1}`;
    const config = `${root}/${name}.conf`;
    await Deno.writeTextFile(config, configOf(index));
    const child = new Deno.Command(binary, {
      args: ["-c", config],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.set(name, child);
    await waitForPort(ports[index]!.client, child, name);
    return child;
  };

  const stopChild = async (name: string): Promise<void> => {
    const child = children.get(name);
    if (child === undefined) return;
    children.delete(name);
    try {
      child.kill("SIGCONT");
    } catch {
      // already gone
    }
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  };

  try {
    for (let index = 0; index < nodes; index++) {
      const name = `n${index + 1}`;
      await spawn(index);
      const port = ports[index]!.client;
      started.push({
        name,
        port,
        url: `nats://127.0.0.1:${port}`,
        get pid() {
          return children.get(name)?.pid ?? -1;
        },
        kill: () => stopChild(name),
        restart: async () => {
          await stopChild(name);
          await spawn(index);
        },
        pause: () => children.get(name)?.kill("SIGSTOP"),
        resume: () => children.get(name)?.kill("SIGCONT"),
      });
    }
    if (nodes > 1) await waitForJetStream(started[0]!.url);
  } catch (error) {
    for (const name of [...children.keys()]) await stopChild(name);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }

  return {
    nodes: started,
    urls: started.map((node) => node.url),
    async stop() {
      for (const name of [...children.keys()]) await stopChild(name);
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/** A clustered JetStream takes a moment to elect its meta leader: ask until it answers. */
async function waitForJetStream(url: string): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: url });
  try {
    const deadline = Date.now() + 20_000;
    while (true) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 1_000 });
        await jsm.getAccountInfo();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    await nc.close();
  }
}
