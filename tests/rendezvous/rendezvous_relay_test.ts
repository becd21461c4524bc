/**
 * The rendezvous relay of PROTOCOL.md 15 with real clients over 127.0.0.1: real handshakes to the
 * relay, Register and Meet, the splice, and the real end-to-end handshake and pipe through it; the
 * limits of 15.6 with their Refused reasons and deadlines; rooms by name (15.5); and what a
 * closing relay tells a waiting listener.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { concat, toHex } from "../../lib/core/bytes.ts";
import { ConnectionError, TrustError } from "../../lib/core/errors.ts";
import type { ByteSource } from "../../lib/core/io.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { joinRoom } from "../../lib/room/member.ts";
import { enterRoomAt, meetAt, registerAt } from "../../lib/rendezvous/rendezvous_client.ts";
import {
  decodeRendezvousAnswer,
  encodeRendezvousRequest,
  REFUSAL,
} from "../../lib/rendezvous/rendezvous_messages.ts";
import { rendezvousToken, roomToken } from "../../lib/rendezvous/tokens.ts";
import { type PipeEnds, runPipe } from "../../lib/transport/pipe.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { SplicedSocket } from "../../lib/transport/spliced_socket.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { entered, rosterSize, texts, watch } from "../_helpers/room.ts";
import { endToEnd, eventually, identities, startRelay } from "./_relay_fixture.ts";

function source(data: Uint8Array): ByteSource {
  let offset = 0;
  return {
    read(buffer) {
      if (offset === data.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, data.length - offset);
      buffer.set(data.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

function ends(input: Uint8Array): PipeEnds & { received(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    input: source(input),
    output: {
      write(data: Uint8Array) {
        parts.push(data.slice());
        return Promise.resolve(data.length);
      },
    },
    inputIsTerminal: false,
    received: () => concat(...parts),
  };
}

function random(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  }
  return out;
}

/** Sends one raw request on a relay connection and reads the answer. */
async function ask(relay: SecureConnection, bytes: Uint8Array) {
  await relay.send(bytes);
  const answer = await relay.receive();
  return answer === null ? null : decodeRendezvousAnswer(answer);
}

/** Reads until the socket ends (EOF or reset). */
async function ended(conn: Deno.Conn): Promise<void> {
  try {
    while (await conn.read(new Uint8Array(4096)) !== null) {
      // Discarded.
    }
  } catch {
    // A reset ends it too.
  }
}

const [, alice, bob, mallory, carol] = await identities(5) as Identity[] as [
  Identity,
  Identity,
  Identity,
  Identity,
  Identity,
];

