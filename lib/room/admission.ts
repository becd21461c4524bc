/**
 * A member's commits: who it admits, removes or makes an admin, batched into one commit at a
 * time, and the leaving members' proposals it commits when nobody else does. It keeps the
 * newcomers that knocked, admits those the admit list names at once (when we are an admin), and
 * the others when the person types /admit. Only one commit is in flight: the relay accepts one
 * per epoch (Accepted), and a refused one is dropped and made again from what is still to do
 * once the winner has been applied.
 *
 * A commit with its Welcome must fit in one relay message (MAX_RELAY_MESSAGE_BYTES, section
 * 13.8): the relay drops a larger one as a violation, never answers it, and admission would
 * wait for its Accepted forever. A commit that does not fit is made again with half its
 * admissions (the others go in the next one), and a newcomer whose Welcome alone does not fit is
 * dropped with a notice.
 *
 * What it does not do: read the relay (lib/room/member.ts hands it Knocks, Accepted, Refused and
 * the commits it applied), check commits (lib/group does, for everyone's), or print.
 *
 * Mirrors: docs/PROTOCOL.md section 13.3 (admitting, leaving, making admins) and 13.4 (order).
 *
 * @module
 */

import type { ChatEvent, MemberInfo } from "../chat/chat_events.ts";
import { encodeToRelay, type ToRelay } from "../chat/relay_messages.ts";
import { SecurechatError } from "../core/errors.ts";
import { replaceUnsafe } from "../core/text.ts";
import {
  type Admission as KeyPackageAdmission,
  type GroupEvent,
  type GroupMember,
  GroupRejection,
  type PendingCommit,
  type RoomGroup,
} from "../group/group.ts";
import { constantTimeEqual } from "../core/bytes.ts";
import { authorOf } from "../keys/identity.ts";
import { MAX_RELAY_MESSAGE_BYTES } from "./limits.ts";
import type { AdminActions } from "./participant.ts";

/** Knocks arriving within this many milliseconds go into one commit. */
const BATCH_MS = 25;
/** A member commits pending proposals after 1 s plus this much per position (13.3). */
const PROPOSAL_WAIT_MS = 1000;
const PROPOSAL_STEP_MS = 250;

/** Options of {@linkcode Admissions}. */
export interface AdmissionsOptions {
  /** The group, once we are in it. */
  group(): RoomGroup | undefined;
  send(message: ToRelay): Promise<void>;
  emit(event: ChatEvent): void;
  /** A commit of ours the relay accepted, applied: show it. */
  committed(event: GroupEvent & { kind: "commit" }): void;
  /** A member by the name the roster shows, or a fingerprint prefix (`Roster.find`). */
  find(who: string): MemberInfo | undefined;
  /** Whom we admit without asking when we are an admin (the admit list; the host: everyone). */
  admitsAtOnce(fingerprint: string): boolean;
  /** The session's fatal error: our own commit could not be applied. */
  fail(error: unknown): void;
  now: () => number;
  /** The largest relay message the relay takes: MAX_RELAY_MESSAGE_BYTES unless a test says. */
  maxMessageBytes?: number;
}

/** A newcomer that knocked, waiting for an admin. */
interface Knock {
  admission: KeyPackageAdmission;
  info: MemberInfo;
  /** Its fingerprint had a leaf when it knocked: that old leaf goes in the same commit. */
  replaces: boolean;
  /** An admin (we) decided to let it in. */
  admitted: boolean;
}

