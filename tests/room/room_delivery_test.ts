/**
 * Delivery in a real room of 12 (a real Relay on loopback, real handshakes, real MLS): everyone
 * talking at once loses, duplicates and reorders nothing (PROTOCOL.md 13.4: everything a member
 * receives comes in the order the relay accepted it; 13.1: each member applies it in that order),
 * also right after storms of members leaving and joining at once, after which every member lists
 * the same members and shows the same epoch code (13.7). The same at 50 members is
 * tests/load/room_members_test.ts.
 */

import {
  assertOneRoom,
  assertTalkedInOrder,
  joinStorm,
  leaveStorm,
  stormRoom,
  talk,
} from "../_helpers/room_storms.ts";
import { identities } from "../_helpers/relay_peers.ts";

const MEMBERS = 12;
const MESSAGES = 10;

Deno.test(`${MEMBERS} members sending ${MESSAGES} lines each at once: every member has every line once, in order`, async () => {
  const room = await stormRoom(MEMBERS);
  try {
    await talk(room.members, "all", MESSAGES);
    await assertOneRoom(room.members);
    assertTalkedInOrder(room.members, "all", MESSAGES);
  } finally {
    await room.close();
  }
});

Deno.test(`storms in a room of ${MEMBERS}: a third leave at once, as many join at once, and the room still delivers in order`, async () => {
  const people = await identities(MEMBERS + 1 + MEMBERS / 3);
  const room = await stormRoom(MEMBERS, { people: people.slice(0, MEMBERS + 1) });
  try {
    await leaveStorm(room, room.members.slice(-MEMBERS / 3));
    await assertOneRoom(room.members);
    await talk(room.members, "after leaving", MESSAGES);
    assertTalkedInOrder(room.members, "after leaving", MESSAGES);
    await joinStorm(room, people.slice(MEMBERS + 1));
    await assertOneRoom(room.members);
    await talk(room.members, "after joining", MESSAGES);
    assertTalkedInOrder(room.members, "after joining", MESSAGES);
  } finally {
    await room.close();
  }
});
