/**
 * A member's side of a room: `joinRoom()` turns a connection to a relay (a dialer's
 * SecureConnection, or the host's in-process link) into a {@linkcode RoomParticipant}, makes the
 * group or asks to be admitted, and runs the loop that reads the relay: one message at a time, in
 * the relay's order, because every MLS message moves the one group state (13.1).
 *
 * What it does not do: decide what a message means (lib/group checks it, RoomParticipant shows
 * it) or what to commit (lib/room/admission.ts).
 *
 * On a cluster (16.4) the relay also says how far it has read the room's log (Position). When the
 * connection to it then breaks without close_notify and the caller gave a way to reconnect, the
 * member resumes after the last Position at the same or another relay: the group, the session and
 * the participant go on, and one notice says so. Without Positions, or without `reconnect`, a
 * broken connection ends the room as before.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.4 (Start, and the relay's messages to a member), 13.6 and
 * 16.4 (resuming).
 *
 * @module
 */

import type { MemberInfo } from "../chat/chat_events.ts";
import {
  decodeFromRelay,
  encodeToRelay,
  type FromRelay,
  NOTICE_LEVEL,
  type ToRelay,
} from "../chat/relay_messages.ts";
import {
  AuthenticationError,
  ConnectionError,
  ProtocolError,
  SecurechatError,
  TrustError,
} from "../core/errors.ts";
import { replaceUnsafe } from "../core/text.ts";
import { fingerprintOfAuthor, type Identity } from "../keys/identity.ts";
import { GroupRejection, Newcomer, RoomGroup } from "../group/group.ts";
import { type ReceivePolicy, receivePolicyOf } from "../transfer/receive_policy.ts";
import { exchangeSessionHello } from "../transport/session_hello.ts";
import { Admissions } from "./admission.ts";
import { type RelayLink, RoomParticipant } from "./participant.ts";
import type { RoomConnection } from "./room_connection.ts";

/** Options of `joinRoom`. */
export interface JoinOptions extends ReceivePolicy {
  identity: Identity;
  /** The name we ask to be shown as (default: the identity's comment). */
  name?: string | undefined;
  /** Whom we admit without asking once we are an admin (default: nobody; /admit asks). */
  admitsAtOnce?: (fingerprint: string) => boolean;
  now?: () => number;
  /**
   * Section 16.4: dials a relay of the cluster and sends ResumeRoom after `position`, trying the
   * relays the caller knows in turn; resolves with the connection once the relay answered Joined,
   * rejects when none would take us. Used only after a clustered relay sent a Position.
   */
  reconnect?: (position: bigint) => Promise<ResumedConnection>;
}

/** A connection to a relay that took our ResumeRoom (16.4), and where it is, to tell the user. */
export interface ResumedConnection {
  connection: RoomConnection;
  /** The relay's address, as the user named it (`HOST:PORT`). */
  at: string;
}

/**
 * Joins the room behind a connection to a relay: exchanges SessionHellos, reads the Start, and
 * makes the group (the first member) or sends our KeyPackage and waits for an admin. Returns a
 * Participant whose events start with the verification code; the roster follows once we are in.
 *
 * @throws {ProtocolError} when the relay does not speak the room protocol
 * @throws {SecurechatError} `refused_by_relay` when the relay turns us away
 */
export async function joinRoom(
  connection: RoomConnection,
  options: JoinOptions,
): Promise<RoomParticipant> {
  await exchangeSessionHello(connection, "chat");
  const now = options.now ?? Date.now;
  const first = await connection.receive();
  if (first === null) throw new ProtocolError("no_start", "the relay closed before letting us in");
  const start = decodeFromRelay(first);
  if (start.type === "notice") {
    connection.close();
    throw new SecurechatError(
      "refused_by_relay",
      `the relay refused us: ${replaceUnsafe(start.text)}`,
      1,
    );
  }
  if (start.type !== "start" || start.role === "resume") {
    // Start "resume" answers a ResumeRoom (16.4), never a Room.
    throw new ProtocolError("no_start", "the relay did not start with a Start create or wait");
  }
  const name = options.name ?? (options.identity.comment || "member");
  const membership = new Membership(
    connection,
    options.identity.fingerprint,
    now,
    options.reconnect,
  );
  const participant = new RoomParticipant({
    identity: options.identity,
    name,
    now,
    ...receivePolicyOf(options),
    link: membership,
  });
  const admissions = new Admissions({
    group: () => participant.group,
    send: (message) => membership.send(message),
    emit: (event) => participant.emit(event),
    committed: (event) => participant.committed(event),
    find: (who) => participant.roster.find(who),
    admitsAtOnce: options.admitsAtOnce ?? (() => false),
    fail: (error) => membership.fail(error),
    now,
  });
  participant.admin = admissions;
  participant.emit(await participant.verify());
  let newcomer: Newcomer | undefined;
  if (start.role === "create") {
    participant.entered(await RoomGroup.create(options.identity, name));
  } else {
    newcomer = await Newcomer.create(options.identity, name);
    await membership.send({ type: "key_package", keyPackage: newcomer.keyPackage });
    participant.emit({
      type: "notice",
      time: now(),
      text:
        `waiting for an admin of the room to admit you (you are ${options.identity.fingerprint})`,
    });
  }
  membership.run(participant, admissions, newcomer);
  return participant;
}

