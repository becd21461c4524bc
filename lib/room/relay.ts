/**
 * The relay (chat-mode listener): admits members over secure connections, checks every chat
 * message (author, signature, counter, size, rate) before forwarding it unchanged, routes private
 * messages to their recipient only, announces joins and leaves, and keeps one member's misbehaviour
 * or slowness from touching the others. The person at the listener can take part through
 * `hostParticipant()`, a Participant like a dialer's.
 *
 * It never prints: `log` receives one line per event worth telling an operator. The limits it
 * applies are counted in lib/room/limits.ts, each member's outgoing queue is lib/room/delivery.ts,
 * and the host's participation is lib/room/host.ts.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.1 to 13.4.
 *
 * @module
 */

import { type ReceivePolicy, receivePolicyOf } from "../transfer/receive_policy.ts";
import type { MemberInfo, Participant } from "../chat/chat_events.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { ProtocolError } from "../core/errors.ts";
import type { Identity, PublicIdentity } from "../keys/identity.ts";
import { replaceUnsafe } from "../core/text.ts";
import {
  authorOf,
  CHAT_KIND,
  decodeRoomMessage,
  encodeJoined,
  encodeLeft,
  encodeNotice,
  encodeWelcome,
  JOINED_FLAG,
  MAX_TEXT_BYTES,
  NOTICE_LEVEL,
  ROOM_ID_LENGTH,
  type SignedChat,
  verifyChat,
} from "../chat/room_messages.ts";
import { MemberOutbox } from "./delivery.ts";
import { RoomHost } from "./host.ts";
import {
  DEFAULT_BURST,
  DEFAULT_MAX_MEMBERS,
  DEFAULT_RATE_PER_SECOND,
  TokenBucket,
  TransferFlows,
  type TransferVerdict,
  Violations,
} from "./limits.ts";
import {
  decodeTransfer,
  isTransferType,
  MAX_MANIFEST_ENTRY_BYTES,
  MAX_SLICE,
  partyOf,
  TRANSFER_MESSAGE,
  type TransferMessage,
  WINDOW_BYTES,
  withParty,
} from "../transfer/transfer_messages.ts";
import { toHex } from "../core/bytes.ts";
import { exchangeSessionHello } from "../transport/session_hello.ts";

/** Options of a room. */
export interface RoomOptions extends ReceivePolicy {
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
  /** Operator log lines (stderr in the CLI). */
  log?: (line: string) => void;
}

interface Member {
  connection: SecureConnection;
  identity: PublicIdentity;
  info: MemberInfo;
  lastCounter: bigint;
  bucket: TokenBucket;
  violations: Violations;
  /** Messages on their way to the member; also says whether it is gone, and why. */
  outbox: MemberOutbox;
}

/** Why a member is being removed. */
class Ejection extends Error {}

/** A chat room served by the listener. */
export class Relay {
  readonly roomId: Uint8Array = crypto.getRandomValues(new Uint8Array(ROOM_ID_LENGTH));
  #options: RoomOptions;
  #members = new Map<string, Member>();
  #flows = new TransferFlows(WINDOW_BYTES + MAX_SLICE, MAX_MANIFEST_ENTRY_BYTES);
  #now: () => number;
  #log: (line: string) => void;
  #host: RoomHost;
  #closed = false;
  #resolveClosed: () => void = () => {};
  readonly closed: Promise<void> = new Promise((resolve) => this.#resolveClosed = resolve);

  constructor(options: RoomOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
    this.#host = new RoomHost({
      identity: options.identity,
      roomId: this.roomId,
      hostName: options.hostName,
      participates: options.hostParticipates,
      now: this.#now,
      ...receivePolicyOf(options),
      link: {
        isClosed: () => this.#closed,
        memberByAuthor: (author) => this.#memberByAuthor(author)?.outbox,
        sendTo: (fingerprint, bytes) => this.#members.get(fingerprint)?.outbox.deliver(bytes),
        broadcast: (bytes) => this.#broadcast(bytes),
        close: () => this.close(),
        closed: this.closed,
      },
    });
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
    const message = decodeTransfer(data);
    const forwarded = withParty(data, authorOf(sender.info.fingerprint));
    const target = this.#memberByAuthor(party);
    if (target) {
      const verdict = this.#flowVerdict(sender, target, message);
      if (verdict.action === "violation") return await this.#violation(sender, verdict.text);
      if (verdict.action === "drop") return;
      if (verdict.action === "charge" && !sender.bucket.take(this.#now())) {
        return await this.#violation(sender, "too many messages: slow down");
      }
      return target.outbox.deliver(forwarded);
    }
    const host = this.#host.info && authorOf(this.#host.info.fingerprint);
    const hostTransfers = this.#host.transfers;
    if (host && hostTransfers && host.every((byte, i) => byte === party[i])) {
      return await hostTransfers.handle(decodeTransfer(forwarded));
    }
    if (data[0] === TRANSFER_MESSAGE.offer) {
      sender.outbox.deliver(
        encodeNotice(NOTICE_LEVEL.info, "no such member: the file offer was not delivered"),
      );
    }
  }

