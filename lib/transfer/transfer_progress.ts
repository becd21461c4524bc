/**
 * What the sending and the receiving side of a file transfer share: the context a transfer
 * manager gets from the session around it ({@linkcode TransferContext}), the progress record
 * every transfer keeps ({@linkcode Progress}), the chat events it turns into, with rate and time
 * left ({@linkcode TransferEvents}), the lookup of an open transfer by its short id, and the
 * failure whose message the peer is told ({@linkcode TransferFailure}).
 *
 * It never prints: events go to `emit`, and the CLI renders them.
 *
 * Mirrors: docs/PROTOCOL.md section 14 (File transfer); the wire side is `lib/transfer/transfer_messages.ts`.
 *
 * @module
 */

import type { ReceivePolicy } from "./receive_policy.ts";
import type { ChatEvent, MemberInfo } from "../chat/chat_events.ts";
import type { ChatSigner } from "../chat/chat_signer.ts";
import { SecurechatError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import type { Roster } from "../chat/room_roster.ts";
import { toHex } from "../core/bytes.ts";

/** How often progress events are emitted per transfer. */
const PROGRESS_INTERVAL_MS = 250;

/** What a transfer manager needs from the session around it. */
export interface TransferContext extends ReceivePolicy {
  identity: Identity;
  roomId: Uint8Array;
  roster: Roster;
  signer: ChatSigner;
  /** Sends one transfer message toward the relay (or, for the host, to the member). */
  send(message: Uint8Array): Promise<void>;
  emit(event: ChatEvent): void;
  now?: () => number;
}

/** What every transfer, in either direction, keeps for its progress events. */
export interface Progress {
  id: Uint8Array;
  short: string;
  peer: MemberInfo;
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
  #context: TransferContext;
  #now: () => number;

  constructor(context: TransferContext) {
    this.#context = context;
    this.#now = context.now ?? Date.now;
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
