/**
 * The SessionHello (PROTOCOL.md section 12) over real loopback connections through the real
 * handshake: matching modes go on to carry data; a mismatch, a malformed or unknown hello, a peer
 * that closes before saying hello, or one that vanishes, each end the session with the right error,
 * and the peer is told with the right alert.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  AuthenticationError,
  ConnectionError,
  PeerAlertError,
  ProtocolError,
} from "../../lib/core/errors.ts";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import { FRAME_TYPE } from "../../lib/protocol/frame.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import {
  exchangeSessionHello,
  MODE,
  type Mode,
  RETIRED_ROOM_MODE,
} from "../../lib/transport/session_hello.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { startProxy } from "../_helpers/proxy.ts";
import { alice, bob, connectionOptions, securePair } from "../_helpers/secure_pair.ts";

const PIPE_HINT = "the peer runs a chat: leave out --pipe and use a terminal, or add --json";
const CHAT_HINT = "the peer is in pipe mode: add --pipe, or run both sides on a terminal";
const OLDER_HINT =
  "the peer runs an older securechat, whose rooms cannot talk to this one: both sides need the same version";

function modeMismatch(message: string, hint: string) {
  return (error: unknown) => {
    isCode(ProtocolError, "mode_mismatch", "no_application_protocol")(error);
    const problem = error as ProtocolError;
    strictEqual(problem.message, message);
    deepStrictEqual(problem.hints, [hint]);
    strictEqual(problem.exitCode, 5);
    return true;
  };
}

/** What the peer sees after our hello: our hello, then an alert. */
async function expectHelloThenAlert(peer: SecureConnection, mode: Mode, alert: string) {
  deepStrictEqual(await peer.receive(), Uint8Array.of(MODE[mode]));
  await rejects(peer.receive(), (error: unknown) => {
    ok(error instanceof PeerAlertError, `expected a PeerAlertError, got ${error}`);
    strictEqual(error.code, `peer_alert_${alert}`);
    strictEqual(error.received, alert);
    return true;
  });
}

Deno.test("MODE holds the section 12 codes: chat is the room of section 13, code 3", () => {
  deepStrictEqual(MODE, { pipe: 1, chat: 3 });
  strictEqual(RETIRED_ROOM_MODE, 2);
});

for (const mode of ["pipe", "chat"] as const) {
  Deno.test(`exchangeSessionHello() agrees on ${mode} mode, and the session carries data after it`, async () => {
    const { server, client } = await securePair();
    await Promise.all([exchangeSessionHello(server, mode), exchangeSessionHello(client, mode)]);
    // The hellos were consumed: the next records are application data.
    await client.send(Uint8Array.of(9, 8, 7));
    deepStrictEqual(await server.receive(), Uint8Array.of(9, 8, 7));
    await server.send(Uint8Array.of(1));
    deepStrictEqual(await client.receive(), Uint8Array.of(1));
    await client.closeWrite();
    strictEqual(await server.receive(), null);
    await server.closeWrite();
    strictEqual(await client.receive(), null);
    server.close();
    client.close();
  });
}

Deno.test("exchangeSessionHello() sends exactly one byte, the mode, as its own record", async () => {
  const { server, client } = await securePair();
  const hello = exchangeSessionHello(server, "chat");
  deepStrictEqual(await client.receive(), Uint8Array.of(3));
  await client.send(Uint8Array.of(3));
  await hello;
  server.close();
  client.close();
});

Deno.test("exchangeSessionHello() fails both sides with mode_mismatch when pipe meets chat", async () => {
  const { server, client } = await securePair();
  const [listener, dialer] = await Promise.allSettled([
    exchangeSessionHello(server, "chat"),
    exchangeSessionHello(client, "pipe"),
  ]);
  strictEqual(listener.status, "rejected");
  strictEqual(dialer.status, "rejected");
  if (listener.status !== "rejected" || dialer.status !== "rejected") return;
  modeMismatch("the peer wants pipe mode, we are in chat mode", CHAT_HINT)(listener.reason);
  modeMismatch("the peer wants chat mode, we are in pipe mode", PIPE_HINT)(dialer.reason);
  // Both sessions were closed by the failure.
  await rejects(server.send(Uint8Array.of(1)), isCode(ConnectionError, "send_failed"));
  await rejects(client.send(Uint8Array.of(1)), isCode(ConnectionError, "send_failed"));
});

Deno.test("exchangeSessionHello() names an unknown mode, and the peer gets no_application_protocol", async () => {
  const { server, client } = await securePair();
  await client.send(Uint8Array.of(7));
  await rejects(
    exchangeSessionHello(server, "pipe"),
    modeMismatch("the peer wants an unknown mode (7), we are in pipe mode", PIPE_HINT),
  );
  await expectHelloThenAlert(client, "pipe", "no_application_protocol");
  client.close();
});

for (const mode of ["chat", "pipe"] as const) {
  Deno.test(`exchangeSessionHello() in ${mode} mode names the version-1 room of an older securechat`, async () => {
    const { server, client } = await securePair();
    await client.send(Uint8Array.of(RETIRED_ROOM_MODE));
    await rejects(
      exchangeSessionHello(server, mode),
      modeMismatch(`the peer wants the version-1 room, we are in ${mode} mode`, OLDER_HINT),
    );
    await expectHelloThenAlert(client, mode, "no_application_protocol");
    client.close();
  });
}

