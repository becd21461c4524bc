/**
 * The host's side of a room over a fake relay link: its session sends through the link, reports
 * joins with their verification codes, and refuses what a --relay-only host cannot do. Its part in
 * a real room (fan-out, private messages to the host) is in room_test.ts.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { SecurechatError } from "../../lib/core/errors.ts";
import { type HostLink, RoomHost } from "../../lib/room/host.ts";
import { decodeRoomMessage } from "../../lib/chat/room_messages.ts";
import { identities } from "../_helpers/room.ts";

const [hostIdentity, alice] = await identities(2) as [
  Awaited<ReturnType<typeof identities>>[0],
  Awaited<ReturnType<typeof identities>>[0],
];

function fakeLink() {
  const sent: { to?: string; bytes: Uint8Array }[] = [];
  const state = { closed: false };
  const link: HostLink = {
    isClosed: () => state.closed,
    memberByAuthor: () => undefined,
    sendTo: (to, bytes) => sent.push({ to, bytes }),
    broadcast: (bytes) => sent.push({ bytes }),
    close: () => Promise.resolve(),
    closed: new Promise(() => {}),
  };
  return { link, sent, state };
}

function host(participates: boolean, link: HostLink) {
  return new RoomHost({
    identity: hostIdentity,
    roomId: new Uint8Array(16),
    hostName: "the host",
    participates,
    now: () => 1_000,
    link,
  });
}

Deno.test("RoomHost has no participant with --relay-only", () => {
  const room = host(false, fakeLink().link);
  strictEqual(room.info, undefined);
  strictEqual(room.transfers, undefined);
  strictEqual(room.participant, undefined);
});

Deno.test("the host's participant signs and sends through the relay, and shows the host its own message", async () => {
  const { link, sent, state } = fakeLink();
  const room = host(true, link);
  const session = room.participant!;
  const events: ChatEvent[] = [];
  session.onEvent((event) => events.push(event));
  strictEqual(session.self.name, "the host");
  strictEqual(session.verification().code, "(nobody has joined yet)");

  const member: MemberInfo = { name: "alice", fingerprint: alice.fingerprint, code: "12345" };
  room.roster!.addIdentity(alice, member);
  room.joined(member, "12345");
  deepStrictEqual(events.map((event) => event.type), ["join", "verification"]);
  strictEqual(session.verification().code, "12345");

  await session.sendText("hello");
  await session.sendPrivate("alice", "psst");
  strictEqual(sent.length, 2);
  strictEqual(sent[0]!.to, undefined, "a text goes to everyone");
  strictEqual(sent[1]!.to, alice.fingerprint, "a private message to its recipient only");
  const decoded = sent.map(({ bytes }) => decodeRoomMessage(bytes));
  ok(decoded.every((message) => message.type === "chat"));
  const mine = events.filter((e): e is ChatEvent & { type: "message" } => e.type === "message");
  deepStrictEqual(mine.map((e) => [e.text, e.kind, e.verified]), [
    ["hello", "text", true],
    ["psst", "private", true],
  ]);

  await rejects(session.sendPrivate("nobody", "hi"), (error: unknown) => {
    ok(error instanceof SecurechatError);
    strictEqual(error.code, "unknown_member");
    return true;
  });
  state.closed = true;
  await rejects(session.sendText("too late"), (error: unknown) => {
    ok(error instanceof SecurechatError);
    strictEqual(error.code, "not_connected");
    return true;
  });
  strictEqual(sent.length, 2);
});
