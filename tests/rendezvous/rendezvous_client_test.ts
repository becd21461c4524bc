/**
 * The client's side of a rendezvous relay (PROTOCOL.md 15) against relays that misbehave, each
 * built in the test from the library's own pieces (the real handshake, the 15.2 codec, the
 * splice): one that splices a dialer to a stranger, one that vanishes, one that says too much
 * after Paired, one that answers the wrong thing, a listener posing as a relay, and a relay whose
 * key is not the expected one. Each ends in one clear error; nothing unauthenticated gets through.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { ConnectionError, ProtocolError, TrustError } from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  connectToRelay,
  enterRoomAt,
  meetAt,
  registerAt,
} from "../../lib/rendezvous/rendezvous_client.ts";
import {
  decodeRendezvousRequest,
  encodeRendezvousAnswer,
  type RendezvousAnswer,
  type RendezvousRequest,
} from "../../lib/rendezvous/rendezvous_messages.ts";
import { splice } from "../../lib/rendezvous/splice.ts";
import { rendezvousToken, roomToken } from "../../lib/rendezvous/tokens.ts";
import { runResponder } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { endToEnd, identities, pin, startRelay } from "./_relay_fixture.ts";

const [relayIdentity, alice, bob, mallory] = await identities(4) as [
  Identity,
  Identity,
  Identity,
  Identity,
];

/** A request as a scripted relay received it, on its connection. */
interface Arrival {
  secure: SecureConnection;
  request: RendezvousRequest;
}

/**
 * A relay on 127.0.0.1 that runs the real handshake with any client and hands each connection's
 * first request to `script`. What it does next is the test's.
 */
function scriptedRelay(script: (arrival: Arrival) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      served.push(
        (async () => {
          const secure = await runResponder(conn, {
            identity: relayIdentity,
            suites: ["x25519-mlkem768", "x25519"],
            maxRecordPlaintext: 2 ** 20,
            authorize: () => Promise.resolve(),
          });
          const request = decodeRendezvousRequest((await secure.receive())!);
          await script({ secure, request });
        })().catch(() => {}),
      );
    }
  })();
  return {
    port,
    connect: () =>
      connectToRelay({ host: "127.0.0.1", port, checkRelay: pin(relayIdentity.fingerprint) }),
    async close() {
      listener.close();
      await accepting;
      await Promise.all(served);
    },
  };
}

const answer = (secure: SecureConnection, message: RendezvousAnswer) =>
  secure.send(encodeRendezvousAnswer(message));

/** Section 15.4 done right by the relay: Paired and close_notify, then the client's Spliced. */
async function pairAndDetach(secure: SecureConnection) {
  await answer(secure, { type: "paired" });
  await secure.closeNotify();
  const spliced = await secure.receive();
  strictEqual(decodeRendezvousRequest(spliced!).type, "spliced");
  return await secure.detach();
}

Deno.test("a relay that splices a dialer to another listener than it asked for is caught end to end", async () => {
  // The hostile relay keeps every registration and answers a Meet with the wrong one.
  const waiting: Arrival[] = [];
  const relay = scriptedRelay(async (arrival) => {
    if (arrival.request.type === "register") {
      await answer(arrival.secure, { type: "waiting", expiresIn: 60 });
      waiting.push(arrival);
      return;
    }
    const meet = arrival.request as { token: Uint8Array };
    const stranger = waiting.find((w) =>
      (w.request as { token: Uint8Array }).token.some((byte, i) => byte !== meet.token[i])
    )!;
    const [listenerSide, dialerSide] = await Promise.all([
      pairAndDetach(stranger.secure),
      pairAndDetach(arrival.secure),
    ]);
    await splice(listenerSide, dialerSide).done;
  });
  const aliceToken = await rendezvousToken(alice.fingerprint);
  const alices = await registerAt(await relay.connect(), aliceToken);
  const mallorys = await registerAt(
    await relay.connect(),
    await rendezvousToken(mallory.fingerprint),
  );
  const dialerSocket = await meetAt(await relay.connect(), aliceToken);
  // Bob asked for alice; the relay joined him to mallory, who runs a real listener.
  await rejects(
    endToEnd(
      { listener: await mallorys.paired, dialer: dialerSocket },
      { listener: mallory, dialer: bob, expected: alice.fingerprint },
    ),
    (error: unknown) => {
      ok(error instanceof TrustError, String(error));
      ok(error.message.includes(mallory.fingerprint));
      return true;
    },
  );
  for (const w of waiting) w.secure.close();
  await rejects(alices.paired, isCode(ConnectionError, "relay_gone"));
  await relay.close();
});

