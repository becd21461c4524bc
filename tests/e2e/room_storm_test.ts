/**
 * Join and leave storms in a room (docs/PROTOCOL.md 13.3, 13.4): real `listen --relay-only` and
 * twelve `dial --json` processes on 127.0.0.1. The admin arrives first (its `--admit` file lists
 * the others), the other eleven dial at once, then six of them leave at once, then everyone left
 * says a line. Every remaining member must show the same six members, hear every other's line,
 * and show no `rejected` (or `error`) event; those who left must have left cleanly.
 *
 * The processes are stopped by the fixture (SIGKILL if still running). Waits have deadlines only
 * so a broken build fails with the events seen; nothing asserts on timing.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { ChatFixture, isMessage } from "../_helpers/chat.ts";
import { assertClean, untilMembers, writeAdmitList } from "../_helpers/room_cli.ts";

const MEMBERS = 12;

/** Each wait of the test: twelve processes share the machine. */
const WAIT_MS = 60_000;

Deno.test(`${MEMBERS} members join a relay-only room at once, half of them leave at once, and the rest agree on who is left and hear every line`, async () => {
  const names = Array.from({ length: MEMBERS }, (_, i) => `m${String(i).padStart(2, "0")}`);
  await using chat = await ChatFixture.create(["relay", ...names]);
  const fp = (name: string) => chat.fingerprint(name);
  const [admin, ...others] = names as [string, ...string[]];
  const admit = await writeAdmitList(
    `${chat.root}/admit`,
    others.map((name) => ({ fingerprint: fp(name), name })),
  );
  const relay = await chat.listen("relay", ["--relay-only"]);
  const first = await chat.join(admin, relay.port, ["--admit", admit]);

  // The join storm: eleven dial at once.
  const rest = others.map((name) => chat.dial(name, relay.port));
  const all = [first, ...rest];
  await Promise.all(all.map((p) => untilMembers(p, names.map(fp), WAIT_MS)));

  // The leave storm: every other newcomer leaves, all at once.
  const leaving = rest.filter((_, i) => i % 2 === 0);
  const staying = all.filter((p) => !leaving.includes(p));
  const stayingNames = names.filter((_, i) => !leaving.includes(all[i]!));
  strictEqual(leaving.length, MEMBERS / 2);
  await Promise.all(leaving.map((p) => p.closeStdin()));
  for (const process of leaving) {
    const result = await process.finished(WAIT_MS);
    strictEqual(result.code, 0, `${process.label}: ${result.stderr}`);
    const last = process.out.events.at(-1);
    strictEqual(last?.type === "closed" && last.reason, "we left the room", process.label);
  }
  await Promise.all(staying.map((p) => untilMembers(p, stayingNames.map(fp), WAIT_MS)));

  // Everyone left says a line; everyone hears every other's.
  await Promise.all(staying.map((p, i) => p.send(`${stayingNames[i]} is still here`)));
  for (const [i, reader] of staying.entries()) {
    for (const [j, author] of stayingNames.entries()) {
      if (i === j) continue;
      await reader.out.waitFor(
        (e) => isMessage(e, fp(author), `${author} is still here`),
        `${stayingNames[i]} hears ${author}`,
        WAIT_MS,
      );
    }
  }

  for (const process of staying) {
    await process.closeStdin();
    strictEqual((await process.finished(WAIT_MS)).code, 0, process.label);
  }
  relay.kill("SIGTERM");
  strictEqual((await relay.finished()).code, 0);
  // With every output complete: each line arrived once, and nothing was rejected.
  for (const [i, reader] of staying.entries()) {
    for (const [j, author] of stayingNames.entries()) {
      if (i === j) continue;
      const copies = reader.out.messagesFrom(fp(author)).filter((e) => e.kind === "text");
      deepStrictEqual(copies.map((e) => e.text), [`${author} is still here`], reader.label);
    }
  }
  for (const process of all) assertClean(process);
});
