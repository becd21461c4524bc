/**
 * The person at the listener as a room participant: the host's roster, its signer, its events,
 * its file transfers, and the ChatSession that `RoomHub.hostSession()` returns, a session like a
 * dialer's. The host checks every message it receives like any recipient, although the relay it
 * sits in has checked them already.
 *
 * What it does not do: admit, check or route members' traffic (lib/room.ts does, and tells the
 * host through {@linkcode RoomHost}'s methods), or print.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.2 and 13.3 (the host signs and checks like a member), and
 * 14 for its file transfers.
 *
 * @module
 */

import { type ReceivePolicy, receivePolicyOf } from "./receive_policy.ts";
import type { ChatEvent, ChatSession, MemberInfo } from "./chat_events.ts";
import { ChatSigner } from "./chat_signer.ts";
import { SecurechatError } from "./errors.ts";
import type { Identity } from "./identity.ts";
import { replaceUnsafe } from "./text.ts";
import {
  authorOf,
  CHAT_KIND,
  CHAT_KIND_NAME,
  type ChatKind,
  encodeChat,
  type SignedChat,
} from "./room_messages.ts";
import type { MemberOutbox } from "./room_delivery.ts";
import { EventHub, pickRecipient } from "./room_member.ts";
import { Roster } from "./room_roster.ts";
import { TransferManager } from "./transfer.ts";
import { partyOf, withParty } from "./transfer_messages.ts";

/** What the host needs of the relay it sits in. */
export interface HostLink {
  /** True once the room is closing: the host sends nothing more. */
  isClosed(): boolean;
  /** The outgoing queue of the member with this author id, when it is in the room. */
  memberByAuthor(author: Uint8Array | undefined): MemberOutbox | undefined;
  /** Hands a message to the member with this fingerprint, when it is still in the room. */
  sendTo(fingerprint: string, bytes: Uint8Array): void;
  /** Hands a message to every member. */
  broadcast(bytes: Uint8Array): void;
  /** Closes the room. */
  close(): Promise<void>;
  /** Settles once the room is closed. */
  closed: Promise<void>;
}

/** Options of a RoomHost. */
export interface RoomHostOptions extends ReceivePolicy {
  /** The listener's identity (signs the host's messages). */
  identity: Identity;
  roomId: Uint8Array;
  /** The host's display name, when the person at the listener takes part. */
  hostName?: string | undefined;
  /** False for --relay-only. */
  participates: boolean;
  /** Milliseconds clock. */
  now: () => number;
  link: HostLink;
}

/**
 * The host's side of a room. It exists with --relay-only too (the roster and events are kept),
 * but then has no `info`, no transfers and no session.
 */
export class RoomHost {
  /** The host as members see it; undefined with --relay-only. */
  readonly info: MemberInfo | undefined;
  /** Every member, with the keys the host checks their messages with. */
  readonly roster: Roster;
  /** The host's file transfers; undefined with --relay-only. */
  readonly transfers: TransferManager | undefined;
  #signer: ChatSigner;
  #events = new EventHub();
  #lastVerification: (ChatEvent & { type: "verification" }) | undefined;
  #queue: Promise<void> = Promise.resolve();
  #now: () => number;
  #link: HostLink;

  constructor(options: RoomHostOptions) {
    this.#now = options.now;
    this.#link = options.link;
    this.roster = new Roster(options.roomId, options.identity.fingerprint);
    this.#signer = new ChatSigner(options.identity, options.roomId, this.#now);
    if (options.participates) {
      this.info = {
        name: replaceUnsafe(options.hostName ?? options.identity.comment) || "host",
        fingerprint: options.identity.fingerprint,
        host: true,
        self: true,
      };
      this.roster.addIdentity(options.identity, this.info);
      const hostAuthor = authorOf(options.identity.fingerprint);
      this.transfers = new TransferManager({
        identity: options.identity,
        roomId: options.roomId,
        roster: this.roster,
        signer: this.#signer,
        // The host's transfer messages go straight to the member, as the relay would forward them.
        send: (message) => {
          const target = this.#link.memberByAuthor(partyOf(message));
          if (!target) return Promise.reject(new SecurechatError("gone", "the member left"));
          target.deliver(withParty(message, hostAuthor));
          return Promise.resolve();
        },
        emit: (event) => this.emit(event),
        now: this.#now,
        ...receivePolicyOf(options),
      });
    }
  }

  /** Tells the host's session something (with --relay-only there is none, so nothing is kept). */
  emit(event: ChatEvent): void {
    // EventHub keeps what it is told until someone listens; with --relay-only nobody ever can
    // (session() throws), so a long-lived relay would keep every join and leave it ever saw.
    if (this.info) this.#events.emit(event);
  }

  /** A member joined: the host is told, with the verification code of its connection. */
  joined(info: MemberInfo, code: string): void {
    this.emit({ type: "join", time: this.#now(), member: info });
    this.#lastVerification = {
      type: "verification",
      time: this.#now(),
      code,
      peer: info,
    };
    this.emit(this.#lastVerification);
  }

  /**
   * The host checks every message like any recipient. Checks run one after another: WebCrypto
   * may finish verifications out of order, and the counter check needs arrival order.
   */
  accept(chat: SignedChat): void {
    if (!this.info) return;
    this.#queue = this.#queue
      .then(() => this.roster.accept(chat, this.#now()))
      .then((event) => this.emit(event), () => {});
  }

  /** The host's participation, as a ChatSession. @throws {RangeError} with --relay-only */
  session(): ChatSession {
    const self = this.info;
    if (!self) throw new RangeError("the host does not take part in this room");
    const send = async (kind: ChatKind, text: string, to?: MemberInfo) => {
      if (this.#link.isClosed()) throw new SecurechatError("not_connected", "the room is closed");
      const chat = await this.#signer.sign(kind, text, to?.fingerprint);
      const bytes = encodeChat(chat);
      if (to) {
        this.#link.sendTo(to.fingerprint, bytes);
      } else {
        this.#link.broadcast(bytes);
      }
      const event: ChatEvent = {
        type: "message",
        time: chat.timestamp,
        from: self,
        text,
        kind: CHAT_KIND_NAME[kind],
        verified: true,
      };
      if (to) event.to = to;
      this.emit(event);
    };
    return {
      self,
      onEvent: (listener) => this.#events.on(listener),
      sendText: (text) => send(CHAT_KIND.text, text),
      sendAction: (text) => send(CHAT_KIND.action, text),
      sendPrivate: async (to, text) => {
        const entry = this.roster.find(to);
        if (!entry || entry.info.self) {
          throw new SecurechatError("unknown_member", `no member called "${to}" in the room`, 1, {
            hints: ["type /who to see the members"],
          });
        }
        await send(CHAT_KIND.private, text, entry.info);
      },
      members: () => this.roster.list(),
      verification: () =>
        this.#lastVerification ?? {
          type: "verification",
          time: this.#now(),
          code: "(nobody has joined yet)",
          peer: self,
        },
      close: () => this.#link.close(),
      closed: this.#link.closed,
      sendFile: (path, to) => this.transfers!.offer(path, pickRecipient(this.roster, to)),
      acceptOffer: (id) => this.transfers!.accept(id),
      rejectOffer: (id) => this.transfers!.reject(id),
      cancelTransfer: (id) => this.transfers!.cancel(id),
    };
  }
}
