/**
 * A member's commits on a real relay with real MLS (PROTOCOL.md 13.3, 13.4): knocks batched into
 * one commit, two admins committing at once (one is refused and makes its commit again), a member
 * coming back after a crash, admins made and unmade, and sends that wait for a leaving member's
 * proposal to be committed. And, on real MLS groups without a relay, a commit too large for one
 * relay message, made again with fewer admissions.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { Relay } from "../../lib/room/relay.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { entered, identities, join, room, rosterSize, texts } from "../_helpers/room.ts";
import { HostileRelay } from "../_helpers/hostile_relay.ts";
import { encodeToRelay, type FromRelay, type ToRelay } from "../../lib/chat/relay_messages.ts";
import { Admissions } from "../../lib/room/admission.ts";
import { authorOf } from "../../lib/keys/identity.ts";
import { Newcomer, type RoomGroup } from "../../lib/group/group.ts";
import { room as groupRoom } from "../_helpers/mls_group.ts";

const hasText = (text: string) => (events: ChatEvent[]) =>
  events.some((event) => event.type === "message" && event.text === text);

const joinsBy = (events: ChatEvent[]) =>
  events.flatMap((event) => event.type === "join" ? [event.by?.fingerprint] : []);

Deno.test("a burst of knocks is admitted in few commits, not one each", async () => {
  const log: string[] = [];
  const [relayIdentity, admin, ...newcomers] = await identities(8) as [Identity, ...Identity[]];
  const relay = new Relay({ log: (line) => log.push(line) });
  const first = await join(admin!, relay, relayIdentity, { admitsAtOnce: () => true });
  await first.until(entered);
  const members = await Promise.all(
    newcomers.map((newcomer) => join(newcomer, relay, relayIdentity)),
  );
  for (const member of members) await member.until(() => rosterSize(member, 7));
  const commits = log.filter((line) => line.includes(" committed epoch "));
  // The first knock may go alone; the rest arrive while it is in flight and share one commit.
  ok(commits.length <= 3, commits.join("\n"));
  await Promise.all([first, ...members].map((member) => member.session.close()));
  await relay.close();
});

Deno.test("two admins admitting at once: one commit wins, the other is made again, nobody twice", async () => {
  const { relay, relayIdentity, members: [alice, bob], close } = await room(2);
  try {
    await alice!.session.setAdmin!(bob!.identity.comment, true);
    await bob!.until(() => bob!.session.members().every((member) => member.admin));
    const [, , , carol, dave] = await identities(5) as Identity[];
    // Alice saw bob's knock already: count the new ones.
    const knocked = (events: ChatEvent[]) =>
      new Set(events.flatMap((e) => e.type === "knock" ? [e.member.fingerprint] : []));
    const newcomers = await Promise.all(
      [carol!, dave!].map((who) => join(who, relay, relayIdentity)),
    );
    const both = (events: ChatEvent[]) =>
      knocked(events).has(carol!.fingerprint) && knocked(events).has(dave!.fingerprint);
    await alice!.until(both);
    await bob!.until(both);
    // Both admins admit both newcomers at once: each commits, the relay accepts one per epoch.
    await Promise.all([
      alice!.session.admit!(carol!.comment),
      alice!.session.admit!(dave!.comment),
      bob!.session.admit!(carol!.comment),
      bob!.session.admit!(dave!.comment),
    ]);
    for (const member of [alice!, bob!, ...newcomers]) {
      await member.until(() => rosterSize(member, 4));
    }
    const fingerprints = alice!.session.members().map((member) => member.fingerprint);
    strictEqual(new Set(fingerprints).size, 4);
    await newcomers[0]!.session.sendText("both in");
    await newcomers[1]!.until(hasText("both in"));
    await Promise.all(newcomers.map((member) => member.session.close()));
  } finally {
    await close();
  }
});

Deno.test("a member coming back after a crash replaces its old leaf in the same commit", async () => {
  const { relay, relayIdentity, members: [alice, bob, carol], close } = await room(3);
  try {
    // Bob's connection dies without a goodbye: no proposal, so he stays a member.
    await bob!.connection!.abort(new Error("crash"));
    await alice!.until((events) =>
      events.some((event) => event.type === "notice" && event.text.includes("disconnected"))
    );
    strictEqual(alice!.session.members().length, 3);
    const again = await join(bob!.identity, relay, relayIdentity);
    await again.until(entered);
    await alice!.until(() => rosterSize(alice!, 3));
    await again.session.sendText("back");
    await carol!.until(hasText("back"));
    const left = carol!.events.find((event) => event.type === "leave");
    strictEqual(left?.type === "leave" && left.member.fingerprint, bob!.identity.fingerprint);
    await again.session.close();
  } finally {
    await close();
  }
});

Deno.test("an admin makes another; the new admin admits; the last admin cannot be unmade", async () => {
  const { relay, relayIdentity, members: [alice, bob], close } = await room(2);
  try {
    await rejects(bob!.session.setAdmin!(alice!.identity.comment, false), /only an admin/);
    await alice!.session.setAdmin!(bob!.identity.comment, true);
    await bob!.until((events) =>
      events.some((event) =>
        event.type === "notice" && event.text.includes(`made ${bob!.identity.comment} an admin`)
      )
    );
    ok(bob!.session.members().find((member) => member.self)?.admin);
    const [, , , carol] = await identities(4) as Identity[];
    const newcomer = await join(carol!, relay, relayIdentity);
    await bob!.until((events) => events.some((event) => event.type === "knock"));
    await bob!.session.admit!(carol!.comment);
    await newcomer.until(entered);
    deepStrictEqual(joinsBy(newcomer.events), []);
    // Carol may hold her Welcome before alice has applied bob's commit: wait for alice's view.
    const joinOfCarol = (event: ChatEvent) =>
      event.type === "join" && event.member.fingerprint === carol!.fingerprint;
    await alice!.until((events) => events.some(joinOfCarol));
    const joined = alice!.events.find(joinOfCarol);
    strictEqual(joined?.type === "join" && joined.by?.fingerprint, bob!.identity.fingerprint);
    await bob!.session.setAdmin!(alice!.identity.comment, false);
    await alice!.until(() => !alice!.session.members().find((member) => member.self)?.admin);
    await rejects(bob!.session.setAdmin!(bob!.identity.comment, false), /at least one admin/);
    await newcomer.session.close();
  } finally {
    await close();
  }
});

Deno.test("a line sent while a leaving member's proposal waits goes out once it is committed", async () => {
  const { members: [alice, bob, carol], close } = await room(3);
  try {
    await carol!.session.close();
    // Bob sends at once: once carol's proposal has reached him, his client first commits it (or
    // waits for alice's commit). If the proposal is still on its way, the line goes out at once,
    // before the removal: either way it is shown once, and carol ends up removed.
    await bob!.session.sendText("after carol left");
    await alice!.until(hasText("after carol left"));
    await alice!.until(() => alice!.session.members().length === 2);
    deepStrictEqual(texts(alice!), ["after carol left"]);
  } finally {
    await close();
  }
});

Deno.test("a leave proposal lost to a crossing commit: an admin who saw it removes the leaver", async () => {
  const [relayIdentity, alice, bob, carol, dave] = await identities(5) as Identity[];
  const relay = new HostileRelay(relayIdentity!);
  const listed = new Set([bob!, carol!].map((who) => who.fingerprint));
  const first = await relay.join(alice!, {
    name: "alice",
    admitsAtOnce: (fingerprint) => listed.has(fingerprint),
  });
  await first.until(entered);
  // Bob, once an admin, admits dave; alice does not (so bob's commit is the one that crosses).
  const second = await relay.join(bob!, {
    name: "bob",
    admitsAtOnce: (fingerprint) => fingerprint === dave!.fingerprint,
  });
  const third = await relay.join(carol!, { name: "carol" });
  for (const member of [first, second, third]) await member.until(() => rosterSize(member, 3));
  await first.session.setAdmin!("bob", true);
  await second.until(() =>
    second.session.members().every((member) => member.admin || member.name === "carol")
  );
  // Carol's leave proposal never reaches bob, and reaches alice just before bob's commit, which
  // bob made without it: the proposal's epoch is gone once that commit is applied.
  let held: FromRelay | undefined;
  relay.route = ({ to, from, message }) => {
    if (from?.name !== "carol" || message.type !== "group") {
      if (held && to.name === "alice" && from?.name === "bob" && message.type === "commit") {
        const both = [held, message];
        held = undefined;
        return both;
      }
      return undefined;
    }
    if (to.name === "alice") held = message;
    return [];
  };
  await third.session.close();
  const newcomer = await relay.join(dave!, { name: "dave" });
  await newcomer.until(entered);
  // Alice applied bob's commit, then removed carol herself: she asked to leave.
  await first.until(() => !first.session.members().some((member) => member.name === "carol"));
  await second.until(() => !second.session.members().some((member) => member.name === "carol"));
  const left = second.events.find((event) => event.type === "leave");
  strictEqual(left?.type === "leave" && left.member.fingerprint, carol!.fingerprint);
  await Promise.all([first, second, newcomer].map((member) => member.session.close()));
  await relay.close();
});

/** Values pushed by a callback, taken in order by a test that awaits them. */
class Queue<T> {
  #items: T[] = [];
  #waiting: ((item: T) => void)[] = [];
  push(item: T): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }
  next(): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  get size(): number {
    return this.#items.length;
  }
}

