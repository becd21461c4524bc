/**
 * Members of a real room: a real Relay on loopback sockets, real handshakes, real MLS. What each
 * member sees when others talk, whisper, join, leave and are removed (PROTOCOL.md 13.3, 13.5,
 * 13.7).
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { joinRoom } from "../../lib/room/member.ts";
import { Relay } from "../../lib/room/relay.ts";
import type { RoomConnection } from "../../lib/room/room_connection.ts";
import { entered, identities, join, room, rosterSize, texts, watch } from "../_helpers/room.ts";
import { securePairFor } from "../_helpers/relay_peers.ts";
import { MiB, tempDir, writeRandomFile } from "../_helpers/files.ts";
import { HostileRelay } from "../_helpers/hostile_relay.ts";
import { ConnectionError } from "../../lib/core/errors.ts";
import type { ResumedConnection } from "../../lib/room/member.ts";

const hasText = (text: string) => (events: ChatEvent[]) =>
  events.some((event) => event.type === "message" && event.text === text);

Deno.test("three members: lines reach everyone, verified, named by their credential", async () => {
  const { members: [alice, bob, carol], close } = await room(3);
  try {
    await bob!.session.sendText("hello from bob");
    await alice!.until(hasText("hello from bob"));
    await carol!.until(hasText("hello from bob"));
    await carol!.session.sendAction("waves");
    await bob!.until(hasText("waves"));
    const seen = alice!.events.find((event) => event.type === "message" && !event.from.self);
    strictEqual(seen?.type === "message" && seen.from.fingerprint, bob!.identity.fingerprint);
    for (const member of [alice!, bob!, carol!]) {
      strictEqual(member.events.filter((event) => event.type === "rejected").length, 0);
    }
  } finally {
    await close();
  }
});

Deno.test("a private message reaches its recipient only; the others see nothing of it", async () => {
  const { members: [alice, bob, carol], close } = await room(3);
  try {
    await alice!.session.sendPrivate(bob!.identity.comment, "for bob only");
    await alice!.session.sendText("for everyone");
    await bob!.until(hasText("for everyone"));
    await carol!.until(hasText("for everyone"));
    deepStrictEqual(texts(bob!), ["for bob only", "for everyone"]);
    deepStrictEqual(texts(carol!), ["for everyone"]);
    strictEqual(carol!.events.filter((event) => event.type === "rejected").length, 0);
  } finally {
    await close();
  }
});

Deno.test("joins show who added whom; every member sees the same epoch code", async () => {
  const { members: [alice, bob, carol], close } = await room(3);
  try {
    const joined = bob!.events.find((event) =>
      event.type === "join" && event.member.fingerprint === carol!.identity.fingerprint
    );
    strictEqual(joined?.type === "join" && joined.by?.fingerprint, alice!.identity.fingerprint);
    const codes = await Promise.all(
      [alice!, bob!, carol!].map(async (member) => (await member.session.verify()).epochCode),
    );
    ok(codes[0]);
    deepStrictEqual(new Set(codes).size, 1);
    const [ab, ba] = await Promise.all([
      alice!.session.verify(bob!.identity.comment),
      bob!.session.verify(alice!.identity.comment),
    ]);
    ok(ab.safety?.number);
    strictEqual(ab.safety?.number, ba.safety?.number);
  } finally {
    await close();
  }
});

Deno.test("a member who leaves is committed out by the others, and the room goes on", async () => {
  const { members: [alice, bob, carol], close } = await room(3);
  try {
    await carol!.session.close();
    await alice!.until(() => rosterSize(alice!, 2));
    await bob!.until(() => rosterSize(bob!, 2));
    const left = bob!.events.find((event) => event.type === "leave");
    strictEqual(left?.type === "leave" && left.reason, "left the room");
    await bob!.session.sendText("still here");
    await alice!.until(hasText("still here"));
  } finally {
    await close();
  }
});

Deno.test("an admin removes a member, who is told and can read nothing after", async () => {
  const { members: [alice, bob, carol], close } = await room(3);
  try {
    await alice!.session.kick!(carol!.identity.comment);
    await carol!.until((events) => events.some((event) => event.type === "closed"));
    await bob!.until(() => rosterSize(bob!, 2));
    const error = carol!.events.find((event) => event.type === "error");
    ok(error?.type === "error" && error.message.includes("removed you"), JSON.stringify(error));
    await alice!.session.sendText("after carol");
    await bob!.until(hasText("after carol"));
    ok(!texts(carol!).includes("after carol"));
  } finally {
    await close();
  }
});

Deno.test("only an admin may admit or remove: a member's /kick is refused before anything is sent", async () => {
  const { members: [, bob, carol], close } = await room(3);
  try {
    await rejects(bob!.session.kick!(carol!.identity.comment), /only an admin/);
  } finally {
    await close();
  }
});

Deno.test("a newcomer waits until an admin types /admit; then it is in", async () => {
  const [relayIdentity, alice, bob] = await identities(3);
  const relay = new Relay({});
  const first = await join(alice!, relay, relayIdentity!);
  await first.until(entered);
  const newcomer = await join(bob!, relay, relayIdentity!);
  await first.until((events) => events.some((event) => event.type === "knock"));
  const knock = first.events.find((event) => event.type === "knock");
  strictEqual(knock?.type === "knock" && knock.member.fingerprint, bob!.fingerprint);
  strictEqual(knock?.type === "knock" && knock.canAdmit, true);
  await rejects(newcomer.session.sendText("too early"), /admit/);
  await first.session.admit!(bob!.comment);
  await newcomer.until(entered);
  await newcomer.session.sendText("in");
  await first.until(hasText("in"));
  await Promise.all([first.session.close(), newcomer.session.close()]);
  await relay.close();
});

// Regression: a member that left while a commit's batch timer was armed (25 ms after applying a
// commit) then tried to commit its own leave proposal, which MLS forbids, and ended with the error
// "cannot commit after proposing to leave" (exit 1 for `dial`) instead of leaving cleanly. It
// showed when leaving took longer than 25 ms: a loaded machine in tests/e2e/chat_test.ts; here, a
// connection whose goodbye (close_notify) is sent 200 ms late.
Deno.test("a member that leaves right after applying a commit commits nothing more and leaves cleanly", async () => {
  const [relayIdentity, alice, bob, carol] = await identities(4) as Identity[];
  const relay = new Relay({});
  const first = await join(alice!, relay, relayIdentity!, { admitsAtOnce: () => true });
  await first.until(entered);
  const { memberSide, relaySide } = await securePairFor(bob!, relayIdentity!);
  relay.join(relaySide).catch(() => {});
  const slowGoodbye: RoomConnection = {
    peer: memberSide.peer,
    verificationCode: memberSide.verificationCode,
    send: (data) => memberSide.send(data),
    sendBatch: (messages) => memberSide.sendBatch(messages),
    receive: () => memberSide.receive(),
    closeWrite: async () => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await memberSide.closeWrite();
    },
    close: () => memberSide.close(),
    abort: (error) => memberSide.abort(error),
  };
  const leaver = watch(bob!, await joinRoom(slowGoodbye, { identity: bob! }));
  await leaver.until(entered);
  let leaving: Promise<void> | undefined;
  // Bob leaves the moment carol's join is shown: while the commit that added her is applied.
  leaver.session.onEvent((event) => {
    if (event.type === "join" && event.member.fingerprint === carol!.fingerprint) {
      leaving ??= leaver.session.close();
    }
  });
  const newcomer = await join(carol!, relay, relayIdentity!);
  try {
    await leaver.until(() => leaving !== undefined);
    await leaving;
    strictEqual(leaver.session.failure?.(), undefined);
    deepStrictEqual(leaver.events.filter((event) => event.type === "error"), []);
    const last = leaver.events.at(-1);
    strictEqual(last?.type === "closed" && last.reason, "we left the room");
    await first.until(() => rosterSize(first, 2));
    await newcomer.until(() => rosterSize(newcomer, 2));
  } finally {
    await Promise.all([first.session.close(), newcomer.session.close()]);
    await relay.close();
  }
});

// Regression: when a sender's connection died mid-transfer, the relay's Left was only shown: the
// recipient's transfer waited for Data forever, and `listen --receive` never exited.
Deno.test("a sender the relay says disconnected mid-transfer: the recipient's transfer fails and keeps its part file", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/in`);
  const source = `${dir.path}/big.bin`;
  await writeRandomFile(source, 64 * MiB);
  const { members: [alice, bob], close } = await room(2, {
    member: { receiveDir: `${dir.path}/in`, autoAccept: true },
  });
  try {
    const receiving = (events: ChatEvent[]) =>
      events.some((e) => e.type === "transfer" && e.state === "receiving" && e.bytes > 0);
    await alice!.session.sendFile!(source, bob!.identity.comment);
    await bob!.until(receiving);
    alice!.connection!.close(); // cut, without a goodbye
    await bob!.until((events) =>
      events.some((e) =>
        e.type === "transfer" && e.direction === "receive" && e.state !== "receiving"
      )
    );
    const ended = bob!.events.findLast((e) => e.type === "transfer");
    strictEqual(ended?.type === "transfer" && ended.state, "failed");
    strictEqual(ended?.type === "transfer" && ended.reason, "the relay says they disconnected");
    ok((await Deno.stat(`${dir.path}/in/big.bin.securechat-part`)).size > 0);
  } finally {
    await close();
  }
});

/** What a member's `reconnect` was asked, failing at every relay as a cluster that is gone would. */
function failingReconnect(): {
  asked: bigint[];
  reconnect: (position: bigint) => Promise<ResumedConnection>;
} {
  const asked: bigint[] = [];
  return {
    asked,
    reconnect: (position) => {
      asked.push(position);
      return Promise.reject(
        new ConnectionError("relay_unreachable", "cannot connect to the relay at 127.0.0.1:9"),
      );
    },
  };
}

