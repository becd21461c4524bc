/**
 * Room fixtures over real loopback sockets: a Relay, and members that dial it through the real
 * handshake and join with `joinRoom()`. Events are collected per member.
 *
 * @module
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ChatEvent, Participant } from "../../lib/chat/chat_events.ts";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { generateIdentity, type Identity, importPublicIdentity } from "../../lib/keys/identity.ts";
import { authorOf, decodeRoomMessage, JOINED_FLAG } from "../../lib/chat/room_messages.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import { ALL_SUITES } from "../../lib/crypto/kex.ts";
import { MAX_RECORD_PLAINTEXT } from "../../lib/protocol/record.ts";
import { type JoinOptions, joinRoom } from "../../lib/room/member.ts";

/** Identities are slow to make: reuse a pool across tests. */
const pool: Identity[] = [];
export async function identities(count: number): Promise<Identity[]> {
  while (pool.length < count) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(16, count - pool.length) },
        (_, i) => generateIdentity({ type: "ed25519", comment: `member${pool.length + i}` }),
      ),
    );
    pool.push(...batch.map((pair) => pair.identity));
  }
  return pool.slice(0, count);
}

/** A member: its session and every event it saw. */
export interface TestMember {
  identity: Identity;
  /** The member's secure connection, for tests that cut it without a goodbye. */
  connection?: SecureConnection;
  session: Participant;
  events: ChatEvent[];
  /** Messages from other members seen so far (kept as events arrive: load tests wait on it). */
  readonly received: number;
  /** Resolves when `predicate` holds for the events seen so far. */
  until(predicate: (events: ChatEvent[]) => boolean, timeoutMs?: number): Promise<void>;
}

/** Opens a secure connection pair on loopback: `accept` gets the responder side. */
export async function connectPair(
  client: Identity,
  server: Identity,
): Promise<{ clientSide: SecureConnection; serverSide: SecureConnection }> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [serverConn, clientConn] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port }),
  ]);
  const [serverSide, clientSide] = await Promise.all([
    runResponder(serverConn, {
      identity: server,
      suites: ALL_SUITES,
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
      authorize: () => Promise.resolve(),
    }),
    runInitiator(clientConn, {
      identity: client,
      suites: ["x25519"],
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
      checkPeer: () => Promise.resolve(),
    }),
  ]);
  return { clientSide, serverSide };
}

/** Wraps a session so a test can wait for events. */
export function watch(identity: Identity, session: Participant): TestMember {
  const events: ChatEvent[] = [];
  const waiters: (() => void)[] = [];
  let received = 0;
  session.onEvent((event) => {
    events.push(event);
    if (event.type === "message" && !event.from.self) received++;
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    identity,
    session,
    events,
    get received() {
      return received;
    },
    async until(predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(events)) {
        if (Date.now() > deadline) {
          throw new Error(`timed out; events: ${JSON.stringify(events.slice(-10))}`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 200);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

/** Joins `identity` to a room served by `admit` (Relay.admit or a test relay). */
export async function join(
  identity: Identity,
  relayIdentity: Identity,
  admit: (connection: SecureConnection, name: string) => Promise<void>,
  options: Omit<JoinOptions, "identity"> = {},
): Promise<TestMember> {
  const { clientSide, serverSide } = await connectPair(identity, relayIdentity);
  admit(serverSide, identity.comment);
  const session = await joinRoom(clientSide, { identity, ...options });
  // Not spread: that would copy `received` once instead of keeping its getter.
  return Object.assign(watch(identity, session), { connection: clientSide });
}

/** Messages (text) a member received from others, in order. */
export function texts(member: TestMember): string[] {
  return member.events.flatMap((event) =>
    event.type === "message" && !event.from.self ? [event.text] : []
  );
}

/** Messages from others that a member has shown. */
/** Messages from other members among `events` (a scan: for small tests; load tests use `received`). */
export function receivedCount(events: ChatEvent[]): number {
  return events.filter((e) => e.type === "message" && !e.from.self).length;
}

/**
 * Checks that every member got every other member's `messages` texts ("<comment>:<i>"), exactly
 * once and in order per author, and rejected nothing.
 */
export function assertDeliveredInOrder(members: TestMember[], messages: number): void {
  for (const member of members) {
    const byAuthor = new Map<string, string[]>();
    for (const event of member.events) {
      if (event.type !== "message" || event.from.self) continue;
      const list = byAuthor.get(event.from.fingerprint) ?? [];
      list.push(event.text);
      byAuthor.set(event.from.fingerprint, list);
    }
    strictEqual(byAuthor.size, members.length - 1);
    for (const texts of byAuthor.values()) {
      const author = texts[0]!.split(":")[0]!;
      deepStrictEqual(texts, Array.from({ length: messages }, (_, i) => `${author}:${i}`));
    }
    strictEqual(member.events.filter((e) => e.type === "rejected").length, 0);
  }
}

/**
 * A member built from the library that joins a real listener's room at `port` by hand: the real
 * handshake and SessionHello, then reads until it has the Welcome and the host's Joined. Tests
 * then send what an attacker or a probe would, with `secure`.
 */
export async function joinListenerRoom(
  port: number,
  identity: Identity,
): Promise<{ secure: SecureConnection; roomId: Uint8Array; hostAuthor: Uint8Array }> {
  const secure = await runInitiator(await Deno.connect({ hostname: "127.0.0.1", port }), {
    identity,
    suites: ["x25519"],
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
    checkPeer: () => Promise.resolve(),
  });
  await exchangeSessionHello(secure, "chat");
  let roomId: Uint8Array | undefined;
  let hostAuthor: Uint8Array | undefined;
  while (!roomId || !hostAuthor) {
    const message = decodeRoomMessage((await secure.receive())!);
    if (message.type === "welcome") roomId = message.roomId;
    if (message.type === "joined" && message.flags & JOINED_FLAG.host) {
      hostAuthor = authorOf((await importPublicIdentity(message.spki)).fingerprint);
    }
  }
  return { secure, roomId, hostAuthor };
}
