/**
 * An admin SIGKILLed while it admits a burst of newcomers (docs/PROTOCOL.md 13.3, 13.4): real
 * `listen --relay-only` and `dial --json` processes on 127.0.0.1. The room's creator makes a second
 * admin with /op, newcomers on its admit list knock together, and it is killed at one of two
 * points: the moment it shows the first knock (while it batches and makes the commit that admits
 * them: it dies before the commit leaves), or the moment the relay logs that it took that commit
 * (the commit is the room's; the dead admin may never apply it). Either way every member sees the
 * same outcome, since the relay orders commits; the others chat on, the second admin lets in
 * whoever still waits, removes the dead admin, and admits a newcomer afterwards.
 *
 * Each process a test starts is stopped by the fixture (SIGKILL if still running). Waits have
 * deadlines only so a broken build fails with the events seen; nothing asserts on timing.
 */

import { ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { ChatFixture, type ChatProcess, isMessage } from "../_helpers/chat.ts";
import {
  assertClean,
  assertJoinedBy,
  shownMembers,
  untilMembers,
  writeAdmitList,
} from "../_helpers/room_cli.ts";

/** When the first admin is killed. */
const KILL_POINTS = [
  // Most often before its commit leaves; on a slow machine the commit may still get out first.
  "as it shows the first knock",
  // The commit that admits a newcomer is the room's: the relay logged that it took it.
  "once the relay took its commit",
] as const;

for (const when of KILL_POINTS) {
  Deno.test(`an admin SIGKILLed ${when} while admitting a burst of knocks: the second admin lets in whoever waits, removes it, and admits a newcomer later`, async () => {
    const names = ["relay", "ann", "ben", "cid", "kim", "lou", "dan"];
    await using chat = await ChatFixture.create(names);
    const fp = (name: string) => chat.fingerprint(name);
    const admit = await writeAdmitList(
      `${chat.root}/admit`,
      ["ben", "cid", "kim", "lou"].map((name) => ({ fingerprint: fp(name), name })),
    );
    const relay = await chat.listen("relay", ["--relay-only"]);
    const ann = await chat.join("ann", relay.port, ["--admit", admit]);
    const ben = await chat.join("ben", relay.port);
    const cid = await chat.join("cid", relay.port);
    await Promise.all([ann, ben, cid].map((p) => untilMembers(p, ["ann", "ben", "cid"].map(fp))));

    // ann makes ben an admin too; everyone is told.
    await ann.send("/op ben");
    for (const process of [ann, ben, cid]) {
      await process.out.waitFor(
        (e) => e.type === "notice" && e.text === "ann made ben an admin",
        `${process.label} hears ben was made an admin`,
      );
    }

    // kim and lou, both on ann's list, knock together; ann dies as it shows the first knock, while
    // it batches and commits their admission.
    const isKnock = (e: ChatEvent) =>
      e.type === "knock" && [fp("kim"), fp("lou")].includes(e.member.fingerprint);
    const kim = chat.dial("kim", relay.port);
    const lou = chat.dial("lou", relay.port);
    if (when === "as it shows the first knock") {
      await ann.out.waitFor(isKnock, "ann sees a knock");
    } else {
      await relay.err.waitFor(
        /^securechat: "ann" SHA256:\S+ committed epoch \d+, welcoming .*"(kim|lou)"/,
      );
    }
    ann.kill("SIGKILL");
    strictEqual((await ann.finished()).signal, "SIGKILL");

    // The relay's word that ann is gone comes after everything ann's connection did, so once ben
    // shows it, ben has applied ann's last commit if the relay took it.
    const annGone = (e: ChatEvent) =>
      e.type === "notice" && e.text.startsWith("the relay says ann disconnected");
    await Promise.all([ben, cid].map((p) => p.out.waitFor(annGone, `${p.label} hears ann died`)));
    for (const newcomer of ["kim", "lou"]) {
      if (shownMembers(ben.out.events).has(fp(newcomer))) continue; // ann's commit let it in
      await ben.out.waitFor(
        (e) => e.type === "knock" && e.member.fingerprint === fp(newcomer) && e.canAdmit,
        `ben, an admin, sees ${newcomer} knock`,
      );
      await ben.send(`/admit ${newcomer}`);
    }
    const withAnn = ["ann", "ben", "cid", "kim", "lou"].map(fp);
    await Promise.all([ben, cid, kim, lou].map((p) => untilMembers(p, withAnn)));
    // Who added kim and lou: ann (its commit made it) or ben; every member saw the same.
    const addedBy = (p: ChatProcess, name: string) =>
      p.out.ofType("join").find((e) => e.member.fingerprint === fp(name))?.by?.name;
    const adders = new Set<string | undefined>();
    for (const newcomer of ["kim", "lou"]) {
      const by = addedBy(ben, newcomer);
      adders.add(by);
      strictEqual(addedBy(cid, newcomer), by, `cid on ${newcomer}`);
    }
    ok([...adders].every((by) => by === "ann" || by === "ben"), `added by ${[...adders]}`);
    // Killed after the relay took its commit, ann added at least the newcomer it welcomed.
    if (when === "once the relay took its commit") ok(adders.has("ann"), `added by ${[...adders]}`);

    // ann is a member until an admin removes it (13.3): ben does.
    await ben.send("/kick ann");
    const four = ["ben", "cid", "kim", "lou"].map(fp);
    await Promise.all([ben, cid, kim, lou].map((p) => untilMembers(p, four)));
    for (const process of [cid, kim, lou]) {
      const removed = process.out.ofType("leave").find((e) => e.member.fingerprint === fp("ann"));
      strictEqual(removed?.by?.fingerprint, fp("ben"), process.label);
    }

    // The others chat on: a line from each reaches every other.
    const alive = [ben, cid, kim, lou];
    const label = ["ben", "cid", "kim", "lou"];
    await Promise.all(alive.map((p, i) => p.send(`${label[i]} is alive`)));
    for (const [i, reader] of alive.entries()) {
      for (const [j, author] of label.entries()) {
        if (i === j) continue;
        await reader.out.waitFor(
          (e) => isMessage(e, fp(author), `${author} is alive`),
          `${label[i]} hears ${author}`,
        );
      }
    }

    // After ann's death, ben admits a newcomer on its own.
    const dan = chat.dial("dan", relay.port);
    await ben.out.waitFor(
      (e) => e.type === "knock" && e.member.fingerprint === fp("dan"),
      "ben sees dan knock",
    );
    await ben.send("/admit dan");
    const five = [...four, fp("dan")];
    await Promise.all([...alive, dan].map((p) => untilMembers(p, five)));
    for (const process of [cid, kim, lou]) await assertJoinedBy(process, fp("dan"), fp("ben"));
    await dan.send("dan is in");
    await kim.out.waitFor((e) => isMessage(e, fp("dan"), "dan is in"), "kim hears dan");

    for (const process of [dan, ...alive]) {
      await process.closeStdin();
      strictEqual((await process.finished()).code, 0, process.label);
    }
    relay.kill("SIGTERM");
    strictEqual((await relay.finished()).code, 0);
    for (const process of [dan, ...alive]) assertClean(process);
  });
}
