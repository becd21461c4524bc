/**
 * Section 16.3 over a real nats-server: a relay serving a busy room publishes Snapshots, and a
 * relay that starts serving the room later takes its state from the last one. To show that the
 * state comes from the Snapshot and not from replaying the whole log, the log's entries before the
 * Snapshot are purged first: a relay that replayed the log from its first entry would find an
 * empty room and tell the newcomer to create the group. And a relay whose NATS node is cut off
 * from the stream's leader cannot read the last Snapshot: it holds a newcomer until it can.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import { SNAPSHOT_EVERY_ENTRIES } from "../../lib/cluster/cluster_room.ts";
import { connectCluster, ROOM_STREAM } from "../../lib/cluster/nats_link.ts";
import { decodeRoomEntry } from "../../lib/cluster/room_entries.ts";
import { logSubject, snapshotSubject } from "../../lib/cluster/room_log.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import {
  type ClusterRelay,
  JOINED,
  leaderElsewhere,
  startClusterRelay,
} from "../_helpers/cluster_relays.ts";
import { eventually, startNatsServers } from "../_helpers/nats_servers.ts";
import { keyPackage, privateMessage, random } from "../_helpers/mls_messages.ts";
import { identities, RelayPeer, securePairFor } from "../_helpers/relay_peers.ts";

/** Room limits high enough to put a few hundred entries in the log at once. */
const BUSY_ROOM = { groupRate: 100_000, groupBurst: 100_000 };

async function enter(
  via: ClusterRelay,
  relayIdentity: Identity,
  identity: Identity,
  token: Uint8Array,
): Promise<RelayPeer> {
  const { memberSide, relaySide } = await securePairFor(identity, relayIdentity);
  const served = via.rooms.enter(
    relaySide,
    { address: "127.0.0.1", from: "127.0.0.1:1" },
    token,
    "test",
  );
  deepStrictEqual(await memberSide.receive(), JOINED);
  await exchangeSessionHello(memberSide, "chat");
  return new RelayPeer(identity, await sha256(identity.spki), memberSide, served).startReading();
}

Deno.test("ClusterRooms: a relay that starts serving a room later takes its state from the last Snapshot", async () => {
  const servers = await startNatsServers(1);
  const first = await startClusterRelay(servers.urls, BUSY_ROOM);
  let second: ClusterRelay | undefined;
  const [relayIdentity, alice, bob] = await identities(3) as [Identity, Identity, Identity];
  const token = random(32);
  try {
    const a = await enter(first, relayIdentity, alice, token);
    deepStrictEqual(await a.expect("start"), { type: "start", role: "create" });
    // A group of one: alice's commit makes it, then enough messages for a Snapshot.
    const groupId = random(8);
    await a.send({
      type: "commit",
      commit: privateMessage({ groupId, epoch: 0n, contentType: "commit" }),
      recipients: [],
    });
    await a.until(() => a.inbox.some((m) => m.type === "accepted"), "Accepted");
    const count = Number(SNAPSHOT_EVERY_ENTRIES) + 20;
    for (let i = 0; i < count; i++) {
      await a.send({
        type: "group",
        message: privateMessage({ groupId, epoch: 1n, contentType: "application" }),
      });
    }
    // Alice's Direct to nobody is answered once the relay has applied everything before it.
    await a.barrier();

    const snapshot = await first.link.jsm.streams.getMessage(ROOM_STREAM, {
      last_by_subj: snapshotSubject(token),
    });
    ok(snapshot !== null, "the serving relay published a Snapshot");
    const entry = decodeRoomEntry(new Uint8Array(snapshot.data));
    ok(entry.type === "snapshot");
    ok(entry.position >= SNAPSHOT_EVERY_ENTRIES, `snapshot at ${entry.position}`);

    // Forget the log up to the Snapshot: only the Snapshot can now say who is in the room.
    const purged = await first.link.jsm.streams.purge(ROOM_STREAM, {
      filter: logSubject(token),
      seq: Number(entry.position) + 1,
    });
    ok(purged.purged >= Number(SNAPSHOT_EVERY_ENTRIES), `purged ${purged.purged}`);

    second = await startClusterRelay(servers.urls, BUSY_ROOM);
    const b = await enter(second, relayIdentity, bob, token);
    deepStrictEqual(await b.expect("start"), { type: "start", role: "wait" });
    const offer = keyPackage();
    await b.send({ type: "key_package", keyPackage: offer });
    await a.until(() => a.inbox.some((m) => m.type === "knock"), "bob's Knock at alice");
    const knock = a.inbox.find((m) => m.type === "knock");
    ok(knock?.type === "knock");
    deepStrictEqual(knock.sender, b.author);
    deepStrictEqual(knock.keyPackage, offer);
  } finally {
    for (const r of [first, second]) await r?.close();
    await servers.stop();
  }
});

Deno.test("ClusterRooms on a NATS node cut off from the stream's leader: a member entering a room is held while the last Snapshot cannot be read, and served once the partition heals", async () => {
  const servers = await startNatsServers(3);
  const setup = await connectCluster({ servers: servers.urls, replicas: 3 });
  let relay: ClusterRelay | undefined;
  try {
    const cutOff = 2;
    relay = await startClusterRelay([servers.urls[cutOff]!], undefined, 3);
    await leaderElsewhere(setup, servers, cutOff);
    servers.partition(cutOff);
    await eventually("the cut-off node has no routes", async () => {
      return await servers.routeCount(cutOff) === 0;
    });

    const [relayIdentity, alice] = await identities(2) as [Identity, Identity];
    const token = random(32);
    const a = await enter(relay, relayIdentity, alice, token);
    // Longer than one failed read (the client's 5 s request timeout): still held, nothing said.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    deepStrictEqual(a.inbox, []);
    deepStrictEqual(a.ending, undefined, "the connection is still open");

    servers.heal(cutOff);
    await eventually("the healed node has its two routes", async () => {
      return await servers.routeCount(cutOff) === 2;
    });
    deepStrictEqual(await a.expect("start"), { type: "start", role: "create" });
  } finally {
    await relay?.close();
    await setup.close();
    await servers.stop();
  }
});
