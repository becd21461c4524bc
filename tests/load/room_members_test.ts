/**
 * Many members in one room relayed by a real `securechat listen --relay-only` process, each sending
 * signed messages: zero lost, zero duplicated, zero out of order per author; the relay's memory is
 * reported. 500 members x 20 messages means ~5 million signature checks by recipients, so the full
 * size runs only with SECURECHAT_SLOW=1 (`deno task load`); the default run uses 40 members.
 */

// deno-lint-ignore-file no-console -- the figures are the point of this suite
import { runInitiator } from "../../lib/transport/connection.ts";
import { MAX_RECORD_PLAINTEXT } from "../../lib/protocol/record.ts";
import { joinRoom } from "../../lib/room/member.ts";
import { ChatFixture } from "../_helpers/chat.ts";
import { assertDeliveredInOrder, identities, watch } from "../_helpers/room.ts";

const SLOW = Deno.env.get("SECURECHAT_SLOW") === "1";
const MEMBERS = Number(Deno.env.get("SECURECHAT_LOAD_MEMBERS") ?? (SLOW ? 500 : 40));
const MESSAGES = 20;

/** Resident memory of a process in KiB (`ps`: Deno needs --allow-all to read /proc). */
async function rssKiB(pid: number): Promise<number> {
  const output = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output()
    .catch(() => undefined);
  return Number(new TextDecoder().decode(output?.stdout ?? new Uint8Array()).trim() || NaN);
}

Deno.test(`${MEMBERS} members x ${MESSAGES} messages through a relay process: none lost, duplicated or reordered`, async () => {
  await using chat = await ChatFixture.create(["relay"]);
  const relay = await chat.listen("relay", [
    "--relay-only",
    "--max-members",
    String(MEMBERS + 10),
    "--keepalive",
    "0",
  ]);
  const pid = relay.child.pid;
  const idleBefore = await rssKiB(pid);
  const people = await identities(MEMBERS);
  const started = performance.now();
  const members = [];
  for (let i = 0; i < people.length; i += 25) {
    members.push(
      ...await Promise.all(
        people.slice(i, i + 25).map(async (identity) => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
          const secure = await runInitiator(conn, {
            identity,
            suites: ["x25519"],
            maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
            timeoutMs: 120_000,
            checkPeer: () => Promise.resolve(),
          });
          return watch(identity, await joinRoom(secure, { identity }));
        }),
      ),
    );
  }
  await Promise.all(
    members.map((m) => m.until(() => m.session.members().length >= MEMBERS, 300_000)),
  );
  const joinedMs = performance.now() - started;
  const idleRss = await rssKiB(pid);

  const sendStart = performance.now();
  await Promise.all(members.map(async (member) => {
    for (let i = 0; i < MESSAGES; i++) {
      await member.session.sendText(`${member.identity.comment}:${i}`);
    }
  }));
  const expected = (MEMBERS - 1) * MESSAGES;
  let busyRss = 0;
  const sampler = setInterval(async () => busyRss = Math.max(busyRss, await rssKiB(pid)), 200);
  try {
    await Promise.all(
      members.map((m) => m.until(() => m.received >= expected, 3_600_000)),
    );
  } finally {
    clearInterval(sampler);
  }
  const deliverMs = performance.now() - sendStart;

  assertDeliveredInOrder(members, MESSAGES);
  console.log(
    `load room: ${MEMBERS} members x ${MESSAGES} messages = ${MEMBERS * MESSAGES} messages, ${
      MEMBERS * MESSAGES * (MEMBERS - 1)
    } verified deliveries, 0 lost, 0 duplicated, ` +
      `0 out of order; joined in ${(joinedMs / 1000).toFixed(1)} s, delivered in ${
        (deliverMs / 1000).toFixed(1)
      } s; relay RSS ${Math.round(idleBefore / 1024)} MiB empty, ${
        Math.round(idleRss / 1024)
      } MiB with members idle (${((idleRss - idleBefore) / MEMBERS).toFixed(0)} KiB/member), ` +
      `${Math.round(busyRss / 1024)} MiB peak while busy`,
  );
  await Promise.all(members.map((member) => member.session.close()));
});
