/**
 * Rooms as MLS groups behind an untrusted relay (docs/PROTOCOL.md 13, 14), end to end: real
 * `listen --relay-only` and `dial --json` processes on 127.0.0.1, real keys, real MLS. The relay
 * takes no part: the first dialer to arrive makes the group and is its admin, and admits those its
 * `--admit` file lists at once and anyone else when its person types `/admit NAME`.
 *
 * Covered: three members' JSON events (lines and a private message with their authors, rosters,
 * joins naming the admin that added each member); a newcomer not on the admit list, who waits
 * (it is told so, the admin sees its knock) until the admin types /admit; a file sent between two
 * members through the relay, which arrives byte for byte while the relay's log never shows its
 * name or its bytes.
 *
 * Each process a test starts is stopped by the fixture (SIGKILL if still running). Waits have
 * deadlines only so a broken build fails with the events seen; nothing asserts on timing.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { ChatFixture, type ChatProcess, isMessage } from "../_helpers/chat.ts";
import { randomBytes } from "../_helpers/peers.ts";
import { assertClean, assertJoinedBy, untilMembers, writeAdmitList } from "../_helpers/room_cli.ts";

/** Ends input (leaving the room) and waits for a clean exit. */
async function leave(process: ChatProcess): Promise<void> {
  await process.closeStdin();
  const result = await process.finished();
  strictEqual(result.code, 0, `${process.label}: ${result.stderr}`);
}

const joinsShown = (process: ChatProcess) =>
  process.out.ofType("join").map((e) => [e.member.name, e.by?.name]);

const privateMessages = (process: ChatProcess) =>
  process.out.ofType("message").filter((e) => e.kind === "private");

Deno.test("a --relay-only room of three: the first dialer makes the group and admits the others from --admit; a newcomer not listed waits for /admit", async () => {
  await using chat = await ChatFixture.create(["relay", "ann", "ben", "cid", "dan"]);
  const fp = (name: string) => chat.fingerprint(name);
  const admit = await writeAdmitList(`${chat.root}/admit`, [
    { fingerprint: fp("ben"), name: "ben" },
    { fingerprint: fp("cid"), name: "cid" },
  ]);
  const relay = await chat.listen("relay", ["--relay-only"]);
  const ann = await chat.join("ann", relay.port, ["--admit", admit]);
  // The first to arrive makes the group: alone in it, and its admin.
  deepStrictEqual(ann.out.ofType("roster")[0]!.members, [
    { name: "ann", fingerprint: fp("ann"), self: true, admin: true },
  ]);
  const ben = await chat.join("ben", relay.port);
  const cid = await chat.join("cid", relay.port);
  const three = [ann, ben, cid];
  await Promise.all(three.map((p) => untilMembers(p, ["ann", "ben", "cid"].map(fp))));
  // Whoever joined is shown as added by the admin; the newest member got the whole roster.
  deepStrictEqual(joinsShown(ann), [["ben", "ann"], ["cid", "ann"]]);
  deepStrictEqual(joinsShown(ben), [["cid", "ann"]]);
  deepStrictEqual(joinsShown(cid), []);
  deepStrictEqual(
    cid.out.ofType("roster")[0]!.members.map((m) => [m.name, m.fingerprint, m.admin === true]),
    [["ann", fp("ann"), true], ["ben", fp("ben"), false], ["cid", fp("cid"), false]],
  );

  // A line from each, and one private message from ann to ben.
  await Promise.all(three.map((p, i) => p.send(`hello from ${["ann", "ben", "cid"][i]}`)));
  await ann.send("/msg ben for ben only");
  for (const [reader, name] of [[ann, "ann"], [ben, "ben"], [cid, "cid"]] as const) {
    for (const author of ["ann", "ben", "cid"].filter((other) => other !== name)) {
      await reader.out.waitFor(
        (e) => isMessage(e, fp(author), `hello from ${author}`, "text"),
        `${name} hears ${author}`,
      );
    }
  }
  const whisper = await ben.out.waitFor(
    (e) => isMessage(e, fp("ann"), "for ben only", "private"),
    "ben gets ann's private message",
  );
  strictEqual(whisper.to?.fingerprint, fp("ben"));

  // dan is on nobody's list: told to wait, it knocks; only the admin may let it in.
  const dan = chat.dial("dan", relay.port);
  await dan.out.waitFor(
    (e) =>
      e.type === "notice" && e.text.startsWith("waiting for an admin of the room to admit you"),
    "dan is told to wait",
  );
  const isKnock = (e: ChatEvent) => e.type === "knock" && e.member.fingerprint === fp("dan");
  const [annKnock, benKnock] = await Promise.all([
    ann.out.waitFor(isKnock, "ann sees dan knock"),
    ben.out.waitFor(isKnock, "ben sees dan knock"),
  ]);
  strictEqual(annKnock.type === "knock" && annKnock.canAdmit, true);
  strictEqual(benKnock.type === "knock" && benKnock.canAdmit, false);
  strictEqual(dan.out.ofType("roster").length, 0, "dan is not in the room before /admit");
  await ann.send("/admit dan");
  const four = ["ann", "ben", "cid", "dan"].map(fp);
  await Promise.all([...three, dan].map((p) => untilMembers(p, four)));
  for (const process of three) await assertJoinedBy(process, fp("dan"), fp("ann"));
  await dan.send("hi, I am in");
  await cid.out.waitFor((e) => isMessage(e, fp("dan"), "hi, I am in"), "cid hears dan");

  for (const process of [ben, cid, dan, ann]) await leave(process);
  relay.kill("SIGTERM");
  strictEqual((await relay.finished()).code, 0);
  // The whole output is in: the private message reached ben alone (ann shows her own copy).
  deepStrictEqual(privateMessages(ben).map((e) => [e.text, e.from.fingerprint]), [
    ["for ben only", fp("ann")],
  ]);
  deepStrictEqual(privateMessages(ann).map((e) => [e.text, e.to?.fingerprint]), [
    ["for ben only", fp("ben")],
  ]);
  deepStrictEqual(privateMessages(cid), []);
  deepStrictEqual(privateMessages(dan), []);
  for (const process of [ann, ben, cid, dan]) assertClean(process);
  // The relay is no member: nothing on stdout.
  deepStrictEqual(relay.out.lines, []);
});

