/**
 * A rendezvous relay (PROTOCOL.md 15) under the floods a listener survives (tests/e2e/
 * listener_flood_test.ts, tests/load/faults_test.ts): connections reset right after connecting,
 * ffdhe3072 hellos, connections that send only the magic, hellos from eleven other addresses
 * filling the pending table, a slowloris trickle, a flood past the pending cap, a waiting
 * listener that stops answering, and a spliced pair that goes quiet. The relay runs in its own
 * process (tests/_helpers/rendezvous_relay_process.ts, the shipped binary's permission flags); the
 * test is its clients. After each flood the relay is still up and an honest listener and dialer
 * meet through it and complete a pipe session end to end (real handshakes, real receipts).
 *
 * Deadlines, not timings: "within 2 s" is the honest clients' handshake deadline with the relay,
 * which fails the test when missed, as `--handshake-timeout 2` does in the listener's tests.
 *
 * Mirrors: docs/PROTOCOL.md sections 6.3 (admission, deadlines), 4.3 (ffdhe3072 opt-in), 8.6
 * (keepalives) and 15.6 (the relay's limits).
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import net from "node:net";
import { concat } from "../../lib/core/bytes.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { encodeFrame, FRAME_TYPE, MAGIC } from "../../lib/protocol/frame.ts";
import {
  encodeClientHello,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
} from "../../lib/protocol/messages.ts";
import { MAX_RECORD_PLAINTEXT } from "../../lib/protocol/record.ts";
import { connectToRelay } from "../../lib/rendezvous/rendezvous_client.ts";
import {
  decodeRendezvousAnswer,
  encodeRendezvousRequest,
} from "../../lib/rendezvous/rendezvous_messages.ts";
import { rendezvousToken } from "../../lib/rendezvous/tokens.ts";
import { loopbackAddresses, startHelloFlood } from "../_helpers/hello_flood.ts";
import { randomBytes } from "../_helpers/peers.ts";
import { identities } from "../_helpers/relay_peers.ts";
import {
  type RelayProcess,
  type RelayProcessOptions,
  startRelayProcess,
} from "../_helpers/rendezvous_relay_process.ts";
import { meetThrough, pinRelay, pipeSession } from "../_helpers/rendezvous_session.ts";

const [alice, bob] = await identities(2) as [Identity, Identity];

/**
 * An honest listener and dialer meet at `relay` (each handshake with the relay within
 * `deadlineMs`) and pipe a few KiB each way end to end: both succeed with every byte.
 */
async function assertHonestMeeting(relay: RelayProcess, deadlineMs = 10_000): Promise<void> {
  const sockets = await meetThrough(relay, { listener: alice }, deadlineMs);
  const inputs = { toListener: randomBytes(40_000), toDialer: randomBytes(30_000) };
  const outcome = await pipeSession(
    { listener: Promise.resolve(sockets.listener), dialer: Promise.resolve(sockets.dialer) },
    { listener: alice, dialer: bob },
    inputs,
  );
  deepStrictEqual([outcome.listener.error, outcome.dialer.error], [undefined, undefined]);
  deepStrictEqual(outcome.listener.output, inputs.toListener);
  deepStrictEqual(outcome.dialer.output, inputs.toDialer);
}

/** The relay is still running (a dead one has exited by now). */
async function assertAlive(relay: RelayProcess): Promise<void> {
  ok(await relay.alive(), `the relay process exited:\n${relay.log.text}`);
}

/** Runs `body` against a fresh relay process, stopped (and checked for a clean exit) after. */
async function withRelay(
  options: RelayProcessOptions,
  body: (relay: RelayProcess) => Promise<void>,
): Promise<void> {
  const relay = await startRelayProcess(options);
  try {
    await body(relay);
  } finally {
    await relay.stop();
  }
}

/** Opens `count` connections at once and resets each (RST, SO_LINGER 0) as soon as it connects. */
async function resetFlood(port: number, count: number): Promise<void> {
  await Promise.all(Array.from({ length: count }, () =>
    new Promise<void>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.resetAndDestroy();
        resolve();
      });
      socket.on("error", () => resolve());
    })));
}

Deno.test("200 simultaneous handshakes against one relay all complete; then listener and dialer meet", async () => {
  // All 200 come from 127.0.0.1: raise the per-address caps, or the later ones would evict the
  // earlier ones still in their handshake (as tests/load/faults_test.ts does for a listener).
  await withRelay({
    handshakeTimeoutMs: 60_000,
    limits: { maxPendingPerAddress: 256, maxConnectionsPerAddress: 256 },
  }, async (relay) => {
    const results = await Promise.allSettled(Array.from({ length: 200 }, async () => {
      const secure = await connectToRelay({
        host: "127.0.0.1",
        port: relay.port,
        checkRelay: pinRelay(relay.fingerprint),
        timeoutMs: 60_000,
      });
      secure.close();
    }));
    const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    strictEqual(failed.length, 0, failed.map((f) => String(f.reason)).slice(0, 3).join("\n"));
    await assertHonestMeeting(relay);
  });
});

