/**
 * Peers of a Relay (lib/room/relay.ts) for tests: each joins through a real SecureConnection over
 * 127.0.0.1 (the real handshake, then the SessionHello) or through the in-memory pair the host
 * uses, then speaks relay messages by hand and keeps everything the relay sent it, in order.
 *
 * `barrier()` makes "received nothing else" testable without timing: the relay handles each
 * connection's messages in order and queues each peer's messages in order, so once the answer to
 * a message sent now has arrived, everything the relay queued for this peer before it has too.
 *
 * @module
 */

import { ok } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import {
  decodeFromRelay,
  encodeToRelay,
  type FromRelay,
  NOTICE_LEVEL,
  type ToRelay,
} from "../../lib/chat/relay_messages.ts";
import { generateIdentity, type Identity } from "../../lib/keys/identity.ts";
import { ALL_SUITES } from "../../lib/crypto/kex.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../../lib/protocol/record.ts";
import type { Relay } from "../../lib/room/relay.ts";
import { connectedPair, type RoomConnection } from "../../lib/room/room_connection.ts";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";

/** Identities are slow to make: one pool for every test in the process. */
const pool: Identity[] = [];
export async function identities(count: number): Promise<Identity[]> {
  while (pool.length < count) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(16, count - pool.length) },
        (_, i) => generateIdentity({ type: "ed25519", comment: `peer${pool.length + i}` }),
      ),
    );
    pool.push(...batch.map((pair) => pair.identity));
  }
  return pool.slice(0, count);
}

/** A real handshaken pair over loopback, with the record size rooms use (1 MiB, section 13). */
export async function securePairFor(
  member: Identity,
  relay: Identity,
): Promise<{ memberSide: SecureConnection; relaySide: SecureConnection }> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [serverConn, clientConn] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port }),
  ]);
  const [relaySide, memberSide] = await Promise.all([
    runResponder(serverConn, {
      identity: relay,
      suites: ALL_SUITES,
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
      authorize: () => Promise.resolve(),
    }),
    runInitiator(clientConn, {
      identity: member,
      suites: ["x25519"],
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
      checkPeer: () => Promise.resolve(),
    }),
  ]);
  return { memberSide, relaySide };
}

/** A PrivateMessage header with an empty body, for a waiting peer's barrier. */
const BARRIER_MESSAGE = Uint8Array.of(0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0);

/** How a peer's connection ended: close_notify (`null`) or an error. */
export type Ending = { error: unknown } | null;

/** One peer of the relay, speaking relay messages by hand. */
export class RelayPeer {
  readonly identity: Identity;
  /** Its author id: the raw SHA-256 of its SPKI. */
  readonly author: Uint8Array;
  readonly connection: RoomConnection;
  /** Resolves when the relay is done serving this peer. */
  readonly served: Promise<void>;
  /** Everything the relay sent, in order. */
  readonly inbox: FromRelay[] = [];
  /** How the connection ended, once it has. */
  ending: Ending | undefined;
  #read = 0;
  #wake: (() => void)[] = [];
  #reading = false;
  #stopped = false;

  constructor(
    identity: Identity,
    author: Uint8Array,
    connection: RoomConnection,
    served: Promise<void>,
  ) {
    this.identity = identity;
    this.author = author;
    this.connection = connection;
    this.served = served;
  }

