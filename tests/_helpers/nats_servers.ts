/**
 * Real nats-server processes for tests: one JetStream server, or a cluster of them on loopback,
 * each with its own store in a temporary directory, stopped by PID. A test that needs NATS starts
 * its own servers here; when nats-server is missing it fails with how to install it (CI installs
 * it: .ci/run), it never skips.
 *
 * Every route between two nodes of a cluster goes through its own cuttable TCP proxy
 * (tests/_helpers/nats_partition.ts), one per direction of dialing: `partition(i)` cuts every route
 * of node i, so node i and its clients run on alone, cut off from the others as by a network fault,
 * and `heal(i)` lets the routes form again. `pause()` (SIGSTOP) stands in for a node that no longer
 * answers, `kill()` for a node that is gone. Each node also serves its monitoring endpoints
 * (`/healthz`, `/jsz`, `/routez`) on `monitorUrl`, where a test reads what that node itself holds.
 *
 * What it does not do: speak NATS (lib/cluster does, through the pinned client).
 *
 * @module
 */

import { type CuttableProxy, startCuttableProxy } from "./nats_partition.ts";

/** One nats-server process. */
export interface NatsNode {
  readonly name: string;
  /** Client port on 127.0.0.1. */
  readonly port: number;
  /** `nats://127.0.0.1:PORT`. */
  readonly url: string;
  /** `http://127.0.0.1:PORT` of the node's monitoring endpoints. */
  readonly monitorUrl: string;
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
  /** The folder holding every node's JetStream store (what NATS keeps on disk). */
  readonly storeRoot: string;
  /**
   * Cuts every route of node `index` (0-based) and refuses new ones until `heal(index)`; its
   * client port stays open, so its clients stay connected to a node that is alone.
   */
  partition(index: number): void;
  /** Lets the routes of node `index` form again (those to a node still partitioned stay cut). */
  heal(index: number): void;
  /** How many routes node `index` has now, from its `/routez`. */
  routeCount(index: number): Promise<number>;
  /** Stops every node and removes the stores. */
  stop(): Promise<void>;
}

/** The largest message a test server accepts: as a relay needs (PROTOCOL.md 16.6). */
export const TEST_MAX_PAYLOAD = 4 * 1024 * 1024;

/** A free TCP port on 127.0.0.1 for a server a test starts (tried, then released). */
export function freePort(): number {
  // Below Linux's ephemeral range (32768 and up), where a port-0 bind (a proxy, a client socket)
  // started before a server of the same cluster could take the port meant for it; and never the
  // same port twice in one process.
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      continue; // in use
    }
    handedOut.add(port);
    return port;
  }
  throw new Error("no free port between 20000 and 32000 on 127.0.0.1");
}

/** Ports freePort() returned in this process. */
const handedOut = new Set<number>();

/**
 * The nats-server binary: on PATH or where Debian, Ubuntu and Homebrew put it.
 *
 * @throws {Error} saying how to install it when there is none
 */
export async function natsServerPath(): Promise<string> {
  const found = await findNatsServer();
  if (found !== undefined) return found;
  // The README's test command must work on a fresh machine: where we may install (root with
  // apt-get, as in CI), install the Debian package once, for every test after this one too.
  installing ??= installNatsServer();
  await installing;
  const installed = await findNatsServer();
  if (installed !== undefined) return installed;
  throw new Error(
    "nats-server is not installed and could not be installed here: `apt-get install nats-server` " +
      "or `brew install nats-server` (the cluster tests need a real one)",
  );
}

let installing: Promise<void> | undefined;

async function findNatsServer(): Promise<string | undefined> {
  const name = Deno.build.os === "windows" ? "nats-server.exe" : "nats-server";
  const separator = Deno.build.os === "windows" ? ";" : ":";
  const folders = [
    ...(Deno.env.get("PATH") ?? "").split(separator).filter((folder) => folder !== ""),
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/bin",
  ];
  for (const folder of folders) {
    const path = `${folder}/${name}`;
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch {
      // try the next place
    }
  }
  return undefined;
}

/** Whether we are root, by `id -u` (the tests may run programs, not ask Deno for a uid). */
async function runningAsRoot(): Promise<boolean> {
  try {
    const { stdout } = await new Deno.Command("id", { args: ["-u"], stderr: "null" }).output();
    return new TextDecoder().decode(stdout).trim() === "0";
  } catch {
    return false;
  }
}

