/**
 * Clustered relays in the test process: each its own ClusterLink (its own NATS connection and
 * relay id) and ClusterRooms, as `securechat relay --nats` makes them, on servers a test started
 * (tests/_helpers/nats_servers.ts). Connections are handed to them by the test, as the rendezvous
 * relay would after a Room request.
 *
 * @module
 */

import { ClusterRooms } from "../../lib/cluster/cluster_rooms.ts";
import { type ClusterLink, connectCluster, ROOM_STREAM } from "../../lib/cluster/nats_link.ts";
import type { RelayOptions } from "../../lib/room/relay.ts";
import { eventually, type NatsServers } from "./nats_servers.ts";

/** The Joined answer (PROTOCOL.md 15.2) the rooms send first, as a rendezvous relay does. */
export const JOINED = Uint8Array.of(0x84);

/** One relay of a cluster, in this process. */
export interface ClusterRelay {
  link: ClusterLink;
  rooms: ClusterRooms;
  /** Closes its rooms, then its NATS connection. */
  close(): Promise<void>;
}

/**
 * A relay on `urls` with the given room limits, making the room stream with `replicas` copies
 * (one unless a test runs several NATS nodes) if it does not exist yet.
 */
export async function startClusterRelay(
  urls: string[],
  room?: Omit<RelayOptions, "log" | "now">,
  replicas = 1,
): Promise<ClusterRelay> {
  const link = await connectCluster({ servers: urls, replicas });
  const rooms = new ClusterRooms({
    link,
    room,
    now: Date.now,
    keepaliveMs: 60_000,
    log: () => {},
    joined: JOINED,
  });
  return {
    link,
    rooms,
    async close() {
      await rooms.close("the test is over");
      await link.close();
    },
  };
}

/**
 * Returns once the room stream's leader is a node other than `index`, asking a leader on `index`
 * to step down: a test that cuts node `index` off wants the log's leader on the majority's side
 * (a cut-off leader goes on answering from its own copy until it notices it lost its majority).
 */
export async function leaderElsewhere(
  link: ClusterLink,
  servers: NatsServers,
  index: number,
): Promise<void> {
  const avoided = servers.nodes[index]!.name;
  await eventually(`the room stream is led by a node other than ${avoided}`, async () => {
    const leader = (await link.jsm.streams.info(ROOM_STREAM)).cluster?.leader;
    if (leader === avoided) {
      await link.nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${ROOM_STREAM}`);
      return false;
    }
    return servers.nodes.some((node) => node.name === leader);
  });
}
