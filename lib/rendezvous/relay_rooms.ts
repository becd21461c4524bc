/**
 * The rooms a rendezvous relay hosts by name: one section-13 relay (lib/room/relay.ts) per room
 * token, made when the first connection enters it and dropped when its last one leaves. A
 * connection that asked for a room hears Joined and is handed to that room's relay, which runs
 * the room protocol from the SessionHello on; admission to the group is the members' business.
 *
 * What it does not do: learn or show a room's name (it has only the token), or pass the room
 * relay's log on: that log names members by fingerprint, which the rendezvous relay's log never
 * shows (15.1). Its own lines name addresses and a short hash of the token.
 *
 * Mirrors: docs/PROTOCOL.md section 15.5.
 *
 * @module
 */

import { toHex } from "../core/bytes.ts";
import type { Source } from "../transport/listener.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { Relay, type RelayOptions } from "../room/relay.ts";
import { encodeRendezvousAnswer } from "./rendezvous_messages.ts";

/** Options of {@linkcode RelayRooms}. */
export interface RelayRoomsOptions {
  /** Limits of every room (13.8). */
  room: Omit<RelayOptions, "log" | "now"> | undefined;
  now: () => number;
  keepaliveMs: number;
  log: (line: string) => void;
}

/** A room: its relay, and how many connections it serves. */
interface Room {
  readonly relay: Relay;
  connections: number;
}

/** The rooms of a rendezvous relay, by token. */
export class RelayRooms {
  #options: RelayRoomsOptions;
  #rooms = new Map<string, Room>();

  constructor(options: RelayRoomsOptions) {
    this.#options = options;
  }

  /** Rooms with at least one connection. */
  get size(): number {
    return this.#rooms.size;
  }

  /**
   * Room: Joined, then the room protocol in the room of `token`, until the connection ends.
   * Never throws; closes the connection when done.
   *
   * @param label the token's name in log lines
   */
  async enter(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    label: string,
  ): Promise<void> {
    // Counted in before anything is awaited, so that a close() meanwhile closes it too.
    const key = toHex(token);
    let room = this.#rooms.get(key);
    if (room === undefined) {
      const relay = new Relay({ ...this.#options.room, now: this.#options.now });
      room = { relay, connections: 0 };
      this.#rooms.set(key, room);
    }
    room.connections++;
    this.#options.log(`${source.from} joins room ${label} (${room.connections} connected)`);
    try {
      await secure.send(encodeRendezvousAnswer({ type: "joined" }));
      secure.startKeepalive(this.#options.keepaliveMs);
      await room.relay.join(secure);
    } catch {
      // The connection failed before the room took it: nothing to tell anyone.
    } finally {
      secure.close();
      room.connections--;
      this.#options.log(`${source.from} left room ${label} (${room.connections} connected)`);
      if (room.connections === 0 && this.#rooms.get(key) === room) {
        this.#rooms.delete(key);
        await room.relay.close();
      }
    }
  }

  /** Closes every room with a final Notice of `reason`. */
  async close(reason: string): Promise<void> {
    await Promise.all([...this.#rooms.values()].map((room) => room.relay.close(reason)));
  }
}
