/**
 * One taking part in a room: the `Participant` a UI drives, the same for a dialer and for the
 * host (the person at the listener, whose link to the relay is in-process). It owns what a member
 * has once the group has let it in: the group (lib/group), the roster the UI shows, its events,
 * its file transfers, and what it says to the room, privately or to everyone.
 *
 * What it does not do: read the relay (lib/room/member.ts does, and hands it what arrives), decide
 * who to admit (lib/room/admission.ts), or print.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.5 (what members say), 13.6 (what is wrong), 13.7 (what
 * members see), and 14 for file transfers.
 *
 * @module
 */

import type { ChatEvent, MemberInfo, Participant } from "../chat/chat_events.ts";
import { SecurechatError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import { authorOf } from "../keys/identity.ts";
import { type ReceivePolicy, receivePolicyOf } from "../transfer/receive_policy.ts";
import {
  decodeRoomContent,
  decodeSealedContent,
  encodeChat,
  encodePrivate,
  encodeSealed,
} from "../chat/room_content.ts";
import { Roster } from "../chat/room_roster.ts";
import { TransferManager } from "../transfer/transfer.ts";
import type { GroupEvent, GroupMember, RoomGroup } from "../group/group.ts";
import type { ToRelay } from "../chat/relay_messages.ts";
import { replaceUnsafe } from "../core/text.ts";
import { DirectPacer } from "./direct_pacer.ts";

/** The event /verify shows. */
export type VerificationEvent = ChatEvent & { type: "verification" };

/** What a participant needs of the member's link to the relay. */
export interface RelayLink {
  /** Sends one relay message (13.4). */
  send(message: ToRelay): Promise<void>;
  /** The verification code of the connection to the relay, and who the relay is. */
  readonly code: string;
  readonly relay: MemberInfo;
  /** True once the room is over for this participant: nothing more is sent. */
  isClosed(): boolean;
  /** Leaves the room; resolves when that is done. */
  close(): Promise<void>;
  /** Settles once the room is over for this participant, for any reason. */
  readonly closed: Promise<void>;
  /** The error that ended the room for this participant, if one did. */
  failure(): unknown;
}

/** Options of a {@linkcode RoomParticipant}. */
export interface ParticipantOptions extends ReceivePolicy {
  identity: Identity;
  /** The name we asked to be shown as. */
  name: string;
  /** Milliseconds clock. */
  now: () => number;
  link: RelayLink;
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

/** A participant in a room: the `Participant` a UI drives, for a dialer and the host alike. */
export class RoomParticipant implements Participant {
  /** Every member, as shown. */
  readonly roster: Roster;
  /** Our file transfers, in both directions. */
  readonly transfers: TransferManager;
  readonly closed: Promise<void>;
  /** Admin actions (/admit, /kick, /op), set by the member's link once it runs. */
  admin: AdminActions | undefined;
  #self: MemberInfo;
  #group: RoomGroup | undefined;
  /** Each member's name as its credential has it, by fingerprint: to tell who renamed itself. */
  #names = new Map<string, string>();
  #events = new EventHub();
  #now: () => number;
  #link: RelayLink;
  #directs = new DirectPacer();

  constructor(options: ParticipantOptions) {
    this.#now = options.now;
    this.#link = options.link;
    this.closed = options.link.closed;
    this.#self = { name: replaceUnsafe(options.name), fingerprint: options.identity.fingerprint };
    this.#self.self = true;
    this.roster = new Roster(options.link.relay.fingerprint);
    this.transfers = new TransferManager({
      self: this.#self,
      peers: this.roster,
      sendSealed: (message, to) => this.#sendSealed(message, to),
      // Paced: the relay drops Directs beyond its rate (13.8), and a dropped slice ends a file.
      sendDirect: async (bytes, to) => {
        await this.#directs.wait(bytes.length);
        await this.#link.send({ type: "direct", recipient: authorOf(to.fingerprint), bytes });
      },
      emit: (event) => this.emit(event),
      now: this.#now,
      ...receivePolicyOf(options),
    });
  }

  /** Ourselves as the room shows us. */
  get self(): MemberInfo {
    return this.roster.get(this.#self.fingerprint) ?? this.#self;
  }

  /** The group, once we are in it. */
  get group(): RoomGroup | undefined {
    return this.#group;
  }

  /** Tells our UI something. */
  emit(event: ChatEvent): void {
    this.#events.emit(event);
  }

  /**
   * We are in the group: we made it (`addedBy` undefined) or a Welcome brought us in. Shows the
   * roster, and who let us in.
   */
  entered(group: RoomGroup, addedBy?: GroupMember): void {
    this.#group = group;
    this.roster.update(group.members());
    this.#names = namesOf(group.members());
    const time = this.#now();
    if (addedBy) {
      const by = this.roster.get(addedBy.fingerprint);
      this.emit({ type: "notice", time, text: `${by?.name ?? "a member"} admitted you` });
    }
    this.emit({ type: "roster", time, members: this.roster.list() });
  }

  /** A commit was applied (someone else's, or ours after the relay's Accepted): shows the changes. */
  committed(event: GroupEvent & { kind: "commit" }): void {
    const before = this.roster.list();
    const committer = this.roster.get(event.committer.fingerprint) ?? infoOf(event.committer);
    const namesBefore = this.#names;
    if (this.#group) {
      this.roster.update(this.#group.members());
      this.#names = namesOf(this.#group.members());
    }
    const time = this.#now();
    for (const { member, left } of event.removed) {
      const info = before.find((m) => m.fingerprint === member.fingerprint) ?? infoOf(member);
      if (!this.roster.get(member.fingerprint)) {
        this.transfers.abortWith(member.fingerprint, "they left the room").catch(() => {});
      }
      if (left) {
        this.emit({ type: "leave", time, member: info, reason: "left the room" });
      } else {
        this.emit({
          type: "leave",
          time,
          member: info,
          reason: `removed by ${committer.name}`,
          by: committer,
        });
      }
    }
    for (const member of event.added) {
      const info = this.roster.get(member.fingerprint) ?? infoOf(member);
      this.emit({ type: "join", time, member: info, by: committer });
    }
    const admins = new Set(event.admins);
    const adminsBefore = new Set(before.filter((m) => m.admin).map((m) => m.fingerprint));
    for (const info of this.roster.list()) {
      const now = admins.has(info.fingerprint);
      if (now === adminsBefore.has(info.fingerprint)) continue;
      if (before.every((m) => m.fingerprint !== info.fingerprint)) continue;
      this.emit({
        type: "notice",
        time,
        text: `${committer.name} ${now ? "made" : "no longer makes"} ${info.name} an admin`,
      });
    }
    // A member may change the name in its credential with its own commit (13.3: an Update is
    // always allowed): never silently, or it could take a name others know.
    for (const info of this.roster.list()) {
      const was = namesBefore.get(info.fingerprint);
      if (was === undefined || was === this.#names.get(info.fingerprint)) continue;
      const shown = before.find((m) => m.fingerprint === info.fingerprint)?.name ?? was;
      this.emit({ type: "notice", time, text: `${shown} now calls itself ${info.name}` });
    }
  }

  /**
   * Section 13.5: what an authenticated application message says. Content that does not decode
   * is the sender's doing, and shown as rejected.
   */
  async received(event: GroupEvent & { kind: "application" }): Promise<void> {
    const from = this.roster.get(event.sender.fingerprint) ?? infoOf(event.sender);
    const time = this.#now();
    if (event.missed > 0) {
      this.emit({
        type: "notice",
        time,
        text: `${event.missed} message(s) from ${from.name} have not arrived: ` +
          "the relay dropped or delayed them",
      });
    }
    try {
      const content = decodeRoomContent(event.content);
      if (content.type === "chat") {
        this.emit({
          type: "message",
          time: content.timestamp,
          from,
          text: content.text,
          kind: content.kind,
          verified: true,
        });
        return;
      }
      const group = this.#group;
      if (!group) return;
      const plaintext = await group.open(event.sender, content.body);
      if (plaintext === undefined) return; // for someone else
      const sealed = decodeSealedContent(plaintext);
      if (sealed.type === "private") {
        this.emit({
          type: "message",
          time: sealed.timestamp,
          from,
          text: sealed.text,
          kind: "private",
          to: this.self,
          verified: true,
        });
      } else {
        await this.transfers.handleSealed(from, sealed.message);
      }
    } catch (error) {
      if (!(error instanceof SecurechatError)) throw error;
      this.emit({ type: "rejected", time, claimedAuthor: from.name, reason: error.message });
    }
  }

  /** A Direct from a member: file data (14.4). Bytes from anyone outside the group are dropped. */
  async direct(sender: Uint8Array, bytes: Uint8Array): Promise<void> {
    const from = this.roster.byAuthor(sender);
    if (!from || from.self) return;
    await this.transfers.handleDirect(from, bytes);
  }

  onEvent(listener: (event: ChatEvent) => void): () => void {
    return this.#events.on(listener);
  }

  async sendText(text: string): Promise<void> {
    await this.#sendChat("text", text);
  }

  async sendAction(text: string): Promise<void> {
    await this.#sendChat("action", text);
  }

  async sendPrivate(to: string, text: string): Promise<void> {
    const member = this.#other(to);
    const timestamp = this.#now();
    await this.#sendSealed(encodePrivate(timestamp, text), member);
    this.emit({
      type: "message",
      time: timestamp,
      from: this.self,
      text,
      kind: "private",
      to: member,
      verified: true,
    });
  }

  members(): MemberInfo[] {
    return this.#group ? this.roster.list() : [this.self];
  }

  async verify(who?: string): Promise<VerificationEvent> {
    const event: VerificationEvent = {
      type: "verification",
      time: this.#now(),
      code: this.#link.code,
      peer: this.#link.relay,
    };
    const group = this.#group;
    if (!group) return event;
    event.epochCode = await group.epochCode();
    if (who !== undefined) {
      const member = this.#other(who);
      const groupMember = group.member(authorOf(member.fingerprint));
      if (groupMember) event.safety = { member, number: await group.safetyNumber(groupMember) };
    }
    return event;
  }

  admit(who: string): Promise<void> {
    return this.#admin().admit(who);
  }

  kick(who: string): Promise<void> {
    return this.#admin().kick(who);
  }

  setAdmin(who: string, on: boolean): Promise<void> {
    return this.#admin().setAdmin(who, on);
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  failure(): unknown {
    return this.#link.failure();
  }

  sendFile(path: string, to?: string): Promise<void> {
    return this.transfers.offer(path, this.#recipient(to));
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

  /** Encrypts content for the whole group and hands it to the relay. */
  async #sendToGroup(content: Uint8Array): Promise<void> {
    for (let attempt = 1;; attempt++) {
      await this.admin?.clear();
      const group = this.#joinedGroup();
      try {
        return await this.#link.send({ type: "group", message: await group.encrypt(content) });
      } catch (error) {
        // Another proposal arrived between clear() and encrypt(): wait for its commit too.
        const again = error instanceof SecurechatError && error.code === "group_pending_proposals";
        if (!again || attempt === 3) throw error;
      }
    }
  }

  /** Section 13.5: a message only `to` can open, inside an application message for the group. */
  async #sendSealed(plaintext: Uint8Array, to: MemberInfo): Promise<void> {
    const group = this.#joinedGroup();
    const member = group.member(authorOf(to.fingerprint));
    if (!member) throw new SecurechatError("unknown_member", `${to.name} is not in the room`);
    await this.#sendToGroup(encodeSealed(await group.seal(member, plaintext)));
  }

  /** Sends a line to the room, and shows us our own message as the others will see it. */
  async #sendChat(kind: "text" | "action", text: string): Promise<void> {
    const timestamp = this.#now();
    await this.#sendToGroup(encodeChat({ kind, timestamp, text }));
    this.emit({ type: "message", time: timestamp, from: this.self, text, kind, verified: true });
  }

  #joinedGroup(): RoomGroup {
    if (this.#link.isClosed()) throw new SecurechatError("not_connected", "the room is closed");
    if (!this.#group) {
      throw new SecurechatError(
        "not_admitted",
        "you are not in the room yet: an admin has to admit you first",
      );
    }
    return this.#group;
  }

  #admin(): AdminActions {
    this.#joinedGroup();
    if (!this.admin) throw new SecurechatError("not_connected", "the room is closed");
    return this.admin;
  }

  /** Another member, by name or fingerprint. @throws {SecurechatError} `unknown_member` */
  #other(who: string): MemberInfo {
    const member = this.roster.find(who);
    if (!member || member.self) throw unknownMember(who);
    return member;
  }

  /**
   * The recipient of a file: `to` by name or fingerprint, else the host when there is one (what
   * `dial --send` means), else the only other member.
   */
  #recipient(to: string | undefined): MemberInfo {
    if (to !== undefined) return this.#other(to);
    const others = this.roster.list().filter((member) => !member.self);
    const host = others.find((member) => member.host);
    const only = host ?? (others.length === 1 ? others[0] : undefined);
    if (!only) {
      throw new SecurechatError(
        "unknown_member",
        "say whom to send it to: /send PATH NAME (there is more than one member)",
        1,
        { hints: ["type /who to see the members"] },
      );
    }
    return only;
  }
}

/** What an admin can do; lib/room/admission.ts does it. */
export interface AdminActions {
  /** Resolves once no proposal waits for a commit (a member may send nothing before). */
  clear(): Promise<void>;
  admit(who: string): Promise<void>;
  kick(who: string): Promise<void>;
  setAdmin(who: string, on: boolean): Promise<void>;
}

/** The names members' credentials give, by fingerprint. */
function namesOf(members: readonly GroupMember[]): Map<string, string> {
  return new Map(members.map((member) => [member.fingerprint, member.name]));
}

/** A group member as shown when the roster no longer (or not yet) has it. */
function infoOf(member: GroupMember): MemberInfo {
  return { name: replaceUnsafe(member.name) || "member", fingerprint: member.fingerprint };
}

function unknownMember(who: string): SecurechatError {
  return new SecurechatError("unknown_member", `no member called "${who}" in the room`, 1, {
    hints: ["type /who to see the members"],
  });
}
