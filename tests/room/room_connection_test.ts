/**
 * The in-memory pair of the host's link (`connectedPair()`): order, copies, the three ways a
 * direction ends (close_notify, close, abort) as a SecureConnection's would, a send that waits
 * while the reader is behind, and the SessionHello through it. A SecureConnection is a
 * RoomConnection as it is (checked by the compiler below).
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  AuthenticationError,
  ConnectionError,
  PeerAlertError,
  ProtocolError,
} from "../../lib/core/errors.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  connectedPair,
  PAIR_BUFFER_BYTES,
  type RoomConnection,
} from "../../lib/room/room_connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { identities } from "../_helpers/relay_peers.ts";

const [alice, bob] = await identities(2) as [Identity, Identity];

// The relay and members take either kind of connection: this must keep compiling.
const _secureIsRoom = (secure: SecureConnection): RoomConnection => secure;

function pair(): [RoomConnection, RoomConnection] {
  return connectedPair(
    { name: "alice", identity: alice },
    { name: "bob", identity: bob },
    "code-1234",
  );
}

/** Whether `promise` has settled, without waiting for anything but queued microtasks. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  for (let i = 0; i < 10; i++) await Promise.resolve();
  return done;
}

Deno.test("connectedPair() gives each end the other's identity and the same code", () => {
  const [a, b] = pair();
  strictEqual(a.peer.name, "bob");
  strictEqual(a.peer.identity.fingerprint, bob.fingerprint);
  strictEqual(b.peer.name, "alice");
  strictEqual(b.peer.identity.fingerprint, alice.fingerprint);
  strictEqual(a.verificationCode, "code-1234");
  strictEqual(b.verificationCode, "code-1234");
});

Deno.test("connectedPair() carries whole messages in order, each way, as copies", async () => {
  const [a, b] = pair();
  const buffer = Uint8Array.of(1, 2, 3);
  await a.send(buffer);
  buffer.fill(9); // the sender may reuse its buffer once the send resolved
  await a.sendBatch([Uint8Array.of(4), new Uint8Array(0), Uint8Array.of(5, 6)]);
  await b.send(Uint8Array.of(7));
  deepStrictEqual(await b.receive(), Uint8Array.of(1, 2, 3));
  deepStrictEqual(await b.receive(), Uint8Array.of(4));
  deepStrictEqual(await b.receive(), new Uint8Array(0));
  deepStrictEqual(await b.receive(), Uint8Array.of(5, 6));
  deepStrictEqual(await a.receive(), Uint8Array.of(7));
  // A receive that waits is answered by the next send.
  const waiting = b.receive();
  strictEqual(await settled(waiting), false);
  await a.send(Uint8Array.of(8));
  deepStrictEqual(await waiting, Uint8Array.of(8));
});

Deno.test("RoomConnection.closeWrite() on one end makes the other's receive() return null after the rest", async () => {
  const [a, b] = pair();
  await a.send(Uint8Array.of(1));
  await a.closeWrite();
  await a.closeWrite(); // once is enough; again is harmless
  await rejects(a.send(Uint8Array.of(2)), RangeError);
  deepStrictEqual(await b.receive(), Uint8Array.of(1));
  strictEqual(await b.receive(), null);
  strictEqual(await b.receive(), null);
  // The other direction stays open until its own goodbye.
  await b.send(Uint8Array.of(3));
  deepStrictEqual(await a.receive(), Uint8Array.of(3));
  await b.closeWrite();
  strictEqual(await a.receive(), null);
});

Deno.test("RoomConnection.close() without closeWrite() reads as truncation on the other end", async () => {
  const [a, b] = pair();
  await a.send(Uint8Array.of(1));
  const pendingOwn = a.receive();
  a.close();
  // What was sent before arrives first.
  deepStrictEqual(await b.receive(), Uint8Array.of(1));
  await rejects(b.receive(), isCode(AuthenticationError, "truncated"));
  // Our own pending read ends, and the other's sends fail as on a closed socket.
  await rejects(pendingOwn, isCode(ConnectionError, "connection_closed"));
  await rejects(b.send(Uint8Array.of(2)), isCode(ConnectionError, "send_failed"));
  await rejects(a.send(Uint8Array.of(2)), isCode(ConnectionError, "send_failed"));
});

Deno.test("RoomConnection.close() after closeWrite() is a clean end for the other side", async () => {
  const [a, b] = pair();
  await a.closeWrite();
  a.close();
  strictEqual(await b.receive(), null);
});

Deno.test("RoomConnection.abort() reaches the other end as the alert it names", async () => {
  const [a, b] = pair();
  await a.send(Uint8Array.of(1));
  await a.abort(new ProtocolError("bad", "bad message", { alert: "decode_error" }));
  deepStrictEqual(await b.receive(), Uint8Array.of(1));
  await rejects(b.receive(), (error: unknown) => {
    isCode(PeerAlertError, "peer_alert_decode_error")(error);
    strictEqual((error as PeerAlertError).received, "decode_error");
    strictEqual((error as Error).message, 'peer ended the session with alert "decode_error"');
    return true;
  });
  // Anything but a SecurechatError is an internal_error, as on a SecureConnection.
  const [c, d] = pair();
  await c.abort(new Error("bug"));
  await rejects(d.receive(), isCode(PeerAlertError, "peer_alert_internal_error"));
});

Deno.test("RoomConnection.send() waits while the other end has more than PAIR_BUFFER_BYTES unread", async () => {
  const [a, b] = pair();
  const half = new Uint8Array(PAIR_BUFFER_BYTES / 2);
  await a.send(half);
  await a.send(half); // exactly the buffer: no wait
  const third = a.send(Uint8Array.of(1));
  strictEqual(await settled(third), false, "past the buffer, the send waits for the reader");
  await b.receive();
  strictEqual(await settled(third), true);
  await third;
  // A send waiting on a reader that goes away fails.
  const [c, d] = pair();
  const blocked = c.send(new Uint8Array(PAIR_BUFFER_BYTES + 1));
  strictEqual(await settled(blocked), false);
  d.close();
  await rejects(blocked, isCode(ConnectionError, "send_failed"));
});

Deno.test("exchangeSessionHello() runs over an in-memory pair as over a SecureConnection", async () => {
  const [a, b] = pair();
  await Promise.all([exchangeSessionHello(a, "chat"), exchangeSessionHello(b, "chat")]);
  await a.send(Uint8Array.of(0x42, 1));
  deepStrictEqual(await b.receive(), Uint8Array.of(0x42, 1));
  // A mismatch is refused with no_application_protocol, which the other end reads as an alert.
  const [c, d] = pair();
  const [chat, pipe] = await Promise.allSettled([
    exchangeSessionHello(c, "chat"),
    exchangeSessionHello(d, "pipe"),
  ]);
  ok(chat.status === "rejected" && pipe.status === "rejected");
  isCode(ProtocolError, "mode_mismatch", "no_application_protocol")(chat.reason);
});