Deno.test("a file /sent through a --relay-only listener arrives byte for byte; the relay's log never shows its name or bytes", async () => {
  await using chat = await ChatFixture.create(["relay", "ann", "ben"]);
  const token = `scf${Buffer.from(randomBytes(12)).toString("hex")}`;
  const name = `${token}.bin`;
  const content = randomBytes(300 * 1024); // several Data slices and Acks (14.4)
  await Deno.mkdir(`${chat.root}/out`);
  await Deno.mkdir(`${chat.root}/inbox`);
  const source = `${chat.root}/out/${name}`;
  await Deno.writeFile(source, content);
  const admit = await writeAdmitList(`${chat.root}/admit`, [
    { fingerprint: chat.fingerprint("ben"), name: "ben" },
  ]);
  const relay = await chat.listen("relay", ["--relay-only"]);
  const ann = await chat.join("ann", relay.port, ["--admit", admit]);
  const ben = await chat.join("ben", relay.port, ["--accept-files", `${chat.root}/inbox`]);
  await untilMembers(ann, [chat.fingerprint("ann"), chat.fingerprint("ben")]);

  await ann.send(`/send ${source} ben`);
  const isDone = (direction: "send" | "receive") => (e: ChatEvent) =>
    e.type === "transfer" && e.direction === direction && e.state === "done";
  await Promise.all([
    ben.out.waitFor(isDone("receive"), "ben receives the file"),
    ann.out.waitFor(isDone("send"), "ann's side is done"),
  ]);
  const received = await Deno.readFile(`${chat.root}/inbox/${name}`);
  ok(Buffer.from(received).equals(Buffer.from(content)), "the received file differs");

  await leave(ben);
  await leave(ann);
  relay.kill("SIGTERM");
  const { code, stderr } = await relay.finished();
  strictEqual(code, 0, stderr);
  ok(stderr.includes("joined and creates the group"), `the relay logged nothing?\n${stderr}`);
  ok(!stderr.includes(token), `the relay's log names the file:\n${stderr}`);
  for (let at = 0; at + 32 <= content.length; at += 64 * 1024) {
    const piece = Buffer.from(content.subarray(at, at + 32));
    for (const form of [piece.toString("hex"), piece.toString("base64")]) {
      ok(!stderr.includes(form), `the relay's log shows the file's bytes at ${at}`);
    }
  }
  for (const process of [ann, ben]) assertClean(process);
});
