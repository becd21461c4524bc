/**
 * File transfer between two room members: one manager per member (a dialer or the host) that
 * routes each transfer message to the side it belongs to, the sender's
 * (`lib/transfer/transfer_outgoing.ts`: walk, hash, signed offer, manifest, resume check, windowed data) or
 * the recipient's (`lib/transfer/transfer_incoming.ts`: verify the offer, ask, validate every path, prove
 * resumable prefixes, write through FileSink, verify, rename), and ends transfers in either
 * direction when the user cancels, a member leaves or the connection is gone. Both sides report
 * progress as chat events. How messages travel is injected (`send`).
 *
 * It never prints and never decides for the user: offers wait for `accept()` unless the manager
 * was made with `autoAccept` (`listen --receive DIR`).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.1 to 14.5.
 *
 * @module
 */

import { constantTimeEqual, toHex } from "../core/bytes.ts";
import type { MemberInfo } from "../chat/chat_events.ts";
import { sanitizeDisplayName } from "./safe_path.ts";
import { encodeTransfer, type TransferMessage } from "./transfer_messages.ts";
import { type Incoming, IncomingTransfers } from "./transfer_incoming.ts";
import { OutgoingTransfers } from "./transfer_outgoing.ts";
import {
  findTransfer,
  type TransferContext,
  TransferEvents,
  transferKey,
} from "./transfer_progress.ts";

/** Runs the transfers of one room member. */
export class TransferManager {
  #context: TransferContext;
  #events: TransferEvents;
  #outgoing: OutgoingTransfers;
  #incoming: IncomingTransfers;

  constructor(context: TransferContext) {
    this.#context = context;
    this.#events = new TransferEvents(context);
    this.#outgoing = new OutgoingTransfers(context, this.#events);
    this.#incoming = new IncomingTransfers(context, this.#events);
  }

  /** Handles one transfer message; `party` is the other member (the relay filled it in). */
  async handle(message: TransferMessage): Promise<void> {
    // Keyed by (party, whole id): another member's id, or a colliding prefix, names nothing here.
    const key = transferKey(message.party, message.transferId);
    if (message.type === "offer") {
      return await this.#incoming.onOffer(message, this.#short(message.transferId));
    }
    const out = this.#outgoing.get(key);
    const fromRecipient = out && constantTimeEqual(out.party, message.party);
    const inc = this.#incoming.get(key);
    const fromSender = inc && constantTimeEqual(inc.party, message.party);
    switch (message.type) {
      case "accept":
        if (fromRecipient && !out.finished) this.#outgoing.stream(out);
        return;
      case "reject":
      case "cancel":
        if (fromRecipient && !out.finished) {
          this.#outgoing.end(
            out,
            message.type === "reject" ? "rejected" : "cancelled",
            message.reason,
            sanitizeDisplayName(message.reason),
          );
        } else if (fromSender && !inc.finished && message.type === "cancel") {
          await this.#incoming.end(inc, "cancelled", sanitizeDisplayName(message.reason), true);
        }
        return;
      case "resume":
        if (fromRecipient) {
          out.gotResume(new Map(message.points.map((p) => [p.fileIndex, p])));
        }
        return;
      case "ack":
        if (fromRecipient) {
          // Never beyond what was sent: an Ack for more would open our window past the one the
          // relay enforces (14.4), and the relay would disconnect us for the recipient's lie.
          out.acked = Math.max(out.acked, Math.min(message.received, out.sent));
          out.wake();
        }
        return;
      case "complete":
        if (fromRecipient && !out.finished) {
          out.finished = true;
          this.#events.emit(out, "send", "done");
        }
        return;
      case "manifest":
      case "data":
      case "done":
        if (!fromSender || inc.finished) return;
        try {
          if (message.type === "manifest") {
            await this.#incoming.onManifest(inc, message.offset, message.bytes);
          } else if (message.type === "data") await this.#incoming.onData(inc, message);
          else await this.#incoming.onDone(inc);
        } catch (error) {
          if (inc.finished) return; // cancelled meanwhile: a write into the aborted sink failed
          const reason = error instanceof Error ? error.message : String(error);
          await this.#incoming.end(inc, "failed", reason, true);
          await this.#context.send(encodeTransfer.cancel(inc.party, inc.id, reason)).catch(
            () => {},
          );
        }
        return;
    }
  }

  /** The connection is gone: stop everything, keeping `.part` files so a resend resumes. */
  async abortAll(reason: string): Promise<void> {
    for (const out of this.#outgoing.values()) {
      if (out.finished) continue;
      this.#outgoing.end(out, "failed", reason, reason);
    }
    for (const inc of this.#incoming.values()) {
      if (!inc.finished) await this.#incoming.end(inc, "failed", reason, false);
    }
  }

  /** A member left: end the transfers with it (keeping `.part` files for a resend). */
  async abortWith(fingerprint: string, reason: string): Promise<void> {
    for (const out of this.#outgoing.values()) {
      if (out.finished || out.peer.fingerprint !== fingerprint) continue;
      this.#outgoing.end(out, "failed", reason, reason);
    }
    for (const inc of this.#incoming.values()) {
      if (!inc.finished && inc.peer.fingerprint === fingerprint) {
        await this.#incoming.end(inc, "failed", reason, false);
      }
    }
  }

  /** Cancels a transfer in either direction (default: the only open one). */
  async cancel(id?: string): Promise<void> {
    const open = [...this.#outgoing.values(), ...this.#incoming.values()].filter((t) =>
      !t.finished && (id === undefined || t.short === id)
    );
    if (open.length !== 1) findTransfer(new Map(open.map((t) => [t.short, t])), id, "transfer");
    const transfer = open[0]!;
    // Finished first, synchronously: data already on its way must not turn this into a failure.
    const out = this.#outgoing.get(transferKey(transfer.party, transfer.id));
    if (out === transfer) {
      this.#outgoing.end(out, "cancelled", "cancelled", "you cancelled it");
    } else {
      await this.#incoming.end(transfer as Incoming, "cancelled", "you cancelled it", true);
    }
    await this.#context.send(
      encodeTransfer.cancel(transfer.party, transfer.id, "cancelled by the other side"),
    ).catch(() => {});
  }

  /** Offers the file or folder at `path` to `peer`. */
  offer(path: string, peer: MemberInfo): Promise<void> {
    return this.#outgoing.offer(path, peer, (id) => this.#short(id));
  }

  /**
   * The id the user sees and types for a transfer: 8 hex digits of its id, longer when another
   * transfer of ours (either direction, any party) already shows those.
   */
  #short(id: Uint8Array): string {
    const taken = new Set(
      [...this.#outgoing.values(), ...this.#incoming.values()].map((t) => t.short),
    );
    const hex = toHex(id);
    for (const length of [8, 16, 32]) {
      if (!taken.has(hex.slice(0, length))) return hex.slice(0, length);
    }
    for (let n = 2;; n++) if (!taken.has(`${hex}-${n}`)) return `${hex}-${n}`;
  }

  /** Accepts an offer (default: the only pending one). */
  accept(id?: string): Promise<void> {
    return this.#incoming.accept(id);
  }

  /** Rejects an offer (default: the only pending one). */
  reject(id?: string): Promise<void> {
    return this.#incoming.reject(id);
  }
}
