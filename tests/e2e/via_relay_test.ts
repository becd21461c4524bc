/**
 * Meeting through a rendezvous relay (docs/PROTOCOL.md 15), end to end: a real `securechat relay`
 * process, `listen --via` and `dial --via` / `dial --room` processes, real keys, real sockets on
 * 127.0.0.1, all started with the shipped permission flags.
 *
 * Covered: a listener that opens no listening socket (read from the system, with the relay's own
 * socket as the control) reached by a 64 MiB pipe each way; chat in the listener's room with two
 * dialers in turn (it registers again after each) and a file from `dial NAME --via --send` to
 * `listen --via --receive`; a room by name on the relay with three members; a relay stopped and
 * started again while a session runs and a listener waits; a dial nobody waits for; the relay's
 * key recorded on first contact, a changed one and a wrong pin refused before any rendezvous; bad
 * flags.
 *
 * Each process a test starts is stopped by its fixture (SIGKILL by its handle if still running).
 * Waits have deadlines only so a broken build fails with what was seen; nothing asserts on timing.
 */

import { deepStrictEqual, match, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { isMessage } from "../_helpers/chat.ts";
import { runCli } from "../_helpers/cli.ts";
import { feed, randomBytes, sha256Hex } from "../_helpers/peers.ts";
import { errorLines, ViaRelayFixture, waitForLines } from "../_helpers/relay_cli.ts";
import { assertClean, assertJoinedBy, untilMembers, writeAdmitList } from "../_helpers/room_cli.ts";
import { tcpSocketsOf } from "../_helpers/sockets.ts";
import type { ChatProcess } from "../_helpers/chat.ts";

const MiB = 1024 * 1024;

/** Ends input (leaving the room) and expects a clean exit. */
async function leave(process: ChatProcess): Promise<void> {
  await process.closeStdin();
  const result = await process.finished();
  strictEqual(result.code, 0, `${process.label}: ${result.stderr}`);
}

const isRoster = (e: { type: string }) => e.type === "roster";

Deno.test("listen --via opens no listening socket, and 64 MiB cross the relay intact each way with exit 0 on both sides", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob"]);
  const relay = await via.startRelay();
  const listener = via.start("alice", ["listen", "--via", relay.address, ...via.pin, "--pipe"]);
  await listener.stderr.waitFor(/waiting for dialers at relay/);

  // The control: the same reading sees the relay's listening socket.
  const relaySockets = await tcpSocketsOf(relay.child.pid);
  strictEqual(relaySockets.listening.length, 1, `relay: ${JSON.stringify(relaySockets)}`);
  const waiting = await tcpSocketsOf(listener.child.pid);
  deepStrictEqual(waiting.listening, [], "the listener listens on no port");
  ok(waiting.total >= 1, "the listener's registration at the relay is a socket of its own");

  const toBob = randomBytes(64 * MiB);
  const toAlice = randomBytes(64 * MiB);
  const dialer = via.start("bob", [
    "dial",
    via.fingerprint("alice"),
    "--via",
    relay.address,
    ...via.pin,
    "--pipe",
  ]);
  const feeding = Promise.all([feed(listener.stdin, toBob), feed(dialer.stdin, toAlice)]);
  // Reported with the processes' own words below if either ends early, not as a stray rejection.
  feeding.catch(() => {});
  const met = await listener.stderr.waitFor(/connection from a dialer through relay/).catch(
    () => undefined,
  );
  if (met === undefined) {
    const [l, d] = await Promise.all([listener.finished(), dialer.finished()]);
    throw new Error(
      `the listener never met the dialer: listener ${l.code}: ${l.stderr}\ndialer ${d.code}: ${d.stderr}`,
    );
  }
  const serving = await tcpSocketsOf(listener.child.pid);
  deepStrictEqual(serving.listening, [], "the listener listens on no port while it serves");
  const fed = await feeding.then(() => "fed", (error: Error) => `feeding failed: ${error.message}`);
  const [l, d] = await Promise.all([listener.finished(), dialer.finished()]);
  const both = `listener ${l.code}: ${l.stderr}\ndialer ${d.code}: ${d.stderr}`;
  strictEqual(fed, "fed", both);
  strictEqual(l.code, 0, both);
  strictEqual(d.code, 0, both);
  strictEqual(await sha256Hex(l.stdout), await sha256Hex(toAlice), "alice got bob's bytes");
  strictEqual(await sha256Hex(d.stdout), await sha256Hex(toBob), "bob got alice's bytes");
  match(
    d.stderr,
    new RegExp(`met through relay ${relay.address}: "alice" ${escape(via.fingerprint("alice"))}`),
  );
  // Both came to the relay with throwaway keys: its log names neither.
  for (const name of ["alice", "bob"]) {
    ok(!relay.stderr.text.includes(via.fingerprint(name)), `the relay's log names ${name}`);
  }
});

