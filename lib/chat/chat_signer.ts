/**
 * Our side of the signed chat messages: signs what we send with our identity key, under
 * per-connection counters that keep increasing across reconnects (chat messages and file offers
 * share the sequence).
 *
 * Mirrors: docs/PROTOCOL.md sections 13.2 (the signed message) and 13.3 (counters).
 *
 * @module
 */

import type { Identity } from "../keys/identity.ts";
import { authorOf, type ChatKind, signChat, type SignedChat } from "./room_messages.ts";
import { NO_RECIPIENT } from "./room_roster.ts";

/** Section 13.3: the first counter of a new connection. */
export function firstCounter(last: bigint, nowMs: number): bigint {
  const fromClock = BigInt(Math.floor(nowMs)) * 1000n;
  return fromClock > last ? fromClock : last + 1n;
}

/** Signs our messages with increasing counters (section 13.3). */
export class ChatSigner {
  #identity: Identity;
  #roomId: Uint8Array;
  #counter: bigint;
  #now: () => number;

  constructor(identity: Identity, roomId: Uint8Array, now: () => number = Date.now) {
    this.#identity = identity;
    this.#roomId = roomId;
    this.#now = now;
    this.#counter = firstCounter(-1n, now()) - 1n;
  }

  /** The next counter of our sequence (chat messages and file offers share it, 14.2). */
  nextCounter(): bigint {
    this.#counter += 1n;
    return this.#counter;
  }

  /** Signs a message of `kind` to `recipient` (a fingerprint, for private messages). */
  async sign(kind: ChatKind, text: string, recipient?: string): Promise<SignedChat> {
    this.#counter += 1n;
    return await signChat(this.#identity, this.#roomId, {
      author: authorOf(this.#identity.fingerprint),
      counter: this.#counter,
      timestamp: this.#now(),
      kind,
      // A fresh array: the shared constant must stay all zero whatever callers do with this one.
      recipient: recipient ? authorOf(recipient) : NO_RECIPIENT.slice(),
      text,
    });
  }
}
