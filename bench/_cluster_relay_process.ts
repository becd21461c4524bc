/**
 * A relay process of the cluster benchmark: what `securechat relay --nats URL --advertise
 * HOST:PORT` runs (lib/cli/relay_cluster.ts's joinRelayCluster, then a RendezvousRelay with the
 * cluster's rooms and directory, lib/cli/relay_command.ts), or without `nats` the single relay of
 * section 15 (its own RelayRooms), on 127.0.0.1, port 0. Every room connection is wrapped to count
 * the relay's side of each delivery: a Group message handed to a member's connection (one record,
 * 13.4 Fan-out) is counted once its write is done, so relay-side deliveries are records the relay
 * wrote, whatever the members do with them afterwards.
 *
 * It answers, over bench/_rpc.ts: `port`, `clock` (its wall clock, for the parent's offset),
 * `deliveries` (records written since the last call, with the first and last write times),
 * `track` (start or stop noting per-message times), `timings` (per Group message: when this relay
 * read it from its sender, when it wrote its last copy; then forgets them), `close`.
 *
 * Not the CLI: no flag parsing, signals or terminal output; connection limits per address are
 * raised, since every member dials from 127.0.0.1. The relay, its rooms and the cluster code are
 * the product's.
 *
 * `deno run <flags> bench/_cluster_relay_process.ts OPTIONS_JSON` (see {@linkcode
 * ClusterRelayOptions})
 *
 * @module
 */

import { toHex } from "../lib/core/bytes.ts";
import { RELAY_MESSAGE } from "../lib/chat/relay_messages.ts";
import { joinRelayCluster, type RelayCluster } from "../lib/cli/relay_cluster.ts";
import { loadIdentity } from "../lib/keys/identity_file.ts";
import { RelayRooms } from "../lib/rendezvous/relay_rooms.ts";
import {
  DEFAULT_RELAY_KEEPALIVE_MS,
  RendezvousRelay,
  type RoomHost,
} from "../lib/rendezvous/rendezvous_relay.ts";
import type { SecureConnection } from "../lib/transport/secure_connection.ts";
import { serveRpc } from "./_rpc.ts";

/** What the parent passes, as JSON in the first argument. */
export interface ClusterRelayOptions {
  /** The relays' shared private key file (16: one key for the cluster). */
  keyFile: string;
  /** NATS URLs (`--nats`); absent: a single relay. */
  nats?: string[];
  /** `--nats-replicas`. */
  replicas?: number;
  /** Members a room may hold. */
  maxMembers: number;
}

/** One Group message's way through this relay, wall-clock milliseconds. */
export interface MessageTiming {
  /** When this relay read it from its sender (absent: the sender is on another relay). */
  inAt?: number;
  /** When this relay's last copy of it was written (absent: it wrote none). */
  lastOutAt?: number;
}

/** Relay-side deliveries since the last call. */
export interface Deliveries {
  count: number;
  firstAt: number;
  lastAt: number;
}

function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

let deliveries: Deliveries = { count: 0, firstAt: 0, lastAt: 0 };
let tracking = false;
const timings = new Map<string, MessageTiming>();

/** A Group message is known by its last 16 bytes (its ciphertext's tag), the same in every copy. */
const keyOf = (bytes: Uint8Array) => toHex(bytes.subarray(bytes.length - 16));

function noteWritten(messages: Uint8Array[]): void {
  const now = wallNow();
  for (const message of messages) {
    if (message[0] !== RELAY_MESSAGE.groupFromRelay) continue;
    if (deliveries.count++ === 0) deliveries.firstAt = now;
    deliveries.lastAt = now;
    if (!tracking) continue;
    const key = keyOf(message);
    const timing = timings.get(key) ?? {};
    timing.lastOutAt = now;
    timings.set(key, timing);
  }
}

/**
 * The connection as the room sees it, with its writes and reads noted. A Proxy, not a subclass:
 * the rooms take the SecureConnection the relay made, private fields and all.
 */
function counted(secure: SecureConnection): SecureConnection {
  return new Proxy(secure, {
    get(target, property) {
      switch (property) {
        case "send":
          return async (data: Uint8Array) => {
            await target.send(data);
            noteWritten([data]);
          };
        case "sendBatch":
          return async (messages: Uint8Array[]) => {
            await target.sendBatch(messages);
            noteWritten(messages);
          };
        case "receive":
          return async () => {
            const data = await target.receive();
            if (tracking && data !== null && data[0] === RELAY_MESSAGE.group && data.length > 16) {
              timings.set(keyOf(data), { inAt: wallNow() });
            }
            return data;
          };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The relay's rooms, each connection wrapped by {@linkcode counted}. */
function countingRooms(inner: RoomHost): RoomHost {
  return {
    get size() {
      return inner.size;
    },
    enter: (secure, source, token, label) => inner.enter(counted(secure), source, token, label),
    ...(inner.resume === undefined ? {} : {
      resume: (secure, source, token, position, label) =>
        inner.resume!(counted(secure), source, token, position, label),
    }),
    close: (reason) => inner.close(reason),
  };
}

if (import.meta.main) {
  const options = JSON.parse(Deno.args[0] ?? "{}") as ClusterRelayOptions;
  const identity = await loadIdentity(options.keyFile, {
    passphrase: () => Promise.reject(new Error("the bench's relay key has no passphrase")),
  });
  const encoder = new TextEncoder();
  // The relay's log, to stderr: the parent keeps its last lines for errors.
  const log = (line: string) => Deno.stderr.writeSync(encoder.encode(`${line}\n`));
  const room = { maxMembers: options.maxMembers };
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let cluster: RelayCluster | undefined;
  if (options.nats !== undefined) {
    cluster = await joinRelayCluster({
      servers: options.nats,
      replicas: options.replicas ?? 3,
      room,
      keepaliveMs: DEFAULT_RELAY_KEEPALIVE_MS,
      log,
      now: Date.now,
    });
  }
  const rooms = cluster?.rooms ??
    new RelayRooms({ room, now: Date.now, keepaliveMs: DEFAULT_RELAY_KEEPALIVE_MS, log });
  const relay = new RendezvousRelay({
    identity,
    room,
    log,
    // Every member dials from 127.0.0.1.
    limits: {
      maxConnectionsPerAddress: 1_000_000,
      maxPendingHandshakes: 10_000,
      maxPendingPerAddress: 10_000,
    },
    rooms: countingRooms(rooms),
    ...(cluster === undefined
      ? {}
      : { directory: cluster.directory, advertise: `127.0.0.1:${port}` }),
  });
  relay.serve(listener);
  await serveRpc(async (request) => {
    switch (request.call) {
      case "port":
        return port;
      case "clock":
        return wallNow();
      case "deliveries": {
        const done = deliveries;
        deliveries = { count: 0, firstAt: 0, lastAt: 0 };
        return done;
      }
      case "track":
        tracking = request.on === true;
        timings.clear();
        return null;
      case "timings": {
        const done = Object.fromEntries(timings);
        timings.clear();
        return done;
      }
      case "close":
        await relay.close();
        await cluster?.close();
        return null;
      default:
        throw new Error(`unknown call ${String(request.call)}`);
    }
  });
  Deno.exit(0);
}
