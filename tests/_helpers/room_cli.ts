/**
 * A room member built from the library that dials a real `securechat listen` process: the real
 * handshake over 127.0.0.1, then `joinRoom()` (real MLS), so the listener's host (or an admin
 * behind a `--relay-only` listener) admits it like any dialer. Tests then make it say what an
 * honest `dial` never would, through its own group: hand-made transfer messages, sealed to one
 * member inside an MLS application message (docs/PROTOCOL.md 13.5, 14.1), and they read the
 * transfer messages that reach it. Also small helpers for rooms of `--json` processes
 * (tests/_helpers/chat.ts runs them): the members a process shows now and a wait for them, a
 * newcomer's join and who let it in, a check that a process showed nothing wrong, and admit lists.
 *
 * What it does not do: start processes (tests/_helpers/peers.ts and chat.ts do) or bypass any
 * check of the listener: everything it sends is authenticated by MLS as its own.
 *
 * @module
 */

import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { encodeToRelay } from "../../lib/chat/relay_messages.ts";
import { encodeSealed } from "../../lib/chat/room_content.ts";
import { authorOf, type Identity } from "../../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../../lib/protocol/record.ts";
import { type JoinOptions, joinRoom } from "../../lib/room/member.ts";
import type { RoomParticipant } from "../../lib/room/participant.ts";
import { decodeTransfer, type TransferMessage } from "../../lib/transfer/transfer_messages.ts";
import { runInitiator } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type ChatProcess, isMembership } from "./chat.ts";
import { entered, type TestMember, watch } from "./room.ts";

/** A library-built member in a listener's room. */
export interface DialedMember extends TestMember {
  participant: RoomParticipant;
  connection: SecureConnection;
  /** Every transfer message that reached this member (sealed to it, opened, decoded), in order. */
  transferMessages: TransferMessage[];
}

/**
 * Dials the listener on `port` as `identity` and joins its room; resolves once an admin has let
 * it in (its roster arrived).
 *
 * @throws {Error} when it is not admitted within the wait of `TestMember.until`
 */
export async function dialRoom(
  port: number,
  identity: Identity,
  options: Omit<JoinOptions, "identity"> = {},
): Promise<DialedMember> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const connection = await runInitiator(conn, {
    identity,
    suites: ["x25519-mlkem768", "x25519"],
    // A room's commits and Welcomes travel in one record each (13).
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    checkPeer: () => Promise.resolve(),
  });
  const participant = await joinRoom(connection, { identity, ...options });
  const transferMessages: TransferMessage[] = [];
  // Every transfer message the member's group opened for it passes here on its way in.
  const transfers = participant.transfers;
  const handle = transfers.handleSealed.bind(transfers);
  transfers.handleSealed = (from, bytes) => {
    transferMessages.push(decodeTransfer(bytes));
    return handle(from, bytes);
  };
  const member = Object.assign(watch(identity, participant), {
    participant,
    connection,
    transferMessages,
  });
  await member.until(entered);
  return member;
}

/**
 * Sends `plaintext` (a Sealed plaintext: a transfer message, 14.1) to `to` the way the member's
 * own transfers would: sealed to `to`'s leaf inside an MLS application message for the group.
 *
 * @throws {Error} when `to` is not in the member's group
 */
export async function sendSealed(
  member: DialedMember,
  to: MemberInfo,
  plaintext: Uint8Array,
): Promise<void> {
  const participant = member.participant;
  const group = participant.group;
  const recipient = group?.member(authorOf(to.fingerprint));
  if (!group || !recipient) throw new Error(`${to.name} is not in the member's group`);
  // As RoomParticipant does: nothing is sent while a proposal waits for its commit.
  await participant.admin?.clear();
  const content = encodeSealed(await group.seal(recipient, plaintext));
  const message = await group.encrypt(content);
  await member.connection.send(encodeToRelay({ type: "group", message }));
}

/** The listener's person (the host) as the member's roster shows it. */
export function hostOf(member: DialedMember): MemberInfo {
  const host = member.participant.members().find((info) => info.host);
  if (!host) throw new Error("no host in the room");
  return host;
}

/**
 * The members a `--json` process shows now, by fingerprint: its latest `roster` event (the one it
 * got on entering, or the answer to /who), then every join and leave shown after it.
 */
export function shownMembers(events: ChatEvent[]): Set<string> {
  const last = events.findLastIndex((event) => event.type === "roster");
  const roster = events[last];
  const members = new Set(
    roster?.type === "roster" ? roster.members.map((m) => m.fingerprint) : [],
  );
  for (const event of events.slice(last + 1)) {
    if (event.type === "join") members.add(event.member.fingerprint);
    if (event.type === "leave") members.delete(event.member.fingerprint);
  }
  return members;
}

/** Whether two sets hold the same items. */
export function sameMembers(shown: Set<string>, expected: Iterable<string>): boolean {
  const wanted = new Set(expected);
  return shown.size === wanted.size && [...wanted].every((item) => shown.has(item));
}

/** Writes an admit list (`dial --admit FILE`: lines "SHA256:... name", as authorized_keys). */
export async function writeAdmitList(
  path: string,
  peers: { fingerprint: string; name: string }[],
): Promise<string> {
  await Deno.writeTextFile(path, peers.map((p) => `${p.fingerprint} ${p.name}\n`).join(""));
  return path;
}

/** Waits until `process` shows exactly the members `fingerprints` (the wait: `timeoutMs`). */
export async function untilMembers(
  process: ChatProcess,
  fingerprints: string[],
  timeoutMs?: number,
): Promise<void> {
  await process.out.until(
    (events) => sameMembers(shownMembers(events), fingerprints),
    `${process.label} shows ${fingerprints.length} members`,
    timeoutMs,
  );
}

/** Waits until `process` shows `member` join, and asserts that it shows `admin` letting it in. */
export async function assertJoinedBy(
  process: ChatProcess,
  member: string,
  admin: string,
): Promise<void> {
  const joined = await process.out.waitFor(
    (e) => isMembership(e, "join", member),
    `${process.label} sees ${member} join`,
  );
  strictEqual(joined.type === "join" && joined.by?.fingerprint, admin, process.label);
}

/** Asserts that `process` showed no `error` or `rejected` event, and every stdout line was JSON. */
export function assertClean(process: ChatProcess): void {
  deepStrictEqual(process.out.invalid, [], `${process.label}: stdout lines that are not JSON`);
  const bad = process.out.events.filter((e) => e.type === "error" || e.type === "rejected");
  deepStrictEqual(bad, [], `${process.label}: error or rejected events`);
}