  /** Reads (again): everything the relay sends lands in `inbox`. */
  startReading(): this {
    this.#stopped = false;
    if (this.#reading) return this;
    this.#reading = true;
    (async () => {
      try {
        while (true) {
          const data = await this.connection.receive();
          if (data === null) {
            // As a member does: the relay's goodbye is answered with ours.
            await this.connection.closeWrite().catch(() => {});
            this.ending = null;
            break;
          }
          this.inbox.push(decodeFromRelay(data));
          this.#notify();
          if (this.#stopped) return;
        }
      } catch (error) {
        this.ending = { error };
      } finally {
        this.#reading = false;
      }
      this.#notify();
    })();
    return this;
  }

  /** Stops reading after the message now awaited, if any: a member too slow for the room. */
  stopReading(): void {
    this.#stopped = true;
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  /** Waits until `predicate` holds (messages arrive, or the connection ends). */
  async until(predicate: () => boolean, what = "a condition"): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(
          `${this.identity.comment} timed out waiting for ${what}: ${describe(this.inbox)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next message not taken yet; fails if the connection ended first. */
  async next(): Promise<FromRelay> {
    await this.until(
      () => this.#read < this.inbox.length || this.ending !== undefined,
      "a message",
    );
    const message = this.inbox[this.#read];
    if (message === undefined) {
      throw new Error(
        `${this.identity.comment}: the connection ended: ${JSON.stringify(this.ending)}`,
      );
    }
    this.#read++;
    return message;
  }

  /** The next message, which must be of `type`. */
  async expect<T extends FromRelay["type"]>(type: T): Promise<FromRelay & { type: T }> {
    const message = await this.next();
    ok(
      message.type === type,
      `${this.identity.comment}: expected ${type}, got ${describe([message])}`,
    );
    return message as FromRelay & { type: T };
  }

  /** Waits for the end of the connection, after every message. */
  async ended(): Promise<Ending> {
    await this.until(() => this.ending !== undefined, "the end of the connection");
    return this.ending!;
  }

  /** Messages not taken yet, taken now. */
  rest(): FromRelay[] {
    const out = this.inbox.slice(this.#read);
    this.#read = this.inbox.length;
    return out;
  }

  send(message: ToRelay): Promise<void> {
    return this.connection.send(encodeToRelay(message));
  }

  /**
   * Everything the relay queued for this peer before now, taken: a member of the group sends a
   * Direct to nobody (answered by an info Notice); a waiting newcomer, which has no free
   * question, sends a Group message (answered by a warning: one violation). The answer is left
   * out.
   */
  async barrier(role: "member" | "waiting" = "member"): Promise<FromRelay[]> {
    const answer = role === "member"
      ? /direct message was not delivered/
      : /group message from outside the group/;
    await this.send(
      role === "member"
        ? { type: "direct", recipient: new Uint8Array(32), bytes: Uint8Array.of(0) }
        : { type: "group", message: BARRIER_MESSAGE },
    );
    const before: FromRelay[] = [];
    while (true) {
      const message = await this.next();
      if (
        message.type === "notice" && message.level !== NOTICE_LEVEL.final &&
        answer.test(message.text)
      ) {
        return before;
      }
      before.push(message);
    }
  }
}

/** Messages in short, for failure messages. */
export function describe(messages: FromRelay[]): string {
  return messages.map((m) => m.type === "notice" ? `notice(${m.level}: ${m.text})` : m.type).join(
    ", ",
  );
}

/** Joins `identity` to `relay` over a real loopback SecureConnection, and starts reading. */
export async function joinOverTcp(
  relay: Relay,
  relayIdentity: Identity,
  identity: Identity,
): Promise<RelayPeer> {
  const { memberSide, relaySide } = await securePairFor(identity, relayIdentity);
  const served = relay.join(relaySide);
  await exchangeSessionHello(memberSide, "chat");
  return new RelayPeer(identity, await sha256(identity.spki), memberSide, served).startReading();
}

/** Joins `identity` to `relay` through the in-memory pair (the host's link), and starts reading. */
export async function joinInMemory(
  relay: Relay,
  relayIdentity: Identity,
  identity: Identity,
): Promise<RelayPeer> {
  const [memberSide, relaySide] = connectedPair(
    { name: identity.comment, identity },
    { name: relayIdentity.comment, identity: relayIdentity },
    "in-process",
  );
  const served = relay.join(relaySide);
  await exchangeSessionHello(memberSide, "chat");
  return new RelayPeer(identity, await sha256(identity.spki), memberSide, served).startReading();
}
