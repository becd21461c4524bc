/**
 * Clustered rooms over a real nats-server: two or three relays (each its own ClusterLink and
 * ClusterRooms) serve one room; members join over real loopback SecureConnections and speak
 * relay messages by hand (tests/_helpers/relay_peers.ts), reading Positions themselves.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { sha256 } from "../../lib/core/bytes.ts";
import type { FromRelay } from "../../lib/chat/relay_messages.ts";
import { type ClusterLink, connectCluster } from "../../lib/cluster/nats_link.ts";
import { ClusterRooms } from "../../lib/cluster/cluster_rooms.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { startNatsServers } from "../_helpers/nats_servers.ts";
import { privateMessage, random, welcome } from "../_helpers/mls_messages.ts";
import { identities, RelayPeer, securePairFor } from "../_helpers/relay_peers.ts";

const JOINED = Uint8Array.of(0x84);
const GRACE_MS = 1_500;

interface TestRelay {
  link: ClusterLink;
  rooms: ClusterRooms;
  /** The relay's ends of its connections, to cut them when it "dies". */
  sockets: SecureConnection[];
}

async function relay(urls: string[]): Promise<TestRelay> {
  const link = await connectCluster({
    servers: urls,
    replicas: 1,
    heartbeatMs: 100,
    silenceMs: 500,
  });
  const rooms = new ClusterRooms({
    link,
    room: undefined,
    now: Date.now,
    keepaliveMs: 60_000,
    log: () => {},
    joined: JOINED,
    graceMs: GRACE_MS,
  });
  return { link, rooms, sockets: [] };
}

const source = { address: "127.0.0.1", from: "127.0.0.1:1" };

/** Joins (or resumes after `position`) through `via`, reading Joined and the SessionHello. */
async function enter(
  via: TestRelay,
  relayIdentity: Identity,
  identity: Identity,
  token: Uint8Array,
  position?: bigint,
): Promise<RelayPeer> {
  const { memberSide, relaySide } = await securePairFor(identity, relayIdentity);
  via.sockets.push(relaySide);
  const served = position === undefined
    ? via.rooms.enter(relaySide, source, token, "test")
    : via.rooms.resume(relaySide, source, token, position, "test");
  deepStrictEqual(await memberSide.receive(), JOINED);
  await exchangeSessionHello(memberSide, "chat");
  return new RelayPeer(identity, await sha256(identity.spki), memberSide, served).startReading();
}

/** The last Position a peer read. */
function lastPosition(peer: RelayPeer): bigint {
  const positions = peer.inbox.filter((m) => m.type === "position");
  return (positions.at(-1) as FromRelay & { type: "position" } | undefined)?.position ?? 0n;
}

/** Everything but Positions, in order, as short strings. */
function seen(messages: FromRelay[]): string[] {
  return messages.filter((m) => m.type !== "position").map((m) =>
    m.type === "group" ? `group:${new TextDecoder().decode(m.message.slice(-8))}` : m.type
  );
}

const groupId = random(8);
const commitAt = (epoch: bigint) => privateMessage({ groupId, epoch, contentType: "commit" });
function chat(text: string): Uint8Array {
  const message = privateMessage({ groupId, epoch: 1n, contentType: "application", size: 8 });
  message.set(new TextEncoder().encode(text.padEnd(8)), message.length - 8);
  return message;
}

/** a on relay 0 creates the group and admits b on relay 1 (and c on relay 2 if given). */
async function roomOfMembers(relays: TestRelay[], people: Identity[], relayIdentity: Identity) {
  const token = random(32);
  const a = await enter(relays[0]!, relayIdentity, people[0]!, token);
  deepStrictEqual(await a.expect("start"), { type: "start", role: "create" });
  const others: RelayPeer[] = [];
  for (let i = 1; i < people.length; i++) {
    const peer = await enter(relays[i % relays.length]!, relayIdentity, people[i]!, token);
    deepStrictEqual(await peer.expect("start"), { type: "start", role: "wait" });
    others.push(peer);
  }
  await a.send({
    type: "commit",
    commit: commitAt(0n),
    welcome: welcome(),
    recipients: others.map((p) => p.author),
  });
  await a.until(() => a.inbox.some((m) => m.type === "accepted"), "Accepted");
  for (const peer of others) await peer.until(() => peer.inbox.some((m) => m.type === "welcome"));
  return { token, a, others };
}