Deno.test("exchangeSessionHello() refuses a mode 0 hello", async () => {
  const { server, client } = await securePair();
  await client.send(Uint8Array.of(0));
  await rejects(
    exchangeSessionHello(server, "chat"),
    modeMismatch("the peer wants an unknown mode (0), we are in chat mode", CHAT_HINT),
  );
  client.close();
});

Deno.test("exchangeSessionHello() refuses a hello longer than one byte, even if it starts right", async () => {
  for (const hello of [Uint8Array.of(3, 0), Uint8Array.of(3, 3), Uint8Array.of(1, 2, 3)]) {
    const { server, client } = await securePair();
    await client.send(hello);
    await rejects(
      exchangeSessionHello(server, "chat"),
      modeMismatch("the peer wants a malformed session hello, we are in chat mode", CHAT_HINT),
      `hello ${hello}`,
    );
    await expectHelloThenAlert(client, "chat", "no_application_protocol");
    client.close();
  }
});

Deno.test("exchangeSessionHello() refuses chat traffic in place of a hello", async () => {
  // A chat member that skipped the hello and sent a room message straight away.
  const { server, client } = await securePair();
  await client.send(Uint8Array.of(0x10, 1, 2, 3));
  await rejects(
    exchangeSessionHello(server, "chat"),
    modeMismatch("the peer wants a malformed session hello, we are in chat mode", CHAT_HINT),
  );
  client.close();
});

Deno.test("exchangeSessionHello() fails with no_session_hello when the peer closes first", async () => {
  const { server, client } = await securePair();
  await client.closeWrite();
  await rejects(exchangeSessionHello(server, "chat"), (error: unknown) => {
    isCode(ProtocolError, "no_session_hello", "decode_error")(error);
    strictEqual((error as Error).message, "peer closed the session before saying hello");
    return true;
  });
  await expectHelloThenAlert(client, "chat", "decode_error");
  client.close();
});

Deno.test("exchangeSessionHello() reports truncation when the peer vanishes, and ends the session", async () => {
  const { server, client } = await securePair();
  client.close(); // no close_notify, no hello
  await rejects(exchangeSessionHello(server, "pipe"), isCode(AuthenticationError, "truncated"));
  await rejects(server.send(Uint8Array.of(1)), isCode(ConnectionError, "send_failed"));
});

Deno.test("exchangeSessionHello() passes on the peer's alert instead of a hello", async () => {
  const { server, client } = await securePair();
  const hello = exchangeSessionHello(server, "chat");
  // The peer reads our hello first, so it closes with nothing unread (no TCP reset).
  deepStrictEqual(await client.receive(), Uint8Array.of(MODE.chat));
  await client.abort(new ProtocolError("test", "going away", { alert: "internal_error" }));
  await rejects(
    hello,
    isCode(PeerAlertError, "peer_alert_internal_error"),
  );
  await rejects(server.send(Uint8Array.of(1)), isCode(ConnectionError, "send_failed"));
});

Deno.test("a SessionHello record frame is exactly 23 bytes on the wire, each way (PROTOCOL.md 12)", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const records: Record<string, Uint8Array[]> = { toListener: [], toDialer: [] };
  const proxy = startProxy((listener.addr as Deno.NetAddr).port, (direction, frame) => {
    if (frame[0] === FRAME_TYPE.record) records[direction]!.push(frame.slice());
    return [frame];
  });
  const [server, client] = await Promise.all([
    listener.accept().then((conn) =>
      runResponder(conn, { ...connectionOptions(bob), authorize: () => Promise.resolve() })
    ),
    Deno.connect({ hostname: "127.0.0.1", port: proxy.port }).then((conn) =>
      runInitiator(conn, { ...connectionOptions(alice), checkPeer: () => Promise.resolve() })
    ),
  ]);
  await Promise.all([exchangeSessionHello(server, "pipe"), exchangeSessionHello(client, "pipe")]);
  server.close();
  client.close();
  await proxy.done;
  // Identity, IdentityVerify and Finished come first each way; the fourth record is the hello.
  for (const direction of ["toListener", "toDialer"]) {
    const hello = records[direction]![3]!;
    strictEqual(hello.length, 23, direction);
    deepStrictEqual(hello.subarray(0, 5), Uint8Array.of(0x17, 0, 0, 0, 18), direction);
  }
});

Deno.test("an empty application_data record is accepted as data, and refused as a SessionHello", async () => {
  const { server, client } = await securePair();
  await client.send(new Uint8Array(0));
  await rejects(
    exchangeSessionHello(server, "pipe"),
    modeMismatch("the peer wants a malformed session hello, we are in pipe mode", PIPE_HINT),
  );
  client.close();
  // After the hello, an empty record is received as empty data, and the stream goes on.
  const pair = await securePair();
  await Promise.all([
    exchangeSessionHello(pair.server, "pipe"),
    exchangeSessionHello(pair.client, "pipe"),
  ]);
  await pair.client.send(new Uint8Array(0));
  await pair.client.send(Uint8Array.of(7));
  deepStrictEqual(await pair.server.receive(), new Uint8Array(0));
  deepStrictEqual(await pair.server.receive(), Uint8Array.of(7));
  pair.server.close();
  pair.client.close();
});
