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
import { feed, randomBytes, sha256Hex } from "../_helpers/peers.ts";
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

/**
 * How long the test keeps node 0 cut off: well inside the 15 s after which the majority buries a
 * relay it no longer hears (16.4), even counting the seconds the routes take to form again. A
 * partition longer than that window ends with the cut-off relay's members removed, as specified.
 */
const PARTITION_MS = 4_000;

Deno.test(
  "a NATS node cut off from the others for 4 s while both sides talk, then healed: every member ends with every line once, in one order",
  async () => {
    const names = ["ann", "ben", "cid", "dee"];
    await using cluster = await ClusterFixture.create(names);
    // Relay i on node i alone: cutting node 0 cuts relay 0 (ben and dee) off from the others.
    await cluster.startRelays(3, { ownNodeOnly: true });
    const members = await startRoom(cluster, names, "partition", (i) => [1, 0, 2, 0][i]!);
    const author = (line: string) => names.indexOf(line.split(" ")[0]!);
    const all = await talk(members, names, "a", 2);
    await Promise.all(members.map((m) => untilLines(m, all)));

    cluster.nats.partition(0);
    // Both sides send while cut: the majority's lines are ordered by its side of the stream, the
    // cut-off relay retries its members' entries until the stream is reachable again.
    all.push(...await talk(members, names, "b", 3));
    await new Promise((resolve) => setTimeout(resolve, PARTITION_MS));
    all.push(...await talk(members, names, "c", 1, [1, 3]));
    cluster.nats.heal(0);

    await Promise.all(members.map((m) => untilLines(m, all)));
    all.push(...await talk(members, names, "d", 1));
    await Promise.all(members.map((m) => untilLines(m, all)));
    assertOneOrder(members, all, author);
    for (const member of members) assertClean(member);
    assertRelaysServed(cluster);
  },
);

Deno.test("competing commits from admins on two relays: one admits, the other admits and kicks at once; every member ends with one roster and they still talk", async () => {
  const names = ["ann", "ben", "cid", "dee", "eve"];
  await using cluster = await ClusterFixture.create(names);
  await cluster.startRelays(3);
  const [ann, ben, cid] = await startRoom(cluster, names.slice(0, 3), "commits", (i) => i);
  await ann!.send("/op ben");
  await ben!.out.waitFor(
    (e) => e.type === "notice" && e.text === "ann made ben an admin",
    "ben is made an admin",
    CLUSTER_WAIT_MS,
  );
  // Two newcomers knock, at relays 0 and 1; both admins see both.
  const dee = cluster.member("dee", "commits", 0);
  const eve = cluster.member("eve", "commits", 1);
  for (const admin of [ann!, ben!]) {
    for (const name of ["dee", "eve"]) {
      await admin.out.waitFor(
        (e) => e.type === "knock" && e.member.fingerprint === cluster.fp(name),
        `${admin.label} sees ${name} knock`,
        CLUSTER_WAIT_MS,
      );
    }
  }
  // At once, on two relays: ann admits dee; ben admits eve and removes cid.
  await Promise.all([ann!.send("/admit dee"), ben!.send("/admit eve", "/kick cid")]);
  const stay = [ann!, ben!, dee, eve];
  const four = ["ann", "ben", "dee", "eve"];
  await Promise.all(
    stay.map((m) => untilMembers(m, four.map((n) => cluster.fp(n)), CLUSTER_WAIT_MS)),
  );
  const removed = await cid!.finished(CLUSTER_WAIT_MS);
  ok(removed.code !== 0, removed.stderr);
  match(removed.stderr, /ben removed you from the room/);

  const all = await talk(stay, four, "a", 2);
  await Promise.all(stay.map((m) => untilLines(m, all)));
  assertOneOrder(stay, all, (line) => four.indexOf(line.split(" ")[0]!));
  // One epoch everywhere: every member's /verify shows the same epoch code.
  await Promise.all(stay.map((m) => m.send("/verify")));
  const codes = await Promise.all(stay.map(async (m) => {
    const event = await m.out.waitFor(
      (e) => e.type === "verification" && e.epochCode !== undefined,
      `${m.label} shows its epoch code`,
      CLUSTER_WAIT_MS,
    );
    return event.type === "verification" ? event.epochCode : undefined;
  }));
  strictEqual(new Set(codes).size, 1, `epoch codes: ${codes}`);
  for (const member of stay) assertClean(member);
});

Deno.test("a rendezvous across relays: listen --via R1 and dial FP --via R2 meet through a Redirect; MiBs each way arrive intact, and a file by --send", async () => {
  await using cluster = await ClusterFixture.create(["alice", "bob"]);
  const [r1, r2] = await cluster.startRelays(2);
  const via = cluster.via;
  const listener = via.start("alice", ["listen", "--via", r1!.address, ...via.pin, "--pipe"]);
  await listener.stderr.waitFor(/waiting for dialers at relay/);
  const toBob = randomBytes(3 * MiB);
  const toAlice = randomBytes(3 * MiB);
  const dialer = via.start("bob", [
    "dial",
    cluster.fp("alice"),
    "--via",
    r2!.address,
    ...via.pin,
    "--pipe",
  ]);
  await Promise.all([feed(listener.stdin, toBob), feed(dialer.stdin, toAlice)]);
  const [l, d] = await Promise.all([listener.finished(), dialer.finished()]);
  strictEqual(l.code, 0, l.stderr);
  strictEqual(d.code, 0, d.stderr);
  strictEqual(await sha256Hex(l.stdout), await sha256Hex(toAlice), "alice got bob's bytes");
  strictEqual(await sha256Hex(d.stdout), await sha256Hex(toBob), "bob got alice's bytes");
  // Asked at R2, which sent bob on to R1, where alice waits.
  await r2!.stderr.waitFor(new RegExp(` redirected to ${escape(r1!.address)} for `));
  // The dialer names the relay its bytes went through, and the one that sent it there.
  match(
    d.stderr,
    new RegExp(
      `met through relay ${escape(r1!.address)} \\(sent there by ${escape(r2!.address)}\\)`,
    ),
  );

  const content = randomBytes(2 * MiB);
  await Deno.mkdir(`${via.root}/inbox`);
  await Deno.writeFile(`${via.root}/report.bin`, content);
  const receiver = via.start("alice", [
    "listen",
    "--via",
    r1!.address,
    ...via.pin,
    "--receive",
    `${via.root}/inbox`,
  ]);
  await receiver.stderr.waitFor(/waiting for dialers at relay/);
  const sender = via.start("bob", [
    "dial",
    cluster.fp("alice"),
    "--via",
    r2!.address,
    ...via.pin,
    "--send",
    `${via.root}/report.bin`,
  ]);
  await Promise.all([receiver.closeStdin(), sender.closeStdin()]);
  const [r, s] = await Promise.all([receiver.finished(), sender.finished()]);
  strictEqual(s.code, 0, s.stderr);
  strictEqual(r.code, 0, r.stderr);
  strictEqual(
    await sha256Hex(await Deno.readFile(`${via.root}/inbox/report.bin`)),
    await sha256Hex(content),
    "the file arrived intact",
  );
});

const MiB = 1024 * 1024;

/** `text` as a literal in a RegExp. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
