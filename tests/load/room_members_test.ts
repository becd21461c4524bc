/**
 * A room of 50 under load (`deno task load`): a real Relay and 50 real members over loopback
 * (real handshakes, real MLS, X-Wing), who join all at once, then each send 20 lines at once:
 * none lost, duplicated or reordered (PROTOCOL.md 13.4, 13.1). Then storms at that size: half of
 * them leave at once, the rest commit them out and still deliver in order; as many newcomers join
 * at once and everyone delivers in order again. After each storm every member lists the same
 * members and shows the same epoch code (13.7). The figures (how long each phase took) are
 * printed, never asserted. tests/room/room_delivery_test.ts is the same at 12 members.
 *
 * SECURECHAT_LOAD_MEMBERS sets another size.
 */

// deno-lint-ignore-file no-console -- the figures are the point of this suite
import { assertDeliveredInOrder } from "../_helpers/room.ts";
import { identities } from "../_helpers/relay_peers.ts";
import {
  assertOneRoom,
  assertTalkedInOrder,
  joinStorm,
  leaveStorm,
  stormRoom,
  talk,
} from "../_helpers/room_storms.ts";

const MEMBERS = Number(Deno.env.get("SECURECHAT_LOAD_MEMBERS") ?? 50);
const MESSAGES = 20;
const HALF = Math.floor(MEMBERS / 2);

/** Runs `phase`, returning its wall-clock seconds. */
async function timed(phase: () => Promise<unknown>): Promise<string> {
  const started = performance.now();
  await phase();
  return ((performance.now() - started) / 1000).toFixed(1);
}

Deno.test(`${MEMBERS} members join at once and send ${MESSAGES} lines each at once: none lost, duplicated or reordered`, async () => {
  let room: Awaited<ReturnType<typeof stormRoom>> | undefined;
  const joined = await timed(async () => room = await stormRoom(MEMBERS));
  try {
    const members = room!.members;
    // Lines "<name>:<i>", as assertDeliveredInOrder() reads them.
    const sent = await timed(async () => {
      const expected = (MEMBERS - 1) * MESSAGES;
      await Promise.all(members.map(async (member) => {
        for (let i = 0; i < MESSAGES; i++) {
          await member.session.sendText(`${member.identity.comment}:${i}`);
        }
      }));
      await Promise.all(members.map((m) => m.until(() => m.received >= expected, 1_200_000)));
    });
    assertDeliveredInOrder(members, MESSAGES);
    await assertOneRoom(members);
    console.log(
      `load room: ${MEMBERS} members joined at once in ${joined} s; ${MEMBERS} x ${MESSAGES} lines ` +
        `= ${MEMBERS * (MEMBERS - 1) * MESSAGES} deliveries in ${sent} s, ` +
        "0 lost, 0 duplicated, 0 out of order",
    );
  } finally {
    await room?.close();
  }
});

Deno.test(`storms at ${MEMBERS} members: ${HALF} leave at once, ${HALF} join at once; the room delivers in order after each`, async () => {
  const people = await identities(MEMBERS + 1 + HALF);
  let room: Awaited<ReturnType<typeof stormRoom>> | undefined;
  const joined = await timed(async () => {
    room = await stormRoom(MEMBERS, { people: people.slice(0, MEMBERS + 1) });
  });
  try {
    const left = await timed(() => leaveStorm(room!, room!.members.slice(-HALF)));
    await assertOneRoom(room!.members);
    const afterLeaving = await timed(() => talk(room!.members, "after leaving", MESSAGES));
    assertTalkedInOrder(room!.members, "after leaving", MESSAGES);
    console.log(
      `load room storms: ${MEMBERS} joined in ${joined} s; ${HALF} left at once, committed out ` +
        `in ${left} s; ${room!.members.length} x ${MESSAGES} lines in ${afterLeaving} s`,
    );
    const newcomers = await timed(() => joinStorm(room!, people.slice(MEMBERS + 1)));
    await assertOneRoom(room!.members);
    const afterJoining = await timed(() => talk(room!.members, "after joining", MESSAGES));
    assertTalkedInOrder(room!.members, "after joining", MESSAGES);
    console.log(
      `load room storms: ${HALF} joined at once in ${newcomers} s; ` +
        `${room!.members.length} x ${MESSAGES} lines in ${afterJoining} s; 0 lost, 0 duplicated, ` +
        "0 out of order",
    );
  } finally {
    await room?.close();
  }
});
