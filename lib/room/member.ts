/**
 * A room member's side: `joinRoom()` turns a dialer's secure connection into a
 * {@linkcode RoomParticipant} (lib/room/participant.ts, the same class as the host's) and runs the
 * loop that reads what the relay sends: roster changes, chat messages, notices and file
 * transfer messages. What each recipient checks lives in room_roster.ts.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.1 to 13.3.
 *
 * @module
 */

import type { MemberInfo, Participant } from "../chat/chat_events.ts";
import { ProtocolError, SecurechatError } from "../core/errors.ts";
import type { Identity } from "../keys/identity.ts";
import { type ReceivePolicy, receivePolicyOf } from "../transfer/receive_policy.ts";
import { decodeRoomMessage, fingerprintOfAuthor, JOINED_FLAG } from "../chat/room_messages.ts";
import { RoomParticipant } from "./participant.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { exchangeSessionHello } from "../transport/session_hello.ts";
import { replaceUnsafe } from "../core/text.ts";
import {
  decodeTransfer,
  isTransferType,
  type TransferMessage,
} from "../transfer/transfer_messages.ts";

/** Options of `joinRoom`. */
export interface JoinOptions extends ReceivePolicy {
  identity: Identity;
  now?: () => number;
}

/**
 * Joins the room behind a dialer's connection: exchanges SessionHellos, reads the Welcome, and
 * returns a Participant whose events start with the verification code and the roster.
 *
 * @throws {ProtocolError} when the relay does not speak the room protocol
 */
export async function joinRoom(
  connection: SecureConnection,
  options: JoinOptions,
): Promise<Participant> {
  await exchangeSessionHello(connection, "chat");
  const now = options.now ?? Date.now;
  const first = await connection.receive();
  if (first === null) throw new ProtocolError("no_welcome", "the relay closed before welcoming us");
  const welcome = decodeRoomMessage(first);
  if (welcome.type === "notice") {
    connection.close();
    throw new SecurechatError(
      "refused_by_relay",
      `the relay refused us: ${replaceUnsafe(welcome.text)}`,
      1,
    );
  }
  if (welcome.type !== "welcome") {
    throw new ProtocolError("no_welcome", "the relay did not start with a Welcome");
  }
  const self: MemberInfo = {
    name: replaceUnsafe(welcome.name),
    fingerprint: options.identity.fingerprint,
    self: true,
  };
  const relay: MemberInfo = {
    name: connection.peer.name,
    fingerprint: connection.peer.identity.fingerprint,
  };
  const membership = new Membership(connection, now);
  const participant = new RoomParticipant({
    identity: options.identity,
    roomId: welcome.roomId,
    now,
    ...receivePolicyOf(options),
    self,
    verification: {
      type: "verification",
      time: now(),
      code: connection.verificationCode,
      peer: relay,
    },
    link: membership,
  });
  membership.run(participant);
  return participant;
}

/**
 * The member's end of the room: the link its participant sends through, and the loop that reads
 * the relay until the room ends for us (we leave, the relay closes, or something fails).
 */
class Membership {
  readonly closed: Promise<void>;
  #connection: SecureConnection;
  #now: () => number;
  #ended = false;
  #leaving = false;
  #failure: unknown;
  #resolveClosed: () => void = () => {};
  #receiving: Promise<void> = Promise.resolve();
  #participant: RoomParticipant | undefined;

  constructor(connection: SecureConnection, now: () => number) {
    this.#connection = connection;
    this.#now = now;
    this.closed = new Promise<void>((resolve) => this.#resolveClosed = resolve);
  }

  sendChat(bytes: Uint8Array): Promise<void> {
    return this.#connection.send(bytes);
  }

  sendTransfer(message: Uint8Array): Promise<void> {
    return this.#connection.send(message);
  }

  isClosed(): boolean {
    return this.#ended;
  }

  failure(): unknown {
    return this.#failure;
  }

  /** Leaves: close_notify, then up to 2 s for the relay to confirm by closing its side. */
  async close(): Promise<void> {
    if (!this.#ended) {
      this.#leaving = true;
      await this.#connection.closeWrite().catch(() => {});
      const timer = setTimeout(() => this.#finish("we left the room"), 2000);
      await this.#receiving;
      clearTimeout(timer);
      this.#finish("we left the room");
    }
    await this.closed;
  }

  /** Starts reading the relay for `participant`. */
  run(participant: RoomParticipant): void {
    this.#participant = participant;
    this.#receiving = this.#receive(participant);
  }

  #finish(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#participant?.transfers.abortAll(reason);
    this.#participant?.emit({ type: "closed", time: this.#now(), reason });
    this.#connection.close();
    this.#resolveClosed();
  }

  async #receive(participant: RoomParticipant): Promise<void> {
    participant.emit(participant.verification());
    try {
      while (true) {
        const data = await this.#connection.receive();
        if (data === null) {
          return this.#finish(this.#leaving ? "we left the room" : "the relay closed the room");
        }
        if (data.length > 0 && isTransferType(data[0]!)) {
          const transfer = this.#decodeTransfer(participant, data);
          if (transfer) await participant.transfers.handle(transfer);
        } else {
          await this.#handleRoomMessage(participant, data);
        }
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const code = error instanceof SecurechatError ? error.code : "error";
      if (!this.#ended) {
        this.#failure = error;
        participant.emit({ type: "error", time: this.#now(), code, message });
      }
      await this.#connection.abort(error);
      this.#finish(message);
    }
  }

  /** A malformed transfer message is the sender's doing (the relay checks them): not a reason to leave. */
  #decodeTransfer(participant: RoomParticipant, data: Uint8Array): TransferMessage | undefined {
    try {
      return decodeTransfer(data);
    } catch (error) {
      participant.emit({
        type: "rejected",
        time: this.#now(),
        claimedAuthor: "a member",
        reason: `a malformed file transfer message: ${(error as Error).message}`,
      });
      return undefined;
    }
  }

  /** Section 13.1: what the relay says about the room. @throws {ProtocolError} on a second Welcome */
  async #handleRoomMessage(participant: RoomParticipant, data: Uint8Array): Promise<void> {
    const roster = participant.roster;
    const message = decodeRoomMessage(data);
    switch (message.type) {
      case "joined": {
        const entry = await roster.add(message.spki, message.name, message.flags);
        if (entry.info.self) entry.info.name = participant.self.name;
        if (!(message.flags & JOINED_FLAG.present)) {
          participant.emit({ type: "join", time: this.#now(), member: entry.info });
        } else if (entry.info.self) {
          participant.emit({ type: "roster", time: this.#now(), members: roster.list() });
        }
        return;
      }
      case "left": {
        const entry = roster.remove(fingerprintOfAuthor(message.author));
        if (!entry) return;
        await participant.transfers.abortWith(entry.info.fingerprint, "they left the room");
        participant.emit({
          type: "leave",
          time: this.#now(),
          member: entry.info,
          reason: replaceUnsafe(message.reason),
        });
        return;
      }
      case "chat":
        return await participant.check(message.message);
      case "notice":
        participant.emit({ type: "notice", time: this.#now(), text: replaceUnsafe(message.text) });
        return;
      case "welcome":
        throw new ProtocolError("bad_room_message", "the relay sent a second Welcome");
    }
  }
}
