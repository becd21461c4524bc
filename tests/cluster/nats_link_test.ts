import { ok, rejects, strictEqual } from "node:assert/strict";
import { SecurechatError } from "../../lib/core/errors.ts";
import {
  connectCluster,
  DUPLICATE_WINDOW_MS,
  MIN_MAX_PAYLOAD,
  ROOM_MAX_AGE_MS,
  ROOM_STREAM,
} from "../../lib/cluster/nats_link.ts";
import { freePort, startNatsServers } from "../_helpers/nats_servers.ts";

Deno.test("connectCluster() makes the room stream of 16.1 and draws a relay id", async () => {
  const servers = await startNatsServers(1);
  try {
    const link = await connectCluster({ servers: servers.urls, replicas: 1 });
    const second = await connectCluster({ servers: servers.urls, replicas: 1 });
    try {
      const info = await link.jsm.streams.info(ROOM_STREAM);
      strictEqual(info.config.subjects.join(), "securechat.room.>");
      strictEqual(info.config.storage, "file");
      strictEqual(info.config.max_age, ROOM_MAX_AGE_MS * 1_000_000);
      strictEqual(info.config.max_msg_size, MIN_MAX_PAYLOAD);
      strictEqual(info.config.duplicate_window, DUPLICATE_WINDOW_MS * 1_000_000);
      strictEqual(link.relayId.length, 16);
      ok(link.relayId.some((byte, i) => byte !== second.relayId[i]));
    } finally {
      await second.close();
      await link.close();
    }
  } finally {
    await servers.stop();
  }
});

Deno.test("ClusterLink hears other relays' heartbeats and finds a silent one gone", async () => {
  const servers = await startNatsServers(1);
  try {
    const options = { servers: servers.urls, replicas: 1, heartbeatMs: 100, silenceMs: 600 };
    const a = await connectCluster(options);
    const b = await connectCluster(options);
    try {
      const deadline = Date.now() + 10_000;
      while (a.lastHeard(b.relayId) < Date.now() - 300 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      strictEqual(a.isGone(b.relayId), false);
      strictEqual(a.isGone(a.relayId), false);
      await b.close();
      while (!a.isGone(b.relayId)) {
        if (Date.now() > deadline) throw new Error("a never found b gone");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      strictEqual(a.isGone(a.relayId), false);
    } finally {
      await b.close();
      await a.close();
    }
  } finally {
    await servers.stop();
  }
});

Deno.test("connectCluster() refuses an unreachable NATS with a clear error", async () => {
  await rejects(
    connectCluster({ servers: [`nats://127.0.0.1:${freePort()}`], replicas: 1 }),
    (error) => error instanceof SecurechatError && error.code === "nats_unreachable",
  );
});

Deno.test("connectCluster() refuses a NATS whose max_payload is under 4 MiB", async () => {
  const port = freePort();
  const store = await Deno.makeTempDir({ prefix: "securechat-nats-small-" });
  const child = new Deno.Command("/usr/sbin/nats-server", {
    args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let link;
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        link = await connectCluster({ servers: [`nats://127.0.0.1:${port}`], replicas: 1 });
        break;
      } catch (error) {
        if (error instanceof SecurechatError && error.code === "nats_max_payload") {
          ok(/at least 4194304/.test(error.message), error.message);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await link?.close();
    throw new Error("a server with the default 1 MiB max_payload was accepted");
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(store, { recursive: true });
  }
});