/** `apt-get install -y nats-server` as root, after `apt-get update` if the first try fails. */
async function installNatsServer(): Promise<void> {
  if (Deno.build.os !== "linux" || !await runningAsRoot()) return;
  const aptGet = async (...args: string[]): Promise<boolean> => {
    try {
      const { success } = await new Deno.Command("apt-get", {
        args,
        env: { DEBIAN_FRONTEND: "noninteractive" },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output();
      return success;
    } catch {
      return false; // no apt-get here
    }
  };
  // deno-lint-ignore no-console
  console.error("nats-server is missing: installing the Debian package for the cluster tests");
  if (await aptGet("install", "-y", "nats-server")) return;
  if (await aptGet("update")) await aptGet("install", "-y", "nats-server");
}

/** Waits until something accepts TCP connections on `port`. */
export async function waitForPort(
  port: number,
  child: Deno.ChildProcess,
  name: string,
): Promise<void> {
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
 * Starts `nodes` JetStream servers; more than one form a cluster (full mesh of routes, each
 * through its own cuttable proxy). Waits until each accepts clients; with a cluster, also until
 * JetStream has a meta leader (a stream can be made).
 */
export async function startNatsServers(nodes = 1): Promise<NatsServers> {
  const binary = await natsServerPath();
  const root = await Deno.makeTempDir({ prefix: "securechat-nats-" });
  const ports = Array.from(
    { length: nodes },
    () => ({ client: freePort(), route: freePort(), monitor: freePort() }),
  );
  // proxies[from][to]: the way node `from` dials node `to`'s route port.
  const proxies: (CuttableProxy | undefined)[][] = ports.map((_, from) =>
    ports.map((target, to) =>
      nodes > 1 && from !== to ? startCuttableProxy(target.route) : undefined
    )
  );
  // What each node advertises to the others: a proxy that stays cut. A node that hears of another
  // through gossip would otherwise dial its real route port and bypass the cuttable proxies; the
  // configured full mesh is every route the cluster needs.
  const nowhere = startCuttableProxy(0);
  nowhere.cut();
  const allProxies = [...proxies.flat().filter((proxy) => proxy !== undefined), nowhere];
  const partitioned = new Set<number>();
  const started: NatsNode[] = [];
  const children = new Map<string, Deno.ChildProcess>();

  const configOf = (index: number): string => {
    const name = `n${index + 1}`;
    const routes = proxies[index]!
      .filter((proxy) => proxy !== undefined)
      .map((proxy) => `nats-route://127.0.0.1:${proxy.port}`);
    const cluster = nodes > 1
      ? `cluster {\n  name: securechat-test\n  listen: 127.0.0.1:${ports[index]!.route}\n` +
        `  advertise: 127.0.0.1:${nowhere.port}\n  routes: [${routes.join(", ")}]\n}\n`
      : "";
    return `server_name: ${name}\nlisten: 127.0.0.1:${ports[index]!.client}\n` +
      `http: 127.0.0.1:${ports[index]!.monitor}\n` +
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

  const stopAll = async () => {
    for (const name of [...children.keys()]) await stopChild(name);
    for (const proxy of allProxies) await proxy.close();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  };

  const checkIndex = (index: number) => {
    if (!Number.isInteger(index) || index < 0 || index >= nodes) {
      throw new RangeError(`no node ${index}: the cluster has nodes 0 to ${nodes - 1}`);
    }
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
        monitorUrl: `http://127.0.0.1:${ports[index]!.monitor}`,
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
    if (nodes > 1) await waitForJetStream(started[0]!.url, nodes);
  } catch (error) {
    await stopAll();
    throw error;
  }

  return {
    storeRoot: root,
    nodes: started,
    urls: started.map((node) => node.url),
    partition(index) {
      checkIndex(index);
      partitioned.add(index);
      for (let other = 0; other < nodes; other++) {
        proxies[index]![other]?.cut();
        proxies[other]![index]?.cut();
      }
    },
    heal(index) {
      checkIndex(index);
      partitioned.delete(index);
      for (let other = 0; other < nodes; other++) {
        if (partitioned.has(other)) continue;
        proxies[index]![other]?.heal();
        proxies[other]![index]?.heal();
      }
    },
    async routeCount(index) {
      checkIndex(index);
      const response = await fetch(`${started[index]!.monitorUrl}/routez`);
      const routez = await response.json() as { num_routes: number };
      return routez.num_routes;
    },
    stop: stopAll,
  };
}

/**
 * A clustered JetStream takes a moment to elect its meta leader, and its leader a moment more to
 * hear from every node (until then a stream with a copy on each is refused with "no suitable peers
 * for placement", seen on a loaded machine): ask until it answers, and with `replicas`, until a
 * throwaway stream with that many copies can be made (it is deleted at once).
 */
export async function waitForJetStream(url: string, replicas = 1): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager, StorageType } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: url });
  try {
    const deadline = Date.now() + 30_000;
    while (true) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 1_000 });
        await jsm.getAccountInfo();
        if (replicas > 1) {
          const name = "HELPER_PLACEMENT_PROBE";
          await jsm.streams.add({
            name,
            subjects: ["helper.placement.probe"],
            storage: StorageType.Memory,
            "num_replicas": replicas,
          });
          await jsm.streams.delete(name);
        }
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

/** A stream as one node's own copy holds it (not the leader's), from that node's `/jsz`. */
export interface ReplicaState {
  messages: number;
  bytes: number;
  "first_seq": number;
  "last_seq": number;
}

/** Stream `stream` as `node` itself stores it; undefined when the node holds no copy. */
export async function replicaState(
  node: NatsNode,
  stream: string,
): Promise<ReplicaState | undefined> {
  const response = await fetch(`${node.monitorUrl}/jsz?streams=true`);
  const jsz = await response.json() as {
    "account_details"?: { "stream_detail"?: { name: string; state: ReplicaState }[] }[];
  };
  for (const account of jsz.account_details ?? []) {
    for (const detail of account.stream_detail ?? []) {
      if (detail.name === stream) {
        const { messages, bytes, first_seq, last_seq } = detail.state;
        return { messages, bytes, first_seq, last_seq };
      }
    }
  }
  return undefined;
}

/**
 * Waits until `check` holds (a check that throws counts as not yet), asking again every 250 ms,
 * for at most 60 s: elections, routes and catch-up in a NATS cluster take seconds.
 */
export async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`still not true after 60 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
