/**
 * The NATS cluster of the cluster benchmark: `nodes` real nats-server processes with JetStream on
 * 127.0.0.1, each with its own store in a temporary folder, routes dialed directly (a full mesh),
 * max_payload 4 MiB as a relay needs (PROTOCOL.md 16.6), stopped by PID.
 *
 * Not tests/_helpers/nats_servers.ts: that one routes every byte between nodes through cuttable
 * proxies in the calling process, which would put JetStream's replication on the benchmark's own
 * CPU; here the nodes talk to each other as a deployed cluster does. It reuses that helper's
 * search for the binary and its free ports.
 *
 * @module
 */

import {
  freePort,
  natsServerPath,
  TEST_MAX_PAYLOAD,
  waitForJetStream,
  waitForPort,
} from "../tests/_helpers/nats_servers.ts";
import { processCpuMs } from "./_room_relay.ts";

/** A running cluster (or one node). */
export interface BenchNats {
  /** `nats://127.0.0.1:PORT` of each node, in order. */
  readonly urls: string[];
  readonly pids: number[];
  /** User + system CPU milliseconds of every node so far. */
  cpuMs(): Promise<number>;
  /** Stops every node (SIGKILL by PID) and removes the stores. */
  stop(): Promise<void>;
}

/**
 * Starts `nodes` JetStream servers (more than one form a cluster) and waits until JetStream
 * answers.
 */
export async function startBenchNats(nodes: number): Promise<BenchNats> {
  const binary = await natsServerPath();
  const root = await Deno.makeTempDir({ prefix: "securechat-bench-nats-" });
  const ports = Array.from({ length: nodes }, () => ({ client: freePort(), route: freePort() }));
  const children: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
    }
    await Deno.remove(root, { recursive: true }).catch(() => {});
  };
  try {
    for (let index = 0; index < nodes; index++) {
      const name = `n${index + 1}`;
      const routes = ports.filter((_, other) => other !== index)
        .map((other) => `nats-route://127.0.0.1:${other.route}`);
      const cluster = nodes === 1 ? "" : `cluster {\n  name: securechat-bench\n` +
        `  listen: 127.0.0.1:${ports[index]!.route}\n  routes: [${routes.join(", ")}]\n}\n`;
      const config = `${root}/${name}.conf`;
      await Deno.writeTextFile(
        config,
        `server_name: ${name}\nlisten: 127.0.0.1:${ports[index]!.client}\n` +
          `max_payload: ${TEST_MAX_PAYLOAD}\njetstream {\n  store_dir: "${root}/${name}"\n}\n` +
          cluster,
      );
      const child = new Deno.Command(binary, {
        args: ["-c", config],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      children.push(child);
      await waitForPort(ports[index]!.client, child, name);
    }
    await waitForJetStream(`nats://127.0.0.1:${ports[0]!.client}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    urls: ports.map((port) => `nats://127.0.0.1:${port.client}`),
    pids: children.map((child) => child.pid),
    async cpuMs() {
      const times = await Promise.all(children.map((child) => processCpuMs(child.pid)));
      return times.reduce((sum, ms) => sum + ms, 0);
    },
    stop,
  };
}
