/**
 * The relay's per-member limits: how many members a room admits, how fast one member may send (a
 * token bucket on an injected clock), and how many violations within a window get it
 * disconnected. Pure bookkeeping: the relay (lib/room/relay.ts) decides what a violation costs and
 * tells the member.
 *
 * Mirrors: docs/PROTOCOL.md section 13.4.
 *
 * @module
 */

import { MAX_MANIFEST_BYTES } from "../transfer/transfer_messages.ts";

/** Section 13.4 defaults. */
export const DEFAULT_MAX_MEMBERS = 256;
export const DEFAULT_RATE_PER_SECOND = 5;
export const DEFAULT_BURST = 20;
/** Violations within VIOLATION_WINDOW_MS that get a member disconnected. */
export const MAX_VIOLATIONS = 3;
export const VIOLATION_WINDOW_MS = 60_000;

/** A token bucket: `rate` tokens a second, at most `burst`. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(readonly rate: number, readonly burst: number, now: number) {
    this.#tokens = burst;
    this.#last = now;
  }
  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** One member's recent violations; older ones than VIOLATION_WINDOW_MS are forgotten. */
export class Violations {
  #times: number[] = [];
  /**
   * Records a violation at `now`.
   *
   * @returns true when it makes MAX_VIOLATIONS within the window: the member is to be disconnected
   */
  add(now: number): boolean {
    this.#times = this.#times.filter((t) => now - t < VIOLATION_WINDOW_MS);
    this.#times.push(now);
    return this.#times.length >= MAX_VIOLATIONS;
  }
}

/** Section 14.1: transfers one member may have open at the relay, as the sender. */
export const MAX_OPEN_TRANSFERS = 256;

/** What the relay does with one transfer message between two members (section 14.1). */
export type TransferVerdict =
  /** The next step of an open transfer, within its window: forwarded, not counted. */
  | { action: "forward" }
  /** Not a step of any open transfer: forwarded only if the sender's rate allows (13.4). */
  | { action: "charge" }
  /** For a transfer that has ended (messages still in flight): not forwarded, not counted. */
  | { action: "drop" }
  /** Something no honest member sends: a violation, and the message is dropped. */
  | { action: "violation"; text: string };

/** One transfer between two members, as the relay sees it go by. */
interface Flow {
  answered: boolean;
  accepted: boolean;
  resumed: boolean;
  done: boolean;
  ended: boolean;
  /** Data bytes forwarded, and the highest Ack the recipient sent (never above `data`). */
  data: number;
  acked: number;
  manifest: number;
  manifestLimit: number;
}

/**
 * The relay's view of the transfers between members: each one's Offer, Accept and Data bytes
 * forwarded less those the recipient acknowledged. Data beyond the window the recipient granted
 * (14.4) is refused, so no member can fill another's queue at the relay with file data, and every
 * other transfer message is free only as the next step of an open transfer. The host's transfers
 * are not counted: the relay hands them over in-process, one at a time.
 */
export class TransferFlows {
  /** Sender fingerprint to its transfers, keyed `recipient:id`, oldest first. */
  #bySender = new Map<string, Map<string, Flow>>();
  #window: number;
  #manifestEntryLimit: number;

  /**
   * @param window the data a sender may have unacknowledged (WINDOW_BYTES plus one slice)
   * @param manifestEntryLimit the most manifest bytes one file may take
   */
  constructor(window: number, manifestEntryLimit: number) {
    this.#window = window;
    this.#manifestEntryLimit = manifestEntryLimit;
  }

  #flow(sender: string, recipient: string, id: string): Flow | undefined {
    return this.#bySender.get(sender)?.get(`${recipient}:${id}`);
  }

  /** An Offer from `sender` (already counted against its rate) opens a transfer. */
  offer(sender: string, recipient: string, id: string, fileCount: number): TransferVerdict {
    let flows = this.#bySender.get(sender);
    if (!flows) this.#bySender.set(sender, flows = new Map());
    const key = `${recipient}:${id}`;
    if (flows.has(key)) return { action: "forward" }; // the recipient refuses a reused id (14.1)
    if (flows.size >= MAX_OPEN_TRANSFERS) {
      const old = [...flows].find(([, flow]) => flow.ended);
      if (!old) return { action: "violation", text: "too many open file transfers" };
      flows.delete(old[0]);
    }
    flows.set(key, {
      answered: false,
      accepted: false,
      resumed: false,
      done: false,
      ended: false,
      data: 0,
      acked: 0,
      manifest: 0,
      // The recipient's cap too (14.3): a manifest never takes more, whatever its file count.
      manifestLimit: Math.min(fileCount * this.#manifestEntryLimit, MAX_MANIFEST_BYTES),
    });
    return { action: "forward" };
  }

  /**
   * Any other transfer message from `from` to `to`.
   *
   * @param size the Data or Manifest bytes it carries; `received` for an Ack
   */
  check(type: string, from: string, to: string, id: string, size = 0): TransferVerdict {
    const outgoing = this.#flow(from, to, id);
    const incoming = this.#flow(to, from, id);
    switch (type) {
      case "manifest":
      case "data":
      case "done": {
        const flow = outgoing;
        if (flow?.ended) return { action: "drop" };
        if (!flow?.accepted) {
          return type === "done"
            ? { action: "charge" }
            : { action: "violation", text: "file data for a transfer nobody accepted" };
        }
        if (type === "done") {
          if (flow.done) return { action: "charge" };
          flow.done = true;
        } else if (type === "manifest") {
          flow.manifest += size;
          if (flow.manifest > flow.manifestLimit) {
            return { action: "violation", text: "a manifest larger than its offer allows" };
          }
        } else {
          if (flow.data + size - flow.acked > this.#window) {
            return { action: "violation", text: "file data beyond the recipient's window" };
          }
          flow.data += size;
        }
        return { action: "forward" };
      }
      case "accept":
      case "reject":
      case "resume":
      case "ack":
      case "complete": {
        const flow = incoming;
        if (flow?.ended) return { action: "drop" };
        if (!flow) return { action: "charge" };
        if (type === "accept" || type === "reject") {
          if (flow.answered) return { action: "charge" };
          flow.answered = true;
          flow.accepted = type === "accept";
          flow.ended = type === "reject";
        } else if (!flow.accepted) {
          return { action: "charge" };
        } else if (type === "resume") {
          if (flow.resumed) return { action: "charge" };
          flow.resumed = true;
        } else if (type === "ack") {
          if (size > flow.data) {
            return { action: "violation", text: "an acknowledgement of file data never sent" };
          }
          if (size <= flow.acked) return { action: "charge" };
          flow.acked = size;
        } else {
          flow.ended = true;
        }
        return { action: "forward" };
      }
      default: {
        // Cancel, from either side: it ends the transfer.
        const flow = outgoing ?? incoming;
        if (!flow) return { action: "charge" };
        if (flow.ended) return { action: "drop" };
        flow.ended = true;
        return { action: "forward" };
      }
    }
  }

  /** A member left: forget every transfer it took part in. */
  forget(fingerprint: string): void {
    this.#bySender.delete(fingerprint);
    for (const flows of this.#bySender.values()) {
      for (const key of flows.keys()) if (key.startsWith(`${fingerprint}:`)) flows.delete(key);
    }
  }
}