Deno.test("a listener and a dialer meet at the relay, shake hands end to end and pipe MiBs both ways", async () => {
  const fixture = await startRelay();
  const token = await rendezvousToken(alice.fingerprint);
  const registration = await registerAt(await fixture.connect(), token);
  strictEqual(registration.expiresIn, 3600);
  deepStrictEqual(fixture.relay.stats, { connections: 1, waiting: 1, spliced: 0, rooms: 0 });
  const dialerSocket = await meetAt(await fixture.connect(), token);
  const listenerSocket = await registration.paired;
  const { server, client } = await endToEnd(
    { listener: listenerSocket, dialer: dialerSocket },
    { listener: alice, dialer: bob },
  );
  strictEqual(server.peer.identity.fingerprint, bob.fingerprint);
  strictEqual(client.peer.identity.fingerprint, alice.fingerprint);
  deepStrictEqual(fixture.relay.stats, { connections: 2, waiting: 0, spliced: 1, rooms: 0 });

  const [toDialer, toListener] = [random(3 * 2 ** 20 + 11), random(2 * 2 ** 20 + 3)];
  const [listenerEnds, dialerEnds] = [ends(toDialer), ends(toListener)];
  const [listenerStats, dialerStats] = await Promise.all([
    runPipe(server, listenerEnds),
    runPipe(client, dialerEnds),
  ]);
  deepStrictEqual(dialerEnds.received(), toDialer);
  deepStrictEqual(listenerEnds.received(), toListener);
  deepStrictEqual(listenerStats, { sent: toDialer.length, received: toListener.length });
  deepStrictEqual(dialerStats, { sent: toListener.length, received: toDialer.length });
  await eventually(() => fixture.relay.stats.connections === 0, "the splice to end");
  deepStrictEqual(fixture.relay.stats, { connections: 0, waiting: 0, spliced: 0, rooms: 0 });
  await fixture.close();

  // The operator's log names addresses and a short hash of the token, nothing a client hides.
  const log = fixture.log.join("\n");
  ok(/spliced for #[0-9a-f]{6}/.test(log), log);
  for (
    const secret of [alice.fingerprint, bob.fingerprint, toHex(token), toHex(token).slice(0, 6)]
  ) {
    ok(!log.includes(secret), `the log shows ${secret}`);
  }
});

Deno.test("keepalives of a waiting registration, both ways, never leak into the spliced session", async () => {
  // Pings every 20 ms from both ends while waiting: one answered after Paired would land in the
  // raw stream. Paired's close_notify (15.4) is what keeps them out.
  const fixture = await startRelay({ keepaliveMs: 20 });
  const token = await rendezvousToken(alice.fingerprint);
  for (let round = 0; round < 5; round++) {
    const registration = await registerAt(await fixture.connect(), token, { keepaliveMs: 20 });
    await new Promise((resolve) => setTimeout(resolve, 30 + 7 * round));
    const dialerSocket = await meetAt(await fixture.connect(), token);
    const { server, client } = await endToEnd(
      { listener: await registration.paired, dialer: dialerSocket },
      { listener: alice, dialer: bob },
    );
    server.close();
    client.close();
  }
  await fixture.close();
});

Deno.test("Paired is followed by close_notify: a ping sent after Paired gets no answer in the raw stream", async () => {
  const fixture = await startRelay();
  const token = await rendezvousToken(alice.fingerprint);
  const listener = await fixture.connect();
  deepStrictEqual(await ask(listener, encodeRendezvousRequest({ type: "register", token })), {
    type: "waiting",
    expiresIn: 3600,
  });
  const dialing = meetAt(await fixture.connect(), token);
  deepStrictEqual(decodeRendezvousAnswer((await listener.receive())!), { type: "paired" });
  listener.ping(); // reaches the relay before our Spliced: it must not be answered any more
  strictEqual(await listener.receive(), null);
  await listener.send(encodeRendezvousRequest({ type: "spliced" }));
  const { conn, leftover } = await listener.detach();
  strictEqual(leftover.length, 0);
  const { server, client } = await endToEnd(
    { listener: new SplicedSocket(conn, leftover), dialer: await dialing },
    { listener: alice, dialer: bob },
  );
  server.close();
  client.close();
  await fixture.close();
});

Deno.test("a Meet with no listener waiting for its token is refused: no_listener", async () => {
  const fixture = await startRelay();
  await rejects(
    meetAt(await fixture.connect(), await rendezvousToken(alice.fingerprint)),
    (error: unknown) => {
      ok(error instanceof ConnectionError);
      strictEqual(error.code, "no_listener");
      strictEqual(error.message, "no listener is waiting for that fingerprint at the relay");
      return true;
    },
  );
  await fixture.close();
});

Deno.test("a squatter registered under alice's token fails the dialer's end-to-end check", async () => {
  // Anyone can register any token: the relay cannot tell. The dialer's handshake catches it.
  const fixture = await startRelay();
  const token = await rendezvousToken(alice.fingerprint);
  const squatter = await registerAt(await fixture.connect(), token);
  const dialerSocket = await meetAt(await fixture.connect(), token);
  const results = await Promise.allSettled([
    endToEnd(
      { listener: await squatter.paired, dialer: dialerSocket },
      { listener: mallory, dialer: bob, expected: alice.fingerprint },
    ),
  ]);
  strictEqual(results[0].status, "rejected");
  ok((results[0] as PromiseRejectedResult).reason instanceof TrustError);
  await fixture.close();
});

Deno.test("200 listeners waiting and 200 dialers meeting at once: every pair reaches its own peer", async () => {
  const count = 200;
  const people = (await identities(2 * count + 1)).slice(1);
  const listeners = people.slice(0, count);
  const dialers = people.slice(count);
  const fixture = await startRelay({
    handshakeTimeoutMs: 60_000,
    firstFlightTimeoutMs: 60_000,
    limits: {
      maxConnectionsPerAddress: 1000,
      maxWaitingPerAddress: 1000,
      maxPendingHandshakes: 1000,
      maxPendingPerAddress: 1000,
    },
  });
  const tokens = await Promise.all(listeners.map((who) => rendezvousToken(who.fingerprint)));
  const registrations = await Promise.all(
    tokens.map(async (token) => registerAt(await fixture.connect(undefined, 60_000), token)),
  );
  strictEqual(fixture.relay.stats.waiting, count);
  const pairs = await Promise.all(dialers.map(async (dialer, i) => {
    const dialerSocket = await meetAt(await fixture.connect(undefined, 60_000), tokens[i]!);
    const listenerSocket = await registrations[i]!.paired;
    const { server, client } = await endToEnd(
      { listener: listenerSocket, dialer: dialerSocket },
      { listener: listeners[i]!, dialer },
      60_000,
    );
    await client.send(Uint8Array.of(i & 0xff, i >> 8));
    deepStrictEqual(await server.receive(), Uint8Array.of(i & 0xff, i >> 8));
    return { server, client, i };
  }));
  for (const { server, client, i } of pairs) {
    strictEqual(server.peer.identity.fingerprint, dialers[i]!.fingerprint);
    strictEqual(client.peer.identity.fingerprint, listeners[i]!.fingerprint);
  }
  strictEqual(fixture.relay.stats.spliced, count);
  for (const { server, client } of pairs) {
    server.close();
    client.close();
  }
  await fixture.close();
});

Deno.test("registrations past the relay's total are refused: the relay is full", async () => {
  const fixture = await startRelay({ limits: { maxWaiting: 2 } });
  const token = await rendezvousToken(alice.fingerprint);
  const waiting = [
    await fixture.connect().then((c) => registerAt(c, token).then(() => c)),
    await fixture.connect().then((c) => registerAt(c, token).then(() => c)),
  ];
  await rejects(
    registerAt(await fixture.connect(), await rendezvousToken(bob.fingerprint)),
    isCode(ConnectionError, "refused_by_relay"),
  );
  ok(fixture.log.some((line) => line.endsWith(REFUSAL.full)));
  for (const c of waiting) c.close();
  await fixture.close();
});

Deno.test("registrations past one address's share are refused: too many waiting listeners from you", async () => {
  const fixture = await startRelay({ limits: { maxWaitingPerAddress: 1 } });
  const first = await fixture.connect();
  await registerAt(first, await rendezvousToken(alice.fingerprint));
  await rejects(
    registerAt(await fixture.connect(), await rendezvousToken(bob.fingerprint)),
    (error: unknown) =>
      error instanceof ConnectionError &&
      error.message === `the relay refused us: ${REFUSAL.tooManyWaiting}`,
  );
  strictEqual(fixture.relay.stats.waiting, 1);
  first.close();
  await fixture.close();
});

Deno.test("a registration ends after its life with registration_expired", async () => {
  const fixture = await startRelay({ limits: { registrationLifeMs: 200 } });
  const token = await rendezvousToken(alice.fingerprint);
  const registration = await registerAt(await fixture.connect(), token);
  strictEqual(registration.expiresIn, 1);
  await rejects(registration.paired, isCode(ConnectionError, "registration_expired"));
  strictEqual(fixture.relay.stats.waiting, 0);
  // Expired means gone: a dialer now finds nobody.
  await rejects(meetAt(await fixture.connect(), token), isCode(ConnectionError, "no_listener"));
  await fixture.close();
});

Deno.test("a client that sends no request in time is closed", async () => {
  const fixture = await startRelay({ limits: { requestTimeoutMs: 200 } });
  const silent = await fixture.connect();
  await rejects(silent.receive());
  ok(fixture.log.some((line) => line.includes("no request within 200 ms")), fixture.log.join("\n"));
  silent.close();
  await fixture.close();
});

Deno.test("a paired listener that never sends Spliced gets both sides closed", async () => {
  const fixture = await startRelay({ limits: { splicedTimeoutMs: 200 } });
  const token = await rendezvousToken(alice.fingerprint);
  const stalling = await fixture.connect();
  deepStrictEqual(await ask(stalling, encodeRendezvousRequest({ type: "register", token })), {
    type: "waiting",
    expiresIn: 3600,
  });
  const dialerSocket = meetAt(await fixture.connect(), token);
  deepStrictEqual(decodeRendezvousAnswer((await stalling.receive())!), { type: "paired" });
  strictEqual(await stalling.receive(), null); // Paired's close_notify; then we stall
  const socket = await dialerSocket;
  await ended(socket); // the relay gave up on the pair
  ok(fixture.log.some((line) => line.includes("no Spliced within 200 ms")), fixture.log.join("\n"));
  strictEqual(fixture.relay.stats.connections, 0);
  socket.close();
  stalling.close();
  await fixture.close();
});

Deno.test("connections past one address's cap are refused after the handshake", async () => {
  const fixture = await startRelay({ limits: { maxConnectionsPerAddress: 2 } });
  const held = [await fixture.connect(), await fixture.connect()];
  await registerAt(held[0]!, await rendezvousToken(alice.fingerprint));
  await registerAt(held[1]!, await rendezvousToken(bob.fingerprint));
  await rejects(
    meetAt(await fixture.connect(), await rendezvousToken(alice.fingerprint)),
    (error: unknown) =>
      error instanceof ConnectionError &&
      error.message === `the relay refused us: ${REFUSAL.tooManyConnections}`,
  );
  // A place freed is a place for the next.
  held[1]!.close();
  await eventually(() => fixture.relay.stats.connections === 1, "the connection to leave");
  const socket = await meetAt(await fixture.connect(), await rendezvousToken(alice.fingerprint));
  socket.close();
  held[0]!.close();
  await fixture.close();
});

Deno.test("a malformed or repeated request is refused, and the relay serves the others on", async () => {
  const fixture = await startRelay();
  const token = await rendezvousToken(alice.fingerprint);
  const garbage = await fixture.connect();
  deepStrictEqual(await ask(garbage, Uint8Array.of(0x01, 1, 2, 3)), {
    type: "refused",
    reason: REFUSAL.malformed,
  });
  garbage.close();
  const early = await fixture.connect();
  deepStrictEqual(await ask(early, encodeRendezvousRequest({ type: "spliced" })), {
    type: "refused",
    reason: REFUSAL.malformed,
  });
  early.close();
  const twice = await fixture.connect();
  const request = encodeRendezvousRequest({ type: "register", token });
  deepStrictEqual(await ask(twice, request), { type: "waiting", expiresIn: 3600 });
  deepStrictEqual(await ask(twice, request), { type: "refused", reason: REFUSAL.malformed });
  twice.close();
  strictEqual(fixture.relay.stats.waiting, 0);

  const registration = await registerAt(await fixture.connect(), token);
  const dialerSocket = await meetAt(await fixture.connect(), token);
  const { server, client } = await endToEnd(
    { listener: await registration.paired, dialer: dialerSocket },
    { listener: alice, dialer: bob },
  );
  server.close();
  client.close();
  await fixture.close();
});

Deno.test("three members enter a room by name at the relay and talk", async () => {
  const fixture = await startRelay();
  const token = await roomToken("book club");
  const people = [alice, bob, carol];
  const listed = new Set(people.map((who) => who.fingerprint));
  const enter = async (who: Identity) =>
    watch(
      who,
      await joinRoom(await enterRoomAt(await fixture.connect(who), token), {
        identity: who,
        admitsAtOnce: (fingerprint) => listed.has(fingerprint),
      }),
    );
  const first = await enter(alice);
  await first.until(entered);
  const others = [await enter(bob), await enter(carol)];
  const members = [first, ...others];
  for (const member of members) await member.until(() => rosterSize(member, 3));
  deepStrictEqual(fixture.relay.stats, { connections: 3, waiting: 0, spliced: 0, rooms: 1 });
  for (const [i, member] of members.entries()) await member.session.sendText(`hello from ${i}`);
  for (const [i, member] of members.entries()) {
    await member.until(() => texts(member).length === 2);
    deepStrictEqual(
      texts(member).sort(),
      [0, 1, 2].filter((j) => j !== i).map((j) => `hello from ${j}`),
    );
  }
  await Promise.all(members.map((member) => member.session.close()));
  await eventually(() => fixture.relay.stats.rooms === 0, "the empty room to be dropped");
  await fixture.close();
});

Deno.test("a relay that closes tells a waiting listener: relay_closing", async () => {
  const fixture = await startRelay();
  const registration = await registerAt(
    await fixture.connect(),
    await rendezvousToken(alice.fingerprint),
  );
  await fixture.close();
  await rejects(registration.paired, (error: unknown) => {
    ok(error instanceof ConnectionError);
    strictEqual(error.code, "relay_closing");
    strictEqual(error.message, "the relay is shutting down");
    return true;
  });
});