const errorCodes = (events: ChatEvent[]) =>
  events.flatMap((event) => event.type === "error" ? [event.code] : []);

Deno.test("without a Position, a broken connection ends the room as before: no resume is tried", async () => {
  const [relayIdentity, alice] = await identities(2) as Identity[];
  const relay = new Relay({});
  const { asked, reconnect } = failingReconnect();
  const member = await join(alice!, relay, relayIdentity!, { reconnect });
  try {
    await member.until(entered);
    member.connection!.close();
    await member.session.closed;
    deepStrictEqual(asked, []);
    ok(member.events.some((event) => event.type === "closed"));
    ok(!member.events.some((event) => event.type === "notice" && event.text.includes("resum")));
  } finally {
    await relay.close();
  }
});

Deno.test("after Positions, a broken connection asks reconnect for the last one; failing everywhere ends with resume_failed", async () => {
  const [relayIdentity, alice] = await identities(2) as Identity[];
  const relay = new HostileRelay(relayIdentity!);
  const { asked, reconnect } = failingReconnect();
  const member = await relay.join(alice!, { name: "alice", reconnect });
  try {
    await member.until(entered);
    const end = relay.end("alice");
    relay.inject(end, { type: "position", position: 5n });
    relay.inject(end, { type: "position", position: 9n });
    relay.inject(end, { type: "notice", level: 0, text: "read so far" });
    await member.until((events) =>
      events.some((event) => event.type === "notice" && event.text.includes("read so far"))
    );
    member.connection!.close();
    await member.session.closed;
    deepStrictEqual(asked, [9n]);
    deepStrictEqual(errorCodes(member.events), ["resume_failed"]);
    const error = member.events.find((event) => event.type === "error");
    ok(error?.type === "error" && error.message.includes("127.0.0.1:9"), JSON.stringify(error));
    ok(
      member.events.some((event) =>
        event.type === "notice" && event.text.startsWith("connection to the relay lost")
      ),
    );
  } finally {
    await relay.close();
  }
});

Deno.test("a Position that goes backwards is a relay that lies: the room ends", async () => {
  const [relayIdentity, alice] = await identities(2) as Identity[];
  const relay = new HostileRelay(relayIdentity!);
  const { asked, reconnect } = failingReconnect();
  const member = await relay.join(alice!, { name: "alice", reconnect });
  try {
    await member.until(entered);
    const end = relay.end("alice");
    relay.inject(end, { type: "position", position: 5n });
    relay.inject(end, { type: "position", position: 4n });
    await member.session.closed;
    deepStrictEqual(errorCodes(member.events), ["bad_relay_message"]);
    deepStrictEqual(asked, []);
  } finally {
    await relay.close();
  }
});