Deno.test("registerAt(): a relay that vanishes before pairing rejects paired with relay_gone", async () => {
  const relay = scriptedRelay(async ({ secure }) => {
    await answer(secure, { type: "waiting", expiresIn: 60 });
    secure.close(); // no Refused, no close_notify: just gone
  });
  const registration = await registerAt(
    await relay.connect(),
    await rendezvousToken(alice.fingerprint),
  );
  await rejects(registration.paired, (error: unknown) => {
    ok(error instanceof ConnectionError);
    strictEqual(error.code, "relay_gone");
    strictEqual(error.message, "the relay closed before pairing us");
    return true;
  });
  await relay.close();
});

Deno.test("meetAt(): a record after Paired instead of close_notify is a protocol error", async () => {
  const relay = scriptedRelay(async ({ secure }) => {
    await answer(secure, { type: "paired" });
    await secure.send(new TextEncoder().encode("the start of a session, too early"));
    await secure.receive().catch(() => {});
    secure.close();
  });
  await rejects(
    meetAt(await relay.connect(), await rendezvousToken(alice.fingerprint)),
    isCode(ProtocolError, "record_after_paired"),
  );
  await relay.close();
});

Deno.test("the requests refuse an answer that does not fit: unexpected_answer", async () => {
  const relay = scriptedRelay(async ({ secure, request }) => {
    await answer(secure, request.type === "meet" ? { type: "joined" } : { type: "paired" });
    await secure.receive().catch(() => {});
    secure.close();
  });
  const token = await rendezvousToken(alice.fingerprint);
  await rejects(meetAt(await relay.connect(), token), (error: unknown) => {
    ok(error instanceof ProtocolError);
    strictEqual(error.code, "unexpected_answer");
    strictEqual(error.message, "the relay answered a Meet with Joined");
    return true;
  });
  await rejects(
    registerAt(await relay.connect(), token),
    isCode(ProtocolError, "unexpected_answer"),
  );
  await rejects(
    enterRoomAt(await relay.connect(), await roomToken("lobby")),
    isCode(ProtocolError, "unexpected_answer"),
  );
  await relay.close();
});

Deno.test("a Refused reason is shown once, made safe for the terminal", async () => {
  const relay = scriptedRelay(async ({ secure }) => {
    await answer(secure, { type: "refused", reason: "maintenance\u001b[2J until 5" });
    await secure.closeWrite();
    await secure.receive().catch(() => {});
    secure.close();
  });
  await rejects(
    enterRoomAt(await relay.connect(), await roomToken("lobby")),
    (error: unknown) => {
      ok(error instanceof ConnectionError);
      strictEqual(error.code, "refused_by_relay");
      strictEqual(error.message, "the relay refused us: maintenance?[2J until 5");
      return true;
    },
  );
  await relay.close();
});

Deno.test("registerAt() at a securechat listener instead of a relay fails with not_a_relay", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const secure = await runResponder(await listener.accept(), {
      identity: relayIdentity,
      suites: ["x25519-mlkem768", "x25519"],
      maxRecordPlaintext: 2 ** 20,
      authorize: () => Promise.resolve(),
    });
    await exchangeSessionHello(secure, "chat").catch(() => {});
    secure.close();
  })();
  const relay = await connectToRelay({
    host: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    checkRelay: pin(relayIdentity.fingerprint),
  });
  await rejects(
    registerAt(relay, await rendezvousToken(alice.fingerprint)),
    isCode(ProtocolError, "not_a_relay"),
  );
  await serving;
});

Deno.test("connectToRelay() refuses a relay whose key is not the expected one", async () => {
  const fixture = await startRelay();
  await rejects(
    connectToRelay({
      host: "127.0.0.1",
      port: fixture.port,
      checkRelay: pin(mallory.fingerprint),
    }),
    TrustError,
  );
  await fixture.close();
});

Deno.test("connectToRelay() where nobody listens fails with relay_unreachable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await rejects(
    connectToRelay({ host: "127.0.0.1", port, checkRelay: () => Promise.resolve() }),
    isCode(ConnectionError, "relay_unreachable"),
  );
});

Deno.test("connectToRelay() uses a fresh key each time unless given one (15.1)", async () => {
  const seen: string[] = [];
  const relay = scriptedRelay(({ secure }) => {
    seen.push(secure.peer.identity.fingerprint);
    secure.close();
    return Promise.resolve();
  });
  for (const identity of [undefined, undefined, alice]) {
    const connection = await connectToRelay({
      host: "127.0.0.1",
      port: relay.port,
      checkRelay: pin(relayIdentity.fingerprint),
      ...(identity === undefined ? {} : { identity }),
    });
    await connection.send(Uint8Array.of(0x10));
    await connection.receive().catch(() => {});
    connection.close();
  }
  await relay.close();
  strictEqual(seen.length, 3);
  ok(seen[0] !== seen[1]);
  ok(!seen.slice(0, 2).includes(alice.fingerprint));
  deepStrictEqual(seen[2], alice.fingerprint);
});
