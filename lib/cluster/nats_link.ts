/**
 * A relay's link to the NATS cluster: the connection, the relay's id (16 random bytes drawn at
 * start), the JetStream stream that holds every room's log, and the heartbeats by which relays
 * learn that one of them is gone. It refuses to start, with one clear error, when NATS cannot be
 * reached or allows messages under 4 MiB.
 *
 * What it does not do: know rooms (lib/cluster/room_log.ts, cluster_rooms.ts), or trust NATS with
 * anything a relay would not show (NATS sees what 16.6 lists).
 *
 * Mirrors: docs/PROTOCOL.md sections 16.1 (the stream), 16.4 (heartbeats, a relay silent for 5
 * seconds is gone) and 16.6 (what NATS needs to allow).
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import { toHex } from "../core/bytes.ts";
import { SecurechatError } from "../core/errors.ts";
import { RELAY_ID_LENGTH } from "./room_entries.ts";

/** Section 16.1: the stream of every room's log and snapshots. */
export const ROOM_STREAM = "SECURECHAT_ROOMS";
export const ROOM_SUBJECTS = "securechat.room.>";
/** Section 16.4: where relays say they are alive. */
export const HEARTBEAT_SUBJECT = "securechat.relay.heartbeat";
/** Section 16.6: the smallest max_payload a relay accepts (a 1 MiB Commit with room to spare). */
export const MIN_MAX_PAYLOAD = 4 * 1024 * 1024;
/** Section 16.1: the stream's limits. */
export const ROOM_MAX_AGE_MS = 60 * 60 * 1000;
export const ROOM_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
export const DEFAULT_REPLICAS = 3;
/** Section 16.4: a heartbeat every second; a relay silent for 5 seconds is gone. */
export const HEARTBEAT_MS = 1_000;
export const SILENCE_MS = 5_000;
/**
 * How long a relay keeps trying to set up the stream: a JetStream cluster that has just started,
 * or is electing a leader, answers "no suitable peers for placement" or not at all for a while.
 */
export const STREAM_SETUP_MS = 20_000;
const STREAM_RETRY_MS = 250;

/** Options of {@linkcode connectCluster}. */
export interface ClusterOptions {
  /** NATS URLs (`nats://host:port`), tried in turn. */
  servers: string[];
  /** Copies of the stream (`--nats-replicas`); 1 for a single server. */
  replicas?: number;
  log?: (line: string) => void;
  /** Test overrides of HEARTBEAT_MS and SILENCE_MS. */
  heartbeatMs?: number;
  silenceMs?: number;
  /** Milliseconds clock. */
  now?: () => number;
}

/** A relay's link to the cluster. */
export interface ClusterLink {
  /** Section 16.1: 16 random bytes drawn when the relay starts. */
  readonly relayId: Uint8Array;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Milliseconds clock the link and its rooms share. */
  now(): number;
  /**
   * When `relay` was last heard (our own relay: now). A relay never heard counts from when this
   * link started listening, so that a relay gone before we started is found gone too.
   */
  lastHeard(relay: Uint8Array): number;
  /** Section 16.4: true when `relay` has been silent for SILENCE_MS (never our own). */
  isGone(relay: Uint8Array): boolean;
  /** True once `close()` was called or the connection to NATS closed for good. */
  readonly closed: boolean;
  /** Stops heartbeats and closes the connection (pending publishes are flushed if possible). */
  close(): Promise<void>;
}

/**
 * Connects to NATS, makes sure the room stream exists, and starts heartbeats.
 *
 * @throws {SecurechatError} `nats_unreachable` when no server answers, `nats_max_payload` when
 *   the servers accept messages under MIN_MAX_PAYLOAD, `nats_stream` when the stream cannot be
 *   made
 */
