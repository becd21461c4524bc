/**
 * One member's outgoing queue at the relay. Every message the room hands a member is queued here
 * and a single pump per member drains the queue in batches (many records, one write), so one slow
 * member never holds up the others, and a member whose backlog grows past MAX_PENDING_BYTES is
 * dropped instead of holding the relay's memory. Its farewell (the queue, then close_notify, within
 * a deadline) ends a member's connection the same way for a single relay and a clustered one.
 *
 * What it does not do: decide who gets what (lib/room/relay.ts and lib/cluster route) or build
 * messages.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.4 (everything a member receives comes in the order the
 * relay accepted it) and 13.8 (a member whose queue passes 16 MiB is too slow; the others are not
 * affected).
 *
 * @module
 */

import type { RoomConnection } from "./room_connection.ts";

/**
 * Section 13.8: bytes queued for one member before it counts as too slow and is dropped. Twice a
 * file transfer's window (8 MiB, lib/transfer/transfer_messages.ts), which a recipient that reads
 * its socket slower than the sender sends may have queued here, with room for the chat beside it.
 * (8 MiB with the 4 MiB window before issue 16.)
 */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** How long a connection being closed is given to take its last messages and close_notify. */
export const FAREWELL_MS = 5_000;
/** At most this many queued messages, or about this many bytes, go out in one write. */
const BATCH_MESSAGES = 256;
const BATCH_BYTES = 64 * 1024;

/** The messages on their way to one member. */
export class MemberOutbox {
  #connection: RoomConnection;
  #name: string;
  #log: (line: string) => void;
  #pending = 0;
  /** Messages not yet handed to the connection; one pump per member drains them in batches. */
  #queue: Uint8Array[] = [];
  #pumping = false;
  #pumped: Promise<void> = Promise.resolve();
  /** Set once the member is gone: nothing more is queued or sent. */
  gone = false;
  /** Set when sending to the member failed: why it is gone. */
  lost?: string;

  /**
   * @param connection the member's connection
   * @param name the member's name, for the log line when it is dropped
   * @param log operator log lines
   */
  constructor(connection: RoomConnection, name: string, log: (line: string) => void) {
    this.#connection = connection;
    this.#name = name;
    this.#log = log;
  }

  /** Queues a message for the member; drops the member when its backlog is too large. */
  deliver(bytes: Uint8Array): void {
    if (this.gone) return;
    this.#pending += bytes.length;
    if (this.#pending > MAX_PENDING_BYTES) {
      this.#log(`dropping "${this.#name}": it does not keep up with the room`);
      this.gone = true;
      this.lost = "dropped: it did not keep up with the room";
      this.#connection.close();
      return;
    }
    this.#queue.push(bytes);
    if (!this.#pumping) {
      this.#pumping = true;
      this.#pumped = this.#pump();
    }
  }

  /**
   * Drains the queue: what piled up while the last write was under way goes out as one
   * batch (many records, one write). A queued message costs an array slot and shares its bytes
   * with every other recipient, so a burst to a slow member stays small until it is sealed.
   */
  async #pump(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.gone) {
        let size = 0;
        let count = 0;
        while (count < this.#queue.length && count < BATCH_MESSAGES && size < BATCH_BYTES) {
          size += this.#queue[count++]!.length;
        }
        const batch = this.#queue.splice(0, count);
        await this.#connection.sendBatch(batch);
        this.#pending -= size;
      }
    } catch {
      this.gone = true;
      this.lost ??= "connection lost (it stopped accepting data)";
      this.#connection.close();
    } finally {
      // Runs before this call's promise settles, so deliver() never sees a pump that has stopped.
      this.#pumping = false;
      if (this.gone) this.#queue.length = 0;
    }
  }

  /** Waits until everything delivered so far was handed to the connection. */
  async flush(): Promise<void> {
    while (this.#pumping) await this.#pumped;
  }

  /**
   * Hands the connection what is queued for it, then close_notify, but waits at most
   * FAREWELL_MS: a peer that stopped reading must not hold its connection open. With `drain`
   * (a peer that may still be sending) it also reads until the peer's close_notify, discarding:
   * closing a socket with unread data resets it, which can destroy the final Notice unread.
   */
  async farewell(drain = false): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, FAREWELL_MS));
    const goodbye = (async () => {
      await this.flush();
      await this.#connection.closeWrite().catch(() => {});
      while (drain && await this.#connection.receive() !== null) {
        // Discarded: the relay no longer listens to this peer.
      }
    })().catch(() => {});
    await Promise.race([goodbye, deadline]);
    clearTimeout(timer);
  }
}