Deno.test("ClusterRooms: members on different relays see the same messages in one order, once", async () => {
  const servers = await startNatsServers(1);
  const relays = [await relay(servers.urls), await relay(servers.urls), await relay(servers.urls)];
  const [relayIdentity, ...people] = await identities(4) as [Identity, ...Identity[]];
  try {
    const { a, others } = await roomOfMembers(relays, people, relayIdentity);
    const [b, c] = others as [RelayPeer, RelayPeer];
    const senders = [a, b, c];
    // Each sends 10 messages at once: the log orders them; every member gets the others'.
    await Promise.all(
      senders.map(async (peer, who) => {
        for (let i = 0; i < 10; i++) {
          await peer.send({ type: "group", message: chat(`${who}-${i}`) });
        }
      }),
    );
    const groupMessages = (peer: RelayPeer) => peer.inbox.filter((m) => m.type === "group").length;
    for (const peer of senders) {
      await peer.until(
        () => groupMessages(peer) === 20 && peer.inbox.at(-1)?.type === "position",
        "20 messages and a Position",
      );
    }
    // Every member gets the 30 messages' common order minus its own.
    const order = (peer: RelayPeer) => seen(peer.inbox).filter((s) => s.startsWith("group:"));
    const all = new Set(senders.flatMap(order));
    strictEqual(all.size, 30);
    for (const peer of senders) {
      strictEqual(new Set(order(peer)).size, 20, "no message twice");
      const others = senders.filter((p) => p !== peer).map(order);
      for (const other of others) {
        const common = order(peer).filter((s) => other.includes(s));
        deepStrictEqual(common, other.filter((s) => order(peer).includes(s)), "one order");
      }
    }
    // Positions only grow, and come after the messages they cover.
    for (const peer of senders) {
      const positions = peer.inbox.filter((m) => m.type === "position").map((m) => m.position);
      deepStrictEqual(positions, [...positions].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    }
  } finally {
    for (const r of relays) await r.rooms.close("the test is over");
    for (const r of relays) await r.link.close();
    await servers.stop();
  }
});

Deno.test("ClusterRooms: competing commits from two relays resolve the same way everywhere", async () => {
  const servers = await startNatsServers(1);
  const relays = [await relay(servers.urls), await relay(servers.urls)];
  const [relayIdentity, ...people] = await identities(4) as [Identity, ...Identity[]];
  try {
    const { a, others } = await roomOfMembers(relays, people, relayIdentity);
    const [b, c] = others as [RelayPeer, RelayPeer];
    await Promise.all([a.until(() => lastPosition(a) > 0n), b.until(() => lastPosition(b) > 0n)]);
    const from = new Map([a, b, c].map((peer) => [peer, peer.inbox.length]));
    const since = (peer: RelayPeer) => peer.inbox.slice(from.get(peer));
    await Promise.all([
      a.send({ type: "commit", commit: commitAt(1n), recipients: [] }),
      b.send({ type: "commit", commit: commitAt(1n), recipients: [] }),
    ]);
    const answered = (peer: RelayPeer) => () =>
      since(peer).some((m) => m.type === "accepted" || m.type === "refused");
    await a.until(answered(a), "an answer");
    await b.until(answered(b), "an answer");
    const verdict = (peer: RelayPeer) =>
      since(peer).find((m) => m.type === "accepted" || m.type === "refused")!;
    const [va, vb] = [verdict(a), verdict(b)];
    ok(
      va.type === "accepted" && vb.type === "refused" ||
        va.type === "refused" && vb.type === "accepted",
      `one wins: ${va.type} ${vb.type}`,
    );
    const winner = va.type === "accepted" ? a : b;
    const loser = winner === a ? b : a;
    // The loser got the winner's commit before its Refused; c (on relay 0 or 1) got it once.
    const loserSeen = seen(since(loser));
    ok(loserSeen.indexOf("commit") < loserSeen.indexOf("refused"), loserSeen.join());
    deepStrictEqual((verdict(loser) as { epoch: bigint }).epoch, 2n);
    await c.until(() => since(c).some((m) => m.type === "commit"));
    await c.barrier();
    const commits = since(c).filter((m) => m.type === "commit");
    strictEqual(commits.length, 1);
    deepStrictEqual((commits[0] as { sender: Uint8Array }).sender, winner.author);
  } finally {
    for (const r of relays) await r.rooms.close("the test is over");
    for (const r of relays) await r.link.close();
    await servers.stop();
  }
});

Deno.test("ClusterRooms.resume(): a member whose connection broke resumes on another relay and misses nothing", async () => {
  const servers = await startNatsServers(1);
  const relays = [await relay(servers.urls), await relay(servers.urls)];
  const [relayIdentity, ...people] = await identities(3) as [Identity, ...Identity[]];
  try {
    const { token, a, others } = await roomOfMembers(relays, people, relayIdentity);
    const b = others[0]!;
    await b.send({ type: "group", message: chat("before") });
    await a.until(() => seen(a.inbox).includes("group:before  "), "before");
    await a.until(() => a.inbox.at(-1)?.type === "position", "its Position");
    const resumeAt = lastPosition(a);
    // a's connection breaks: no close_notify.
    a.connection.close();
    await b.send({ type: "group", message: chat("during1") });
    await b.send({ type: "group", message: chat("during2") });
    // Both are in the log before the resume (b's barrier is answered from the log).
    await b.barrier();
    const again = await enter(relays[1]!, relayIdentity, people[0]!, token, resumeAt);
    deepStrictEqual(await again.expect("start"), { type: "start", role: "resume" });
    await b.send({ type: "group", message: chat("after") });
    await again.until(() => seen(again.inbox).includes("group:after   "), "after");
    deepStrictEqual(seen(again.inbox), [
      "start",
      "group:during1 ",
      "group:during2 ",
      "group:after   ",
    ]);
    // The grace passes: the resumed member is still in the room (its old connection's Left
    // changes nothing), and b hears no Left.
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS + 500));
    const quiet = await b.barrier();
    ok(!quiet.some((m) => m.type === "left"), seen(quiet).join());
    await again.send({ type: "group", message: chat("back") });
    await b.until(() => seen(b.inbox).includes("group:back    "), "back");
  } finally {
    for (const r of relays) await r.rooms.close("the test is over");
    for (const r of relays) await r.link.close();
    await servers.stop();
  }
});

