/**
 * A room member's side: `joinRoom()`, which turns a dialer's secure connection into a
 * `ChatSession` (Welcome, roster updates, chat and file transfers), plus the pieces the host's
 * session shares with it: `EventHub` and `pickRecipient()`. What each recipient checks lives in
 * room_roster.ts, how we sign in chat_signer.ts.
 *
 * Mirrors: docs/PROTOCOL.md sections 13.1 to 13.3.
 *
 * @module
 */

import { type ReceivePolicy, receivePolicyOf } from "./receive_policy.ts";
import type { ChatEvent, ChatSession, MemberInfo } from "./chat_events.ts";
import { ChatSigner } from "./chat_signer.ts";
import type { SecureConnection } from "./secure_connection.ts";
import { ProtocolError, SecurechatError } from "./errors.ts";
import type { Identity } from "./identity.ts";
import { replaceUnsafe } from "./text.ts";
import {
  CHAT_KIND,
  CHAT_KIND_NAME,
  type ChatKind,
  decodeRoomMessage,
  encodeChat,
  fingerprintOfAuthor,
  JOINED_FLAG,
} from "./room_messages.ts";
import { Roster } from "./room_roster.ts";
import { exchangeSessionHello } from "./session_hello.ts";
import { TransferManager } from "./transfer.ts";
import { decodeTransfer, isTransferType } from "./transfer_messages.ts";

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
export interface JoinOptions extends ReceivePolicy {
  identity: Identity;
  now?: () => number;
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
      `the relay refused us: ${replaceUnsafe(welcome.text)}`,
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
    ...receivePolicyOf(options),
  });
  const self: MemberInfo = {
    name: replaceUnsafe(welcome.name),
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
                reason: replaceUnsafe(message.reason),
              });
            }
            break;
          }
          case "chat":
            hub.emit(await roster.accept(message.message, now()));
            break;
          case "notice":
            hub.emit({ type: "notice", time: now(), text: replaceUnsafe(message.text) });
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

  async function send(kind: ChatKind, text: string, to?: MemberInfo): Promise<void> {
    if (ended) throw new SecurechatError("not_connected", "the room is closed");
    const chat = await signer.sign(kind, text, to?.fingerprint);
    await connection.send(encodeChat(chat));
    const event: ChatEvent = {
      type: "message",
      time: chat.timestamp,
      from: roster.get(self.fingerprint)?.info ?? self,
      text,
      kind: CHAT_KIND_NAME[kind],
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
