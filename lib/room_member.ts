/**
 * A room member's side: the roster (who is in the room, with their keys), the per-author counters
 * and signature checks every recipient runs before showing a message, and `joinRoom()`, which turns
 * a dialer's secure connection into a `ChatSession`.
 *
 * The roster is shared with the host (room.ts): the same checks run on every recipient.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.1 to 13.3.
 *
 * @module
 */

import { constantTimeEqual } from "./bytes.ts";
import type { ChatEvent, ChatSession, MemberInfo } from "./chat_events.ts";
import type { SecureConnection } from "./secure_connection.ts";
import { ProtocolError, SecurechatError } from "./errors.ts";
import { type Identity, importPublicIdentity, type PublicIdentity } from "./identity.ts";
import { sanitizeName } from "./messages.ts";
import {
  authorOf,
  CHAT_KIND,
  decodeRoomMessage,
  encodeChat,
  fingerprintOfAuthor,
  JOINED_FLAG,
  signChat,
  type SignedChat,
  verifyChat,
} from "./room_messages.ts";
import { exchangeSessionHello } from "./session_hello.ts";
import { TransferManager } from "./transfer.ts";
import { decodeTransfer, isTransferType } from "./transfer_messages.ts";

const NO_RECIPIENT = new Uint8Array(32);

/** One member as the roster knows it. */
export interface RosterEntry {
  info: MemberInfo;
  identity: PublicIdentity;
}

/** Section 13.3: the first counter of a new connection. */
export function firstCounter(last: bigint, nowMs: number): bigint {
  const fromClock = BigInt(Math.floor(nowMs)) * 1000n;
  return fromClock > last ? fromClock : last + 1n;
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
    const info: MemberInfo = { name: sanitizeName(name), fingerprint: identity.fingerprint };
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
      text: sanitizeName(chat.text),
      kind: chat.kind === CHAT_KIND.action
        ? "action"
        : chat.kind === CHAT_KIND.private
        ? "private"
        : "text",
      verified: true,
    };
    const me = this.get(this.selfFingerprint)?.info;
    if (chat.kind === CHAT_KIND.private && me) event.to = me;
    return event;
  }
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
  async sign(kind: 1 | 2 | 3, text: string, recipient?: string): Promise<SignedChat> {
    this.#counter += 1n;
    return await signChat(this.#identity, this.#roomId, {
      author: authorOf(this.#identity.fingerprint),
      counter: this.#counter,
      timestamp: this.#now(),
      kind,
      recipient: recipient ? authorOf(recipient) : NO_RECIPIENT,
      text,
    });
  }
}

/**
 * Fans events out to listeners. Events emitted before anyone listens are kept and handed to the
 * first listener, so a UI that subscribes after `joinRoom()` returns misses nothing.
 */