Deno.test("the relay survives 20 rounds of 100 connections reset right after connecting; listener and dialer then meet", async () => {
  await withRelay({}, async (relay) => {
    // A pair already spliced before the flood keeps its session through it.
    const before = await meetThrough(relay, { listener: alice });
    for (let round = 0; round < 20; round++) await resetFlood(relay.port, 100);
    await assertAlive(relay);
    const inputs = { toListener: randomBytes(20_000), toDialer: randomBytes(10_000) };
    const outcome = await pipeSession(
      { listener: Promise.resolve(before.listener), dialer: Promise.resolve(before.dialer) },
      { listener: alice, dialer: bob },
      inputs,
    );
    deepStrictEqual([outcome.listener.error, outcome.dialer.error], [undefined, undefined]);
    await assertHonestMeeting(relay, 5000);
    deepStrictEqual((await relay.stats()).stats, {
      connections: 0,
      waiting: 0,
      spliced: 0,
      rooms: 0,
    });
  });
});

/** MAGIC and a ClientHello offering only ffdhe3072 with the public value 4 (in the group). */
function ffdheHello(): Uint8Array {
  const four = new Uint8Array(384);
  four[383] = 4;
  return concat(
    MAGIC,
    encodeFrame(
      FRAME_TYPE.clientHello,
      encodeClientHello({
        versions: [...SUPPORTED_VERSIONS],
        random: new Uint8Array(RANDOM_LENGTH),
        maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
        shares: [{ suite: "ffdhe3072", share: four }],
        recordSuites: ["chacha20-poly1305"],
      }),
    ),
  );
}

/** Sends 40 ffdhe3072 hellos a second, each on a new connection closed after sending, until `stop`. */
function ffdheFlood(port: number): { stop(): Promise<number> } {
  const hello = ffdheHello();
  let running = true;
  let sent = 0;
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    while (running) {
      const one = (async () => {
        try {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          try {
            await conn.write(hello);
            sent++;
          } finally {
            conn.close();
          }
        } catch {
          // The relay may be too busy to take it: that is what the flood is for.
        }
      })();
      inFlight.add(one);
      one.then(() => inFlight.delete(one));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await Promise.race([
        Promise.all(inFlight),
        new Promise((resolve) => setTimeout(resolve, 5000)),
      ]);
      return sent;
    },
  };
}

for (
  const [label, suites, logged] of [
    ["by default (ffdhe3072 not accepted)", undefined, /no common key agreement suite/],
    [
      "with ffdhe3072 opted in",
      ["x25519-mlkem768", "x25519", "ffdhe3072"] as const,
      /too many ffdhe3072 handshakes/,
    ],
  ] as const
) {
  Deno.test({
    name:
      `listener and dialer meet within 2 s handshakes during a flood of ffdhe3072 hellos, ${label}`,
    // A flood connection stuck in connect() is left behind (see ffdheFlood's stop()).
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withRelay(suites === undefined ? {} : { suites }, async (relay) => {
        const flood = ffdheFlood(relay.port);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        for (let round = 0; round < 2; round++) await assertHonestMeeting(relay, 2000);
        const sent = await flood.stop();
        ok(sent > 20, `only ${sent} hellos sent`);
        await assertAlive(relay);
        match(relay.log.text, logged);
      });
    },
  });
}

/** Opens `count` connections that send only the magic and hold them until `stop()`. */
async function idleHolders(port: number, count: number) {
  const conns = await Promise.all(Array.from({ length: count }, async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(MAGIC).catch(() => 0); // an evicted one may already be reset
    return conn;
  }));
  let cut = 0;
  const reads = conns.map(async (conn) => {
    try {
      while ((await conn.read(new Uint8Array(1024))) !== null) {
        // Discard whatever the relay says.
      }
    } catch {
      // Reset by the relay, or closed by stop().
    }
    cut++;
  });
  return {
    /** Closes what is still open; returns how many the relay had closed before. */
    async stop(): Promise<number> {
      const before = cut;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(reads);
      return before;
    },
  };
}

Deno.test("listener and dialer meet within 2 s handshakes while 300 connections that send only the magic are held", async () => {
  await withRelay({}, async (relay) => {
    const holders = await idleHolders(relay.port, 300);
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (let round = 0; round < 2; round++) await assertHonestMeeting(relay, 2000);
    const cut = await holders.stop();
    ok(cut > 0, "the relay never closed an idle connection");
    await assertAlive(relay);
    match(relay.log.text, /dropping the oldest/);
  });
});