Deno.test("ClusterRooms.resume(): a newcomer who is not a member is refused", async () => {
  const servers = await startNatsServers(1);
  const relays = [await relay(servers.urls)];
  const [relayIdentity, ...people] = await identities(3) as [Identity, ...Identity[]];
  try {
    const token = random(32);
    const a = await enter(relays[0]!, relayIdentity, people[0]!, token);
    await a.expect("start");
    const stranger = await enter(relays[0]!, relayIdentity, people[1]!, token, 1n);
    const notice = await stranger.expect("notice");
    strictEqual(notice.text, "nothing to resume: join the room again");
    strictEqual(await stranger.ended(), null);
  } finally {
    for (const r of relays) await r.rooms.close("the test is over");
    for (const r of relays) await r.link.close();
    await servers.stop();
  }
});

Deno.test("ClusterRooms: the members of a relay that died are Left, published by another relay", async () => {
  const servers = await startNatsServers(1);
  const relays = [await relay(servers.urls), await relay(servers.urls)];
  const [relayIdentity, ...people] = await identities(3) as [Identity, ...Identity[]];
  try {
    const { a, others } = await roomOfMembers(relays, people, relayIdentity);
    const b = others[0]!;
    // Relay 1 (b's) dies: its NATS connection and its sockets go at once.
    await relays[1]!.link.nc.close();
    for (const socket of relays[1]!.sockets) socket.close();
    await a.until(() => a.inbox.some((m) => m.type === "left"), "b's Left");
    const left = a.inbox.find((m) => m.type === "left") as { sender: Uint8Array };
    deepStrictEqual(left.sender, b.author);
    // a is now the only member: the room goes on for it.
    const rest = await a.barrier();
    ok(!rest.some((m) => m.type === "start"), seen(rest).join());
  } finally {
    for (const r of relays) await r.rooms.close("the test is over").catch(() => {});
    for (const r of relays) await r.link.close().catch(() => {});
    await servers.stop();
  }
});
