/**
 * Load: 50 members in one group over real loopback handshakes, admitted by one commit, each then
 * sending 20 Group messages at once. Every member must receive every other member's messages
 * exactly once, in the order each sent them, and nothing else.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { Identity } from "../../lib/keys/identity.ts";
import { Relay } from "../../lib/room/relay.ts";
import { keyPackage, privateMessage, random, welcome } from "../_helpers/mls_messages.ts";
import { identities, joinOverTcp, type RelayPeer } from "../_helpers/relay_peers.ts";

const MEMBERS = 50;
const MESSAGES = 20;

Deno.test(`Relay with ${MEMBERS} members each sending ${MESSAGES} messages: none lost, none duplicated, in order`, async () => {
  const [relayIdentity, ...people] = await identities(MEMBERS + 1) as [Identity, ...Identity[]];
  const room = new Relay({});
  const groupId = random(32);
  const peers: RelayPeer[] = [];
  for (const identity of people) {
    const peer = await joinOverTcp(room, relayIdentity, identity);
    await peer.expect("start");
    if (peers.length > 0) await peer.send({ type: "key_package", keyPackage: keyPackage() });
    peers.push(peer);
  }
  strictEqual(room.memberCount, MEMBERS);
  const [creator, ...newcomers] = peers as [RelayPeer, ...RelayPeer[]];
  for (let i = 0; i < newcomers.length; i++) await creator.expect("knock");
  await creator.send({
    type: "commit",
    commit: privateMessage({ groupId, epoch: 0n, contentType: "commit" }),
    welcome: welcome(),
    recipients: newcomers.map((peer) => peer.author),
  });
  await creator.expect("accepted");
  await Promise.all(newcomers.map((peer) => peer.expect("welcome")));

  // Each message's last ciphertext bytes say who sent it and its number.
  const message = (sender: number, n: number) => {
    const bytes = privateMessage({ groupId, epoch: 1n, contentType: "application", size: 16 });
    bytes.set([sender, n], bytes.length - 2);
    return bytes;
  };
  await Promise.all(peers.map(async (peer, sender) => {
    for (let n = 0; n < MESSAGES; n++) {
      await peer.send({ type: "group", message: message(sender, n) });
    }
  }));
  // Every sender's barrier, then every receiver's again: by the second, all sends were handled.
  const first = await Promise.all(peers.map((peer) => peer.barrier()));
  for (const [receiver, peer] of peers.entries()) {
    const got = [...first[receiver]!, ...await peer.barrier()];
    strictEqual(got.length, (MEMBERS - 1) * MESSAGES, `member ${receiver}`);
    const bySender = new Map<number, number[]>();
    for (const m of got) {
      if (m.type !== "group") throw new Error(`member ${receiver} got a ${m.type}`);
      const sender = m.message.at(-2)!;
      strictEqual(m.sender.join(), peers[sender]!.author.join());
      bySender.set(sender, [...bySender.get(sender) ?? [], m.message.at(-1)!]);
    }
    strictEqual(bySender.size, MEMBERS - 1);
    strictEqual(bySender.has(receiver), false);
    for (const numbers of bySender.values()) deepStrictEqual(numbers, [...Array(MESSAGES).keys()]);
  }
  await room.close();
  await Promise.all(peers.map(async (peer) => {
    await peer.ended();
    peer.connection.close();
    await peer.served;
  }));
});
