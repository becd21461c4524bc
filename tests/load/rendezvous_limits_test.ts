/**
 * The limits of a rendezvous relay as an operator needs them (PROTOCOL.md 15.6), against a relay
 * in its own process (tests/_helpers/rendezvous_relay_process.ts): one address registering far
 * more listeners than its share, registrations outliving their life while keepalives flow, and a
 * storm of Meets for tokens nobody registered. Each is checked by the relay's own stats and
 * memory, against bounds that follow from its limits (never against timings), and each ends with
 * an honest listener and dialer meeting through the same relay.
 *
 * Mirrors: docs/PROTOCOL.md sections 15.2 (Refused reasons) and 15.6 (limits), 6.3 (admission).
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ConnectionError, SecurechatError } from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  connectToRelay,
  meetAt,
  registerAt,
  type Registered,
} from "../../lib/rendezvous/rendezvous_client.ts";
import { REFUSAL } from "../../lib/rendezvous/rendezvous_messages.ts";
import { DEFAULT_RENDEZVOUS_LIMITS } from "../../lib/rendezvous/rendezvous_limits.ts";
import { rendezvousToken } from "../../lib/rendezvous/tokens.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { randomBytes } from "../_helpers/peers.ts";
import { identities } from "../_helpers/relay_peers.ts";
import { type RelayProcess, startRelayProcess } from "../_helpers/rendezvous_relay_process.ts";
import { meetThrough, pinRelay, pipeSession } from "../_helpers/rendezvous_session.ts";

const [alice, bob] = await identities(2) as [Identity, Identity];

function connect(relay: RelayProcess, suites?: ["x25519"]): Promise<SecureConnection> {
  return connectToRelay({
    host: "127.0.0.1",
    port: relay.port,
    checkRelay: pinRelay(relay.fingerprint),
    ...(suites === undefined ? {} : { suites }),
  });
}

/** Runs `count` tasks with at most `parallel` at once. */
async function inParallel<T>(
  count: number,
  parallel: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  }));
  return results;
}