/** Our commits, one at a time. */
export class Admissions implements AdminActions {
  #options: AdmissionsOptions;
  #knocks = new Map<string, Knock>();
  #kicks = new Set<string>();
  /** Members whose authenticated leave proposal we saw, until a commit removes them. */
  #leavers = new Set<string>();
  #admins: string[] | undefined;
  #pending: PendingCommit | undefined;
  #making = false;
  #batchTimer: ReturnType<typeof setTimeout> | undefined;
  #proposalTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** Someone wants to send: pending proposals are committed now, not after the timer. */
  #urgent = false;
  /** Sends waiting for pending proposals to be committed (RFC 9420 forbids sending before). */
  #waiting: { resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(options: AdmissionsOptions) {
    this.#options = options;
  }

  /** A newcomer's KeyPackage from the relay (13.3): checked, shown, admitted if listed. */
  async knock(sender: Uint8Array, keyPackage: Uint8Array): Promise<void> {
    const group = this.#options.group();
    if (!group) return;
    let admission: KeyPackageAdmission;
    try {
      admission = await group.checkKeyPackage(keyPackage);
    } catch (error) {
      if (!(error instanceof GroupRejection)) throw error;
      this.#emit({
        type: "notice",
        time: this.#options.now(),
        text: `a knock was refused: ${error.message}`,
      });
      return;
    }
    if (!constantTimeEqual(admission.member.author, sender)) {
      this.#emit({
        type: "notice",
        time: this.#options.now(),
        text: "a knock was refused: its KeyPackage is not its sender's",
      });
      return;
    }
    const fingerprint = admission.member.fingerprint;
    if (fingerprint === group.self().fingerprint) return;
    const info: MemberInfo = {
      name: replaceUnsafe(admission.member.name) || "member",
      fingerprint,
    };
    const replaces = group.member(admission.member.author) !== undefined;
    const admin = group.self().admin;
    const knock: Knock = { admission, info, replaces, admitted: false };
    this.#knocks.set(fingerprint, knock);
    this.#emit({ type: "knock", time: this.#options.now(), member: info, canAdmit: admin });
    if (admin && this.#options.admitsAtOnce(fingerprint)) {
      knock.admitted = true;
      this.#soon();
    }
  }

  /** /admit: lets in a newcomer that knocked, by name or fingerprint. */
  // deno-lint-ignore require-await
  async admit(who: string): Promise<void> {
    this.#requireAdmin();
    const knocks = [...this.#knocks.values()];
    const byName = knocks.filter((knock) => knock.info.name === who);
    const bare = who.replace(/^SHA256:/, "");
    const found = byName.length === 1
      ? byName[0]
      : bare.length >= 6
      ? knocks.find((knock) => knock.info.fingerprint.slice(7).startsWith(bare))
      : undefined;
    if (!found) {
      throw new SecurechatError("unknown_member", `nobody called "${who}" is waiting to join`, 1, {
        hints: ["newcomers waiting to join are shown as they knock"],
      });
    }
    found.admitted = true;
    this.#soon();
  }

  /** /kick: removes a member (an admin only). */
  // deno-lint-ignore require-await
  async kick(who: string): Promise<void> {
    this.#requireAdmin();
    const member = this.#member(who);
    if (member.self) {
      throw new SecurechatError("unknown_member", "to leave the room, type /quit");
    }
    this.#kicks.add(member.fingerprint);
    this.#soon();
  }

  /** /op and /deop: makes a member an admin, or no longer one (never the last). */
  // deno-lint-ignore require-await
  async setAdmin(who: string, on: boolean): Promise<void> {
    this.#requireAdmin();
    const member = this.#member(who);
    const group = this.#options.group()!;
    const current = this.#admins ??
      group.members().filter((m) => m.admin).map((m) => m.fingerprint);
    const next = on
      ? [...new Set([...current, member.fingerprint])]
      : current.filter((fingerprint) => fingerprint !== member.fingerprint);
    if (next.length === 0) {
      throw new SecurechatError("last_admin", "the room needs at least one admin");
    }
    this.#admins = next;
    this.#soon();
  }

  /**
   * Resolves once no proposal waits for a commit, committing them now if needed: a member may
   * send nothing while one waits (RFC 9420 section 12.1), so a send waits for this first.
   *
   * @throws {SecurechatError} when the room ends first
   */
  async clear(): Promise<void> {
    if (!this.#options.group()?.hasPendingProposals()) return;
    if (this.#stopped) throw new SecurechatError("not_connected", "the room is closed");
    this.#urgent = true;
    this.#soon();
    await new Promise<void>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /**
   * A leaving member's proposal arrived: commit it ourselves if nobody does soon (13.3). We also
   * remember who asked to leave: a proposal that crosses a commit is lost with its epoch, and an
   * admin then removes that member itself, as it asked (its request was authenticated).
   */
  proposed(leaver: GroupMember): void {
    this.#leavers.add(leaver.fingerprint);
    this.#armProposalTimer();
  }

  /** Someone else's commit was applied: forget what it did, then see what is still to do. */
  applied(event: GroupEvent & { kind: "commit" }): void {
    this.#forget(event);
    this.#settled();
    this.#armProposalTimer();
    this.#soon();
  }

  /** The relay accepted our commit for `epoch`: apply it. */
  async accepted(epoch: bigint): Promise<void> {
    const pending = this.#pending;
    const group = this.#options.group();
    if (!pending || !group || pending.epoch !== epoch) return;
    this.#pending = undefined;
    let event: GroupEvent & { kind: "commit" };
    try {
      event = await group.confirmCommit(pending);
    } catch (error) {
      return this.#options.fail(error);
    }
    this.#forget(event);
    this.#options.committed(event);
    this.#settled();
    this.#armProposalTimer();
    this.#soon();
  }

  /**
   * The relay refused our commit: the winner came first; make ours again. Refused names the
   * room's current epoch (13.4), which is past our commit's when another commit won it, and
   * equal to it when ours was refused for going too fast: either way it answers the one commit
   * we have in flight.
   */
  refused(epoch: bigint): void {
    const pending = this.#pending;
    const group = this.#options.group();
    if (!pending || !group || epoch < pending.epoch) return;
    this.#pending = undefined;
    group.discardCommit(pending);
    this.#soon();
  }

  /** The session is over: no more commits. */
  stop(): void {
    this.#stopped = true;
    const closed = new SecurechatError("not_connected", "the room is closed");
    for (const waiter of this.#waiting.splice(0)) waiter.reject(closed);
    clearTimeout(this.#batchTimer);
    clearTimeout(this.#proposalTimer);
  }

  /** What a commit did is no longer to do; leavers it did not remove become an admin's kicks. */
  #forget(event: GroupEvent & { kind: "commit" }): void {
    for (const member of event.added) this.#knocks.delete(member.fingerprint);
    for (const { member } of event.removed) {
      this.#kicks.delete(member.fingerprint);
      this.#leavers.delete(member.fingerprint);
    }
    if (this.#admins && sameSet(this.#admins, event.admins)) this.#admins = undefined;
    const group = this.#options.group();
    if (!group?.self().admin) return;
    for (const fingerprint of this.#leavers) {
      const member = group.members().find((m) => m.fingerprint === fingerprint);
      if (member && !member.self) this.#kicks.add(fingerprint);
      else this.#leavers.delete(fingerprint);
    }
  }

  /** Wakes the sends that waited for pending proposals, once none is left. */
  #settled(): void {
    if (this.#options.group()?.hasPendingProposals()) return;
    this.#urgent = false;
    for (const waiter of this.#waiting.splice(0)) waiter.resolve();
  }

  #emit(event: ChatEvent): void {
    this.#options.emit(event);
  }

  #requireAdmin(): void {
    const group = this.#options.group();
    if (!group?.self().admin) {
      throw new SecurechatError("not_admin", "only an admin of the room can do that", 1, {
        hints: ["type /who: admins are marked"],
      });
    }
  }

  /** A member by the name the roster shows (or a fingerprint prefix), as /who lists it. */
  #member(who: string): GroupMember {
    const group = this.#options.group()!;
    const shown = this.#options.find(who);
    const found = shown && group.member(authorOf(shown.fingerprint));
    if (!found) {
      throw new SecurechatError("unknown_member", `no member called "${who}" in the room`, 1, {
        hints: ["type /who to see the members"],
      });
    }
    return found;
  }

  /** Commits soon, so that knocks arriving together share one commit. */
  #soon(): void {
    if (this.#stopped || this.#batchTimer !== undefined) return;
    this.#batchTimer = setTimeout(() => {
      this.#batchTimer = undefined;
      this.#commit().catch((error) => this.#options.fail(error));
    }, BATCH_MS);
  }

  /**
   * The proposal timer: a member at position p among the members commits pending proposals after
   * 1 s + p × 250 ms without a commit, so one member does it, not all at once.
   */
  #armProposalTimer(): void {
    clearTimeout(this.#proposalTimer);
    this.#proposalTimer = undefined;
    const group = this.#options.group();
    if (this.#stopped || !group?.hasPendingProposals()) return;
    const position = group.members().findIndex((member) => member.self);
    this.#proposalTimer = setTimeout(() => {
      this.#proposalTimer = undefined;
      if (this.#options.group()?.hasPendingProposals()) this.#soon();
    }, PROPOSAL_WAIT_MS + Math.max(position, 0) * PROPOSAL_STEP_MS);
  }

  /** Makes and sends one commit of everything still to do, unless one is in flight. */
  async #commit(): Promise<void> {
    const group = this.#options.group();
    if (this.#stopped || !group || this.#pending || this.#making) return;
    const admin = group.self().admin;
    let admitted = admin ? [...this.#knocks.values()].filter((knock) => knock.admitted) : [];
    const admins = admin ? this.#admins : undefined;
    const proposals = group.hasPendingProposals() &&
      (this.#urgent || this.#proposalTimer === undefined);
    this.#making = true;
    try {
      for (;;) {
        const remove = this.#removals(group, admin, admitted);
        if (admitted.length === 0 && remove.size === 0 && !admins && !proposals) return;
        const pending = await group.prepareCommit({
          ...(admitted.length ? { add: admitted.map((knock) => knock.admission) } : {}),
          ...(remove.size ? { remove: [...remove.values()] } : {}),
          ...(admins ? { admins } : {}),
        });
        const message: ToRelay = {
          type: "commit",
          commit: pending.commit,
          recipients: pending.recipients,
        };
        if (pending.welcome) message.welcome = pending.welcome;
        // The relay drops a larger message and never answers it (section 13.8). A commit
        // without an Add has nothing to leave out, and is sent as it is.
        if (admitted.length > 0 && encodeToRelay(message).length > this.#maxMessageBytes) {
          group.discardCommit(pending);
          admitted = this.#fewer(admitted);
          continue;
        }
        this.#pending = pending;
        await this.#options.send(message);
        return;
      }
    } finally {
      this.#making = false;
    }
  }

  get #maxMessageBytes(): number {
    return this.#options.maxMessageBytes ?? MAX_RELAY_MESSAGE_BYTES;
  }

  /**
   * The admissions of a commit too large for the relay, cut: the first half of them (the others
   * stay admitted, for the next commit), or, when one alone was too large, none: that newcomer
   * is forgotten, with a notice.
   */
  #fewer(admitted: Knock[]): Knock[] {
    if (admitted.length > 1) return admitted.slice(0, Math.ceil(admitted.length / 2));
    const [alone] = admitted;
    this.#knocks.delete(alone!.info.fingerprint);
    this.#emit({
      type: "notice",
      time: this.#options.now(),
      text: `cannot admit ${alone!.info.name}: the room is too large for one more member's Welcome`,
    });
    return [];
  }

  /** Who a commit removes: the kicked, and the old leaves of the admitted who came back. */
  #removals(group: RoomGroup, admin: boolean, admitted: Knock[]): Map<string, GroupMember> {
    const remove = new Map<string, GroupMember>();
    if (!admin) return remove;
    for (const member of group.members()) {
      if (this.#kicks.has(member.fingerprint)) remove.set(member.fingerprint, member);
    }
    for (const knock of admitted) {
      const old = knock.replaces ? group.member(knock.admission.member.author) : undefined;
      if (old && !old.self) remove.set(old.fingerprint, old);
    }
    return remove;
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
}
