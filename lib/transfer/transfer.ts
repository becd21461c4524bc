/**
 * File transfer between room members: one manager per member (a dialer or the host) that routes
 * each transfer message to the side it belongs to, the sender's
 * (`lib/transfer/transfer_outgoing.ts`: walk, hash, offer with a fresh data key, manifest, resume
 * check, windowed sealed data) or the recipient's (`lib/transfer/transfer_incoming.ts`: take the
 * offer, ask, validate every path, prove resumable prefixes, open each Data slice, write through
 * FileSink, verify, rename), and ends transfers in either direction when the user cancels, a
 * member leaves or the connection is gone. Both sides report progress as chat events.
 *
 * How messages travel is injected: transfer messages go out with `sendSealed` and come in through
 * {@linkcode TransferManager.handleSealed} (the plaintext of a Sealed application message, 13.5:
 * MLS authenticated the sender, HPKE bound the recipient); Data and Acks, the data channel, go out
 * with `sendDirect` and come in through {@linkcode TransferManager.handleDirect} (a Direct relay
 * message, 13.4, sealed under the transfer's data key, 14.4), told apart by their kind byte.
 * Transfers are kept by (other member, transfer id): ids are the sender's choice, so one member's
 * messages never reach another member's transfer, and the two directions are separate tables
 * (Data and a transfer message for the recipient find an incoming transfer, Acks and one for the
 * sender an outgoing one), so two members may even use the same id each way.
 *
 * It never prints and never decides for the user: offers wait for `accept()` unless the manager
 * was made with `autoAccept` (`listen --receive DIR`).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.1 to 14.5.
 *
 * @module
 */

import { authorOf } from "../keys/identity.ts";
import { constantTimeEqual, toHex } from "../core/bytes.ts";
import { SecurechatError } from "../core/errors.ts";
import type { MemberInfo } from "../chat/chat_events.ts";
import {
  ACK_FAILED_AUTHENTICATION,
  ACK_OUT_OF_SEQUENCE,
  LOST_ON_THE_WAY_CODES,
  readDirectHeader,
} from "./data_seal.ts";
import { sanitizeDisplayName } from "./safe_path.ts";
import { decodeTransfer, encodeTransfer } from "./transfer_messages.ts";
import { type Incoming, IncomingTransfers } from "./transfer_incoming.ts";
import { OutgoingTransfers } from "./transfer_outgoing.ts";
import {
  findTransfer,
  TransferEvents,
  transferKey,
  type TransferManagerOptions,
} from "./transfer_progress.ts";

export type { TransferManagerOptions, TransferPeers } from "./transfer_progress.ts";

/**
 * How many Data slices of one transfer are opened ahead of the one being written; each waits as a
 * Direct of at most 64 KiB. (Chosen when their AES-GCM work ran on WebCrypto's threads, several at
 * once; ChaCha20-Poly1305 on the synchronous path opens each as it is handed over, data_seal.ts.)
 */
export const OPENS_AHEAD = 4;

/** The Cancel reasons of a sender whose Acks the relay altered, dropped or replayed (14.4). */
const ACKS_LOST_ON_THE_WAY: ReadonlySet<string> = new Set([
  ACK_FAILED_AUTHENTICATION,
  ACK_OUT_OF_SEQUENCE,
]);

/** Runs the transfers of one room member. */
export class TransferManager {
  #context: TransferManagerOptions;
  #self: Uint8Array;
  #events: TransferEvents;
  #outgoing: OutgoingTransfers;
  #incoming: IncomingTransfers;
  /** The Data slices taken in and not yet written (or dropped), of every incoming transfer. */
  #writing = new Set<Promise<void>>();
  /** The outgoing streams still running (each reads a file and sends), to wait for in stopped(). */
  #streams = new Set<Promise<void>>();

  /** @throws {TypeError} when `options.self` has no member fingerprint */
  constructor(options: TransferManagerOptions) {
    this.#context = options;
    this.#self = authorOf(options.self.fingerprint);
    this.#events = new TransferEvents(options);
    this.#outgoing = new OutgoingTransfers(options, this.#events);
    this.#incoming = new IncomingTransfers(options, this.#events);
  }