Deno.test("chat --json through the relay: two dialers join the listener's room in turn; then dial NAME --via --send reaches listen --via --receive", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob", "carol"]);
  const fp = (name: string) => via.fingerprint(name);
  const relay = await via.startRelay();
  const host = via.chat("alice", ["listen", "--via", relay.address, ...via.pin]);
  await host.err.waitFor(/waiting for dialers at relay/);
  const target = ["dial", fp("alice"), "--via", relay.address, ...via.pin];
  const bob = via.chat("bob", target);
  await bob.out.waitFor(isRoster, "bob is in alice's room");
  // alice registered again as soon as bob was paired: the relay shows a second registration.
  await waitForLines(relay.stderr, / waits for #/, 2);
  const carol = via.chat("carol", target);
  await carol.out.waitFor(isRoster, "carol is in alice's room");
  const everyone = [host, bob, carol];
  await Promise.all(everyone.map((p) => untilMembers(p, ["alice", "bob", "carol"].map(fp))));
  await assertJoinedBy(host, fp("carol"), fp("alice"));

  await Promise.all(everyone.map((p, i) => p.send(`hello from ${["alice", "bob", "carol"][i]}`)));
  for (const [reader, name] of [[host, "alice"], [bob, "bob"], [carol, "carol"]] as const) {
    for (const author of ["alice", "bob", "carol"].filter((other) => other !== name)) {
      await reader.out.waitFor(
        (e) => isMessage(e, fp(author), `hello from ${author}`, "text"),
        `${name} hears ${author}`,
      );
    }
  }
  for (const process of [bob, carol, host]) await leave(process);
  for (const process of everyone) assertClean(process);

  // A file, to a listener bob knows by a name in his known_hosts.
  const content = randomBytes(3 * MiB);
  await Deno.mkdir(`${via.root}/inbox`);
  await Deno.mkdir(`${via.root}/out`);
  await Deno.writeFile(`${via.root}/out/report.bin`, content);
  await Deno.writeTextFile(
    `${via.peer("bob").home}/known_hosts`,
    `alice.example:65432 ${fp("alice")} alice\n`,
  );
  const receiver = via.start("alice", [
    "listen",
    "--via",
    relay.address,
    ...via.pin,
    "--receive",
    `${via.root}/inbox`,
  ]);
  await receiver.stderr.waitFor(/waiting for dialers at relay/);
  const sender = via.start("bob", [
    "dial",
    "alice.example",
    "--via",
    relay.address,
    ...via.pin,
    "--send",
    `${via.root}/out/report.bin`,
  ]);
  await Promise.all([receiver.closeStdin(), sender.closeStdin()]);
  const [r, s] = await Promise.all([receiver.finished(), sender.finished()]);
  strictEqual(s.code, 0, s.stderr);
  strictEqual(r.code, 0, r.stderr);
  const received = await Deno.readFile(`${via.root}/inbox/report.bin`);
  ok(Buffer.from(received).equals(Buffer.from(content)), "the received file differs");
});

