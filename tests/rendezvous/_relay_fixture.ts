/**
 * A real rendezvous relay on 127.0.0.1 port 0 for tests, clients that dial it through the real
 * handshake (pinning the relay's key), and the end-to-end handshake over spliced sockets.
 *
 * @module
 */

import { strictEqual } from "node:assert/strict";
import { TrustError } from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import type { VerifiedPeer } from "../../lib/protocol/handshake_state.ts";
import { connectToRelay } from "../../lib/rendezvous/rendezvous_client.ts";
import {
  RendezvousRelay,
  type RendezvousRelayOptions,
} from "../../lib/rendezvous/rendezvous_relay.ts";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { identities } from "../_helpers/relay_peers.ts";

export { identities };

/** A `checkPeer` that accepts exactly `fingerprint`, as `--expect` or a pin does. */
export function pin(fingerprint: string): (peer: VerifiedPeer) => Promise<void> {
  return (peer) =>
    peer.identity.fingerprint === fingerprint ? Promise.resolve() : Promise.reject(
      new TrustError(
        "pin_mismatch",
        `expected key ${fingerprint}, the peer has ${peer.identity.fingerprint}`,
      ),
    );
}

/** A running relay, its log, and a way to dial it. */
export interface RelayFixture {
  relay: RendezvousRelay;
  identity: Identity;
  port: number;
  log: string[];
  /** Dials the relay (a throwaway key unless `identity`), pinning its key. */
  connect(identity?: Identity, timeoutMs?: number): Promise<SecureConnection>;
  close(): Promise<void>;
}

/**
 * Starts a relay with `options` (its identity is the pool's first unless they say) and a collected
 * log; `options` may be a function of the relay's port (for an advertised address).
 */
export async function startRelay(
  options: Partial<RendezvousRelayOptions> | ((port: number) => Partial<RendezvousRelayOptions>) =
    {},
): Promise<RelayFixture> {
  const [pooled] = await identities(1) as [Identity];
  const log: string[] = [];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const chosen = typeof options === "function" ? options(port) : options;
  const identity = chosen.identity ?? pooled;
  const relay = new RendezvousRelay({ identity, log: (line) => log.push(line), ...chosen });
  relay.serve(listener);
  return {
    relay,
    identity,
    port,
    log,
    connect: (own, timeoutMs) =>
      connectToRelay({
        host: "127.0.0.1",
        port,
        checkRelay: pin(identity.fingerprint),
        ...(own === undefined ? {} : { identity: own }),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      }),
    close: () => relay.close(),
  };
}

/** Options of the end-to-end handshake over spliced sockets (the real ones a session uses). */
function e2eOptions(identity: Identity, timeoutMs: number) {
  return {
    identity,
    suites: ["x25519-mlkem768", "x25519"] as const,
    maxRecordPlaintext: 2 ** 20,
    timeoutMs,
  };
}

/**
 * The end-to-end handshake over a splice: the listener as responder (admitting only `dialer`),
 * the dialer as initiator expecting `expected` (default: the listener's own fingerprint).
 */
export async function endToEnd(
  sockets: { listener: Deno.Conn; dialer: Deno.Conn },
  people: { listener: Identity; dialer: Identity; expected?: string },
  timeoutMs = 10_000,
): Promise<{ server: SecureConnection; client: SecureConnection }> {
  const [server, client] = await Promise.all([
    runResponder(sockets.listener, {
      ...e2eOptions(people.listener, timeoutMs),
      authorize: pin(people.dialer.fingerprint),
    }),
    runInitiator(sockets.dialer, {
      ...e2eOptions(people.dialer, timeoutMs),
      checkPeer: pin(people.expected ?? people.listener.fingerprint),
    }),
  ]);
  strictEqual(server.verificationCode, client.verificationCode);
  return { server, client };
}

/** Resolves once `predicate` holds, polling; for states that have no event to wait on. */
export async function eventually(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
