/**
 * Rooms under load for tests/room/room_delivery_test.ts and tests/load/room_members_test.ts: a
 * real Relay and real members (joinRoom over loopback, real MLS) whose admin admits whoever the
 * test lets in, everyone talking at once, and storms: many members joining at once, many leaving
 * at once. Every wait is on events (no timing assertions); every check is on what each member
 * showed.
 *
 * @module
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { Relay } from "../../lib/room/relay.ts";
import { entered, identities, join, type TestMember } from "./room.ts";

/** A room whose first member is its admin and admits every identity `admit()` was given. */
export interface StormRoom {
  relay: Relay;
  relayIdentity: Identity;
  /** Members now in the room, the admin first. */
  members: TestMember[];
  /** Members that left, kept for their events. */
  gone: TestMember[];
  /** Lets these identities in as soon as they knock. */
  admit(people: Identity[]): void;
  close(): Promise<void>;
}

/** How long a storm may take: members of a large room each apply every commit in turn. */
const STORM_TIMEOUT_MS = 120_000;

/**
 * A room of `count` members: the admin makes it, then the others knock all at once (a join
 * storm) or one after another. Resolves once every member's roster lists all of them.
 *
 * @param options.timeoutMs how long the joins may take
 */
export async function stormRoom(
  count: number,
  options: { together?: boolean; people?: Identity[]; timeoutMs?: number } = {},
): Promise<StormRoom> {
  const [relayIdentity, ...people] = options.people ?? await identities(count + 1);
  const relay = new Relay({});
  const admitted = new Set<string>();
  const admin = await join(people[0]!, relay, relayIdentity!, {
    admitsAtOnce: (fingerprint) => admitted.has(fingerprint),
  });
  await admin.until(entered);
  const room: StormRoom = {
    relay,
    relayIdentity: relayIdentity!,
    members: [admin],
    gone: [],
    admit: (list) => list.forEach((person) => admitted.add(person.fingerprint)),
    async close() {
      await Promise.all(room.members.map((member) => member.session.close().catch(() => {})));
      await relay.close();
    },
  };
  const rest = people.slice(1, count);
  if (options.together ?? true) {
    await joinStorm(room, rest, options.timeoutMs);
  } else {
    for (const person of rest) await joinStorm(room, [person], options.timeoutMs);
  }
  return room;
}

/** Resolves when `predicate` holds for each of `members`. */
async function everyone(
  members: TestMember[],
  predicate: (member: TestMember) => boolean,
  timeoutMs = STORM_TIMEOUT_MS,
): Promise<void> {
  await Promise.all(members.map((member) => member.until(() => predicate(member), timeoutMs)));
}

/** The fingerprints a member's roster lists, sorted. */
export function rosterOf(member: TestMember): string[] {
  return member.session.members().map((m) => m.fingerprint).sort();
}

/**
 * Every one of `people` dials and knocks at once; the admin admits them (in as few commits as
 * knocks arrive together). Resolves once every member, old and new, lists them all.
 */
export async function joinStorm(
  room: StormRoom,
  people: Identity[],
  timeoutMs = STORM_TIMEOUT_MS,
): Promise<TestMember[]> {
  room.admit(people);
  const newcomers = await Promise.all(
    people.map((person) => join(person, room.relay, room.relayIdentity)),
  );
  room.members.push(...newcomers);
  const expected = room.members.map((m) => m.identity.fingerprint).sort();
  await everyone(room.members, (member) => {
    // A newcomer whose Welcome was refused waits for another that never comes: say so now.
    const refused = member.events.find((e) => e.type === "rejected" && /Welcome/.test(e.reason));
    if (refused?.type === "rejected") {
      throw new Error(`${member.identity.comment} could not join: ${refused.reason}`);
    }
    return rosterOf(member).join() === expected.join();
  }, timeoutMs);
  return newcomers;
}

/**
 * Every one of `leaving` leaves at once (a Remove proposal each, then close_notify); the others
 * commit the proposals (13.3). Resolves once every member still there lists only the others.
 */
export async function leaveStorm(
  room: StormRoom,
  leaving: TestMember[],
  timeoutMs = STORM_TIMEOUT_MS,
): Promise<void> {
  const going = new Set(leaving);
  room.members = room.members.filter((member) => !going.has(member));
  room.gone.push(...leaving);
  await Promise.all(leaving.map((member) => member.session.close()));
  const expected = room.members.map((m) => m.identity.fingerprint).sort();
  await everyone(room.members, (member) => rosterOf(member).join() === expected.join(), timeoutMs);
}

/**
 * Every member sends `messages` lines "<name>:<tag>:<i>" at once, in order; resolves once each
 * has every other member's.
 */
export async function talk(
  members: TestMember[],
  tag: string,
  messages: number,
  timeoutMs = STORM_TIMEOUT_MS,
): Promise<void> {
  const expected = (members.length - 1) * messages;
  const arrived = members.map((member) =>
    new Promise<void>((resolve, reject) => {
      let count = 0;
      let off = () => {};
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${member.identity.comment} has ${count} of ${expected} "${tag}" lines`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
      off = member.session.onEvent((event: ChatEvent) => {
        if (event.type === "message" && !event.from.self && event.text.includes(`:${tag}:`)) {
          if (++count === expected) done();
        }
      });
      if (expected === 0) done();
    })
  );
  await Promise.all(members.map(async (member) => {
    for (let i = 0; i < messages; i++) {
      await member.session.sendText(`${member.identity.comment}:${tag}:${i}`);
    }
  }));
  await Promise.all(arrived);
}

/**
 * Each member showed every other member's `tag` lines exactly once, in the order they were sent,
 * and no line of anyone else's, and rejected nothing.
 */
export function assertTalkedInOrder(members: TestMember[], tag: string, messages: number): void {
  const names = new Map(members.map((m) => [m.identity.fingerprint, m.identity.comment]));
  for (const member of members) {
    const byAuthor = new Map<string, string[]>();
    for (const event of member.events) {
      if (event.type !== "message" || event.from.self || !event.text.includes(`:${tag}:`)) continue;
      const list = byAuthor.get(event.from.fingerprint) ?? [];
      list.push(event.text);
      byAuthor.set(event.from.fingerprint, list);
    }
    deepStrictEqual(
      [...byAuthor.keys()].sort(),
      [...names.keys()].filter((f) => f !== member.identity.fingerprint).sort(),
      `${member.identity.comment}: whom it heard`,
    );
    for (const [author, texts] of byAuthor) {
      const name = names.get(author)!;
      deepStrictEqual(texts, Array.from({ length: messages }, (_, i) => `${name}:${tag}:${i}`));
    }
    strictEqual(member.events.filter((e) => e.type === "rejected").length, 0);
    strictEqual(member.events.filter((e) => e.type === "error").length, 0);
  }
}

/** Every member lists the same members and shows the same epoch code (13.7). */
export async function assertOneRoom(members: TestMember[]): Promise<void> {
  const rosters = new Set(members.map((member) => rosterOf(member).join()));
  strictEqual(rosters.size, 1, "every member lists the same members");
  const codes = await Promise.all(
    members.map(async (member) => (await member.session.verify()).epochCode),
  );
  strictEqual(new Set(codes).size, 1, `every member shows one epoch code: ${[...new Set(codes)]}`);
}
