/**
 * Clustered relays in the test process: each its own ClusterLink (its own NATS connection and
 * relay id) and ClusterRooms, as `securechat relay --nats` makes them, on servers a test started
 * (tests/_helpers/nats_servers.ts). Connections are handed to them by the test, as the rendezvous
 * relay would after a Room request.
 *
 * @module
 */

import { ClusterRooms } from "../../lib/cluster/cluster_rooms.ts";
import { type ClusterLink, connectCluster } from "../../lib/cluster/nats_link.ts";
import type { RelayOptions } from "../../lib/room/relay.ts";

/** The Joined answer (PROTOCOL.md 15.2) the rooms send first, as a rendezvous relay does. */
export const JOINED = Uint8Array.of(0x84);

/** One relay of a cluster, in this process. */
export interface ClusterRelay {
  link: ClusterLink;
  rooms: ClusterRooms;
  /** Closes its rooms, then its NATS connection. */
  close(): Promise<void>;
}

/** A relay on `urls` with one replica of the room stream and the given room limits. */
export async function startClusterRelay(
  urls: string[],
  room?: Omit<RelayOptions, "log" | "now">,
): Promise<ClusterRelay> {
  const link = await connectCluster({ servers: urls, replicas: 1 });
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