  /** Reports a transfer message that is dropped, naming who sent it. */
  #rejected(from: MemberInfo, reason: string): void {
    this.#context.emit({
      type: "rejected",
      time: this.#context.now(),
      claimedAuthor: from.name,
      reason,
    });
  }

  /**
   * Handles one transfer message (14.1) that came out of a Sealed message from `from`, already
   * authenticated by MLS. Call it once at a time, in the order messages arrived.
   *
   * A message that does not decode, that names another recipient than us, or whose sender is not
   * in the room becomes a `rejected` event; one for a transfer its sender does not have with us
   * is dropped.
   */
  async handleSealed(from: MemberInfo, bytes: Uint8Array): Promise<void> {
    let message;
    try {
      message = decodeTransfer(bytes);
    } catch (error) {
      return this.#rejected(from, error instanceof Error ? error.message : String(error));
    }
    if (!constantTimeEqual(message.party, this.#self)) {
      return this.#rejected(from, "a file transfer message addressed to another member");
    }
    const party = authorOf(from.fingerprint);
    const peer = this.#context.peers.byAuthor(party);
    if (peer === undefined || peer.fingerprint !== from.fingerprint) {
      return this.#rejected(from, "a file transfer message from someone not in the room");
    }
    // Keyed by (sender, whole id): another member's id, or a colliding prefix, names nothing here.
    const key = transferKey(party, message.transferId);
    if (message.type === "offer") {
      return await this.#incoming.onOffer(peer, message, this.#short(message.transferId));
    }
    const out = this.#outgoing.get(key);
    const inc = this.#incoming.get(key);
    switch (message.type) {
      case "accept":
        // Once: a recipient repeating its Accept must not start a second stream of the same file.
        if (out && !out.finished && !out.accepted) {
          out.accepted = true;
          // Not awaited: the stream waits for the Resume and for Acks, which come through here.
          const stream = this.#outgoing.stream(out);
          this.#streams.add(stream);
          const forget = () => void this.#streams.delete(stream);
          stream.then(forget, forget);
        }
        return;
      case "reject":
      case "cancel":
        if (out && !out.finished) {
          this.#outgoing.end(
            out,
            message.type === "reject" ? "rejected" : "cancelled",
            message.reason,
            sanitizeDisplayName(message.reason),
          );
        } else if (inc && !inc.finished && message.type === "cancel") {
          await this.#drained(inc);
          if (inc.finished) return;
          // The sender's Acks did not arrive intact and in order (the relay's doing, 14.4): every
          // byte written was authenticated, so the part file is kept for a resend to resume.
          const keep = ACKS_LOST_ON_THE_WAY.has(message.reason);
          await this.#incoming.end(inc, "cancelled", sanitizeDisplayName(message.reason), !keep);
        }
        return;
      case "resume":
        if (out) out.gotResume(new Map(message.points.map((p) => [p.fileIndex, p])));
        return;
      case "complete":
        if (out && !out.finished) {
          out.finished = true;
          this.#events.emit(out, "send", "done");
        }
        return;
      case "manifest":
      case "done":
        if (!inc || inc.finished) return;
        // The Data that came before it, first.
        await this.#drained(inc);
        if (inc.finished) return;
        await this.#failOnError(
          inc,
          () =>
            message.type === "manifest"
              ? this.#incoming.onManifest(inc, message.offset, message.bytes)
              : this.#incoming.onDone(inc, message.dataCount),
        );
        return;
    }
  }

  /**
   * Handles a Direct from `from` (13.4), by its kind byte (14.4): a Data slice of one of its
   * transfers to us, or an Ack of one of ours to it, sealed under that transfer's data key. Call
   * it once at a time, in the order Directs arrived. A Data slice is opened at once and written
   * after the ones before it: this resolves once it is taken in, waiting only while more than
   * {@linkcode OPENS_AHEAD} are (see {@linkcode idle}); transfer messages that follow it
   * (Done, Cancel) wait for it.
   *
   * A Direct of another kind, or that names no open transfer of that direction between `from` and
   * us, is dropped unread (data or acks still in flight when a transfer ended). One that does not
   * open ends the transfer with "file data failed authentication" ("file acks failed
   * authentication"); one that opens out of sequence with "file data was dropped or replayed on
   * the way" ("file acks were dropped or replayed on the way"); the other side gets a Cancel.
   */
  async handleDirect(from: MemberInfo, bytes: Uint8Array): Promise<void> {
    const header = readDirectHeader(bytes);
    if (header === undefined) return;
    const key = transferKey(authorOf(from.fingerprint), header.transferId);
    if (header.kind === "ack") {
      const out = this.#outgoing.get(key);
      if (out && !out.finished) await this.#outgoing.onAck(out, bytes);
      return;
    }
    const inc = this.#incoming.get(key);
    if (!inc || inc.finished) return;
    // Opened at once, ahead of the writes of the slices before it; written strictly in
    // arrival order, each after the one before, and never past a failure (failOnError ends the
    // transfer, and every later step then finds it finished).
    const opened = inc.opener.open(bytes);
    opened.catch(() => {}); // its failure is handled by its step, in order
    const step = inc.written.then(() =>
      this.#failOnError(inc, async () => {
        const slice = await opened;
        if (!inc.finished) await this.#incoming.onData(inc, slice);
      })
    );
    inc.written = step;
    inc.steps.push(step);
    this.#writing.add(step);
    const forget = () => void this.#writing.delete(step);
    step.then(forget, forget);
    // What a step throws beyond failOnError reaches whoever waits for it (below, drained, idle).
    step.catch(() => {});
    // At most OPENS_AHEAD slices wait here: beyond that the connection waits for us.
    while (inc.steps.length > OPENS_AHEAD) await inc.steps.shift();
  }

  /**
   * Resolves once every Data slice handed to {@linkcode handleDirect} so far has been written, or
   * dropped because its transfer ended. handleDirect takes a slice in and returns while up to
   * {@linkcode OPENS_AHEAD} of them are still being opened and written, in order.
   */
  async idle(): Promise<void> {
    while (this.#writing.size > 0) await Promise.all([...this.#writing]);
  }

  /** Waits until every Data slice of `inc` that arrived so far was written (or the transfer ended). */
  async #drained(inc: Incoming): Promise<void> {
    inc.steps = [];
    await inc.written;
  }

  /**
   * Runs one step of an incoming transfer; when it fails, ends the transfer and tells the sender
   * why (Cancel). The file in progress is deleted, unless the step failed because Data did not
   * arrive intact and in order (the relay's doing, 14.4): every byte in the `.part` file was
   * authenticated, so it is kept for a resend to resume, as after a broken connection.
   */
  async #failOnError(inc: Incoming, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      if (inc.finished) return; // cancelled meanwhile: a write into the aborted sink failed
      const reason = error instanceof Error ? error.message : String(error);
      const lostOnTheWay = error instanceof SecurechatError &&
        LOST_ON_THE_WAY_CODES.has(error.code);
      await this.#incoming.end(inc, "failed", reason, !lostOnTheWay);
      await this.#context.sendSealed(encodeTransfer.cancel(inc.party, inc.id, reason), inc.peer)
        .catch(() => {});
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

  /**
   * Resolves once no outgoing transfer is still running: after {@linkcode abortAll} (or once
   * every transfer ended), when each stream's last send has returned and its file is closed.
   */
  async stopped(): Promise<void> {
    while (this.#streams.size > 0) await Promise.allSettled([...this.#streams]);
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
    await this.#context.sendSealed(
      encodeTransfer.cancel(transfer.party, transfer.id, "cancelled by the other side"),
      transfer.peer,
    ).catch(() => {});
  }

  /**
   * Offers the file or folder at `path` to `to`, another member of the room.
   *
   * @throws {SecurechatError} code "not_in_room" when `to` is ourselves or not in the room; "no_such_file",
   *   "not_a_file" or "empty_folder" when `path` has nothing to send
   */
  offer(path: string, to: MemberInfo): Promise<void> {
    return this.#outgoing.offer(path, to, (id) => this.#short(id));
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