/** Resolves once `predicate` holds of the relay's stats, polling. */
async function statsSettle(
  relay: RelayProcess,
  predicate: (stats: Awaited<ReturnType<RelayProcess["stats"]>>["stats"]) => boolean,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!predicate((await relay.stats()).stats)) {
    if (Date.now() > deadline) {
      throw new Error(`the relay's stats never settled:\n${relay.log.text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const IDLE = { connections: 0, waiting: 0, spliced: 0, rooms: 0 };

/** An honest listener and dialer meet through `relay` and pipe a few KiB each way intact. */
async function assertHonestMeeting(relay: RelayProcess): Promise<void> {
  const sockets = await meetThrough(relay, { listener: alice });
  const inputs = { toListener: randomBytes(20_000), toDialer: randomBytes(20_000) };
  const outcome = await pipeSession(
    { listener: Promise.resolve(sockets.listener), dialer: Promise.resolve(sockets.dialer) },
    { listener: alice, dialer: bob },
    inputs,
  );
  deepStrictEqual([outcome.listener.error, outcome.dialer.error], [undefined, undefined]);
  deepStrictEqual(outcome.listener.output, inputs.toListener);
}

Deno.test("one address registering 60 listeners: 32 wait (the default share), 28 are refused, a freed place is taken", async () => {
  const relay = await startRelayProcess();
  try {
    const share = DEFAULT_RENDEZVOUS_LIMITS.maxWaitingPerAddress;
    const people = await identities(62);
    // 8 at a time: within the pending-handshake share of one address, so none is evicted.
    const attempts = await inParallel(60, 8, async (i) => {
      const token = await rendezvousToken(people[i + 2]!.fingerprint);
      return await registerAt(await connect(relay), token).then(
        (registered) => ({ registered, token }),
        (error: unknown) => ({ error, token }),
      );
    });
    const waiting = attempts.filter((a) => "registered" in a) as {
      registered: Registered;
      token: Uint8Array;
    }[];
    const refused = attempts.filter((a) => "error" in a) as { error: unknown }[];
    strictEqual(waiting.length, share);
    strictEqual(refused.length, 60 - share);
    for (const { error } of refused) {
      ok(error instanceof ConnectionError, String(error));
      strictEqual(error.code, "refused_by_relay");
      strictEqual(error.message, `the relay refused us: ${REFUSAL.tooManyWaiting}`);
    }
    const { stats } = await relay.stats();
    strictEqual(stats.waiting, share);

    // The cap is on waiting, not on dialers: one of the 32 is still found and paired.
    const found = waiting.shift()!;
    const dialer = await meetAt(await connect(relay), found.token);
    (await found.registered.paired).close();
    dialer.close();
    await statsSettle(relay, (s) => s.waiting === share - 1);
    // The freed place is taken by the next registration, and the one after is refused again.
    const next = await registerAt(await connect(relay), await rendezvousToken(alice.fingerprint));
    strictEqual(next.expiresIn, 3600);
    const over = await registerAt(await connect(relay), await rendezvousToken(bob.fingerprint))
      .then(() => undefined, (error: unknown) => error);
    ok(over instanceof SecurechatError && over.code === "refused_by_relay", String(over));

    // Alice's own registration is the one waiting: bob finds her.
    const bobSide = await meetAt(await connect(relay), await rendezvousToken(alice.fingerprint));
    const aliceSide = await next.paired;
    const inputs = { toListener: randomBytes(10_000), toDialer: randomBytes(10_000) };
    const outcome = await pipeSession(
      { listener: Promise.resolve(aliceSide), dialer: Promise.resolve(bobSide) },
      { listener: alice, dialer: bob },
      inputs,
    );
    deepStrictEqual([outcome.listener.error, outcome.dialer.error], [undefined, undefined]);
  } finally {
    await relay.stop();
  }
});

Deno.test("registrations end after their life although keepalives flow both ways: registration_expired, nothing kept", async () => {
  const relay = await startRelayProcess({
    keepaliveMs: 100,
    limits: { registrationLifeMs: 1000 },
  });
  try {
    const people = await identities(10);
    const registrations = await Promise.all(
      people.slice(2).map(async (who) =>
        registerAt(await connect(relay), await rendezvousToken(who.fingerprint), {
          keepaliveMs: 100,
        })
      ),
    );
    for (const registration of registrations) strictEqual(registration.expiresIn, 1);
    strictEqual((await relay.stats()).stats.waiting, 8);
    const endings = await Promise.all(
      registrations.map((registration) =>
        registration.paired.then(() => "paired", (error: SecurechatError) => error.code)
      ),
    );
    deepStrictEqual(endings, new Array(8).fill("registration_expired"));
    await statsSettle(relay, (s) => s.connections === 0);
    deepStrictEqual((await relay.stats()).stats, IDLE);
    // Expired means gone: a dialer for one of them finds nobody.
    const late = await meetAt(
      await connect(relay),
      await rendezvousToken(people[2]!.fingerprint),
    ).then(() => undefined, (error: unknown) => error);
    ok(late instanceof ConnectionError && late.code === "no_listener", String(late));
    await assertHonestMeeting(relay);
  } finally {
    await relay.stop();
  }
});

/** What a client of a Meet storm may hear: nobody waits, or the relay's defences. */
const STORM_ENDINGS = new Map<string, string>([
  ["no_listener", "no listener is waiting for that fingerprint at the relay"],
  ["refused_by_relay", `the relay refused us: ${REFUSAL.tooManyConnections}`],
  // Evicted from the pending table by a newer handshake (6.3), before or right at its end.
  ["peer_closed", "peer closed the connection before answering"],
  ["relay_gone", "the relay closed before answering"],
]);

/**
 * What one connection may hold at most before its request is read: its handshake state and
 * buffers for the frames of a handshake (at most a few KiB each). 64 KiB is a generous bound.
 */
const HEAP_PER_CONNECTION = 64 * 1024;
/** A connection's socket and read buffers in the allocator: a whole record of 2^20 bytes, bound. */
const RSS_PER_CONNECTION = 2 ** 20;

Deno.test("a storm of 1500 Meets for unknown tokens costs only handshakes: each refused, nothing kept, memory bounded by the limits", async () => {
  const limits = {
    maxConnectionsPerAddress: 16,
    maxPendingHandshakes: 32,
    maxPendingPerAddress: 32,
  };
  const relay = await startRelayProcess({ limits });
  try {
    // Whatever the relay holds at once is bounded by its caps: handshakes pending, connections
    // past the handshake. Nothing of a refused Meet outlives it.
    const held = limits.maxPendingHandshakes + limits.maxConnectionsPerAddress;
    let mostConnections = 0;
    const storm = async () => {
      let polling = true;
      const poll = (async () => {
        while (polling) {
          const { stats } = await relay.stats();
          mostConnections = Math.max(mostConnections, stats.connections);
          strictEqual(stats.waiting + stats.spliced + stats.rooms, 0, JSON.stringify(stats));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      // 40 at once from one address, more than both caps; x25519 only, an attacker's cheapest.
      const endings = await inParallel(500, 40, async () => {
        try {
          await meetAt(await connect(relay, ["x25519"]), randomBytes(32));
          return "paired";
        } catch (error) {
          ok(error instanceof SecurechatError, String(error));
          strictEqual(
            STORM_ENDINGS.get(error.code),
            error.message,
            `${error.code}: ${error.message}`,
          );
          return error.code;
        }
      });
      polling = false;
      await poll;
      ok(endings.includes("no_listener"), "no Meet was ever answered");
      await statsSettle(relay, (s) => s.connections === 0);
    };
    await storm(); // warms the relay up: its first handshakes compile code and fill caches
    const before = await relay.stats();
    await storm();
    await storm();
    const after = await relay.stats();
    deepStrictEqual(after.stats, IDLE);
    ok(
      mostConnections <= limits.maxConnectionsPerAddress,
      `${mostConnections} connections at once`,
    );
    const heapGrowth = after.heapUsed + after.external - before.heapUsed - before.external;
    ok(
      heapGrowth <= held * HEAP_PER_CONNECTION,
      `the relay's heap grew by ${heapGrowth} bytes over 1000 Meets`,
    );
    const rssGrowth = after.rss - before.rss;
    ok(
      rssGrowth <= held * RSS_PER_CONNECTION,
      `the relay's RSS grew by ${rssGrowth} bytes over 1000 Meets`,
    );
    ok(!/ failed: /.test(relay.log.text), relay.log.text);
    await assertHonestMeeting(relay);
  } finally {
    await relay.stop();
  }
});