export class EventHub {
  #listeners = new Set<(event: ChatEvent) => void>();
  #early: ChatEvent[] | undefined = [];
  on(listener: (event: ChatEvent) => void): () => void {
    this.#listeners.add(listener);
    const early = this.#early;
    this.#early = undefined;
    for (const event of early ?? []) listener(event);
    return () => this.#listeners.delete(listener);
  }
  emit(event: ChatEvent): void {
    if (this.#early) this.#early.push(event);
    for (const listener of this.#listeners) listener(event);
  }
}

/** Options of `joinRoom`. */
export interface JoinOptions {
  identity: Identity;
  now?: () => number;
  /** Where accepted files go (default: the current folder). */
  receiveDir?: string;
  /** Accept verified file offers without asking. */
  autoAccept?: boolean;
  /** Reject offers larger than this. */
  maxFileSize?: number;
}

/** Picks the recipient of a file: `to` by name or fingerprint, else the only other member. */
export function pickRecipient(roster: Roster, to: string | undefined): MemberInfo {
  const others = roster.list().filter((member) => !member.self);
  const entry = to === undefined
    ? (others.length === 1 ? roster.get(others[0]!.fingerprint) : undefined)
    : roster.find(to);
  if (!entry || entry.info.self) {
    throw new SecurechatError(
      "unknown_member",
      to === undefined
        ? "say whom to send it to: /send PATH NAME (there is more than one member)"
        : `no member called "${to}" in the room`,
      1,
      { hints: ["type /who to see the members"] },
    );
  }
  return entry.info;
}

/**
 * Joins the room behind a dialer's connection: exchanges SessionHellos, reads the Welcome, and
 * returns a ChatSession whose events start with the verification code and the roster.
 *
 * @throws {ProtocolError} when the relay does not speak the room protocol
 */
export async function joinRoom(
  connection: SecureConnection,
  options: JoinOptions,
): Promise<ChatSession> {
  await exchangeSessionHello(connection, "chat");
  const now = options.now ?? Date.now;
  const first = await connection.receive();
  if (first === null) throw new ProtocolError("no_welcome", "the relay closed before welcoming us");
  const welcome = decodeRoomMessage(first);
  if (welcome.type === "notice") {
    connection.close();
    throw new SecurechatError(
      "refused_by_relay",
      `the relay refused us: ${sanitizeName(welcome.text)}`,
      1,
    );
  }
  if (welcome.type !== "welcome") {
    throw new ProtocolError("no_welcome", "the relay did not start with a Welcome");
  }
  const roster = new Roster(welcome.roomId, options.identity.fingerprint);
  const signer = new ChatSigner(options.identity, welcome.roomId, now);
  const hub = new EventHub();
  const transfers = new TransferManager({
    identity: options.identity,
    roomId: welcome.roomId,
    roster,
    signer,
    send: (message) => connection.send(message),
    emit: (event) => hub.emit(event),
    now,
    ...(options.receiveDir === undefined ? {} : { receiveDir: options.receiveDir }),
    ...(options.autoAccept === undefined ? {} : { autoAccept: options.autoAccept }),
    ...(options.maxFileSize === undefined ? {} : { maxFileSize: options.maxFileSize }),
  });
  const self: MemberInfo = {
    name: sanitizeName(welcome.name),
    fingerprint: options.identity.fingerprint,
    self: true,
  };
  const relay: MemberInfo = {
    name: connection.peer.name,
    fingerprint: connection.peer.identity.fingerprint,
  };
  const verification = {
    type: "verification" as const,
    time: now(),
    code: connection.verificationCode,
    peer: relay,
  };
  let ended = false;
  let leaving = false;
  let failure: unknown;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => resolveClosed = resolve);
  const finish = (reason: string) => {
    if (ended) return;
    ended = true;
    transfers.abortAll(reason);
    hub.emit({ type: "closed", time: now(), reason });
    connection.close();
    resolveClosed();
  };

  const receiving = (async () => {
    hub.emit(verification);
    try {
      while (true) {
        const data = await connection.receive();
        if (data === null) {
          return finish(leaving ? "we left the room" : "the relay closed the room");
        }
        if (data.length > 0 && isTransferType(data[0]!)) {
          let transfer;
          try {
            transfer = decodeTransfer(data);
          } catch (error) {
            // The relay checks these; if one slips through it is the sender's doing, not a reason
            // to leave the room.
            hub.emit({
              type: "rejected",
              time: now(),
              claimedAuthor: "a member",
              reason: `a malformed file transfer message: ${(error as Error).message}`,
            });
            continue;
          }
          await transfers.handle(transfer);
          continue;
        }
        const message = decodeRoomMessage(data);
        switch (message.type) {
          case "joined": {
            const entry = await roster.add(message.spki, message.name, message.flags);
            if (entry.info.self) entry.info.name = self.name;
            if (!(message.flags & JOINED_FLAG.present)) {
              hub.emit({ type: "join", time: now(), member: entry.info });
            } else if (entry.info.self) {
              hub.emit({ type: "roster", time: now(), members: roster.list() });
            }
            break;
          }
          case "left": {
            const entry = roster.remove(fingerprintOfAuthor(message.author));
            if (entry) {
              await transfers.abortWith(entry.info.fingerprint, "they left the room");
              hub.emit({
                type: "leave",
                time: now(),
                member: entry.info,
                reason: sanitizeName(message.reason),
              });
            }
            break;
          }
          case "chat":
            hub.emit(await roster.accept(message.message, now()));
            break;
          case "notice":
            hub.emit({ type: "notice", time: now(), text: sanitizeName(message.text) });
            break;
          case "welcome":
            throw new ProtocolError("bad_room_message", "the relay sent a second Welcome");
        }
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const code = error instanceof SecurechatError ? error.code : "error";
      if (!ended) {
        failure = error;
        hub.emit({ type: "error", time: now(), code, message });
      }
      await connection.abort(error);
      finish(message);
    }
  })();

  async function send(kind: 1 | 2 | 3, text: string, to?: MemberInfo): Promise<void> {
    if (ended) throw new SecurechatError("not_connected", "the room is closed");
    const chat = await signer.sign(kind, text, to?.fingerprint);
    await connection.send(encodeChat(chat));
    const event: ChatEvent = {
      type: "message",
      time: chat.timestamp,
      from: roster.get(self.fingerprint)?.info ?? self,
      text,
      kind: kind === 2 ? "action" : kind === 3 ? "private" : "text",
      verified: true,
    };
    if (to) event.to = to;
    hub.emit(event);
  }

  return {
    self,
    onEvent: (listener) => hub.on(listener),
    sendText: (text) => send(CHAT_KIND.text, text),
    sendAction: (text) => send(CHAT_KIND.action, text),
    async sendPrivate(to, text) {
      const entry = roster.find(to);
      if (!entry || entry.info.self) {
        throw new SecurechatError("unknown_member", `no member called "${to}" in the room`, 1, {
          hints: ["type /who to see the members"],
        });
      }
      await send(CHAT_KIND.private, text, entry.info);
    },
    members: () => roster.list(),
    verification: () => verification,
    async close() {
      if (!ended) {
        leaving = true;
        await connection.closeWrite().catch(() => {});
        const timer = setTimeout(() => finish("we left the room"), 2000);
        await receiving;
        clearTimeout(timer);
        finish("we left the room");
      }
      await closed;
    },
    closed,
    failure: () => failure,
    sendFile: (path, to) => transfers.offer(path, pickRecipient(roster, to)),
    acceptOffer: (id) => transfers.accept(id),
    rejectOffer: (id) => transfers.reject(id),
    cancelTransfer: (id) => transfers.cancel(id),
  };
}
