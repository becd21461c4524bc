/**
 * What the sending and the receiving side of a file transfer share: what a transfer manager gets
 * from the room around it ({@linkcode TransferManagerOptions}: who we are, who is in the room, how
 * a transfer message and a Direct travel), the progress record every transfer keeps
 * ({@linkcode Progress}), the chat events it turns into, with rate and time left
 * ({@linkcode TransferEvents}), the lookup of an open transfer by its short id, and the failure
 * whose message the peer is told ({@linkcode TransferFailure}).
 *
 * It never prints: events go to `emit`, and the CLI renders them.
 *
 * Mirrors: docs/PROTOCOL.md section 14 (File transfer); the wire side is
 * `lib/transfer/transfer_messages.ts`.
 *
 * @module
 */

import type { ReceivePolicy } from "./receive_policy.ts";
import type { ChatEvent, MemberInfo } from "../chat/chat_events.ts";
import { SecurechatError } from "../core/errors.ts";
import { toHex } from "../core/bytes.ts";

/** How often progress events are emitted per transfer. */
const PROGRESS_INTERVAL_MS = 250;

/** Who is in the room now, as the group's leaves say (13.7). */
export interface TransferPeers {
  /** The member whose raw 32-byte author id this is, or undefined when none is in the room. */
  byAuthor(author: Uint8Array): MemberInfo | undefined;
}

/**
 * What a transfer manager needs from the room around it. The room must deliver what is sent in
 * call order, and hand received messages to the manager one at a time, in the order they came.
 */
export interface TransferManagerOptions extends ReceivePolicy {
  /** Ourselves: our fingerprint (our author id) and name. */
  self: MemberInfo;
  /** Who is in the room now. */
  peers: TransferPeers;
  /**
   * Sends a transfer message (14.1: any type but Data and Ack) to `to` alone, as the plaintext of
   * a Sealed application message (13.5): MLS authenticates us, HPKE hides it from everyone else.
   */
  sendSealed(message: Uint8Array, to: MemberInfo): Promise<void>;
  /**
   * Sends a sealed Data slice or Ack (14.4) to `to` as a Direct relay message (13.4). Calls may
   * overlap (a sender keeps a few in flight); the Directs must go out in call order, since their
   * sequence numbers follow it.
   */
  sendDirect(bytes: Uint8Array, to: MemberInfo): Promise<void>;
  emit(event: ChatEvent): void;
  now: () => number;
}

/** What every transfer, in either direction, keeps for its progress events. */
export interface Progress {
  id: Uint8Array;
  short: string;
  peer: MemberInfo;
  /** The other member's raw author id: the sender of an incoming transfer, the recipient of ours. */
  party: Uint8Array;
  name: string;
  total: number;
  bytes: number;
  resumed: number;
  started: number;
  lastEvent: number;
  finished: boolean;
}

/**
 * The key a transfer is kept under: the other party and the whole 16-byte id. Ids are the
 * sender's choice, so only the pair names a transfer; the 8-hex-digit `short` shown to the user
 * is for display and is made unique by the manager (lib/transfer/transfer.ts).
 */
export function transferKey(party: Uint8Array, id: Uint8Array): string {
  return `${toHex(party)}:${toHex(id)}`;
}

/** Cancels with a reason the peer is told. */
export class TransferFailure extends Error {}

/** Turns a transfer's progress into chat events; `progress()` sends at most one per 250 ms. */
export class TransferEvents {
  #context: TransferManagerOptions;
  #now: () => number;

  constructor(context: TransferManagerOptions) {
    this.#context = context;
    this.#now = context.now;
  }

  /** Emits a transfer event in `state`, with rate and time left while data moves. */
  emit(transfer: Progress, direction: "send" | "receive", state: string, extra = {}): void {
    const now = this.#now();
    transfer.lastEvent = now;
    const seconds = (now - transfer.started) / 1000;
    const rate = seconds > 0.2 ? (transfer.bytes - transfer.resumed) / seconds : undefined;
    const event: ChatEvent = {
      type: "transfer",
      time: now,
      id: transfer.short,
      direction,
      peer: transfer.peer,
      name: transfer.name,
      state: state as "sending",
      bytes: transfer.bytes,
      total: transfer.total,
      ...extra,
    };
    if (rate !== undefined && rate > 0 && (state === "sending" || state === "receiving")) {
      event.rate = Math.round(rate);
      event.eta = Math.round((transfer.total - transfer.bytes) / rate);
    }
    if (transfer.resumed > 0) event.resumed = transfer.resumed;
    this.#context.emit(event);
  }

  /** Emits a "sending"/"receiving" event when the last one is at least 250 ms old. */
  progress(transfer: Progress, direction: "send" | "receive"): void {
    if (this.#now() - transfer.lastEvent >= PROGRESS_INTERVAL_MS) {
      this.emit(transfer, direction, direction === "send" ? "sending" : "receiving");
    }
  }
}

/**
 * The open transfer named `id`, or the only open one when `id` is undefined.
 *
 * @throws {SecurechatError} code "unknown_transfer" naming the open ones
 */
export function findTransfer<T extends Progress>(
  map: Map<string, T>,
  id: string | undefined,
  what: string,
): T {
  const open = [...map.values()].filter((t) => !t.finished);
  const found = id === undefined
    ? (open.length === 1 ? open[0] : undefined)
    : [...map.values()].find((t) => t.short === id);
  if (!found) {
    const known = open.map((t) => t.short).join(", ") || "none";
    throw new SecurechatError(
      "unknown_transfer",
      id === undefined ? `say which ${what}: ${known}` : `no ${what} "${id}" (open: ${known})`,
    );
  }
  return found;
}
