/**
 * Section 16.1 over three real nats-server nodes: a relay reads a room's log from the stream's
 * leader, never from its own node's copy. The relay here is a RoomLog whose client knows only one
 * node; that node is cut off (not the leader) while entries are stored on the other side. Read
 * from the node's copy (direct gets, as relays did before), `entries(1, 4)` came back at once with
 * two entries and no error, or the last position came back as 2: a member resuming there would
 * have been told it had everything. Read from the leader, the read fails until the partition
 * heals, then returns all four.
 */

import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { type ClusterLink, connectCluster, ROOM_STREAM } from "../../lib/cluster/nats_link.ts";
import type { RoomEntry } from "../../lib/cluster/room_entries.ts";
import { RoomLog } from "../../lib/cluster/room_log.ts";
import { toHex } from "../../lib/core/bytes.ts";
import { leaderElsewhere } from "../_helpers/cluster_relays.ts";
import { random } from "../_helpers/mls_messages.ts";
import { eventually, replicaState, startNatsServers } from "../_helpers/nats_servers.ts";

/** The log's entries from 1 to `to`, as the connections they name (hex), in order. */
async function connectionsInLog(log: RoomLog, to: bigint): Promise<string[]> {
  const seen: string[] = [];
  for await (const [, entry] of log.entries(1n, to)) {
    ok(entry.type === "left");
    seen.push(toHex(entry.connection));
  }
  return seen;
}

Deno.test("RoomLog on a NATS node cut off from the leader: reading the log fails instead of answering from the node's own stale copy, and after heal() returns every entry", async () => {
  const servers = await startNatsServers(3);
  const links: ClusterLink[] = [];
  try {
    const first = await connectCluster({ servers: servers.urls, replicas: 3 });
    links.push(first);
    const cutOff = 2;
    const others = servers.urls.filter((_, index) => index !== cutOff);
    const majority = await connectCluster({ servers: others, replicas: 3 });
    const alone = await connectCluster({ servers: [servers.urls[cutOff]!], replicas: 3 });
    links.push(majority, alone);

    const token = random(32);
    const writer = new RoomLog(majority, token, () => {});
    const reader = new RoomLog(alone, token, () => {});
    const entries: RoomEntry[] = [];
    const store = async () => {
      const entry: RoomEntry = { type: "left", author: random(32), connection: random(16) };
      const position = await writer.publish(entry, `entry.${entries.length}`, () => true);
      entries.push(entry);
      return position;
    };
    const connections = () =>
      entries.map((entry) => toHex((entry as { connection: Uint8Array }).connection));

    await store();
    await store();
    // The cut-off node's own copy holds these two before the cut.
    await eventually("the node's copy holds two entries", async () => {
      return (await replicaState(servers.nodes[cutOff]!, ROOM_STREAM))?.last_seq === 2;
    });
    deepStrictEqual(await connectionsInLog(reader, 2n), connections());

    await leaderElsewhere(first, servers, cutOff);
    servers.partition(cutOff);
    await eventually("the cut-off node has no routes", async () => {
      return await servers.routeCount(cutOff) === 0;
    });
    deepStrictEqual(await store(), 3n);
    deepStrictEqual(await store(), 4n);
    deepStrictEqual(await connectionsInLog(writer, 4n), connections());
    deepStrictEqual((await replicaState(servers.nodes[cutOff]!, ROOM_STREAM))?.last_seq, 2);

    await rejects(connectionsInLog(reader, 4n));
    await rejects(reader.lastPosition());

    servers.heal(cutOff);
    await eventually("the healed node has its two routes", async () => {
      return await servers.routeCount(cutOff) === 2;
    });
    let read: string[] = [];
    await eventually("the log reads whole through the healed node", async () => {
      read = await connectionsInLog(reader, 4n);
      return read.length === 4;
    });
    deepStrictEqual(read, connections());
    deepStrictEqual(await reader.lastPosition(), 4n);
  } finally {
    for (const link of links) await link.close();
    await servers.stop();
  }
});