Deno.test("dial RELAY --room NAME: three members by --json, the first admits the others with --admit; the relay's log names no member and not the room", async () => {
  await using via = await ViaRelayFixture.create(["ann", "ben", "cid"]);
  const fp = (name: string) => via.fingerprint(name);
  const relay = await via.startRelay();
  const admit = await writeAdmitList(`${via.root}/admit`, [
    { fingerprint: fp("ben"), name: "ben" },
    { fingerprint: fp("cid"), name: "cid" },
  ]);
  const room = ["dial", relay.address, "--room", "book club", ...via.pin];
  const ann = via.chat("ann", [...room, "--admit", admit]);
  await ann.out.waitFor(isRoster, "ann makes the room");
  deepStrictEqual(ann.out.ofType("roster")[0]!.members, [
    { name: "ann", fingerprint: fp("ann"), self: true, admin: true },
  ]);
  const ben = via.chat("ben", room);
  await ben.out.waitFor(isRoster, "ben is admitted");
  const cid = via.chat("cid", room);
  await cid.out.waitFor(isRoster, "cid is admitted");
  const three = [ann, ben, cid];
  await Promise.all(three.map((p) => untilMembers(p, ["ann", "ben", "cid"].map(fp))));
  for (const process of [ann, ben]) await assertJoinedBy(process, fp("cid"), fp("ann"));

  await Promise.all(three.map((p, i) => p.send(`hi from ${["ann", "ben", "cid"][i]}`)));
  for (const [reader, name] of [[ann, "ann"], [ben, "ben"], [cid, "cid"]] as const) {
    for (const author of ["ann", "ben", "cid"].filter((other) => other !== name)) {
      await reader.out.waitFor(
        (e) => isMessage(e, fp(author), `hi from ${author}`, "text"),
        `${name} hears ${author}`,
      );
    }
  }
  for (const process of [ben, cid, ann]) await leave(process);
  for (const process of three) assertClean(process);

  relay.child.kill("SIGINT");
  const stopped = await relay.finished();
  strictEqual(stopped.code, 0, stopped.stderr);
  match(stopped.stderr, /relay stopped/);
  for (const secret of ["book club", fp("ann"), fp("ben"), fp("cid"), '"ann"', '"ben"']) {
    ok(!stopped.stderr.includes(secret), `the relay's log shows ${secret}:\n${stopped.stderr}`);
  }
});

Deno.test("a relay restart: the session through it ends with one error line, the waiting listener says it lost the relay and registers again, and a new dial finds it", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob", "carol"]);
  let relay = await via.startRelay();
  const listener = via.start("alice", [
    "listen",
    "--via",
    relay.address,
    ...via.pin,
    "--pipe",
    "--keep-open",
  ]);
  await listener.closeStdin();
  await listener.stderr.waitFor(/waiting for dialers at relay/);
  const dial = ["dial", via.fingerprint("alice"), "--via", relay.address, ...via.pin, "--pipe"];
  const cut = via.start("bob", dial);
  await cut.stdin.write(new TextEncoder().encode("before the restart\n"));
  await listener.stderr.waitFor(/connection from a dialer through relay/);
  // alice registered again for the next dialer: the relay has two registrations in its log.
  await waitForLines(relay.stderr, / waits for #/, 2);

  relay.child.kill("SIGTERM");
  const stopped = await relay.finished();
  strictEqual(stopped.code, 0, stopped.stderr);
  const c = await cut.finished();
  notStrictEqual(c.code, 0, c.stderr);
  strictEqual(errorLines(c.stderr).length, 1, c.stderr);
  await listener.stderr.waitFor(
    new RegExp(`lost the relay at ${relay.address}: the relay is shutting down; registering again`),
  );

  relay = await via.startRelay({ port: relay.port });
  await listener.stderr.waitFor(/registered again at relay/);
  const after = via.start("carol", dial);
  await feed(after.stdin, new TextEncoder().encode("after the restart\n"));
  const a = await after.finished();
  strictEqual(a.code, 0, a.stderr);
  await listener.stderr.waitFor(/ended: sent 0 bytes, received 18$/);
  listener.child.kill("SIGTERM");
  const l = await listener.finished();
  match(new TextDecoder().decode(l.stdout), /after the restart\n$/);
  strictEqual(
    l.stderr.split("\n").filter((line) => line.includes("lost the relay")).length,
    1,
    `one line says the relay was lost:\n${l.stderr}`,
  );
  // The session that was cut ended with an error on alice's side too; she served on.
  deepStrictEqual(errorLines(l.stderr), [
    "securechat: error: connection ended without close_notify: the data may be truncated",
  ]);
});

