/**
 * The rendezvous directory against a real nats-server (PROTOCOL.md 16.5): a relay holding a
 * registration answers with its address, the others find it, and nobody answers once it is gone.
 */

import { strictEqual } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { RendezvousDirectory, rendezvousSubject } from "../../lib/cluster/rendezvous_directory.ts";
import { startNatsServers } from "../_helpers/nats_servers.ts";

const token = (byte: number) => new Uint8Array(32).fill(byte);

Deno.test("`RendezvousDirectory` finds the relay that holds a registration, until it is released", async () => {
  const servers = await startNatsServers(1);
  const [a, b] = await Promise.all([
    connect({ servers: servers.urls }),
    connect({ servers: servers.urls }),
  ]);
  try {
    const relayA = new RendezvousDirectory(a);
    const relayB = new RendezvousDirectory(b);
    strictEqual(await relayB.lookup(token(1)), undefined);
    const first = relayA.publish(token(1), "127.0.0.1:7001");
    const second = relayA.publish(token(1), "127.0.0.1:7001");
    await a.flush();
    strictEqual(await relayB.lookup(token(1)), "127.0.0.1:7001");
    strictEqual(await relayB.lookup(token(2)), undefined);
    first();
    first(); // a second call of the same release changes nothing
    await a.flush();
    strictEqual(await relayB.lookup(token(1)), "127.0.0.1:7001");
    second();
    await a.flush();
    strictEqual(await relayB.lookup(token(1)), undefined);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await servers.stop();
  }
});

Deno.test("`RendezvousDirectory.lookup()` ignores an answer that is not host:port", async () => {
  const servers = await startNatsServers(1);
  const [a, b] = await Promise.all([
    connect({ servers: servers.urls }),
    connect({ servers: servers.urls }),
  ]);
  try {
    const log: string[] = [];
    a.subscribe(rendezvousSubject(token(3)), {
      callback: (_, message) => {
        message.respond(new TextEncoder().encode("no port here"));
      },
    });
    await a.flush();
    strictEqual(
      await new RendezvousDirectory(b, { log: (line) => log.push(line) }).lookup(token(3)),
      undefined,
    );
    strictEqual(log.length, 1);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await servers.stop();
  }
});
