/**
 * Room fixtures over real loopback sockets: a real Relay, and members that dial it through the
 * real handshake and join with `joinRoom()` (real MLS). The first member makes the group and
 * admits the others it is told to (an admit list), like `dial --admit`. Events are collected per
 * member.
 *
 * @module
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ChatEvent, Participant } from "../../lib/chat/chat_events.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { type JoinOptions, joinRoom } from "../../lib/room/member.ts";
import { Relay, type RelayOptions } from "../../lib/room/relay.ts";
import { identities, securePairFor } from "./relay_peers.ts";

export { identities };

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
    async until(predicate, timeoutMs = 30_000) {
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

/** Joins `identity` to `relay` over a real loopback connection and real handshake. */
export async function join(
  identity: Identity,
  relay: Relay,
  relayIdentity: Identity,
  options: Omit<JoinOptions, "identity"> = {},
): Promise<TestMember> {
  const { memberSide, relaySide } = await securePairFor(identity, relayIdentity);
  relay.join(relaySide).catch(() => {});
  const session = await joinRoom(memberSide, { identity, ...options });
  // Not spread: that would copy `received` once instead of keeping its getter.
  return Object.assign(watch(identity, session), { connection: memberSide });
}

/** True once the member is in the group (its roster arrived). */
export function entered(events: ChatEvent[]): boolean {
  return events.some((event) => event.type === "roster");
}

/** True once the member's roster lists `count` members. */
export function rosterSize(member: TestMember, count: number): boolean {
  return member.session.members().length === count;
}

/**
 * A room of `count` members on a fresh relay: the first makes the group and admits the others
 * (its admit list names them), who join one after another or all at once (`together`). Resolves
 * once every member's roster lists all of them.
 */
export async function room(
  count: number,
  options: { relay?: RelayOptions; together?: boolean; member?: Omit<JoinOptions, "identity"> } =
    {},
): Promise<
  { relay: Relay; relayIdentity: Identity; members: TestMember[]; close(): Promise<void> }
> {
  const [relayIdentity, ...people] = await identities(count + 1) as [Identity, ...Identity[]];
  const relay = new Relay(options.relay ?? {});
  const listed = new Set(people.map((person) => person.fingerprint));
  const first = await join(people[0]!, relay, relayIdentity, {
    ...options.member,
    admitsAtOnce: (fingerprint) => listed.has(fingerprint),
  });
  await first.until(entered);
  const others: TestMember[] = [];
  if (options.together) {
    others.push(
      ...await Promise.all(
        people.slice(1).map((person) => join(person, relay, relayIdentity, options.member)),
      ),
    );
  } else {
    for (const person of people.slice(1)) {
      const member = await join(person, relay, relayIdentity, options.member);
      await member.until(entered);
      others.push(member);
    }
  }
  const members = [first, ...others];
  for (const member of members) await member.until(() => rosterSize(member, count));
  return {
    relay,
    relayIdentity,
    members,
    async close() {
      await Promise.all(members.map((member) => member.session.close().catch(() => {})));
      await relay.close();
    },
  };
}

/** Messages (text) a member received from others, in order. */
export function texts(member: TestMember): string[] {
  return member.events.flatMap((event) =>
    event.type === "message" && !event.from.self ? [event.text] : []
  );
}

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