/**
 * The member's end of the room: the link its participant sends through, and the loop that reads
 * the relay until the room ends for us (we leave, the relay closes, we are removed, or something
 * fails).
 */
class Membership implements RelayLink {
  readonly closed: Promise<void>;
  readonly relay: MemberInfo;
  #connection: RoomConnection;
  #now: () => number;
  #reconnect: ((position: bigint) => Promise<ResumedConnection>) | undefined;
  /** The last Position the relay sent (16.4): set only by a clustered relay. */
  #position: bigint | undefined;
  /** Settles when a resume under way is over: sends wait for it, then go to the new relay. */
  #resuming: Promise<void> | undefined;
  #ended = false;
  #leaving = false;
  #failure: unknown;
  #resolveClosed: () => void = () => {};
  #receiving: Promise<void> = Promise.resolve();
  #participant: RoomParticipant | undefined;
  #admissions: Admissions | undefined;

  constructor(
    connection: RoomConnection,
    ownFingerprint: string,
    now: () => number,
    reconnect: ((position: bigint) => Promise<ResumedConnection>) | undefined,
  ) {
    this.#connection = connection;
    this.#now = now;
    this.#reconnect = reconnect;
    this.relay = {
      name: replaceUnsafe(connection.peer.name),
      fingerprint: connection.peer.identity.fingerprint,
    };
    // The host runs the relay it is linked to in-process: no code to compare (the UI says so).
    if (this.relay.fingerprint === ownFingerprint) this.relay.self = true;
    this.closed = new Promise<void>((resolve) => this.#resolveClosed = resolve);
  }

  /** The verification code of the connection to the relay (a resumed one has its own). */
  get code(): string {
    return this.#connection.verificationCode;
  }

  async send(message: ToRelay): Promise<void> {
    if (this.#resuming !== undefined) await this.#resuming;
    if (this.#ended) throw new SecurechatError("not_connected", "the room is closed");
    return await this.#connection.send(encodeToRelay(message));
  }

  isClosed(): boolean {
    return this.#ended;
  }

  failure(): unknown {
    return this.#failure;
  }

  /** Ends the session with `error` (our own commit could not be applied, 13.6). */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#failure = error;
    this.#report(error);
    this.#connection.abort(error).catch(() => {});
    this.#finish(error instanceof Error ? error.message : String(error));
  }

  /**
   * Leaves: a Remove proposal for our own leaf (13.3) when others are there to commit it, then
   * close_notify, then up to 2 s for the relay to confirm by closing its side.
   */
  async close(): Promise<void> {
    if (this.#resuming !== undefined) await this.#resuming;
    if (!this.#ended) {
      this.#leaving = true;
      // Leaving, we commit nothing more: our Remove is for the others to commit (13.3), and MLS
      // forbids a commit from a member whose own Remove is pending.
      this.#admissions?.stop();
      const group = this.#participant?.group;
      if (group && group.members().length > 1) {
        await group.proposeLeave()
          .then((message) => this.send({ type: "group", message }))
          .catch(() => {});
      }
      await this.#connection.closeWrite().catch(() => {});
      const timer = setTimeout(() => this.#finish("we left the room"), 2000);
      await this.#receiving;
      clearTimeout(timer);
      this.#finish("we left the room");
    }
    await this.closed;
  }

  /** Starts reading the relay for `participant`. */
  run(participant: RoomParticipant, admissions: Admissions, newcomer: Newcomer | undefined): void {
    this.#participant = participant;
    this.#admissions = admissions;
    this.#receiving = this.#receive(participant, admissions, newcomer);
  }

  #finish(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#admissions?.stop();
    this.#participant?.transfers.abortAll(reason).catch(() => {});
    this.#participant?.emit({ type: "closed", time: this.#now(), reason });
    this.#connection.close();
    this.#resolveClosed();
  }

  #report(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const code = error instanceof SecurechatError ? error.code : "error";
    this.#participant?.emit({ type: "error", time: this.#now(), code, message });
  }

  async #receive(
    participant: RoomParticipant,
    admissions: Admissions,
    newcomer: Newcomer | undefined,
  ): Promise<void> {
    try {
      while (!this.#ended) {
        let data: Uint8Array | null;
        try {
          data = await this.#connection.receive();
        } catch (error) {
          if (!this.#mayResume(error)) throw error;
          await this.#resume(participant, error);
          continue;
        }
        if (data === null) {
          return this.#finish(this.#leaving ? "we left the room" : "the relay closed the room");
        }
        const message = decodeFromRelay(data);
        if (message.type === "welcome" && newcomer && !participant.group) {
          newcomer = await this.#welcomed(participant, newcomer, message.welcome);
          continue;
        }
        await this.#handle(participant, admissions, message);
      }
    } catch (error) {
      if (!this.#ended) {
        this.#failure = error;
        this.#report(error);
        await this.#connection.abort(error).catch(() => {});
      }
      this.#finish(error instanceof Error ? error.message : String(error));
    }
  }

  /**
   * Section 16.4: whether a failed receive is a broken connection (no close_notify, no alert) that
   * we may resume: only after a Position, with a way to reconnect, while we are not leaving.
   */
  #mayResume(error: unknown): boolean {
    if (this.#ended || this.#leaving) return false;
    if (this.#position === undefined || this.#reconnect === undefined) return false;
    return (error instanceof AuthenticationError && error.code === "truncated") ||
      error instanceof ConnectionError;
  }

  /**
   * Section 16.4: reconnects after the last Position, exchanges SessionHellos, expects Start
   * "resume", and goes on reading from the new connection. Sends wait meanwhile.
   *
   * @throws {SecurechatError} `resume_failed` when no relay takes us back
   */
  async #resume(participant: RoomParticipant, lost: unknown): Promise<void> {
    const position = this.#position!;
    this.#connection.close();
    let done = () => {};
    this.#resuming = new Promise<void>((resolve) => done = resolve);
    const why = lost instanceof Error ? lost.message : String(lost);
    participant.emit({
      type: "notice",
      time: this.#now(),
      text: `connection to the relay lost (${why}); resuming the room`,
    });
    try {
      const { connection, at } = await this.#reconnect!(position);
      try {
        await this.#resumed(connection);
      } catch (error) {
        connection.close();
        throw error;
      }
      this.#connection = connection;
      participant.emit({
        type: "notice",
        time: this.#now(),
        text: `connection to the relay lost; resumed at ${replaceUnsafe(at)}`,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new SecurechatError(
        "resume_failed",
        `lost the connection to the relay and could not resume: ${message}`,
        1,
        { hints: ["join the room again"], cause: error },
      );
    } finally {
      this.#resuming = undefined;
      done();
    }
  }

  /** The new connection's SessionHello and Start "resume"; the relay's key must be the same. */
  async #resumed(connection: RoomConnection): Promise<void> {
    const fingerprint = connection.peer.identity.fingerprint;
    if (fingerprint !== this.relay.fingerprint) {
      throw new TrustError(
        "relay_key_mismatch",
        `the relay we resumed at has key ${fingerprint}, not ${this.relay.fingerprint}`,
      );
    }
    await exchangeSessionHello(connection, "chat");
    const first = await connection.receive();
    if (first === null) throw new ProtocolError("no_start", "the relay closed instead of resuming");
    const start = decodeFromRelay(first);
    if (start.type === "notice") {
      throw new SecurechatError(
        "refused_by_relay",
        `the relay refused to resume: ${replaceUnsafe(start.text)}`,
        1,
      );
    }
    if (start.type !== "start" || start.role !== "resume") {
      throw new ProtocolError("no_start", "the relay did not answer ResumeRoom with Start resume");
    }
  }

  /** A Welcome while we wait: we are in, or it was not for us (shown, and we keep waiting). */
  async #welcomed(
    participant: RoomParticipant,
    newcomer: Newcomer,
    welcome: Uint8Array,
  ): Promise<Newcomer | undefined> {
    try {
      const { group, addedBy } = await newcomer.join(welcome);
      participant.entered(group, addedBy);
      return undefined;
    } catch (error) {
      if (!(error instanceof GroupRejection)) throw error;
      participant.emit({
        type: "rejected",
        time: this.#now(),
        claimedAuthor: "the relay",
        reason: `a Welcome we could not use: ${error.message}`,
      });
      return newcomer;
    }
  }

  /** Section 13.4: one message from the relay, applied before the next is read. */
  async #handle(
    participant: RoomParticipant,
    admissions: Admissions,
    message: FromRelay,
  ): Promise<void> {
    const group = participant.group;
    switch (message.type) {
      case "notice":
        participant.emit({
          type: "notice",
          time: this.#now(),
          text: (message.level === NOTICE_LEVEL.final ? "the relay says: " : "") +
            replaceUnsafe(message.text),
        });
        return;
      case "knock":
        return await admissions.knock(message.sender, message.keyPackage);
      case "accepted":
        return await admissions.accepted(message.epoch);
      case "refused":
        return admissions.refused(message.epoch);
      case "direct":
        return await participant.direct(message.sender, message.bytes);
      case "left": {
        const member = participant.roster.byAuthor(message.sender);
        if (!member || member.self) return;
        participant.emit({
          type: "notice",
          time: this.#now(),
          text: `the relay says ${member.name} disconnected (still a member until it leaves ` +
            "or an admin removes it)",
        });
        // Our transfers with it cannot go on: they end as a broken connection ends them, part
        // files kept for a resend (14.5). Acting on the relay's word costs nothing it could not
        // take anyway: it can stall a transfer by dropping its Directs.
        await participant.transfers.abortWith(
          member.fingerprint,
          "the relay says they disconnected",
        );
        return;
      }
      case "commit":
      case "group":
        if (!group) return; // not in the group yet: nothing of it is ours to read
        return await this.#groupMessage(
          participant,
          admissions,
          group,
          message.type === "commit" ? message.commit : message.message,
          fingerprintOfAuthor(message.sender),
        );
      case "welcome":
        participant.emit({
          type: "rejected",
          time: this.#now(),
          claimedAuthor: "the relay",
          reason: "a Welcome although we are in the room already",
        });
        return;
      case "start":
        throw new ProtocolError("bad_relay_message", "the relay sent a second Start");
      case "position":
        // Section 16.4: the log only grows; a Position going back is a relay that lies.
        if (this.#position !== undefined && message.position < this.#position) {
          throw new ProtocolError("bad_relay_message", "the relay's Position went backwards");
        }
        this.#position = message.position;
        return;
    }
  }