Deno.test("listen --via R1,R2: when R1 goes the listener registers at R2, and dial --via R1,R2 finds it there", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob"]);
  const first = await via.startRelay();
  const second = await via.startRelay();
  const relays = `${first.address},${second.address}`;
  const listener = via.start("alice", [
    "listen",
    "--via",
    relays,
    ...via.pin,
    "--pipe",
    "--keep-open",
  ]);
  await listener.closeStdin();
  await listener.stderr.waitFor(
    new RegExp(`waiting for dialers at relay ${escape(first.address)}`),
  );

  first.child.kill("SIGKILL");
  await first.finished();
  await listener.stderr.waitFor(
    new RegExp(
      `lost the relay at ${escape(first.address)}: .*; registering at relay ${
        escape(second.address)
      }`,
    ),
  );
  await listener.stderr.waitFor(new RegExp(`registered again at relay ${escape(second.address)}`));
  await waitForLines(second.stderr, / waits for #/, 1);

  // The dialer finds R1 gone and goes on to R2, where alice waits.
  const dial = via.start("bob", [
    "dial",
    via.fingerprint("alice"),
    "--via",
    relays,
    ...via.pin,
    "--pipe",
  ]);
  await feed(dial.stdin, new TextEncoder().encode("through the second relay\n"));
  const d = await dial.finished();
  strictEqual(d.code, 0, d.stderr);
  match(d.stderr, new RegExp(`met through relay ${escape(second.address)}`));
  await listener.stderr.waitFor(/ended: sent 0 bytes, received 25$/);
  listener.child.kill("SIGTERM");
  const l = await listener.finished();
  match(new TextDecoder().decode(l.stdout), /through the second relay\n$/);
});

Deno.test("listen --via admits through the relay only the keys --authorized-keys lists, and waits on for the next dialer", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob", "mallory"]);
  const relay = await via.startRelay();
  const authorized = `${via.root}/authorized_keys`;
  await Deno.writeTextFile(authorized, `${via.fingerprint("bob")} bob\n`);
  const listener = via.start("alice", [
    "listen",
    "--via",
    relay.address,
    ...via.pin,
    "--pipe",
    "--authorized-keys",
    authorized,
  ]);
  await listener.closeStdin();
  await listener.stderr.waitFor(/waiting for dialers at relay/);
  const dial = ["dial", via.fingerprint("alice"), "--via", relay.address, ...via.pin, "--pipe"];
  const refused = via.start("mallory", dial);
  await feed(refused.stdin, new TextEncoder().encode("let me in\n"));
  const m = await refused.finished();
  strictEqual(m.code, 5, m.stderr);
  match(errorLines(m.stderr).join("\n"), /access_denied/);
  await listener.stderr.waitFor(
    new RegExp(
      `connection from a dialer through relay .* refused: key ${
        escape(via.fingerprint("mallory"))
      }`,
    ),
  );
  // The refusal ended nothing: the listener registered again, and bob gets through.
  await waitForLines(relay.stderr, / waits for #/, 2);
  const admitted = via.start("bob", dial);
  await feed(admitted.stdin, new TextEncoder().encode("bob here\n"));
  const [b, l] = await Promise.all([admitted.finished(), listener.finished()]);
  strictEqual(b.code, 0, b.stderr);
  strictEqual(l.code, 0, l.stderr);
  strictEqual(new TextDecoder().decode(l.stdout), "bob here\n");
});

