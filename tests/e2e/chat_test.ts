/**
 * Chat mode end to end, driven through `--json`: real `listen` and `dial` processes on loopback,
 * real keys, real crypto. Each process's stdout is one ChatEvent JSON object per line (every line
 * must parse); its stdin takes typed lines ("/msg NAME text", "/me x", plain text); end of input
 * leaves the room. Rooms are MLS groups (docs/PROTOCOL.md 13): the host (the person at a chat
 * listener) makes the group and admits whom its listener let in; at a `--relay-only` listener the
 * first dialer makes it and admits those its `--admit` file lists.
 *
 * Covered: two-party chat (verified messages both ways, the dialer's verification code, the same
 * epoch code and safety number on both sides, the roster); three members around a host and around
 * a `--relay-only` listener (every message once and in order per author, private messages reach
 * only their target, actions, joins with who added whom, leaves, names from credentials); a
 * member killed with SIGKILL (shown as disconnected, a member until an admin removes it); a
 * `--pipe` dialer against a chat listener and the reverse; an unauthorized dialer.
 */

import { deepStrictEqual, match, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import {
  ChatFixture,
  type ChatProcess,
  isMembership,
  isMessage,
  type JsonEventWatcher,
  numbered,
  who,
} from "../_helpers/chat.ts";
import { startListener } from "../_helpers/peers.ts";

/** Every stdout line parsed as a ChatEvent, and none was an `error` or a `rejected` message. */
function assertCleanOutput(process: ChatProcess): void {
  deepStrictEqual(process.out.invalid, [], `${process.label}: stdout lines that are not JSON`);
  const bad = process.out.events.filter((e) => e.type === "error" || e.type === "rejected");
  deepStrictEqual(bad, [], `${process.label}: unexpected error or rejected events`);
}

/** Texts of `kind` messages from `fingerprint`, in arrival order. */
function textsFrom(
  watcher: JsonEventWatcher,
  fingerprint: string,
  kind: "text" | "action" | "private" = "text",
): string[] {
  return watcher.messagesFrom(fingerprint).filter((e) => e.kind === kind).map((e) => e.text);
}

/**
 * Waits until `process` has seen `count` text messages from `fingerprint`; a `rejected` event
 * fails the wait at once.
 */
async function untilTexts(process: ChatProcess, fingerprint: string, count: number): Promise<void> {
  await process.out.until(
    (events) =>
      events.some((e) => e.type === "rejected") ||
      textsFrom(process.out, fingerprint, "text").length >= count,
    `${process.label} receives ${count} messages from ${fingerprint}`,
  );
  assertCleanOutput(process);
}

/**
 * A dialer types `lines` one at a time, each once the host has shown the previous one, so a test
 * failure points at the line that went missing (bursts are covered by the regression test at the
 * end of this file).
 */
async function typeToHost(
  dialer: ChatProcess,
  fingerprint: string,
  lines: string[],
  host: ChatProcess,
): Promise<void> {
  for (const line of lines) {
    await dialer.send(line);
    await host.out.waitFor((e) => isMessage(e, fingerprint, line), `bob receives "${line}"`);
  }
}

/** Leaves (end of input) and asserts a clean exit whose last event is `closed`. */
async function leave(process: ChatProcess): Promise<void> {
  await process.closeStdin();
  const result = await process.finished();
  strictEqual(
    result.code,
    0,
    `${process.label} exit code; stderr:\n${result.stderr}\nlast events:\n${
      process.out.lines.slice(-8).join("\n")
    }`,
  );
  strictEqual(process.out.events.at(-1)?.type, "closed", `${process.label} ends with "closed"`);
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

const isVerification = (e: ChatEvent): e is ChatEvent & { type: "verification" } =>
  e.type === "verification";

Deno.test("listen --json and dial --json chat both ways: each message once, in order, verified by its author's key", async () => {
  await using chat = await ChatFixture.create(["alice", "bob"]);
  const [alice, bob] = [chat.fingerprint("alice"), chat.fingerprint("bob")];
  const host = await chat.listen("bob", ["--json"]);
  const dialer = await chat.join("alice", host.port);

  // The dialer's roster lists both: the host (the group's creator, so its admin), then itself.
  const roster = dialer.out.ofType("roster")[0]!;
  deepStrictEqual(roster.members, [
    { name: "bob", fingerprint: bob, host: true, admin: true },
    { name: "alice", fingerprint: alice, self: true },
  ]);
  // The dialer's verification event names the relay (bob's listener) with the code it printed on
  // stderr; the host runs that relay itself, so its own event has no code to compare.
  const hostCode = await host.out.waitFor(isVerification, "bob's verification event");
  const dialerCode = await dialer.out.waitFor(isVerification, "alice's verification event");
  match(dialerCode.code, /^\d{4} \d{4} \d{4}$/);
  strictEqual(dialerCode.peer.fingerprint, bob);
  await dialer.err.waitFor(new RegExp(`^securechat: verification code: ${dialerCode.code}$`));
  strictEqual(hostCode.peer.fingerprint, bob);
  strictEqual(hostCode.peer.self, true);
  const joined = await host.out.waitFor(
    (e) => isMembership(e, "join", alice),
    "bob sees alice join",
  );
  strictEqual(joined.type === "join" && joined.by?.fingerprint, bob, "bob added alice");

  // In the group, both compute the same epoch code and the same safety number for each other.
  await Promise.all([host.send("/verify alice"), dialer.send("/verify bob")]);
  const [hostSafety, dialerSafety] = await Promise.all([
    host.out.waitFor((e) => isVerification(e) && e.safety !== undefined, "bob's /verify alice"),
    dialer.out.waitFor((e) => isVerification(e) && e.safety !== undefined, "alice's /verify bob"),
  ]);
  ok(isVerification(hostSafety) && isVerification(dialerSafety));
  match(hostSafety.epochCode ?? "", /^\d{4} \d{4} \d{4}$/);
  strictEqual(dialerSafety.epochCode, hostSafety.epochCode);
  strictEqual(hostSafety.safety?.member.fingerprint, alice);
  strictEqual(dialerSafety.safety?.member.fingerprint, bob);
  match(hostSafety.safety?.number ?? "", /^\d{4} \d{4} \d{4}$/);
  strictEqual(dialerSafety.safety?.number, hostSafety.safety?.number);

  const fromAlice = numbered("alice says", 5);
  const fromBob = numbered("bob says", 5);
  await Promise.all([typeToHost(dialer, alice, fromAlice, host), host.send(...fromBob)]);
  await Promise.all([untilTexts(host, alice, 5), untilTexts(dialer, bob, 5)]);

  await leave(dialer);
  const left = await host.out.waitFor((e) => isMembership(e, "leave", alice), "bob sees alice go");
  strictEqual(left.type === "leave" && left.reason, "left the room");
  await leave(host);

  // The whole output is in: each message arrived exactly once, in order, verified (MLS
  // authenticated its sender); each side also saw its own lines once.
  for (
    const [watcher, author, texts] of [
      [host.out, alice, fromAlice],
      [dialer.out, bob, fromBob],
      [host.out, bob, fromBob],
      [dialer.out, alice, fromAlice],
    ] as const
  ) {
    const messages = watcher.messagesFrom(author);
    deepStrictEqual(messages.map((e) => e.text), texts);
    for (const message of messages) {
      strictEqual(message.verified, true);
      strictEqual(message.kind, "text");
      strictEqual(message.from.name, author === alice ? "alice" : "bob");
    }
  }
  strictEqual(host.out.ofType("verification").length, 2);
  strictEqual(dialer.out.ofType("verification").length, 2);
  assertCleanOutput(host);
  assertCleanOutput(dialer);
});

Deno.test("a host and two dialers: all messages once and in order, /msg reaches only its target, names from the members' credentials", async () => {
  await using chat = await ChatFixture.create(["alice", "bob", "carol"]);
  const [alice, bob, carol] = ["alice", "bob", "carol"].map((name) => chat.fingerprint(name)) as [
    string,
    string,
    string,
  ];
  const authorizedKeys = `${chat.root}/authorized_keys`;
  await Deno.writeTextFile(authorizedKeys, `${alice} alice-laptop\n${carol} carol-desk\n`);
  const host = await chat.listen("bob", [
    "--json",
    "--name",
    "host-bob",
    "--authorized-keys",
    authorizedKeys,
  ]);
  // authorized_keys decides who gets in; the name each member shows is the one its credential
  // carries (--name), which the host cannot rename (docs/PROTOCOL.md 13.2).
  const a = await chat.join("alice", host.port, ["--name", "alice-self"]);
  const c = await chat.join("carol", host.port, ["--name", "carol-self"]);
  await Promise.all([
    a.out.waitFor((e) => isMembership(e, "join", carol), "alice sees carol join"),
    host.out.waitFor((e) => isMembership(e, "join", carol), "bob sees carol join"),
  ]);
  deepStrictEqual(
    host.out.ofType("join").map((e) => [e.member.name, e.by?.name]),
    [["alice-self", "host-bob"], ["carol-self", "host-bob"]],
  );
  deepStrictEqual(a.out.ofType("join").map((e) => [e.member.name, e.by?.fingerprint]), [
    ["carol-self", bob],
  ]);
  const expectedRoster = [
    { name: "alice-self", fingerprint: alice },
    { name: "carol-self", fingerprint: carol },
    { name: "host-bob", fingerprint: bob },
  ];
  deepStrictEqual(who(c.out.ofType("roster")[0]!.members), expectedRoster);
  // The host's --name is also the name its handshake carries.
  strictEqual(a.out.ofType("verification")[0]!.peer.name, "host-bob");

  const members = [
    { process: host, fingerprint: bob, lines: numbered("from bob", 10) },
    { process: a, fingerprint: alice, lines: numbered("from alice", 10) },
    { process: c, fingerprint: carol, lines: numbered("from carol", 10) },
  ];
  // The dialers type one line at a time (see typeToHost); the host's own lines go out in a burst,
  // and alice and carol type at the same time.
  await Promise.all([
    host.send(...members[0]!.lines, "/msg alice-self psst alice"),
    typeToHost(a, alice, members[1]!.lines, host).then(() => a.send("/msg carol-self psst carol")),
    typeToHost(c, carol, members[2]!.lines, host).then(() => c.send("/me waves")),
  ]);
  await Promise.all(
    members.flatMap((receiver) =>
      members.filter((author) => author !== receiver).map((author) =>
        untilTexts(receiver.process, author.fingerprint, 10)
      )
    ),
  );
  const psstAlice = await a.out.waitFor(
    (e) => isMessage(e, bob, "psst alice", "private"),
    "alice gets bob's private message",
  );
  strictEqual(psstAlice.to?.fingerprint, alice);
  const psstCarol = await c.out.waitFor(
    (e) => isMessage(e, alice, "psst carol", "private"),
    "carol gets alice's private message",
  );
  strictEqual(psstCarol.to?.fingerprint, carol);
  strictEqual(psstCarol.from.name, "alice-self");
  for (const observer of [host, a]) {
    await observer.out.waitFor(
      (e) => isMessage(e, carol, "waves", "action"),
      `${observer.label} sees carol's action`,
    );
  }
  // Each sender sees its own copy of its private message, addressed to the target.
  const ownToAlice = host.out.messagesFrom(bob).filter((e) => e.kind === "private");
  deepStrictEqual(ownToAlice.map((e) => [e.text, e.to?.name]), [["psst alice", "alice-self"]]);
  const ownToCarol = a.out.messagesFrom(alice).filter((e) => e.kind === "private");
  deepStrictEqual(ownToCarol.map((e) => [e.text, e.to?.name]), [["psst carol", "carol-self"]]);

  // Carol leaves, then alice; the others see each go.
  await leave(c);
  await Promise.all(
    [host, a].map((p) =>
      p.out.waitFor((e) => isMembership(e, "leave", carol), `${p.label} sees carol leave`)
    ),
  );
  await leave(a);
  await host.out.waitFor((e) => isMembership(e, "leave", alice), "bob sees alice leave");
  await leave(host);

  // With every output complete: each member got every other member's lines exactly once, in
  // order, and no private message reached anyone but its target.
  assertEveryoneHeardEveryone(members);
  deepStrictEqual(privateTexts(host), ["psst alice"]);
  deepStrictEqual(privateTexts(a), ["psst alice", "psst carol"]);
  deepStrictEqual(privateTexts(c), ["psst carol"]);
  deepStrictEqual(textsFrom(host.out, carol, "action"), ["waves"]);
  deepStrictEqual(textsFrom(a.out, carol, "action"), ["waves"]);
  deepStrictEqual(textsFrom(c.out, carol, "action"), ["waves"]);
});

Deno.test("a --relay-only listener relays three dialers: all messages once and in order, private ones to their target only", async () => {
  await using chat = await ChatFixture.create(["alice", "bob", "carol", "dave"]);
  const relay = await chat.listen("bob", ["--relay-only"]);
  const names = { alice: "ann", carol: "cara", dave: "dave-x" };
  // The first to arrive makes the group and admits those its --admit file lists.
  const admitFile = `${chat.root}/admit`;
  await Deno.writeTextFile(
    admitFile,
    `${chat.fingerprint("carol")} carol\n${chat.fingerprint("dave")} dave\n`,
  );
  const dialers: { process: ChatProcess; fingerprint: string; name: string; lines: string[] }[] =
    [];
  for (const [peer, name] of Object.entries(names)) {
    const args = ["--name", name, ...(peer === "alice" ? ["--admit", admitFile] : [])];
    const process = await chat.join(peer, relay.port, args);
    dialers.push({ process, fingerprint: chat.fingerprint(peer), name, lines: numbered(name, 10) });
  }
  const [ann, cara, dave] = dialers as [typeof dialers[0], typeof dialers[0], typeof dialers[0]];
  // The names are the members' own (--name); the relay is no member.
  deepStrictEqual(
    who(dave.process.out.ofType("roster")[0]!.members),
    who(dialers.map(({ name, fingerprint }) => ({ name, fingerprint }))),
  );
  deepStrictEqual(ann.process.out.ofType("roster")[0]!.members, [
    { name: "ann", fingerprint: ann.fingerprint, self: true, admin: true },
  ]);
  await ann.process.out.until(
    (events) => events.filter((e) => e.type === "join").length === 2,
    "ann sees cara and dave join",
  );
  deepStrictEqual(ann.process.out.ofType("join").map((e) => [e.member.name, e.by?.name]), [
    ["cara", "ann"],
    ["dave-x", "ann"],
  ]);
  for (const { process } of dialers) {
    strictEqual(process.out.ofType("verification")[0]!.peer.fingerprint, chat.fingerprint("bob"));
  }

  await Promise.all([
    ann.process.send(...ann.lines, "/msg dave-x for dave only"),
    cara.process.send(...cara.lines, "/me nods"),
    dave.process.send(...dave.lines, `/msg ${ann.fingerprint} for ann only`),
  ]);
  await Promise.all(
    dialers.flatMap((receiver) =>
      dialers.filter((author) => author !== receiver).map((author) =>
        untilTexts(receiver.process, author.fingerprint, 10)
      )
    ),
  );
  await Promise.all([
    dave.process.out.waitFor(
      (e) => isMessage(e, ann.fingerprint, "for dave only", "private"),
      "dave's private message",
    ),
    ann.process.out.waitFor(
      (e) => isMessage(e, dave.fingerprint, "for ann only", "private"),
      "ann's private message",
    ),
    ann.process.out.waitFor(
      (e) => isMessage(e, cara.fingerprint, "nods", "action"),
      "ann sees /me",
    ),
    dave.process.out.waitFor(
      (e) => isMessage(e, cara.fingerprint, "nods", "action"),
      "dave sees /me",
    ),
  ]);

  await leave(dave.process);
  await Promise.all(
    [ann, cara].map(({ process }) =>
      process.out.waitFor(
        (e) => isMembership(e, "leave", dave.fingerprint),
        `${process.label} sees dave leave`,
      )
    ),
  );
  await relay.err.waitFor(/"dave-x" SHA256:\S+ left \(/);

  // Stopping the relay (SIGTERM) closes the room for those still in it, cleanly.
  relay.kill("SIGTERM");
  const relayResult = await relay.finished();
  strictEqual(relayResult.code, 0, relayResult.stderr);
  for (const { process } of [ann, cara]) {
    await process.out.waitFor(
      (e) => e.type === "notice" && e.text === "the relay says: the relay is shutting down",
      `${process.label} is told the relay shuts down`,
    );
    await leave(process);
  }

  assertEveryoneHeardEveryone(dialers);
  deepStrictEqual(privateTexts(ann.process), ["for ann only", "for dave only"]);
  deepStrictEqual(privateTexts(cara.process), []);
  deepStrictEqual(privateTexts(dave.process), ["for ann only", "for dave only"]);
  // The relay has no person: nothing on stdout; its log names every join and leave.
  deepStrictEqual(relay.out.lines, []);
  match(relayResult.stderr, /"ann" SHA256:\S+ joined and creates the group/);
  for (const name of ["cara", "dave-x"]) {
    match(relayResult.stderr, new RegExp(`"${name}" SHA256:\\S+ joined and waits to be admitted`));
  }
});

// Regression: the host once checked relayed messages concurrently and rejected fast typists.
// message without waiting for the previous one. accept() awaits crypto.subtle.verify(), whose
// promises Deno resolves out of order (it runs on a thread pool: of 200 rounds of 5 concurrent
// Ed25519 verifies, about 150 complete out of order), and checks the author's counter only after
// that await. A later message from the same author is then accepted first and the earlier one is
// shown to the host as `rejected` ("it was replayed or arrived out of order") instead of as a
// message: the person at the listener loses lines from a member who types or pastes fast. This
// test failed 10 runs out of 10. Dialers are not affected: their receive loop awaits each accept.
// Proposed fix (checked: this test then passes 5 of 5, tests/room/relay_test.ts too): make #hostAccept()
// and #route() async and `await this.#route(member, chat, data)` in #serve(), so the host has
// accepted a member's message before that member's next one is read; other members still run
// concurrently, and the author lookup still happens before a leaving member is removed.
Deno.test({
  name: "the host shows a burst of messages from each dialer once and in order",
  async fn() {
    await using chat = await ChatFixture.create(["alice", "bob", "carol", "dave"]);
    const host = await chat.listen("bob", ["--json"]);
    const dialers = [];
    for (const name of ["alice", "carol", "dave"]) {
      dialers.push({
        process: await chat.join(name, host.port),
        fingerprint: chat.fingerprint(name),
      });
    }
    // 20 lines each: the relay's burst allowance (PROTOCOL.md 13.4), so none is rate-limited.
    const lines = numbered("burst", 20);
    await Promise.all(dialers.map(({ process }) => process.send(...lines)));
    for (const { process, fingerprint } of dialers) {
      await host.out.until(
        (events) =>
          events.some((e) => e.type === "rejected") ||
          textsFrom(host.out, fingerprint).length === lines.length,
        `bob receives ${process.label}'s burst`,
      );
    }
    for (const { process } of dialers) await leave(process);
    await leave(host);
    assertCleanOutput(host);
    for (const { fingerprint } of dialers) deepStrictEqual(textsFrom(host.out, fingerprint), lines);
  },
});

/** Whether `event` is the relay's word that the member called `name` disconnected (13.4). */
function isDisconnect(event: ChatEvent, name: string): boolean {
  return event.type === "notice" && event.text.startsWith(`the relay says ${name} disconnected`);
}

Deno.test("a member killed with SIGKILL is shown as disconnected, stays a member until the host removes it; the others chat on", async () => {
  await using chat = await ChatFixture.create(["alice", "bob", "carol", "dave"]);
  const [alice, bob, carol] = ["alice", "bob", "carol"].map((n) => chat.fingerprint(n)) as [
    string,
    string,
    string,
  ];
  const host = await chat.listen("bob", ["--json"]);
  const a = await chat.join("alice", host.port);
  const c = await chat.join("carol", host.port);
  await a.out.waitFor((e) => isMembership(e, "join", carol), "alice sees carol join");

  c.kill("SIGKILL");
  const killed = await c.finished();
  strictEqual(killed.signal, "SIGKILL");
  // The relay's word that carol's connection ended is shown as such, and not acted on: carol is
  // still in the group (docs/PROTOCOL.md 13.3).
  for (const observer of [host, a]) {
    await observer.out.waitFor((e) => isDisconnect(e, "carol"), `${observer.label} hears of carol`);
    ok(!observer.out.events.some((e) => isMembership(e, "leave", carol)), observer.label);
  }

  // The room goes on: messages both ways.
  await a.send("still here");
  await host.out.waitFor((e) => isMessage(e, alice, "still here"), "bob hears alice");
  await host.send("so am I");
  await a.out.waitFor((e) => isMessage(e, bob, "so am I"), "alice hears bob");
  // The host, the room's admin, removes carol; both see who did.
  await host.send("/kick carol");
  for (const observer of [host, a]) {
    const gone = await observer.out.waitFor(
      (e) => isMembership(e, "leave", carol),
      `${observer.label} sees carol removed`,
    );
    strictEqual(gone.type === "leave" && gone.by?.fingerprint, bob, observer.label);
    strictEqual(gone.type === "leave" && gone.reason, "removed by bob", observer.label);
  }
  // The listener still admits newcomers.
  const d = await chat.join("dave", host.port);
  await a.out.waitFor((e) => isMembership(e, "join", chat.fingerprint("dave")), "alice sees dave");
  deepStrictEqual(who(d.out.ofType("roster")[0]!.members).map((m) => m.name), [
    "alice",
    "bob",
    "dave",
  ]);
  await Promise.all([leave(d), leave(a)]);
  await leave(host);
  for (const process of [host, a, d]) assertCleanOutput(process);
  // Whatever carol managed to print before it died is still valid JSON.
  deepStrictEqual(c.out.invalid, []);
});

Deno.test("a member killed with SIGKILL is shown as disconnected by a --relay-only listener and the others, until the admin removes it", async () => {
  await using chat = await ChatFixture.create(["alice", "bob", "carol", "dave"]);
  const [alice, carol, dave] = ["alice", "carol", "dave"].map((n) => chat.fingerprint(n)) as [
    string,
    string,
    string,
  ];
  const admitFile = `${chat.root}/admit`;
  await Deno.writeTextFile(admitFile, `${carol} carol\n${dave} dave\n`);
  const relay = await chat.listen("bob", ["--relay-only"]);
  const a = await chat.join("alice", relay.port, ["--admit", admitFile]);
  const c = await chat.join("carol", relay.port);
  const d = await chat.join("dave", relay.port);
  await a.out.waitFor((e) => isMembership(e, "join", dave), "alice sees dave join");
  await c.out.waitFor((e) => isMembership(e, "join", dave), "carol sees dave join");

  d.kill("SIGKILL");
  await d.finished();
  await Promise.all(
    [a, c].map((p) => p.out.waitFor((e) => isDisconnect(e, "dave"), `${p.label} hears of dave`)),
  );
  const logged = await relay.err.waitFor(/"dave" SHA256:\S+ disconnected: /);
  match(logged, /disconnected: .*(connection|close_notify)/);

  await a.send("dave is gone");
  await c.out.waitFor((e) => isMessage(e, alice, "dave is gone"), "carol hears alice");
  await c.send("/me shrugs");
  await a.out.waitFor((e) => isMessage(e, carol, "shrugs", "action"), "alice sees carol's action");
  await a.send("/kick dave");
  for (const p of [a, c]) {
    const gone = await p.out.waitFor((e) => isMembership(e, "leave", dave), `${p.label}: dave out`);
    strictEqual(gone.type === "leave" && gone.by?.fingerprint, alice, p.label);
  }
  await Promise.all([leave(a), leave(c)]);
  relay.kill("SIGTERM");
  strictEqual((await relay.finished()).code, 0);
  for (const process of [a, c]) assertCleanOutput(process);
});

Deno.test("a --pipe dialer against a chat listener fails with one error line about the mismatch; the room is unharmed", async () => {
  await using chat = await ChatFixture.create(["alice", "bob", "carol"]);
  const [alice, bob, carol] = ["alice", "bob", "carol"].map((n) => chat.fingerprint(n)) as [
    string,
    string,
    string,
  ];
  const host = await chat.listen("bob", ["--json"]);
  const a = await chat.join("alice", host.port);

  const piped = chat.dial("carol", host.port, ["--pipe"]);
  await piped.send("raw bytes for a pipe");
  await piped.closeStdin();
  const result = await piped.finished();
  strictEqual(result.code, 5, result.stderr);
  const errors = piped.errorLines();
  strictEqual(errors.length, 1, result.stderr);
  match(errors[0]!, /chat/);
  match(errors[0]!, /pipe/);
  deepStrictEqual(piped.out.lines, [], "nothing from the room reaches a pipe's stdout");

  await a.send("after the pipe");
  await host.out.waitFor((e) => isMessage(e, alice, "after the pipe"), "bob hears alice");
  await host.send("all good");
  await a.out.waitFor((e) => isMessage(e, bob, "all good"), "alice hears bob");
  await leave(a);
  await leave(host);
  for (const process of [host, a]) {
    assertCleanOutput(process);
    ok(!process.out.events.some((e) => isMembership(e, "join", carol)), process.label);
  }
  // The host was told of the refusal (a notice event; stderr would do as well).
  const refusal = new RegExp(`"carol" ${escape(carol)} refused: .*pipe`);
  ok(
    refusal.test(host.err.text) ||
      host.out.ofType("notice").some((notice) => refusal.test(notice.text)),
    `the refusal is reported; stderr:\n${host.err.text}`,
  );
});

Deno.test("a --json dialer against a --pipe listener fails with one error line about the mismatch", async () => {
  await using chat = await ChatFixture.create(["alice", "bob"]);
  const listener = await startListener(chat.peer("bob"));
  try {
    const dialer = chat.dial("alice", listener.port, ["--json"]);
    await dialer.closeStdin();
    const result = await dialer.finished();
    strictEqual(result.code, 5, result.stderr);
    const errors = dialer.errorLines();
    strictEqual(errors.length, 1, result.stderr);
    match(errors[0]!, /pipe/);
    match(errors[0]!, /chat/);
    deepStrictEqual(dialer.out.invalid, []);
    const l = await listener.finished();
    notStrictEqual(l.code, 0);
    deepStrictEqual(l.stdout.length, 0, "no chat bytes reach the pipe's stdout");
  } finally {
    await listener.closeStdin();
    try {
      listener.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await listener.finished();
  }
});

Deno.test("a dialer missing from --authorized-keys is refused; the room goes on", async () => {
  await using chat = await ChatFixture.create(["alice", "bob", "mallory"]);
  const [alice, bob, mallory] = ["alice", "bob", "mallory"].map((n) => chat.fingerprint(n)) as [
    string,
    string,
    string,
  ];
  const authorizedKeys = `${chat.root}/authorized_keys`;
  await Deno.writeTextFile(authorizedKeys, `${alice} alice\n`);
  const host = await chat.listen("bob", ["--json", "--authorized-keys", authorizedKeys]);
  const a = await chat.join("alice", host.port);

  const intruder = chat.dial("mallory", host.port, ["--json"]);
  await intruder.closeStdin(); // were it admitted, it would leave at once and exit 0
  const result = await intruder.finished();
  notStrictEqual(result.code, 0, result.stderr);
  strictEqual(intruder.errorLines().length, 1, result.stderr);
  match(intruder.errorLines()[0]!, /access_denied/);
  deepStrictEqual(intruder.out.invalid, []);
  ok(!intruder.out.events.some((e) => e.type === "message" || e.type === "roster"));
  // The host is told, by a notice naming the key and the file.
  const notice = await host.out.waitFor(
    (e) => e.type === "notice" && e.text.includes(mallory),
    "bob is told mallory was refused",
  );
  match(notice.type === "notice" ? notice.text : "", /refused: .*is not in/);

  await a.send("who was that?");
  await host.out.waitFor((e) => isMessage(e, alice, "who was that?"), "bob hears alice");
  await host.send("nobody we know");
  await a.out.waitFor((e) => isMessage(e, bob, "nobody we know"), "alice hears bob");
  await leave(a);
  await leave(host);
  for (const process of [host, a]) {
    assertCleanOutput(process);
    ok(!process.out.events.some((e) => isMembership(e, "join", mallory)), process.label);
  }
});

// Regression: a dialer that left was once told "the relay closed the room".
// `closed` event with reason "the relay closed the room", as if it had been shut out. close()
// sends close_notify and waits for the receive loop; the relay answers with its own close_notify
// (lib/room/relay.ts: "A member that said goodbye gets ours"), so the loop's `data === null` branch calls
// finish("the relay closed the room") first, and close()'s finish("we left the room") is a no-op.
// A `--json` consumer cannot tell leaving from being closed out (the terminal shows the same).
// Proposed fix: a `leaving` flag set in close() before closeWrite(), and in the receive loop
// `if (data === null) return finish(leaving ? "we left the room" : "the relay closed the room")`.
Deno.test({
  name: "a dialer that leaves is told it left, not that the relay closed the room",
  async fn() {
    await using chat = await ChatFixture.create(["alice", "bob"]);
    const host = await chat.listen("bob", ["--json"]);
    const dialer = await chat.join("alice", host.port);
    await leave(dialer);
    strictEqual(dialer.out.ofType("closed").length, 1);
    deepStrictEqual(dialer.out.events.at(-1), {
      type: "closed",
      time: dialer.out.events.at(-1)!.time,
      reason: "we left the room",
    });
    await leave(host);
  },
});

/** Each member got every member's lines exactly once and in order, and printed clean output. */
function assertEveryoneHeardEveryone(
  members: { process: ChatProcess; fingerprint: string; lines: string[] }[],
): void {
  for (const receiver of members) {
    for (const author of members) {
      deepStrictEqual(textsFrom(receiver.process.out, author.fingerprint), author.lines);
    }
    assertCleanOutput(receiver.process);
  }
}

/** The private messages a process showed (sent or received), sorted. */
function privateTexts(p: ChatProcess): string[] {
  return p.out.ofType("message").filter((e) => e.kind === "private").map((e) => e.text).sort();
}
