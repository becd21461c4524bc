/**
 * Secure connection pairs over real loopback sockets, through the real handshake: `bob` listens
 * (responder), `alice` dials (initiator). Shared by the connection and secure connection tests.
 *
 * @module
 */

import {
  type ConnectionOptions,
  runInitiator,
  runResponder,
} from "../../lib/transport/connection.ts";
import { generateIdentity, type Identity } from "../../lib/keys/identity.ts";
import { ALL_SUITES } from "../../lib/crypto/kex.ts";
import { MAX_RECORD_PLAINTEXT } from "../../lib/protocol/record.ts";

export const [alice, bob] = await Promise.all([
  generateIdentity({ type: "ed25519", comment: "alice" }),
  generateIdentity({ type: "ed25519", comment: "bob" }),
]).then((pairs) => pairs.map((pair) => pair.identity)) as [Identity, Identity];

/** Driver options for `identity` with every suite and the chat record size. */
export function connectionOptions(
  identity: Identity,
  extra: Partial<ConnectionOptions> = {},
): ConnectionOptions {
  return { identity, suites: ALL_SUITES, maxRecordPlaintext: MAX_RECORD_PLAINTEXT, ...extra };
}

/** A listener on port 0 and a connected pair of raw sockets. */
export async function socketPair(): Promise<[Deno.Conn, Deno.Conn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [server, client] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port }),
  ]);
  return [server, client];
}

/** A handshaken pair: `server` is bob (responder), `client` alice (initiator). */
export async function securePair(extra: Partial<ConnectionOptions> = {}) {
  const [serverConn, clientConn] = await socketPair();
  const [server, client] = await Promise.all([
    runResponder(serverConn, {
      ...connectionOptions(bob, extra),
      authorize: () => Promise.resolve(),
    }),
    runInitiator(clientConn, {
      ...connectionOptions(alice, { ...extra, suites: ["x25519-mlkem768"] }),
      checkPeer: () => Promise.resolve(),
    }),
  ]);
  return { server, client };
}
