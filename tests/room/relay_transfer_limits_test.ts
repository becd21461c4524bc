/**
 * The relay's limits on transfer messages (sections 13.4 and 14.1), over real loopback
 * connections: a member who floods file data, or any other transfer message, at a member who has
 * stopped reading is warned and disconnected, and the slow member is not dropped because of it;
 * honest transfers between members, a large file and a folder of many small files, still
 * complete under the same accounting.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { Relay } from "../../lib/room/relay.ts";
import { authorOf, decodeRoomMessage, encodeChat } from "../../lib/chat/room_messages.ts";
import { ChatSigner } from "../../lib/chat/chat_signer.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import {
  encodeTransfer,
  MAX_SLICE,
  TRANSFER_MESSAGE,
} from "../../lib/transfer/transfer_messages.ts";
import { connectPair, identities, join, type TestMember } from "../_helpers/room.ts";

const [relayIdentity, attacker, slowOne, sender, receiver] = await identities(5) as Identity[] as [
  Identity,
  Identity,
  Identity,
  Identity,
  Identity,
];

/** More than the slow member's outbox limit (4 MiB) plus what loopback socket buffers hold. */
const FLOOD_BYTES = 48 * 1024 * 1024;

/**
 * A member that joins through the real handshake and session hello, reads until `stopAfter`
 * holds for a message, and then never reads again.
 */
async function slowMember(
  room: Relay,
  stopAfter: (data: Uint8Array, connection: SecureConnection) => Promise<boolean>,
): Promise<{ connection: SecureConnection; stopped: Promise<void> }> {
  const { clientSide, serverSide } = await connectPair(slowOne!, relayIdentity!);
  room.admit(serverSide, "slow");
  await exchangeSessionHello(clientSide, "chat");
  const stopped = (async () => {
    while (true) {
      const data = await clientSide.receive();
      if (data === null || await stopAfter(data, clientSide)) return;
    }
  })();
  return { connection: clientSide, stopped };
}

