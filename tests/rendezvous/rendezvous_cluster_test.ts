/**
 * Rendezvous across relays (PROTOCOL.md 16.5) with real relays sharing a real nats-server: a
 * dialer who Meets at the relay without the registration is redirected to the one that has it and
 * the end-to-end handshake completes; a redirect to a relay with another key is refused; a dialer
 * follows one Redirect only. And 16.4: a relay without a room log refuses ResumeRoom.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { RendezvousDirectory } from "../../lib/cluster/rendezvous_directory.ts";
import { ConnectionError, ProtocolError, TrustError } from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  meetAt,
  parseRelayHostPort,
  registerAt,
  resumeRoomAt,
} from "../../lib/rendezvous/rendezvous_client.ts";
import { REFUSAL } from "../../lib/rendezvous/rendezvous_messages.ts";
import { rendezvousToken, roomToken } from "../../lib/rendezvous/tokens.ts";
import { type NatsServers, startNatsServers } from "../_helpers/nats_servers.ts";
import { isCode } from "../_helpers/assert_error.ts";
import {
  endToEnd,
  eventually,
  identities,
  pin,
  type RelayFixture,
  startRelay,
} from "./_relay_fixture.ts";

const [relayKey, alice, bob, otherRelayKey] = await identities(4) as [
  Identity,
  Identity,
  Identity,
  Identity,
];

/** A relay on the cluster: its own NATS connection and directory, advertising its address. */
async function clusterRelay(
  servers: NatsServers,
  identity: Identity,
  advertise?: string,
): Promise<RelayFixture & { nc: NatsConnection }> {
  const nc = await connect({ servers: servers.urls });
  const directory = new RendezvousDirectory(nc);
  const fixture = await startRelay((port) => ({
    identity,
    directory,
    advertise: advertise ?? `127.0.0.1:${port}`,
  }));
  return {
    ...fixture,
    nc,
    close: async () => {
      await fixture.close();
      await nc.close();
    },
  };
}

Deno.test("a Meet at the relay without the registration is redirected to the one that has it", async () => {
  const servers = await startNatsServers(1);
  const a = await clusterRelay(servers, relayKey);
  const b = await clusterRelay(servers, relayKey);
  try {
    const token = await rendezvousToken(alice.fingerprint);
    const registration = await registerAt(await a.connect(), token);
    await a.nc.flush();
    const dialerSocket = await meetAt(await b.connect(), token);
    const listenerSocket = await registration.paired;
    const { server, client } = await endToEnd(
      { listener: listenerSocket, dialer: dialerSocket },
      { listener: alice, dialer: bob },
    );
    strictEqual(server.peer.identity.fingerprint, bob.fingerprint);
    strictEqual(client.peer.identity.fingerprint, alice.fingerprint);
    ok(b.log.some((line) => line.includes(`redirected to 127.0.0.1:${a.port}`)), b.log.join("\n"));
    deepStrictEqual(a.relay.stats.spliced, 1);
    server.close();
    client.close();
    // Once paired, the registration is no longer published: a second Meet is refused at once.
    await rejects(meetAt(await b.connect(), token), isCode(ConnectionError, "no_listener"));
  } finally {
    await a.close();
    await b.close();
    await servers.stop();
  }
});

Deno.test("a redirect to a relay with another key is refused before any Meet is sent there", async () => {
  const servers = await startNatsServers(1);
  const a = await clusterRelay(servers, otherRelayKey);
  const b = await clusterRelay(servers, relayKey);
  try {
    const token = await rendezvousToken(alice.fingerprint);
    await registerAt(await a.connect(), token);
    await a.nc.flush();
    await rejects(meetAt(await b.connect(), token), isCode(TrustError, "relay_key_mismatch"));
    // The registration still waits at A: nobody was paired with it.
    strictEqual(a.relay.stats.waiting, 1);
    strictEqual(a.relay.stats.spliced, 0);
  } finally {
    await a.close();
    await b.close();
    await servers.stop();
  }
});

Deno.test("a dialer follows one Redirect: a second one is redirect_loop", async () => {
  const servers = await startNatsServers(1);
  const b = await clusterRelay(servers, relayKey);
  // C advertises an address that is not its own, so that the answer naming C (published below,
  // as a confused or hostile cluster member might) is not C's own to C: C redirects again.
  const c = await clusterRelay(servers, relayKey, "127.0.0.1:1");
  const other = await connect({ servers: servers.urls });
  try {
    const token = await rendezvousToken(alice.fingerprint);
    new RendezvousDirectory(other).publish(token, `127.0.0.1:${c.port}`);
    await other.flush();
    await rejects(meetAt(await b.connect(), token), isCode(ProtocolError, "redirect_loop"));
    ok(c.log.some((line) => line.includes(`redirected to 127.0.0.1:${c.port}`)), c.log.join("\n"));
  } finally {
    await other.close();
    await b.close();
    await c.close();
    await servers.stop();
  }
});

Deno.test("a single relay refuses ResumeRoom: nothing to resume", async () => {
  const fixture = await startRelay();
  try {
    const token = await roomToken("resumed");
    await rejects(
      resumeRoomAt(
        {
          host: "127.0.0.1",
          port: fixture.port,
          identity: alice,
          checkRelay: pin(fixture.identity.fingerprint),
        },
        token,
        42n,
      ),
      (error) => {
        ok(error instanceof ConnectionError && error.code === "nothing_to_resume", String(error));
        ok(error.message.includes(REFUSAL.nothingToResume));
        return true;
      },
    );
    await eventually(() => fixture.relay.stats.connections === 0, "the refused connection to end");
    strictEqual(fixture.relay.stats.rooms, 0);
  } finally {
    await fixture.close();
  }
});

Deno.test("`parseRelayHostPort()` reads HOST:PORT and [IPv6]:PORT, and refuses anything else", () => {
  deepStrictEqual(parseRelayHostPort("relay.example:65433"), {
    host: "relay.example",
    port: 65433,
  });
  deepStrictEqual(parseRelayHostPort("[::1]:7000"), { host: "::1", port: 7000 });
  for (const bad of ["relay.example", ":80", "a:0", "a:65536", "::1:80", "a b:80", "a:80x"]) {
    throw_(bad);
  }
  function throw_(text: string) {
    try {
      parseRelayHostPort(text);
    } catch (error) {
      ok(error instanceof ProtocolError && error.code === "bad_redirect", text);
      return;
    }
    throw new Error(`"${text}" was accepted`);
  }
});
