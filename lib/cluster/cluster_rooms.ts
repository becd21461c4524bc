/**
 * The rooms a clustered relay serves, by room token: the drop-in for RelayRooms
 * (lib/rendezvous/relay_rooms.ts) when the relay runs with `--nats`. A room is served here while
 * this relay holds a connection of it (or a broken one within its grace); its state lives in the
 * room log that every relay of the cluster shares, so members on different relays are in one
 * room.
 *
 * The rendezvous answer Joined is the caller's encoding (this layer sits below rendezvous): it is
 * given once, as bytes, in the options, and sent before the room protocol as RelayRooms does.
 *
 * What it does not do: show a room's name (it has only the token; its own lines name addresses and
 * the caller's label), or pass the room's fingerprint-naming log lines on (15.1).
 *
 * Mirrors: docs/PROTOCOL.md sections 15.5 and 16.2 to 16.4.
 *
 * @module
 */

import { toHex } from "../core/bytes.ts";
import type { RelayOptions } from "../room/relay.ts";
import type { Source } from "../transport/listener.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { ClusterRoom, RESUME_GRACE_MS } from "./cluster_room.ts";
import type { ClusterLink } from "./nats_link.ts";

/** Options of {@linkcode ClusterRooms}. */
export interface ClusterRoomsOptions {
  link: ClusterLink;
  /** Limits of every room (13.8); maxMembers must be the same on every relay of the cluster. */
  room: Omit<RelayOptions, "log" | "now"> | undefined;
  now: () => number;
  keepaliveMs: number;
  log: (line: string) => void;
  /** The rendezvous answer Joined (15.2), encoded: sent first on every room connection. */
  joined: Uint8Array;
  /** RESUME_GRACE_MS (16.4); shorter in tests. */
  graceMs?: number;
}

/** The rooms of a clustered relay, by token. */
export class ClusterRooms {
  #options: ClusterRoomsOptions;
  #rooms = new Map<string, ClusterRoom>();

  constructor(options: ClusterRoomsOptions) {
    this.#options = options;
  }

  /** Rooms this relay serves (a connection, or a broken one within its grace). */
  get size(): number {
    return this.#rooms.size;
  }

  #room(token: Uint8Array): ClusterRoom {
    const key = toHex(token);
    let room = this.#rooms.get(key);
    if (room === undefined) {
      const made: ClusterRoom = new ClusterRoom({
        link: this.#options.link,
        token,
        room: this.#options.room,
        now: this.#options.now,
        // The room's lines name members by fingerprint, which a rendezvous relay never logs.
        log: () => {},
        graceMs: this.#options.graceMs ?? RESUME_GRACE_MS,
        onIdle: () => {
          if (this.#rooms.get(key) !== made || made.busy) return;
          this.#rooms.delete(key);
          made.stop();
        },
      });
      room = made;
      this.#rooms.set(key, room);
    }
    return room;
  }

  /**
   * Room: Joined, then the room protocol in the room of `token`, until the connection ends.
   * Never throws; closes the connection when done.
   *
   * @param label the token's name in log lines
   */
  enter(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    label: string,
  ): Promise<void> {
    return this.#serve(secure, source, token, label, undefined);
  }

  /**
   * ResumeRoom (16.4): Joined, then the room protocol, continuing the member's session after
   * `position`. Never throws; closes the connection when done.
   */
  resume(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    position: bigint,
    label: string,
  ): Promise<void> {
    return this.#serve(secure, source, token, label, position);
  }

  async #serve(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    label: string,
    position: bigint | undefined,
  ): Promise<void> {
    // Made before anything is awaited, so that a close() meanwhile closes it too.
    const room = this.#room(token);
    const verb = position === undefined ? "joins" : `resumes after ${position} in`;
    this.#options.log(`${source.from} ${verb} room ${label}`);
    try {
      await secure.send(this.#options.joined);
      secure.startKeepalive(this.#options.keepaliveMs);
      await room.serve(secure, position);
    } catch {
      // The connection failed before the room took it: nothing to tell anyone.
      secure.close();
    } finally {
      this.#options.log(`${source.from} left room ${label}`);
      const key = toHex(token);
      if (!room.busy && this.#rooms.get(key) === room) {
        this.#rooms.delete(key);
        room.stop();
      }
    }
  }

  /** Closes every room with a final Notice of `reason` (their members' Left is published). */
  async close(reason: string): Promise<void> {
    const rooms = [...this.#rooms.values()];
    this.#rooms.clear();
    await Promise.all(rooms.map((room) => room.close(reason)));
  }
}