  /**
   * Section 14.1: file data only within the window the recipient granted, other transfer
   * messages free only as the next step of an open transfer (else they count as chat does).
   */
  #flowVerdict(sender: Member, target: Member, message: TransferMessage): TransferVerdict {
    const from = sender.info.fingerprint;
    const to = target.info.fingerprint;
    const id = toHex(message.transferId);
    switch (message.type) {
      case "offer":
        return this.#flows.offer(from, to, id, message.offer.fileCount);
      case "data":
      case "manifest":
        return this.#flows.check(message.type, from, to, id, message.bytes.length);
      case "ack":
        return this.#flows.check(message.type, from, to, id, message.received);
      default:
        return this.#flows.check(message.type, from, to, id);
    }
  }

  /** Number of members connected (the host not counted). */
  get memberCount(): number {
    return this.#members.size;
  }

  #uniqueName(wanted: string, fingerprint: string): string {
    const base = replaceUnsafe(wanted).replace(/\s+/g, "_").slice(0, 40) || "member";
    const taken = (name: string) =>
      this.#host.info?.name === name ||
      [...this.#members.values()].some((member) => member.info.name === name);
    if (!taken(base)) return base;
    // The fallback is checked too: another member may have picked "bob-AbCdEf" deliberately.
    const fallback = `${base}-${fingerprint.slice(7, 13)}`;
    if (!taken(fallback)) return fallback;
    for (let n = 2;; n++) if (!taken(`${fallback}-${n}`)) return `${fallback}-${n}`;
  }

  #broadcast(bytes: Uint8Array, except?: string): void {
    for (const [fingerprint, member] of this.#members) {
      if (fingerprint !== except) member.outbox.deliver(bytes);
    }
  }

  async #refuse(connection: SecureConnection, text: string): Promise<void> {
    await connection.send(encodeNotice(NOTICE_LEVEL.final, text)).catch(() => {});
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
    if (this.#members.has(fingerprint) || this.#host.info?.fingerprint === fingerprint) {
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
      violations: new Violations(),
      outbox: new MemberOutbox(connection, info.name, this.#log),
    };
    member.outbox.deliver(encodeWelcome(this.roomId, info.name));
    if (this.#host.info) {
      member.outbox.deliver(
        encodeJoined(
          JOINED_FLAG.present | JOINED_FLAG.host,
          this.#host.info.name,
          this.#options.identity.spki,
        ),
      );
    }
    for (const other of this.#members.values()) {
      member.outbox.deliver(
        encodeJoined(JOINED_FLAG.present, other.info.name, other.identity.spki),
      );
    }
    member.outbox.deliver(
      encodeJoined(JOINED_FLAG.present | JOINED_FLAG.you, info.name, member.identity.spki),
    );
    this.#broadcast(encodeJoined(0, info.name, member.identity.spki));
    this.#members.set(fingerprint, member);
    this.#host.roster?.addIdentity(member.identity, info);
    this.#log(`"${info.name}" ${fingerprint} joined (${this.#members.size} members)`);
    this.#host.joined(info, connection.verificationCode);

    let reason = "left";
    try {
      await this.#serve(member);
    } catch (error) {
      reason = error instanceof Ejection
        ? error.message
        : member.outbox.lost ?? `connection lost: ${(error as Error).message}`;
      if (!(error instanceof Ejection)) await connection.abort(error);
    } finally {
      // A member that said goodbye gets ours, so its session ends cleanly too.
      if (reason === "left") {
        await member.outbox.flush();
        await connection.closeWrite().catch(() => {});
      }
      member.outbox.gone = true;
      connection.close();
      this.#members.delete(fingerprint);
      this.#flows.forget(fingerprint);
      this.#host.roster?.remove(fingerprint);
      if (!this.#closed) {
        this.#broadcast(encodeLeft(authorOf(fingerprint), reason));
        await this.#host.transfers?.abortWith(fingerprint, `${info.name} left the room`);
        this.#host.emit({ type: "leave", time: this.#now(), member: info, reason });
      }
      this.#log(`"${info.name}" ${fingerprint} left: ${reason}`);
    }
  }

  async #violation(member: Member, text: string): Promise<void> {
    if (member.violations.add(this.#now())) {
      member.outbox.deliver(
        encodeNotice(NOTICE_LEVEL.final, `${text}: disconnected after repeated warnings`),
      );
      await member.outbox.flush();
      await member.connection.closeWrite().catch(() => {});
      throw new Ejection(`disconnected by the relay: ${text}`);
    }
    this.#log(`warning "${member.info.name}": ${text}`);
    member.outbox.deliver(encodeNotice(NOTICE_LEVEL.warning, `${text}: message dropped`));
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
      this.#host.accept(chat);
      return;
    }
    const hostFingerprint = this.#host.info?.fingerprint;
    for (const member of this.#members.values()) {
      if (authorOf(member.info.fingerprint).every((byte, i) => byte === chat.recipient[i])) {
        member.outbox.deliver(bytes);
        return;
      }
    }
    if (hostFingerprint && authorOf(hostFingerprint).every((b, i) => b === chat.recipient[i])) {
      this.#host.accept(chat);
      return;
    }
    sender.outbox.deliver(
      encodeNotice(NOTICE_LEVEL.info, "no such member: the private message was not delivered"),
    );
  }

  /**
   * Tells the operator something (a refused connection): a notice to the host when it takes part
   * (its terminal belongs to the chat), else a log line.
   */
  report(text: string): void {
    if (this.#host.info) this.#host.emit({ type: "notice", time: this.#now(), text });
    else this.#log(text);
  }

  /** Closes the room: a final notice and close_notify to every member. */
  async close(reason = "the host closed the room"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#host.transfers?.abortAll(reason);
    const members = [...this.#members.values()];
    for (const member of members) member.outbox.deliver(encodeNotice(NOTICE_LEVEL.final, reason));
    await Promise.all(members.map(async (member) => {
      await member.outbox.flush();
      await member.connection.closeWrite().catch(() => {});
    }));
    for (const member of members) member.connection.close();
    this.#host.emit({ type: "closed", time: this.#now(), reason });
    this.#resolveClosed();
  }

  /** The host's participation, as a Participant. @throws {RangeError} with --relay-only */
  hostParticipant(): Participant {
    const participant = this.#host.participant;
    if (!participant) throw new RangeError("the host does not take part in this room");
    return participant;
  }
}