Deno.test({
  name:
    "listener and dialer meet within 2 s handshakes while 11 other addresses keep the pending table full of hellos",
  // Sources 127.0.0.2-12 are local on Linux only (macOS has just 127.0.0.1 on lo0).
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await withRelay({}, async (relay) => {
      // 11 addresses x 32 (each within its cap) > 256 in all: each new hello must evict one.
      const flood = startHelloFlood(relay.port, {
        addresses: loopbackAddresses(2, 12),
        perAddress: 32,
        seconds: 30,
      });
      await relay.log.waitFor(/dropping the oldest/);
      for (let round = 0; round < 2; round++) await assertHonestMeeting(relay, 2000);
      const opened = await flood.stop();
      ok(opened > 11 * 32, `only ${opened} flood connections`);
      await assertAlive(relay);
    });
  },
});

Deno.test("slowloris: a byte at a time during the handshake is cut at the relay's deadline; a meeting goes on meanwhile", async () => {
  await withRelay({ handshakeTimeoutMs: 2000 }, async (relay) => {
    const slow = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
    const bytes = new TextEncoder().encode("securechat\r\n\x01\x00\x00\x05\x0d");
    let closed = false;
    const reading = (async () => {
      try {
        while ((await slow.read(new Uint8Array(4096))) !== null) {
          // Discard.
        }
      } catch {
        // Reset: closed as well.
      }
      closed = true;
    })();
    const trickle = (async () => {
      for (const byte of bytes) {
        if (closed) break;
        try {
          await slow.write(Uint8Array.of(byte));
        } catch {
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    })();
    await assertHonestMeeting(relay);
    await Promise.all([reading, trickle]);
    slow.close();
    await relay.log.waitFor(/refused: handshake did not finish within 2 s/);
    await assertAlive(relay);
  });
});

Deno.test("a flood past the pending-handshake cap evicts the oldest pending before any crypto; a spliced session keeps flowing", async () => {
  await withRelay({
    handshakeTimeoutMs: 30_000,
    limits: { maxPendingHandshakes: 4 },
  }, async (relay) => {
    const spliced = await meetThrough(relay, { listener: alice });
    const holders = await Promise.all(
      Array.from({ length: 4 }, () => Deno.connect({ hostname: "127.0.0.1", port: relay.port })),
    );
    const flood = await Promise.all(
      Array.from({ length: 100 }, () => Deno.connect({ hostname: "127.0.0.1", port: relay.port })),
    );
    // All but the last four are closed while the 30 s deadline is far off.
    const drain = async (conn: Deno.Conn) => {
      try {
        while ((await conn.read(new Uint8Array(1024))) !== null) {
          // Discard.
        }
      } catch {
        // Reset: closed as well.
      }
    };
    await Promise.all([...holders, ...flood.slice(0, 96)].map(drain));
    for (const conn of [...holders, ...flood]) conn.close();
    await relay.log.waitFor(/too many handshakes pending .* dropping the oldest/);
    const inputs = { toListener: randomBytes(50_000), toDialer: randomBytes(50_000) };
    const outcome = await pipeSession(
      { listener: Promise.resolve(spliced.listener), dialer: Promise.resolve(spliced.dialer) },
      { listener: alice, dialer: bob },
      inputs,
    );
    deepStrictEqual([outcome.listener.error, outcome.dialer.error], [undefined, undefined]);
    await assertHonestMeeting(relay);
  });
});

Deno.test("a waiting listener that stops answering keepalives is dropped by the relay; the next one is paired", async () => {
  await withRelay({ keepaliveMs: 300 }, async (relay) => {
    // Registered, then never reads again: the relay's pings go unanswered, as from a frozen
    // machine (tests/load/faults_test.ts stops a process; here the client simply stops reading).
    const frozen = await connectToRelay({
      host: "127.0.0.1",
      port: relay.port,
      checkRelay: pinRelay(relay.fingerprint),
    });
    await frozen.send(
      encodeRendezvousRequest({
        type: "register",
        token: await rendezvousToken(alice.fingerprint),
      }),
    );
    deepStrictEqual(decodeRendezvousAnswer((await frozen.receive())!), {
      type: "waiting",
      expiresIn: 3600,
    });
    strictEqual((await relay.stats()).stats.waiting, 1);
    await relay.log.waitFor(/left before a dialer came/);
    strictEqual((await relay.stats()).stats.waiting, 0);
    frozen.close();
    await assertHonestMeeting(relay);
  });
});

Deno.test("a spliced pair with no byte either way for the idle limit is closed on both sides", async () => {
  await withRelay({ limits: { spliceIdleMs: 500 } }, async (relay) => {
    const { listener, dialer } = await meetThrough(relay, { listener: alice });
    // Nobody says anything, not even the end-to-end handshake: both sockets end.
    const ended = async (conn: Deno.Conn) => {
      try {
        while ((await conn.read(new Uint8Array(1024))) !== null) {
          // Nothing is expected.
        }
      } catch {
        // A reset ends it too.
      }
      conn.close();
    };
    await Promise.all([ended(listener), ended(dialer)]);
    await relay.log.waitFor(/splice for #[0-9a-f]{6} ended \(idle\)/);
    strictEqual((await relay.stats()).stats.spliced, 0);
    await assertHonestMeeting(relay);
  });
});