/** The room's log, and a wait for a line matching `pattern`. */
function roomWithLog(options: Partial<ConstructorParameters<typeof Relay>[0]> = {}) {
  const log: string[] = [];
  const room = new Relay({
    identity: relayIdentity!,
    hostParticipates: false,
    log: (line) => log.push(line),
    ...options,
  });
  const waitFor = async (pattern: RegExp) => {
    const deadline = Date.now() + 60_000;
    while (!log.some((line) => pattern.test(line))) {
      if (Date.now() > deadline) throw new Error(`no log line ${pattern}: ${log.join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  return { room, log, waitFor };
}

/** Sends `messages` until the connection refuses (the relay disconnected the sender). */
async function flood(member: TestMember, messages: Iterable<Uint8Array>): Promise<void> {
  try {
    for (const message of messages) await member.connection!.send(message);
  } catch {
    // Disconnected: what the test checks next.
  }
}

function* dataMessages(party: Uint8Array, id: Uint8Array, bytes: number) {
  const slice = new Uint8Array(MAX_SLICE).fill(0x41);
  for (let offset = 0; offset < bytes; offset += MAX_SLICE) {
    yield encodeTransfer.data(party, id, 0, offset, slice);
  }
}

/** A well-formed Offer (the relay reads it, never verifies it: recipients do). */
function offer(party: Uint8Array, id: Uint8Array, totalSize: number): Uint8Array {
  return encodeTransfer.offer(party, id, {
    counter: BigInt(Date.now()) * 1000n,
    timestamp: Date.now(),
    name: "flood.bin",
    fileCount: 1,
    totalSize,
    manifestSha256: new Uint8Array(32),
    signature: new Uint8Array(64),
  });
}

const notices = (events: ChatEvent[]) => events.flatMap((e) => e.type === "notice" ? [e.text] : []);

/**
 * Floods the slow member, waits until either the flooder or the slow member is gone, and checks
 * that it was the flooder, for `reason`.
 */
async function assertFlooderLimited(
  setup: ReturnType<typeof roomWithLog>,
  bad: TestMember,
  messages: Iterable<Uint8Array>,
  reason: RegExp,
) {
  const { room, log, waitFor } = setup;
  await flood(bad, messages);
  await waitFor(/"(member\d+|slow)" .* left: /);
  const dropped = log.filter((line) => /dropping "slow"|"slow" .* left:/.test(line));
  deepStrictEqual(dropped, [], "the slow member was not dropped");
  await bad.session.closed;
  ok(
    notices(bad.events).some((text) =>
      reason.test(text) && /disconnected after repeated warnings/.test(text)
    ),
    JSON.stringify(notices(bad.events)),
  );
  ok(log.some((line) => /disconnected by the relay/.test(line) && reason.test(line)), log.join());
  strictEqual(room.memberCount, 1, "the slow member is still in the room");
}

Deno.test("file data beyond the window a slow member granted gets the flooder disconnected, not the slow member", async () => {
  const setup = roomWithLog();
  const bad = await join(attacker!, relayIdentity!, (conn, name) => setup.room.admit(conn, name));
  const id = crypto.getRandomValues(new Uint8Array(16));
  const attackerAuthor = authorOf(attacker!.fingerprint);
  // The slow member accepts the attacker's offer, as an auto-accepting member would, says so in
  // the chat (the relay handles its messages in order: the Accept is through once that arrives),
  // then stalls.
  let roomId: Uint8Array = new Uint8Array(16);
  const slow = await slowMember(setup.room, async (data, connection) => {
    const message = data[0] === 0x01 ? decodeRoomMessage(data) : undefined;
    if (message?.type === "welcome") roomId = message.roomId;
    if (data[0] !== TRANSFER_MESSAGE.offer) return false;
    await connection.send(encodeTransfer.accept(attackerAuthor, id));
    await connection.send(encodeChat(await new ChatSigner(slowOne!, roomId).sign(1, "accepted")));
    return true;
  });
  await bad.until(() => bad.session.members().length === 2);
  const party = authorOf(slowOne!.fingerprint);
  await bad.connection!.send(offer(party, id, FLOOD_BYTES));
  await slow.stopped;
  await bad.until((events) => events.some((e) => e.type === "message" && e.text === "accepted"));
  await assertFlooderLimited(
    setup,
    bad,
    dataMessages(party, id, FLOOD_BYTES),
    /file data beyond the recipient's window/,
  );
  slow.connection.close();
  await setup.room.close();
});

Deno.test("file data for a transfer nobody accepted gets the flooder disconnected, not the slow member", async () => {
  const setup = roomWithLog();
  const bad = await join(attacker!, relayIdentity!, (conn, name) => setup.room.admit(conn, name));
  const slow = await slowMember(setup.room, (data) => Promise.resolve(data[0] === 0x02));
  await bad.until(() => bad.session.members().length === 2);
  const party = authorOf(slowOne!.fingerprint);
  await slow.stopped;
  const id = crypto.getRandomValues(new Uint8Array(16));
  await assertFlooderLimited(
    setup,
    bad,
    dataMessages(party, id, FLOOD_BYTES),
    /file data for a transfer nobody accepted/,
  );
  slow.connection.close();
  await setup.room.close();
});

Deno.test("control transfer messages outside any transfer count against the rate limit", async () => {
  const clock = 1_000_000;
  const setup = roomWithLog({ now: () => clock });
  const bad = await join(attacker!, relayIdentity!, (conn, name) => setup.room.admit(conn, name));
  const slow = await slowMember(setup.room, (data) => Promise.resolve(data[0] === 0x02));
  await bad.until(() => bad.session.members().length === 2);
  await slow.stopped;
  const party = authorOf(slowOne!.fingerprint);
  const kinds = [
    (id: Uint8Array) => encodeTransfer.cancel(party, id, "x".repeat(255)),
    (id: Uint8Array) => encodeTransfer.ack(party, id, 1),
    (id: Uint8Array) => encodeTransfer.accept(party, id),
    (id: Uint8Array) => encodeTransfer.complete(party, id),
  ];
  function* controls() {
    for (let i = 0; i < FLOOD_BYTES / 300; i++) {
      yield kinds[i % kinds.length]!(crypto.getRandomValues(new Uint8Array(16)));
    }
  }
  await assertFlooderLimited(setup, bad, controls(), /too many messages: slow down/);
  slow.connection.close();
  await setup.room.close();
});

Deno.test("honest transfers between members complete under the relay's accounting", async () => {
  const { room, log } = roomWithLog();
  const root = await Deno.makeTempDir({ prefix: "securechat-flows-" });
  try {
    const inbox = `${root}/inbox`;
    await Deno.mkdir(inbox);
    const big = crypto.getRandomValues(new Uint8Array(65536));
    const file = new Uint8Array(6 * 1024 * 1024 + 12345);
    for (let i = 0; i < file.length; i += big.length) file.set(big.subarray(0, file.length - i), i);
    await Deno.writeFile(`${root}/big.bin`, file);
    await Deno.mkdir(`${root}/many`);
    for (let i = 0; i < 300; i++) await Deno.writeTextFile(`${root}/many/f${i}.txt`, `file ${i}`);
    const from = await join(sender!, relayIdentity!, (conn, name) => room.admit(conn, name));
    const to = await join(receiver!, relayIdentity!, (conn, name) => room.admit(conn, name), {
      receiveDir: inbox,
      autoAccept: true,
      maxFileSize: 1024 ** 3,
    });
    await from.until(() => from.session.members().length === 2);
    const done = (events: ChatEvent[]) =>
      events.filter((e) => e.type === "transfer" && e.state === "done").length;
    await from.session.sendFile!(`${root}/big.bin`, receiver!.comment);
    await to.until((events) => done(events) === 1, 60_000);
    await from.session.sendFile!(`${root}/many`, receiver!.comment);
    await to.until((events) => done(events) === 2, 60_000);
    await from.until((events) => done(events) === 2);
    deepStrictEqual(await Deno.readFile(`${inbox}/big.bin`), file);
    strictEqual(await Deno.readTextFile(`${inbox}/many/f299.txt`), "file 299");
    deepStrictEqual(log.filter((line) => /warning|disconnected|dropping/.test(line)), []);
    await Promise.all([from.session.close(), to.session.close()]);
  } finally {
    await room.close();
    await Deno.remove(root, { recursive: true });
  }
});
