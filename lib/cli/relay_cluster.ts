/**
 * `securechat relay --nats`: the relay's link to a NATS cluster (docs/PROTOCOL.md 16). It connects
 * to the cluster (lib/cluster/nats_link.ts), makes the cluster's rooms (lib/cluster/
 * cluster_rooms.ts: the room log of 16.1 to 16.4) and the directory of waiting registrations
 * (lib/cluster/rendezvous_directory.ts, 16.5), and hands the relay what it needs of them.
 *
 * What it does not do: parse flags (lib/cli/relay_command.ts does) or speak NATS itself.
 *
 * @module
 */

import { ClusterRooms } from "../cluster/cluster_rooms.ts";
import { connectCluster } from "../cluster/nats_link.ts";
import { RendezvousDirectory } from "../cluster/rendezvous_directory.ts";
import type { RelayOptions } from "../room/relay.ts";
import { encodeRendezvousAnswer } from "../rendezvous/rendezvous_messages.ts";
import type { RegistrationDirectory, RoomHost } from "../rendezvous/rendezvous_relay.ts";

/** Options of {@linkcode joinRelayCluster}. */
export interface RelayClusterOptions {
  /** NATS server URLs (`--nats`). */
  servers: string[];
  /** Copies of the room stream (`--nats-replicas`, default 3). */
  replicas: number;
  /** Limits of every room (13.8). */
  room: Omit<RelayOptions, "log" | "now">;
  keepaliveMs: number;
  log: (line: string) => void;
  now: () => number;
}

/** What a clustered relay takes from the cluster. */
export interface RelayCluster {
  rooms: RoomHost;
  directory: RegistrationDirectory;
  /** Stops answering lookups and closes the NATS connection (after the relay closed). */
  close(): Promise<void>;
}

/**
 * Connects to the cluster and makes its rooms and directory.
 *
 * @throws {SecurechatError} when NATS cannot be reached or does not allow what a relay needs (16.6)
 */
export async function joinRelayCluster(options: RelayClusterOptions): Promise<RelayCluster> {
  const link = await connectCluster({
    servers: options.servers,
    replicas: options.replicas,
    log: options.log,
  });
  const directory = new RendezvousDirectory(link.nc, { log: options.log });
  const rooms = new ClusterRooms({
    link,
    room: options.room,
    keepaliveMs: options.keepaliveMs,
    log: options.log,
    now: options.now,
    joined: encodeRendezvousAnswer({ type: "joined" }),
  });
  return {
    rooms,
    directory,
    close: async () => {
      directory.close();
      await link.close();
    },
  };
}
