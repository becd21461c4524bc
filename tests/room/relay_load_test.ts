/**
 * Load: 50 members in one room, each sending 20 signed messages, over real loopback handshakes.
 * Every member must receive every other member's messages exactly once, in order per author.
 */

import { strictEqual } from "node:assert/strict";
import { Relay } from "../../lib/room/relay.ts";
import { assertDeliveredInOrder, identities, join, type TestMember } from "../_helpers/room.ts";

const MEMBERS = 50;
const MESSAGES = 20;

Deno.test(`${MEMBERS} members each sending ${MESSAGES} messages: none lost, none duplicated, in order`, async () => {
  const [relayIdentity, ...memberIdentities] = await identities(MEMBERS + 1);
  const room = new Relay({ identity: relayIdentity!, hostParticipates: false });
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
  await Promise.all(
    members.map((member) => member.until(() => member.received >= expected, 60_000)),
  );

  assertDeliveredInOrder(members, MESSAGES);
  await Promise.all(members.map((member) => member.session.close()));
  await room.close();
});
