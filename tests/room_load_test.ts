/**
 * Load: 50 members in one room, each sending 20 signed messages, over real loopback handshakes.
 * Every member must receive every other member's messages exactly once, in order per author.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../lib/chat_events.ts";
import { RoomHub } from "../lib/room.ts";
import { identities, join, type TestMember } from "./_helpers/room.ts";

const MEMBERS = 50;
const MESSAGES = 20;

Deno.test(`${MEMBERS} members each sending ${MESSAGES} messages: none lost, none duplicated, in order`, async () => {
  const [relayIdentity, ...memberIdentities] = await identities(MEMBERS + 1);
  const room = new RoomHub({ identity: relayIdentity!, hostParticipates: false });
  const members: TestMember[] = [];
  for (const identity of memberIdentities) {
    members.push(await join(identity, relayIdentity!, (conn, name) => room.admit(conn, name)));
  }
  strictEqual(room.memberCount, MEMBERS);
  await Promise.all(
    members.map((member) => member.until(() => member.session.members().length === MEMBERS)),
  );

  await Promise.all(members.map(async (member) => {
    for (let i = 0; i < MESSAGES; i++) {
      await member.session.sendText(`${member.identity.comment}:${i}`);
    }
  }));
  const expected = (MEMBERS - 1) * MESSAGES;
  const received = (events: ChatEvent[]) =>
    events.filter((e) => e.type === "message" && !e.from.self).length;
  await Promise.all(
    members.map((member) => member.until((events) => received(events) >= expected, 60_000)),
  );

  for (const member of members) {
    const byAuthor = new Map<string, string[]>();
    for (const event of member.events) {
      if (event.type !== "message" || event.from.self) continue;
      const list = byAuthor.get(event.from.name) ?? [];
      list.push(event.text);
      byAuthor.set(event.from.name, list);
    }
    strictEqual(byAuthor.size, MEMBERS - 1);
    for (const [author, texts] of byAuthor) {
      deepStrictEqual(texts, Array.from({ length: MESSAGES }, (_, i) => `${author}:${i}`));
    }
    strictEqual(member.events.filter((e) => e.type === "rejected").length, 0);
  }
  await Promise.all(members.map((member) => member.session.close()));
  await room.close();
});