Deno.test("a registration the relay expires is made again at once, without a word, and still finds its dialer", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob"]);
  const relay = await via.startRelay({ args: ["--registration-life", "1"] });
  const listener = via.start("alice", ["listen", "--via", relay.address, ...via.pin, "--pipe"]);
  await listener.closeStdin();
  await listener.stderr.waitFor(/waiting for dialers at relay/);
  await relay.stderr.waitFor(/registration #\w+ expired/);
  await waitForLines(relay.stderr, / waits for #/, 2);
  const dialer = via.start("bob", [
    "dial",
    via.fingerprint("alice"),
    "--via",
    relay.address,
    ...via.pin,
    "--pipe",
  ]);
  await feed(dialer.stdin, new TextEncoder().encode("still here\n"));
  const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
  strictEqual(d.code, 0, d.stderr);
  strictEqual(l.code, 0, l.stderr);
  strictEqual(new TextDecoder().decode(l.stdout), "still here\n");
  ok(!/lost the relay|warning/.test(l.stderr), l.stderr);
});

Deno.test("a dial for a fingerprint nobody registered says no listener is waiting; the relay's key is recorded on first contact, and a changed one is refused before any rendezvous", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob"]);
  const relay = await via.startRelay();
  const bob = via.peer("bob");
  const dial = ["dial", via.fingerprint("alice"), "--via", relay.address, "--pipe"];
  const first = await runCli(dial, { env: bob.env, stdin: "" });
  strictEqual(first.code, 6, first.stderr);
  deepStrictEqual(errorLines(first.stderr), [
    "securechat: error: no listener is waiting for that fingerprint at the relay",
  ]);
  match(first.stderr, /warning: first contact with relay 127\.0\.0\.1:\d+: trusting its key/);
  const knownHosts = `${bob.home}/known_hosts`;
  match(
    await Deno.readTextFile(knownHosts),
    new RegExp(`^${escape(relay.address)} ${escape(via.fingerprint("operator"))} operator\n$`),
  );
  const again = await runCli(dial, { env: bob.env, stdin: "" });
  strictEqual(again.code, 6, again.stderr);
  ok(!again.stderr.includes("first contact"), again.stderr);

  // known_hosts now holds another key for the relay's address: refused at the handshake.
  await Deno.writeTextFile(knownHosts, `${relay.address} ${via.fingerprint("alice")}\n`);
  const changed = await runCli(dial, { env: bob.env, stdin: "" });
  strictEqual(changed.code, 3, changed.stderr);
  deepStrictEqual(errorLines(changed.stderr).length, 1, changed.stderr);
  match(
    errorLines(changed.stderr)[0]!,
    new RegExp(`host key for "${escape(relay.address)}" changed`),
  );
  relay.child.kill("SIGTERM");
  const log = (await relay.finished()).stderr;
  strictEqual(
    log.split("\n").filter((line) => / refused: no listener waits for #/.test(line)).length,
    2,
    `only the two dials with the right key asked for a listener:\n${log}`,
  );
});

Deno.test("a wrong --relay-key is refused before any rendezvous, by dial and by listen", async () => {
  await using via = await ViaRelayFixture.create(["alice", "bob"]);
  const relay = await via.startRelay();
  const wrong = ["--relay-key", via.fingerprint("bob")];
  const expected = new RegExp(
    `relay ${escape(relay.address)} has key ${
      escape(via.fingerprint("operator"))
    }, not the pinned ${escape(via.fingerprint("bob"))}`,
  );
  const dial = await runCli(
    ["dial", via.fingerprint("alice"), "--via", relay.address, ...wrong, "--pipe"],
    { env: via.peer("bob").env, stdin: "" },
  );
  const listen = await runCli(
    ["listen", "--via", relay.address, ...wrong, "--pipe"],
    { env: via.peer("alice").env, stdin: "" },
  );
  for (const result of [dial, listen]) {
    strictEqual(result.code, 3, result.stderr);
    strictEqual(errorLines(result.stderr).length, 1, result.stderr);
    match(errorLines(result.stderr)[0]!, expected);
  }
  relay.child.kill("SIGTERM");
  const log = (await relay.finished()).stderr;
  ok(!/ waits for #| no listener waits for #/.test(log), `a request reached the relay:\n${log}`);
});

const HOME = { SECURECHAT_HOME: "/nonexistent/securechat-via-test" };
const FP = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
const BAD_FLAGS: { args: string[]; error: RegExp }[] = [
  { args: ["dial", "--via", "relay.example"], error: /missing the listener's fingerprint/ },
  {
    args: ["dial", "unknown.example", "--via", "relay.example"],
    error:
      /"unknown\.example:65432" is not in .*known_hosts": --via needs the listener's fingerprint/,
  },
  { args: ["dial", "SHA256:short", "--via", "relay.example"], error: /invalid fingerprint/ },
  { args: ["dial", "--room", "club"], error: /missing the relay: securechat dial RELAY/ },
  {
    args: ["dial", FP, "--via", "relay.example", "--room", "club"],
    error: /"--via" and "--room" exclude each other/,
  },
  { args: ["dial", "relay.example", "--room", "club", "--pipe"], error: /a room is a chat/ },
  { args: ["dial", "relay.example", "--room", "a\u202Eb", "--json"], error: /room name/ },
  { args: ["dial", FP, "--via", "relay.example", "--expect", FP], error: /"--expect" is not/ },
  { args: ["dial", "host.example", "--relay-key", FP], error: /"--relay-key" pins the key/ },
  { args: ["listen", "--relay-key", FP], error: /"--relay-key" pins the key/ },
  { args: ["listen", "--via", "relay.example", "--port", "1"], error: /with --via it opens none/ },
  { args: ["listen", "--via", "relay.example:99999"], error: /port must be a number/ },
  { args: ["relay", "--port", "99999"], error: /"--port" must be between 0 and 65535/ },
  { args: ["relay", "--rate-per-address", "fast"], error: /takes a size like 500M/ },
  { args: ["relay", "extra"], error: /unexpected argument "extra"/ },
  { args: ["listen", "--via", "r1.example,,r2.example"], error: /a relay in the list is empty/ },
  { args: ["dial", FP, "--via", "r1.example,"], error: /a relay in the list is empty/ },
  { args: ["dial", FP, "--via", "r1.example,r1.example:65433"], error: /named twice/ },
  { args: ["dial", "r1.example,r2.example:0", "--room", "club"], error: /port must be/ },
  { args: ["relay", "--advertise", "r1.example:65433"], error: /are for a relay with --nats/ },
  { args: ["relay", "--nats-replicas", "3"], error: /are for a relay with --nats/ },
  { args: ["relay", "--nats", "nats://a b:4222"], error: /is not a NATS server/ },
  { args: ["relay", "--nats", "nats://n1:4222,"], error: /is not a NATS server/ },
  {
    args: ["relay", "--nats", "nats://n1:4222", "--advertise", "r1.example"],
    error: /it is HOST:PORT/,
  },
  {
    args: ["relay", "--nats", "nats://n1:4222", "--nats-replicas", "9"],
    error: /"--nats-replicas" must be between 1 and 5/,
  },
];

Deno.test("bad --via, --room and relay flags give one usage error line and exit 2", async () => {
  for (const { args, error } of BAD_FLAGS) {
    const result = await runCli(args, { env: HOME, stdin: "" });
    const label = `securechat ${args.join(" ")}: ${result.stderr}`;
    strictEqual(result.code, 2, label);
    const lines = errorLines(result.stderr);
    strictEqual(lines.length, 1, label);
    match(lines[0]!, error, label);
    strictEqual(result.stdout, "", label);
  }
});

/** `text` as a literal in a RegExp. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