/** The Admissions of `group`'s member, admitting everyone, with a relay that takes `limit`. */
function admissionsOf(group: RoomGroup, limit: number) {
  const sent = new Queue<ToRelay>();
  const notices = new Queue<string>();
  const failures: unknown[] = [];
  const admissions = new Admissions({
    group: () => group,
    send: (message) => Promise.resolve(sent.push(message)),
    emit: (event) => {
      if (event.type === "notice") notices.push(event.text);
    },
    committed: () => {},
    find: (who) => group.members().find((member) => member.name === who),
    admitsAtOnce: () => true,
    fail: (error) => failures.push(error),
    now: () => 0,
    maxMessageBytes: limit,
  });
  return { admissions, sent, notices, failures };
}

async function knockAll(admissions: Admissions, names: string[], people: Identity[]) {
  const newcomers = [];
  for (const [i, name] of names.entries()) {
    const newcomer = await Newcomer.create(people[i]!, name);
    await admissions.knock(authorOf(people[i]!.fingerprint), newcomer.keyPackage);
    newcomers.push(newcomer);
  }
  return newcomers;
}

Deno.test("a commit too large for the relay is made again with half its admissions, the rest next", async () => {
  // Adding 4 to a room of one makes about 25 KB, adding 2 about 13 KB: the limit sits between.
  const limit = 18_000;
  const [admin] = await groupRoom("admin");
  const { admissions, sent, notices, failures } = admissionsOf(admin, limit);
  const people = (await identities(6)).slice(1);
  const names = ["n1", "n2", "n3", "n4"];
  const newcomers = await knockAll(admissions, names, people);
  const admitted: string[] = [];
  while (admitted.length < names.length) {
    const message = await sent.next();
    if (message.type !== "commit") throw new TypeError(`sent a ${message.type}`);
    ok(encodeToRelay(message).length <= limit, `${encodeToRelay(message).length} bytes`);
    if (admitted.length === 0) strictEqual(message.recipients.length, 2, "half of 4");
    for (const recipient of message.recipients) {
      const index = people.findIndex((person) =>
        authorOf(person.fingerprint).every((byte, i) => byte === recipient[i])
      );
      admitted.push(names[index]!);
      const { group } = await newcomers[index]!.join(message.welcome!);
      strictEqual(group.epoch, admin.epoch + 1n);
    }
    await admissions.accepted(admin.epoch);
  }
  deepStrictEqual(admitted, names, "in the order they knocked, each once");
  deepStrictEqual(admin.members().map((member) => member.name), ["admin", ...names]);
  strictEqual(notices.size, 0);
  deepStrictEqual(failures, []);
  admissions.stop();
});

Deno.test("a newcomer whose Welcome alone is too large is dropped with a notice; the rest goes on", async () => {
  // Adding one makes about 8 KB; removing bob, about 2 KB.
  const limit = 5_000;
  const [admin, bob] = await groupRoom("admin", "bob");
  const { admissions, sent, notices, failures } = admissionsOf(admin!, limit);
  const [, , carol] = await identities(3);
  await admissions.kick("bob");
  await knockAll(admissions, ["carol"], [carol!]);
  strictEqual(
    await notices.next(),
    "cannot admit carol: the room is too large for one more member's Welcome",
  );
  const message = await sent.next();
  ok(message.type === "commit" && message.welcome === undefined);
  ok(encodeToRelay(message).length <= limit);
  const event = await bob!.process(message.commit);
  ok(event.kind === "commit" && event.removedUs);
  await admissions.accepted(admin!.epoch);
  deepStrictEqual(admin!.members().map((member) => member.name), ["admin"]);
  // Carol's knock is forgotten: nothing to admit, nothing more sent.
  await rejects(admissions.admit("carol"), /nobody called "carol" is waiting/);
  strictEqual(sent.size, 0);
  deepStrictEqual(failures, []);
  admissions.stop();
});
