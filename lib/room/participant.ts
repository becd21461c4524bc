/**
 * One taking part in a room, written once for both kinds: a member that dialed in
 * (`joinRoom()`, lib/room/member.ts) and the host, the person at the listener
 * (lib/room/host.ts). It owns what every participant has: its roster (who is in the room, with
 * the keys their messages are checked with), its signer, its events, its file transfers, and the
 * `Participant` a UI drives. What differs between the two is only how bytes leave, which each
 * side gives as a {@linkcode ParticipantLink}: a member sends through its connection to the
 * relay, the host hands messages straight to the members' outboxes.
 *
 * What it does not do: read a connection (the member's receive loop and the relay do, and hand
 * it what arrives through {@linkcode RoomParticipant.check} and {@linkcode RoomParticipant.emit}),
 * route other members' traffic, or print.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.2 and 13.3 (every participant signs and checks alike),
 * and 14 for file transfers.
 *
 * @module
 */

import type { ChatEvent, MemberInfo, Participant } from "../chat/chat_events.ts";
import { ChatSigner } from "../chat/chat_signer.ts";
import { SecurechatError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import { type ReceivePolicy, receivePolicyOf } from "../transfer/receive_policy.ts";
import {
  CHAT_KIND,
  CHAT_KIND_NAME,
  type ChatKind,
  encodeChat,
  type SignedChat,
} from "../chat/room_messages.ts";
import { Roster } from "../chat/room_roster.ts";
import { TransferManager } from "../transfer/transfer.ts";

/** The event /verify shows. */
export type VerificationEvent = ChatEvent & { type: "verification" };

/** How a participant's messages leave, and how its room ends: the one thing the sides differ in. */
export interface ParticipantLink {
  /** Sends an encoded chat message: to the member `to`, or to the whole room. */
  sendChat(bytes: Uint8Array, to: MemberInfo | undefined): Promise<void>;
  /** Sends an encoded file transfer message toward its recipient. */
  sendTransfer(message: Uint8Array): Promise<void>;
  /** True once the room is over for this participant: nothing more is sent. */
  isClosed(): boolean;
  /** Leaves (a member) or closes (the host) the room; resolves when that is done. */
  close(): Promise<void>;
  /** Settles once the room is over for this participant, for any reason. */
  readonly closed: Promise<void>;
  /** The error that ended the room for this participant, if one did. */
  failure?(): unknown;
}

/** Options of a {@linkcode RoomParticipant}. */
export interface ParticipantOptions extends ReceivePolicy {
  /** Our identity: signs our messages, and is how the roster knows which entry is us. */
  identity: Identity;
  roomId: Uint8Array;
  /** Ourselves as the room shows us. */
  self: MemberInfo;
  /** What /verify shows until {@linkcode RoomParticipant.setVerification} says otherwise. */
  verification: VerificationEvent;
  /** Milliseconds clock. */
  now: () => number;
  link: ParticipantLink;
}

/**
 * Fans events out to listeners. Events emitted before anyone listens are kept and handed to the
 * first listener, so a UI that subscribes after the room is joined misses nothing.
 */
export class EventHub {
  #listeners = new Set<(event: ChatEvent) => void>();
  #early: ChatEvent[] | undefined = [];

  /** Subscribes `listener`, first handing it every event kept so far; returns an unsubscribe. */
  on(listener: (event: ChatEvent) => void): () => void {
    this.#listeners.add(listener);
    const early = this.#early;
    this.#early = undefined;
    for (const event of early ?? []) listener(event);
    return () => this.#listeners.delete(listener);
  }

  /** Hands `event` to every listener (or keeps it until the first one). */
  emit(event: ChatEvent): void {
    if (this.#early) this.#early.push(event);
    for (const listener of this.#listeners) listener(event);
  }
}

/** A participant in a room: the `Participant` a UI drives, for a member and the host alike. */
export class RoomParticipant implements Participant {
  readonly self: MemberInfo;
  /** Every member, with the keys their messages are checked with. */
  readonly roster: Roster;
  /** Our file transfers, in both directions. */
  readonly transfers: TransferManager;
  readonly closed: Promise<void>;
  #signer: ChatSigner;
  #events = new EventHub();
  #verification: VerificationEvent;
  #checks: Promise<unknown> = Promise.resolve();
  #now: () => number;
  #link: ParticipantLink;

  constructor(options: ParticipantOptions) {
    this.self = options.self;
    this.#now = options.now;
    this.#link = options.link;
    this.#verification = options.verification;
    this.closed = options.link.closed;
    this.roster = new Roster(options.roomId, options.identity.fingerprint);
    this.#signer = new ChatSigner(options.identity, options.roomId, this.#now);
    this.transfers = new TransferManager({
      identity: options.identity,
      roomId: options.roomId,
      roster: this.roster,
      signer: this.#signer,
      send: (message) => this.#link.sendTransfer(message),
      emit: (event) => this.emit(event),
      now: this.#now,
      ...receivePolicyOf(options),
    });
  }

  /** Tells our UI something. */
  emit(event: ChatEvent): void {
    this.#events.emit(event);
  }

  /** Sets what /verify shows: the host learns a new code with every member that joins. */
  setVerification(event: VerificationEvent): void {
    this.#verification = event;
  }

  /**
   * Checks a received chat message like any recipient (section 13.2) and shows the result: the
   * message, or a rejection. Checks run in arrival order, one after another: WebCrypto may finish
   * verifications out of order, and the counter check needs arrival order.
   *
   * @param chat the decoded message
   * @returns when this message's check is done
   */
  check(chat: SignedChat): Promise<void> {
    const checked = this.#checks.then(() => this.roster.accept(chat, this.#now()))
      .then((event) => this.emit(event));
    this.#checks = checked.catch(() => {});
    return checked;
  }

  onEvent(listener: (event: ChatEvent) => void): () => void {
    return this.#events.on(listener);
  }

  sendText(text: string): Promise<void> {
    return this.#sendChat(CHAT_KIND.text, text);
  }

  sendAction(text: string): Promise<void> {
    return this.#sendChat(CHAT_KIND.action, text);
  }

  async sendPrivate(to: string, text: string): Promise<void> {
    const entry = this.roster.find(to);
    if (!entry || entry.info.self) {
      throw new SecurechatError("unknown_member", `no member called "${to}" in the room`, 1, {
        hints: ["type /who to see the members"],
      });
    }
    await this.#sendChat(CHAT_KIND.private, text, entry.info);
  }

  members(): MemberInfo[] {
    return this.roster.list();
  }

  verification(): VerificationEvent {
    return this.#verification;
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  failure(): unknown {
    return this.#link.failure?.();
  }

  sendFile(path: string, to?: string): Promise<void> {
    return this.transfers.offer(path, pickRecipient(this.roster, to));
  }

  acceptOffer(id?: string): Promise<void> {
    return this.transfers.accept(id);
  }

  rejectOffer(id?: string): Promise<void> {
    return this.transfers.reject(id);
  }

  cancelTransfer(id?: string): Promise<void> {
    return this.transfers.cancel(id);
  }

  /** Signs, sends, and shows us our own message, as it will be shown to the others. */
  async #sendChat(kind: ChatKind, text: string, to?: MemberInfo): Promise<void> {
    if (this.#link.isClosed()) throw new SecurechatError("not_connected", "the room is closed");
    const chat = await this.#signer.sign(kind, text, to?.fingerprint);
    await this.#link.sendChat(encodeChat(chat), to);
    const event: ChatEvent = {
      type: "message",
      time: chat.timestamp,
      from: this.roster.get(this.self.fingerprint)?.info ?? this.self,
      text,
      kind: CHAT_KIND_NAME[kind],
      verified: true,
    };
    if (to) event.to = to;
    this.emit(event);
  }
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
