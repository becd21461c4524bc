/**
 * The roster: who is in the room, with their keys, and the checks every recipient runs before it
 * shows a chat message (known author, signature, recipient, per-author counter).
 *
 * Every participant (lib/room/participant.ts), a member or the host, keeps one, so the same checks
 * run on every recipient. Our own messages are signed by chat_signer.ts.
 *
 * Mirrors: docs/PROTOCOL.md section 13.2 ("Recipients") and the counter rule of 13.3.
 *
 * @module
 */

import { constantTimeEqual } from "../core/bytes.ts";
import type { ChatEvent, MemberInfo } from "./chat_events.ts";
import { importPublicIdentity, type PublicIdentity } from "../keys/identity.ts";
import { replaceUnsafe } from "../core/text.ts";
import {
  authorOf,
  CHAT_KIND,
  CHAT_KIND_NAME,
  fingerprintOfAuthor,
  JOINED_FLAG,
  type SignedChat,
  verifyChat,
} from "./room_messages.ts";

/** The recipient field of a message that is not private: 32 zero bytes (section 13.2). */
export const NO_RECIPIENT = new Uint8Array(32);

/** One member as the roster knows it. */
export interface RosterEntry {
  info: MemberInfo;
  identity: PublicIdentity;
}

/**
 * Who is in the room and what each recipient checks (section 13.2 "Recipients").
 */
export class Roster {
  readonly roomId: Uint8Array;
  readonly selfFingerprint: string;
  #members = new Map<string, RosterEntry>();
  #lastCounter = new Map<string, bigint>();

  constructor(roomId: Uint8Array, selfFingerprint: string) {
    this.roomId = roomId;
    this.selfFingerprint = selfFingerprint;
  }

  /** Adds (or replaces) a member from its SPKI. @throws {ProtocolError} for a bad key */
  async add(spki: Uint8Array, name: string, flags: number): Promise<RosterEntry> {
    const identity = await importPublicIdentity(spki);
    const info: MemberInfo = { name: replaceUnsafe(name), fingerprint: identity.fingerprint };
    if (flags & JOINED_FLAG.host) info.host = true;
    if (identity.fingerprint === this.selfFingerprint) info.self = true;
    const entry = { info, identity };
    this.#members.set(identity.fingerprint, entry);
    return entry;
  }

  /** Adds a member whose key is already imported (the host adds members this way). */
  addIdentity(identity: PublicIdentity, info: MemberInfo): RosterEntry {
    const entry = { info, identity };
    this.#members.set(identity.fingerprint, entry);
    return entry;
  }

  /** Removes a member; returns it if it was there. */
  remove(fingerprint: string): RosterEntry | undefined {
    const entry = this.#members.get(fingerprint);
    this.#members.delete(fingerprint);
    return entry;
  }

  /** The member with this fingerprint. */
  get(fingerprint: string): RosterEntry | undefined {
    return this.#members.get(fingerprint);
  }

  /** Every member, in join order. */
  list(): MemberInfo[] {
    return [...this.#members.values()].map((entry) => entry.info);
  }

  /** Number of members. */
  get size(): number {
    return this.#members.size;
  }

  /**
   * Finds a member by exact name, or by fingerprint (with or without "SHA256:", a prefix of at
   * least 6 characters).
   */
  find(query: string): RosterEntry | undefined {
    const entries = [...this.#members.values()];
    const byName = entries.filter((entry) => entry.info.name === query);
    if (byName.length === 1) return byName[0];
    const bare = query.replace(/^SHA256:/, "");
    if (bare.length < 6) return undefined;
    const byPrint = entries.filter((e) => e.info.fingerprint.slice(7).startsWith(bare));
    return byPrint.length === 1 ? byPrint[0] : undefined;
  }

  /**
   * Accepts `counter` as the next of `fingerprint`'s sequence if it is higher than the last one
   * (chat messages and file offers share it, 14.2). Returns false for a replay.
   */
  checkCounter(fingerprint: string, counter: bigint): boolean {
    const last = this.#lastCounter.get(fingerprint) ?? -1n;
    if (counter <= last) return false;
    this.#lastCounter.set(fingerprint, counter);
    return true;
  }

  /**
   * Verifies a received chat message and turns it into the event to show, or a rejection.
   * Order: known author, signature, recipient, counter (section 13.2).
   */
  async accept(chat: SignedChat, now: number): Promise<ChatEvent> {
    const fingerprint = fingerprintOfAuthor(chat.author);
    const author = this.#members.get(fingerprint);
    const claimed = author?.info.name ?? fingerprint;
    const reject = (reason: string): ChatEvent => ({
      type: "rejected",
      time: now,
      claimedAuthor: claimed,
      reason,
    });
    if (!author) return reject("its author is not in the room");
    if (!(await verifyChat(author.identity, this.roomId, chat))) {
      return reject("its signature does not verify (altered or forged)");
    }
    const toUs = constantTimeEqual(chat.recipient, authorOf(this.selfFingerprint));
    if (chat.kind === CHAT_KIND.private && !toUs) {
      return reject("it is a private message for someone else");
    }
    if (chat.kind !== CHAT_KIND.private && !constantTimeEqual(chat.recipient, NO_RECIPIENT)) {
      return reject("it names a recipient but is not private");
    }
    const last = this.#lastCounter.get(fingerprint) ?? -1n;
    if (chat.counter <= last) return reject("it was replayed or arrived out of order");
    this.#lastCounter.set(fingerprint, chat.counter);
    const event: ChatEvent = {
      type: "message",
      time: chat.timestamp,
      from: author.info,
      text: replaceUnsafe(chat.text),
      kind: CHAT_KIND_NAME[chat.kind],
      verified: true,
    };
    const me = this.get(this.selfFingerprint)?.info;
    if (chat.kind === CHAT_KIND.private && me) event.to = me;
    return event;
  }
}
