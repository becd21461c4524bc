/**
 * The relay (chat-mode listener): admits members over secure connections, checks every chat
 * message (author, signature, counter, size, rate) before forwarding it unchanged, routes private
 * messages to their recipient only, announces joins and leaves, and keeps one member's misbehaviour
 * or slowness from touching the others. The person at the listener can take part through
 * `hostSession()`, a ChatSession like a dialer's.
 *
 * It never prints: `log` receives one line per event worth telling an operator.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.1 to 13.4.
 *
 * @module
 */

import type { ChatEvent, ChatSession, MemberInfo } from "./chat_events.ts";
import type { SecureConnection } from "./secure_connection.ts";
import { ProtocolError, SecurechatError } from "./errors.ts";
import type { Identity, PublicIdentity } from "./identity.ts";
import { sanitizeName } from "./messages.ts";
import {
  authorOf,
  CHAT_KIND,
  decodeRoomMessage,
  encodeChat,
  encodeJoined,
  encodeLeft,
  encodeNotice,
  encodeWelcome,
  JOINED_FLAG,
  MAX_TEXT_BYTES,
  ROOM_ID_LENGTH,
  type SignedChat,
  verifyChat,
} from "./room_messages.ts";
import { ChatSigner, EventHub, pickRecipient, Roster } from "./room_member.ts";
import { TransferManager } from "./transfer.ts";
import {
  decodeTransfer,
  isTransferType,
  partyOf,
  TRANSFER_MESSAGE,
  withParty,
} from "./transfer_messages.ts";
import { exchangeSessionHello } from "./session_hello.ts";

/** Section 13.4 defaults. */
export const DEFAULT_MAX_MEMBERS = 256;
export const DEFAULT_RATE_PER_SECOND = 5;
export const DEFAULT_BURST = 20;
/** Violations within VIOLATION_WINDOW_MS that get a member disconnected. */
export const MAX_VIOLATIONS = 3;
export const VIOLATION_WINDOW_MS = 60_000;
/** Bytes queued for one member before it counts as too slow and is dropped. */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** At most this many queued messages, or about this many bytes, go out in one write. */
const BATCH_MESSAGES = 256;
const BATCH_BYTES = 64 * 1024;

/** Options of a room. */
export interface RoomOptions {
  /** The listener's identity (signs the host's messages). */
  identity: Identity;
  /** The host's display name, when the person at the listener takes part. */
  hostName?: string;
  /** False for --relay-only. */
  hostParticipates: boolean;
  maxMembers?: number;
  ratePerSecond?: number;
  burst?: number;
  maxTextBytes?: number;
  /** Milliseconds clock, injectable for tests. */
  now?: () => number;
  /** Where the host's accepted files go (default: the current folder). */
  receiveDir?: string;
  /** The host accepts verified file offers without asking (`listen --receive`). */
  autoAccept?: boolean;
  /** The host rejects offers larger than this. */
  maxFileSize?: number;
  /** Operator log lines (stderr in the CLI). */
  log?: (line: string) => void;
}

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

interface Member {
  connection: SecureConnection;
  identity: PublicIdentity;
  info: MemberInfo;
  lastCounter: bigint;
  bucket: TokenBucket;
  violations: number[];
  pending: number;
  /** Messages not yet handed to the connection; one pump per member drains them in batches. */
  queue: Uint8Array[];
  pumping: boolean;
  pumped: Promise<void>;
  gone: boolean;
  /** Set when sending to the member failed: why it is gone. */
  lost?: string;
}

/** Why a member is being removed. */
class Ejection extends Error {}

