/**
 * What NATS holds of a room (docs/PROTOCOL.md 16.6): MLS ciphertext, never what members say. Two
 * relays (each its own ClusterLink and ClusterRooms) on a real nats-server serve one room; alice
 * joins through one, bob through the other, both with real MLS (`joinRoom()`), and alice sends a
 * line with a marker. Bob shows the line (the positive control: the marker did pass through the
 * cluster); neither any message of the room's stream nor any file of the server's JetStream store
 * holds the marker's bytes.
 */

import { ok } from "node:assert/strict";
import { ROOM_STREAM } from "../../lib/cluster/nats_link.ts";
import { joinRoom } from "../../lib/room/member.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { type ClusterRelay, JOINED, startClusterRelay } from "../_helpers/cluster_relays.ts";
import { startNatsServers } from "../_helpers/nats_servers.ts";
import { random } from "../_helpers/mls_messages.ts";
import { identities, securePairFor } from "../_helpers/relay_peers.ts";
import { entered, type TestMember, watch } from "../_helpers/room.ts";

/** A real member (MLS, joinRoom) of the room of `token`, through `via`. */
async function member(
  via: ClusterRelay,
  relayIdentity: Identity,
  identity: Identity,
  token: Uint8Array,
  admits: Set<string>,
): Promise<TestMember> {
  const { memberSide, relaySide } = await securePairFor(identity, relayIdentity);
  via.rooms.enter(relaySide, { address: "127.0.0.1", from: "127.0.0.1:1" }, token, "test");
  const joined = await memberSide.receive();
  ok(joined !== null && joined.length === 1 && joined[0] === JOINED[0], "Joined");
  const session = await joinRoom(memberSide, {
    identity,
    admitsAtOnce: (fingerprint) => admits.has(fingerprint),
  });
  return watch(identity, session);
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function* filesUnder(folder: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(folder)) {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory) yield* filesUnder(path);
    else if (entry.isFile) yield path;
  }
}

Deno.test("a room spanning two relays: NATS holds its ciphertext, never a line a member sent", async () => {
  const servers = await startNatsServers(1);
  const relays = [await startClusterRelay(servers.urls), await startClusterRelay(servers.urls)];
  const [relayIdentity, alice, bob] = await identities(3) as [Identity, Identity, Identity];
  const token = random(32);
  const marker = `marker-${crypto.randomUUID()}`;
  const markerBytes = new TextEncoder().encode(marker);
  const members: TestMember[] = [];
  try {
    const a = await member(relays[0]!, relayIdentity, alice, token, new Set([bob.fingerprint]));
    members.push(a);
    await a.until(entered);
    const b = await member(relays[1]!, relayIdentity, bob, token, new Set());
    members.push(b);
    await b.until(entered);
    await a.session.sendText(marker);
    await b.until((events) =>
      events.some((event) => event.type === "message" && event.text === marker)
    );

    // Every message of the stream, read back through the cluster.
    const info = await relays[0]!.link.jsm.streams.info(ROOM_STREAM);
    let read = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const message = await relays[0]!.link.jsm.streams.getMessage(ROOM_STREAM, { seq });
      if (message === null) continue;
      read++;
      ok(!contains(new Uint8Array(message.data), markerBytes), `stream message ${seq}`);
    }
    ok(read >= 4, `the room's entries were read (${read})`);
    // And what the server keeps on disk.
    let files = 0;
    for await (const path of filesUnder(servers.storeRoot)) {
      files++;
      ok(!contains(await Deno.readFile(path), markerBytes), path);
    }
    ok(files > 0, "the store has files");
  } finally {
    await Promise.all(members.map((m) => m.session.close().catch(() => {})));
    for (const r of relays) await r.close();
    await servers.stop();
  }
});