export async function connectCluster(options: ClusterOptions): Promise<ClusterLink> {
  const log = options.log ?? (() => {});
  const now = options.now ?? Date.now;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.servers,
      name: "securechat relay",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5_000,
    });
  } catch (error) {
    throw new SecurechatError(
      "nats_unreachable",
      `cannot reach NATS at ${options.servers.join(",")}: ${messageOf(error)}`,
      undefined,
      { hints: ["check --nats and that the servers are running with JetStream (-js)"] },
    );
  }
  try {
    const maxPayload = nc.info?.max_payload ?? 0;
    if (maxPayload < MIN_MAX_PAYLOAD) {
      throw new SecurechatError(
        "nats_max_payload",
        `NATS allows messages of ${maxPayload} bytes; a relay needs at least ${MIN_MAX_PAYLOAD}`,
        undefined,
        { hints: [`set max_payload: ${MIN_MAX_PAYLOAD} in the nats-server configuration`] },
      );
    }
    const jsm = await setUpStream(nc, options.replicas ?? DEFAULT_REPLICAS, log);
    return new Link(nc, jsm, options, now, log);
  } catch (error) {
    await nc.close().catch(() => {});
    if (error instanceof SecurechatError) throw error;
    throw new SecurechatError(
      "nats_stream",
      `cannot set up the stream ${ROOM_STREAM} on NATS: ${messageOf(error)}`,
      undefined,
      { hints: ["the servers need JetStream (-js) and the permissions of PROTOCOL.md 16.6"] },
    );
  }
}

/**
 * The JetStream manager and the room stream, tried again for STREAM_SETUP_MS while the cluster
 * is not ready; a server without JetStream, or a user not allowed the API, fails at once.
 */
async function setUpStream(
  nc: NatsConnection,
  replicas: number,
  log: (line: string) => void,
): Promise<JetStreamManager> {
  const deadline = Date.now() + STREAM_SETUP_MS;
  let said = false;
  while (true) {
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, replicas);
      return jsm;
    } catch (error) {
      const permanent = /not enabled|permission/i.test(messageOf(error));
      if (permanent || Date.now() + STREAM_RETRY_MS > deadline) throw error;
      if (!said) log(`JetStream is not ready (${messageOf(error)}): trying again`);
      said = true;
      await new Promise((resolve) => setTimeout(resolve, STREAM_RETRY_MS));
    }
  }
}

async function ensureStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const config = {
    name: ROOM_STREAM,
    subjects: [ROOM_SUBJECTS],
    storage: StorageType.File,
    "num_replicas": replicas,
    "max_age": ROOM_MAX_AGE_MS * 1_000_000,
    "max_msg_size": ROOM_MAX_MESSAGE_BYTES,
    "duplicate_window": DUPLICATE_WINDOW_MS * 1_000_000,
  };
  try {
    // Another relay made it (or an operator did): keep its settings.
    await jsm.streams.info(ROOM_STREAM);
  } catch (error) {
    if (!/not found/i.test(messageOf(error))) throw error;
    await jsm.streams.add(config).catch(async (raced) => {
      // Two relays starting at once: the other one's stream is as good as ours.
      await jsm.streams.info(ROOM_STREAM).catch(() => {
        throw raced;
      });
    });
  }
}

class Link implements ClusterLink {
  readonly relayId: Uint8Array = crypto.getRandomValues(new Uint8Array(RELAY_ID_LENGTH));
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly now: () => number;
  #silenceMs: number;
  #started: number;
  #heard = new Map<string, number>();
  #timer: ReturnType<typeof setInterval>;
  #subscription: Subscription;
  #closed = false;

  constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    options: ClusterOptions,
    now: () => number,
    log: (line: string) => void,
  ) {
    this.nc = nc;
    this.jsm = jsm;
    this.js = jetstream(nc);
    this.now = now;
    this.#silenceMs = options.silenceMs ?? SILENCE_MS;
    this.#started = now();
    const own = toHex(this.relayId);
    this.#subscription = nc.subscribe(HEARTBEAT_SUBJECT, {
      callback: (error, message) => {
        if (error || message.data.length !== RELAY_ID_LENGTH) return;
        const relay = toHex(message.data);
        if (relay !== own && !this.#heard.has(relay)) log(`relay ${relay.slice(0, 8)} is up`);
        this.#heard.set(relay, this.now());
      },
    });
    const beat = () => {
      if (!this.nc.isClosed()) this.nc.publish(HEARTBEAT_SUBJECT, this.relayId);
    };
    beat();
    this.#timer = setInterval(beat, options.heartbeatMs ?? HEARTBEAT_MS);
    nc.closed().then(() => {
      this.#closed = true;
      clearInterval(this.#timer);
    });
    log(`relay ${own.slice(0, 8)} joined the cluster`);
  }

  get closed(): boolean {
    return this.#closed;
  }

  lastHeard(relay: Uint8Array): number {
    const hex = toHex(relay);
    if (hex === toHex(this.relayId)) return this.now();
    return this.#heard.get(hex) ?? this.#started;
  }

  isGone(relay: Uint8Array): boolean {
    return this.now() - this.lastHeard(relay) >= this.#silenceMs;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#subscription.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