/** A chat room served by the listener. */
export class RoomHub {
  readonly roomId: Uint8Array = crypto.getRandomValues(new Uint8Array(ROOM_ID_LENGTH));
  #options: RoomOptions;
  #members = new Map<string, Member>();
  #now: () => number;
  #log: (line: string) => void;
  #hostInfo: MemberInfo | undefined;
  #hostRoster: Roster;
  #hostSigner: ChatSigner;
  #hostEvents = new EventHub();
  #lastVerification: (ChatEvent & { type: "verification" }) | undefined;
  #hostTransfers: TransferManager | undefined;
  #hostQueue: Promise<void> = Promise.resolve();
  #closed = false;
  #resolveClosed: () => void = () => {};
  readonly closed: Promise<void> = new Promise((resolve) => this.#resolveClosed = resolve);

  constructor(options: RoomOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
    this.#hostRoster = new Roster(this.roomId, options.identity.fingerprint);
    this.#hostSigner = new ChatSigner(options.identity, this.roomId, this.#now);
    if (options.hostParticipates) {
      this.#hostInfo = {
        name: sanitizeName(options.hostName ?? options.identity.comment) || "host",
        fingerprint: options.identity.fingerprint,
        host: true,
        self: true,
      };
      this.#hostRoster.addIdentity(options.identity, this.#hostInfo);
      const hostAuthor = authorOf(options.identity.fingerprint);
      this.#hostTransfers = new TransferManager({
        identity: options.identity,
        roomId: this.roomId,
        roster: this.#hostRoster,
        signer: this.#hostSigner,
        // The host's transfer messages go straight to the member, as the relay would forward them.
        send: (message) => {
          const target = this.#memberByAuthor(partyOf(message));
          if (!target) return Promise.reject(new SecurechatError("gone", "the member left"));
          this.#deliver(target, withParty(message, hostAuthor));
          return Promise.resolve();
        },
        emit: (event) => this.#hostEvent(event),
        now: this.#now,
        ...(options.receiveDir === undefined ? {} : { receiveDir: options.receiveDir }),
        ...(options.autoAccept === undefined ? {} : { autoAccept: options.autoAccept }),
        ...(options.maxFileSize === undefined ? {} : { maxFileSize: options.maxFileSize }),
      });
    }
  }

  #memberByAuthor(author: Uint8Array | undefined): Member | undefined {
    if (!author) return undefined;
    for (const member of this.#members.values()) {
      if (authorOf(member.info.fingerprint).every((byte, i) => byte === author[i])) return member;
    }
    return undefined;
  }

  /** Section 14.1: forwards a transfer message to its party, naming the sender instead. */
  async #routeTransfer(sender: Member, data: Uint8Array): Promise<void> {
    const party = partyOf(data);
    if (!party) {
      throw new ProtocolError("bad_transfer_message", "member sent a truncated transfer message", {
        alert: "decode_error",
      });
    }
    if (data[0] === TRANSFER_MESSAGE.offer && !sender.bucket.take(this.#now())) {
      return await this.#violation(sender, "too many messages: slow down");
    }
    // Decoded before forwarding: a malformed message is its sender's fault, never the recipient's.
    decodeTransfer(data);
    const forwarded = withParty(data, authorOf(sender.info.fingerprint));
    const target = this.#memberByAuthor(party);
    if (target) return this.#deliver(target, forwarded);
    const host = this.#hostInfo && authorOf(this.#hostInfo.fingerprint);
    if (host && this.#hostTransfers && host.every((byte, i) => byte === party[i])) {
      return await this.#hostTransfers.handle(decodeTransfer(forwarded));
    }
    if (data[0] === TRANSFER_MESSAGE.offer) {
      this.#deliver(sender, encodeNotice(0, "no such member: the file offer was not delivered"));
    }
  }

  /** Number of members connected (the host not counted). */
  get memberCount(): number {
    return this.#members.size;
  }

  #uniqueName(wanted: string, fingerprint: string): string {
    const base = sanitizeName(wanted).replace(/\s+/g, "_").slice(0, 40) || "member";
    const taken = (name: string) =>
      this.#hostInfo?.name === name ||
      [...this.#members.values()].some((member) => member.info.name === name);
    if (!taken(base)) return base;
    return `${base}-${fingerprint.slice(7, 13)}`;
  }

  #deliver(member: Member, bytes: Uint8Array): void {
    if (member.gone) return;
    member.pending += bytes.length;
    if (member.pending > MAX_PENDING_BYTES) {
      this.#log(`dropping "${member.info.name}": it does not keep up with the room`);
      member.gone = true;
      member.lost = "dropped: it did not keep up with the room";
      member.connection.close();
      return;
    }
    member.queue.push(bytes);
    if (!member.pumping) {
      member.pumping = true;
      member.pumped = this.#pump(member);
    }
  }

  /**
   * Drains a member's queue: what piled up while the last write was under way goes out as one
   * batch (many records, one write). A queued message costs an array slot and shares its bytes
   * with every other recipient, so a burst to a slow member stays small until it is sealed.
   */
  async #pump(member: Member): Promise<void> {
    try {
      while (member.queue.length > 0 && !member.gone) {
        let size = 0;
        let count = 0;
        while (count < member.queue.length && count < BATCH_MESSAGES && size < BATCH_BYTES) {
          size += member.queue[count++]!.length;
        }
        const batch = member.queue.splice(0, count);
        await member.connection.sendBatch(batch);
        member.pending -= size;
      }
    } catch {
      member.gone = true;
      member.lost ??= "connection lost (it stopped accepting data)";
      member.connection.close();
    } finally {
      // Runs before this call's promise settles, so #deliver never sees a pump that has stopped.
      member.pumping = false;
      if (member.gone) member.queue.length = 0;
    }
  }

  /** Waits until everything delivered to `member` so far was handed to its connection. */
  async #flush(member: Member): Promise<void> {
    while (member.pumping) await member.pumped;
  }

  #broadcast(bytes: Uint8Array, except?: string): void {
    for (const [fingerprint, member] of this.#members) {
      if (fingerprint !== except) this.#deliver(member, bytes);
    }
  }

  async #refuse(connection: SecureConnection, text: string): Promise<void> {
    await connection.send(encodeNotice(2, text)).catch(() => {});
    await connection.closeWrite().catch(() => {});
    connection.close();
  }

  /**
   * Admits a member on an established connection and serves it until it leaves. Resolves when it
   * is gone; never throws for the member's faults (they are logged).
   *
   * @param displayName the member's name (authorized_keys name, else its Identity name)
   */
  async admit(connection: SecureConnection, displayName: string): Promise<void> {
    const fingerprint = connection.peer.identity.fingerprint;
    try {
      await exchangeSessionHello(connection, "chat");
    } catch (error) {
      this.report(`"${displayName}" ${fingerprint} refused: ${(error as Error).message}`);
      connection.close();
      return;
    }
    if (this.#closed) return await this.#refuse(connection, "the room is closing");
    if (this.#members.has(fingerprint) || this.#hostInfo?.fingerprint === fingerprint) {
      this.report(`"${displayName}" ${fingerprint} refused: already in the room`);
      return await this.#refuse(connection, "your key is already in the room");
    }
    const max = this.#options.maxMembers ?? DEFAULT_MAX_MEMBERS;
    if (this.#members.size >= max) {
      this.report(`"${displayName}" ${fingerprint} refused: the room is full (${max} members)`);
      return await this.#refuse(connection, `the room is full (${max} members)`);
    }
    const info: MemberInfo = {
      name: this.#uniqueName(displayName, fingerprint),
      fingerprint,
      code: connection.verificationCode,
    };
    const member: Member = {
      connection,
      identity: connection.peer.identity,
      info,
      lastCounter: -1n,
      bucket: new TokenBucket(
        this.#options.ratePerSecond ?? DEFAULT_RATE_PER_SECOND,
        this.#options.burst ?? DEFAULT_BURST,
        this.#now(),
      ),
      violations: [],
      pending: 0,
      queue: [],
      pumping: false,
      pumped: Promise.resolve(),
      gone: false,
    };
    this.#deliver(member, encodeWelcome(this.roomId, info.name));
    if (this.#hostInfo) {
      this.#deliver(
        member,
        encodeJoined(
          JOINED_FLAG.present | JOINED_FLAG.host,
          this.#hostInfo.name,
          this.#options.identity.spki,
        ),
      );
    }
    for (const other of this.#members.values()) {
      this.#deliver(
        member,
        encodeJoined(JOINED_FLAG.present, other.info.name, other.identity.spki),
      );
    }
    this.#deliver(
      member,
      encodeJoined(JOINED_FLAG.present | JOINED_FLAG.you, info.name, member.identity.spki),
    );
    this.#broadcast(encodeJoined(0, info.name, member.identity.spki));
    this.#members.set(fingerprint, member);
    this.#hostRoster.addIdentity(member.identity, info);
    this.#log(`"${info.name}" ${fingerprint} joined (${this.#members.size} members)`);
    this.#hostEvent({ type: "join", time: this.#now(), member: info });
    this.#lastVerification = {
      type: "verification",
      time: this.#now(),
      code: connection.verificationCode,
      peer: info,
    };
    this.#hostEvent(this.#lastVerification);

    let reason = "left";
    try {
      await this.#serve(member);
    } catch (error) {
      reason = error instanceof Ejection
        ? error.message
        : member.lost ?? `connection lost: ${(error as Error).message}`;
      if (!(error instanceof Ejection)) await connection.abort(error);
    } finally {
      // A member that said goodbye gets ours, so its session ends cleanly too.
      if (reason === "left") {
        await this.#flush(member);
        await connection.closeWrite().catch(() => {});
      }
      member.gone = true;
      connection.close();
      this.#members.delete(fingerprint);
      this.#hostRoster.remove(fingerprint);
      if (!this.#closed) {
        this.#broadcast(encodeLeft(authorOf(fingerprint), reason));
        await this.#hostTransfers?.abortWith(fingerprint, `${info.name} left the room`);
        this.#hostEvent({ type: "leave", time: this.#now(), member: info, reason });
      }
      this.#log(`"${info.name}" ${fingerprint} left: ${reason}`);
    }
  }

  async #violation(member: Member, text: string): Promise<void> {
    const now = this.#now();
    member.violations = member.violations.filter((t) => now - t < VIOLATION_WINDOW_MS);
    member.violations.push(now);
    if (member.violations.length >= MAX_VIOLATIONS) {
      this.#deliver(member, encodeNotice(2, `${text}: disconnected after repeated warnings`));
      await this.#flush(member);
      await member.connection.closeWrite().catch(() => {});
      throw new Ejection(`disconnected by the relay: ${text}`);
    }
    this.#log(`warning "${member.info.name}": ${text}`);
    this.#deliver(member, encodeNotice(1, `${text}: message dropped`));
  }

  async #serve(member: Member): Promise<void> {
    const maxText = this.#options.maxTextBytes ?? MAX_TEXT_BYTES;
    while (true) {
      const data = await member.connection.receive();
      if (data === null) return;
      if (data.length > 0 && isTransferType(data[0]!)) {
        await this.#routeTransfer(member, data);
        continue;
      }
      // The relay reads texts up to the u16 limit so that an oversized one earns the warning of
      // 13.4 (and is dropped) instead of a disconnect; recipients keep the 4096-byte cap.
      const message = decodeRoomMessage(data, { maxTextBytes: 0xffff });
      if (message.type !== "chat") {
        throw new ProtocolError("unexpected_message", `member sent a ${message.type} message`, {
          alert: "unexpected_message",
        });
      }
      const chat = message.message;
      if (new TextEncoder().encode(chat.text).length > maxText) {
        await this.#violation(member, `message longer than ${maxText} bytes`);
        continue;
      }
      if (!member.bucket.take(this.#now())) {
        await this.#violation(member, "too many messages: slow down");
        continue;
      }
      if (authorOf(member.info.fingerprint).some((byte, i) => byte !== chat.author[i])) {
        throw new Ejection("sent a message in another member's name");
      }
      if (chat.counter <= member.lastCounter) throw new Ejection("replayed one of its messages");
      if (!(await verifyChat(member.identity, this.roomId, chat))) {
        throw new Ejection("sent a message whose signature does not verify");
      }
      member.lastCounter = chat.counter;
      this.#route(member, chat, data);
    }
  }

  #route(sender: Member, chat: SignedChat, bytes: Uint8Array): void {
    if (chat.kind !== CHAT_KIND.private) {
      this.#broadcast(bytes, sender.info.fingerprint);
      this.#hostAccept(chat);
      return;
    }
    const hostFingerprint = this.#hostInfo?.fingerprint;
    for (const member of this.#members.values()) {
      if (authorOf(member.info.fingerprint).every((byte, i) => byte === chat.recipient[i])) {
        this.#deliver(member, bytes);
        return;
      }
    }
    if (hostFingerprint && authorOf(hostFingerprint).every((b, i) => b === chat.recipient[i])) {
      this.#hostAccept(chat);
      return;
    }
    this.#deliver(sender, encodeNotice(0, "no such member: the private message was not delivered"));
  }

  /**
   * The host checks every message like any recipient. Checks run one after another: WebCrypto
   * may finish verifications out of order, and the counter check needs arrival order.
   */
  #hostAccept(chat: SignedChat): void {
    if (!this.#hostInfo) return;
    this.#hostQueue = this.#hostQueue
      .then(() => this.#hostRoster.accept(chat, this.#now()))
      .then((event) => this.#hostEvent(event), () => {});
  }

  #hostEvent(event: ChatEvent): void {
    this.#hostEvents.emit(event);
  }

  /**
   * Tells the operator something (a refused connection): a notice to the host when it takes part
   * (its terminal belongs to the chat), else a log line.
   */
  report(text: string): void {
    if (this.#hostInfo) this.#hostEvent({ type: "notice", time: this.#now(), text });
    else this.#log(text);
  }

  /** Closes the room: a final notice and close_notify to every member. */
  async close(reason = "the host closed the room"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#hostTransfers?.abortAll(reason);
    const members = [...this.#members.values()];
    for (const member of members) this.#deliver(member, encodeNotice(2, reason));
    await Promise.all(members.map(async (member) => {
      await this.#flush(member);
      await member.connection.closeWrite().catch(() => {});
    }));
    for (const member of members) member.connection.close();
    this.#hostEvents.emit({ type: "closed", time: this.#now(), reason });
    this.#resolveClosed();
  }

  /** The host's participation, as a ChatSession. @throws {RangeError} with --relay-only */
  hostSession(): ChatSession {
    const self = this.#hostInfo;
    if (!self) throw new RangeError("the host does not take part in this room");
    const send = async (kind: 1 | 2 | 3, text: string, to?: MemberInfo) => {
      if (this.#closed) throw new SecurechatError("not_connected", "the room is closed");
      const chat = await this.#hostSigner.sign(kind, text, to?.fingerprint);
      const bytes = encodeChat(chat);
      if (to) {
        const member = this.#members.get(to.fingerprint);
        if (member) this.#deliver(member, bytes);
      } else {
        this.#broadcast(bytes);
      }
      const event: ChatEvent = {
        type: "message",
        time: chat.timestamp,
        from: self,
        text,
        kind: kind === 2 ? "action" : kind === 3 ? "private" : "text",
        verified: true,
      };
      if (to) event.to = to;
      this.#hostEvent(event);
    };
    return {
      self,
      onEvent: (listener) => this.#hostEvents.on(listener),
      sendText: (text) => send(CHAT_KIND.text, text),
      sendAction: (text) => send(CHAT_KIND.action, text),
      sendPrivate: async (to, text) => {
        const entry = this.#hostRoster.find(to);
        if (!entry || entry.info.self) {
          throw new SecurechatError("unknown_member", `no member called "${to}" in the room`, 1, {
            hints: ["type /who to see the members"],
          });
        }
        await send(CHAT_KIND.private, text, entry.info);
      },
      members: () => this.#hostRoster.list(),
      verification: () =>
        this.#lastVerification ?? {
          type: "verification",
          time: this.#now(),
          code: "(nobody has joined yet)",
          peer: self,
        },
      close: () => this.close(),
      closed: this.closed,
      sendFile: (path, to) => this.#hostTransfers!.offer(path, pickRecipient(this.#hostRoster, to)),
      acceptOffer: (id) => this.#hostTransfers!.accept(id),
      rejectOffer: (id) => this.#hostTransfers!.reject(id),
      cancelTransfer: (id) => this.#hostTransfers!.cancel(id),
    };
  }
}