  /** An MLS message for the group: applied (13.1); refused ones shown (13.6). */
  async #groupMessage(
    participant: RoomParticipant,
    admissions: Admissions,
    group: RoomGroup,
    bytes: Uint8Array,
    relayedFrom: string,
  ): Promise<void> {
    let event;
    try {
      event = await group.process(bytes);
    } catch (error) {
      if (!(error instanceof GroupRejection)) throw error;
      const claimed = participant.roster.get(relayedFrom)?.name ?? relayedFrom;
      participant.emit({
        type: "rejected",
        time: this.#now(),
        claimedAuthor: claimed,
        reason: error.message,
      });
      return;
    }
    switch (event.kind) {
      case "application":
        return await participant.received(event);
      case "proposal":
        if (event.leaving) {
          const member = participant.roster.get(event.sender.fingerprint);
          participant.emit({
            type: "notice",
            time: this.#now(),
            text: `${member?.name ?? "a member"} is leaving the room`,
          });
          admissions.proposed(event.sender);
        }
        return;
      case "commit":
        participant.committed(event);
        if (event.removedUs) {
          if (this.#leaving || event.removed.some(({ member, left }) => member.self && left)) {
            return this.#finish("we left the room");
          }
          const by = participant.roster.get(event.committer.fingerprint)?.name ??
            replaceUnsafe(event.committer.name);
          throw new SecurechatError("removed_from_room", `${by} removed you from the room`, 1);
        }
        admissions.applied(event);
        return;
    }
  }
}
