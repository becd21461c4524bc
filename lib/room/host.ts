/**
 * The person at the listener as a room participant: a {@linkcode RoomParticipant} like a
 * dialer's, whose messages go straight into the members' outboxes instead of through a
 * connection. The host checks every message it receives like any recipient, although the relay
 * it sits in has checked them already.
 *
 * What it does not do: admit, check or route members' traffic (lib/room/relay.ts does, and tells the
 * host through {@linkcode RoomHost}'s methods), or print.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.2 and 13.3 (the host signs and checks like a member), and
 * 14 for its file transfers.
 *
 * @module
 */

import type { ChatEvent, MemberInfo } from "../chat/chat_events.ts";
import { SecurechatError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import { type ReceivePolicy, receivePolicyOf } from "../transfer/receive_policy.ts";
import { authorOf, type SignedChat } from "../chat/room_messages.ts";
import type { MemberOutbox } from "./delivery.ts";
import { RoomParticipant } from "./participant.ts";
import type { Roster } from "../chat/room_roster.ts";
import type { TransferManager } from "../transfer/transfer.ts";
import { partyOf, withParty } from "../transfer/transfer_messages.ts";
import { replaceUnsafe } from "../core/text.ts";

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
 * The host's side of a room. With --relay-only nobody takes part at the listener: then there is
 * no participant, and what the relay tells the host is dropped (a long-lived relay would
 * otherwise keep every join and leave it ever saw).
 */
export class RoomHost {
  /** The host's participation; undefined with --relay-only. */
  readonly participant: RoomParticipant | undefined;
  #now: () => number;

  constructor(options: RoomHostOptions) {
    this.#now = options.now;
    if (!options.participates) return;
    const link = options.link;
    const self: MemberInfo = {
      name: replaceUnsafe(options.hostName ?? options.identity.comment) || "host",
      fingerprint: options.identity.fingerprint,
      host: true,
      self: true,
    };
    const hostAuthor = authorOf(options.identity.fingerprint);
    this.participant = new RoomParticipant({
      identity: options.identity,
      roomId: options.roomId,
      now: options.now,
      ...receivePolicyOf(options),
      self,
      verification: {
        type: "verification",
        time: this.#now(),
        code: "(nobody has joined yet)",
        peer: self,
      },
      link: {
        sendChat(bytes, to) {
          if (to) link.sendTo(to.fingerprint, bytes);
          else link.broadcast(bytes);
          return Promise.resolve();
        },
        // The host's transfer messages go straight to the member, as the relay would forward them.
        sendTransfer(message) {
          const target = link.memberByAuthor(partyOf(message));
          if (!target) return Promise.reject(new SecurechatError("gone", "the member left"));
          target.deliver(withParty(message, hostAuthor));
          return Promise.resolve();
        },
        isClosed: () => link.isClosed(),
        close: () => link.close(),
        closed: link.closed,
      },
    });
    this.participant.roster.addIdentity(options.identity, self);
  }

  /** The host as members see it; undefined with --relay-only. */
  get info(): MemberInfo | undefined {
    return this.participant?.self;
  }

  /** The host's roster; undefined with --relay-only. */
  get roster(): Roster | undefined {
    return this.participant?.roster;
  }

  /** The host's file transfers; undefined with --relay-only. */
  get transfers(): TransferManager | undefined {
    return this.participant?.transfers;
  }

  /** Tells the host something (with --relay-only there is nobody to tell). */
  emit(event: ChatEvent): void {
    this.participant?.emit(event);
  }

  /** A member joined: the host is told, with the verification code of its connection. */
  joined(info: MemberInfo, code: string): void {
    if (!this.participant) return;
    this.emit({ type: "join", time: this.#now(), member: info });
    const verification = { type: "verification" as const, time: this.#now(), code, peer: info };
    this.participant.setVerification(verification);
    this.emit(verification);
  }

  /** The host checks every message like any recipient (section 13.2). */
  accept(chat: SignedChat): void {
    this.participant?.check(chat).catch(() => {});
  }
}
