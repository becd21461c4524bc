/**
 * The relay process of the room fan-out benchmark: the room's Relay (lib/room/relay.ts) behind
 * real handshakes on 127.0.0.1, as `securechat listen --relay-only` runs it, with each connection
 * wrapped to time the relay's own part of a fan-out: from the moment a Group message has been
 * read (its record decrypted) to the moment the last member's copy has been written to its socket
 * (its record sealed and the write done). What the members do with it is not in this figure.
 *
 * It answers, over bench/_rpc.ts: `port` (where it listens), `fanouts` (the Group messages fanned
 * out since the last call, with their timings), `memory` (its V8 heap and external memory, to tell
 * where its resident memory goes), `close` (closes the room).
 *
 * Not the CLI's listener: no accept-loop limits or keepalives, which hold nothing per member
 * once a handshake is done; the relay, its outboxes and the record layer are the product's.
 *
 * `deno run <flags> bench/_room_relay_process.ts MAX_MEMBERS`
 *
 * @module
 */

import { toHex } from "../lib/core/bytes.ts";
import { RELAY_MESSAGE } from "../lib/chat/relay_messages.ts";
import { ALL_SUITES } from "../lib/crypto/kex.ts";
import { generateIdentity } from "../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../lib/protocol/record.ts";
import { Relay } from "../lib/room/relay.ts";
import type { RoomConnection } from "../lib/room/room_connection.ts";
import { runResponder } from "../lib/transport/connection.ts";
import { serveRpc } from "./_rpc.ts";

/** One Group message's way through the relay, in this process's milliseconds. */
export interface Fanout {
  /** When the relay had read it. */
  inAt: number;
  /** When the first and the last copy had been written. */
  firstOutAt: number;
  lastOutAt: number;
  /** Copies written. */
  copies: number;
}

const fanouts = new Map<string, Fanout>();

/** A Group message is known by its last 16 bytes (ciphertext), the same in every copy. */
const keyOf = (bytes: Uint8Array) => toHex(bytes.subarray(bytes.length - 16));

/** A connection that notes when Group messages come in and when their copies have gone out. */
class TimedConnection implements RoomConnection {
  #inner: RoomConnection;

  constructor(inner: RoomConnection) {
    this.#inner = inner;
  }

  get peer() {
    return this.#inner.peer;
  }

  get verificationCode() {
    return this.#inner.verificationCode;
  }

  send(data: Uint8Array): Promise<void> {
    return this.#inner.send(data);
  }

  async sendBatch(messages: Uint8Array[]): Promise<void> {
    await this.#inner.sendBatch(messages);
    const now = performance.now();
    for (const message of messages) {
      if (message[0] !== RELAY_MESSAGE.groupFromRelay) continue;
      const fanout = fanouts.get(keyOf(message));
      if (!fanout) continue;
      if (fanout.copies++ === 0) fanout.firstOutAt = now;
      fanout.lastOutAt = now;
    }
  }

  async receive(): Promise<Uint8Array | null> {
    const data = await this.#inner.receive();
    if (data !== null && data[0] === RELAY_MESSAGE.group && data.length > 16) {
      const now = performance.now();
      fanouts.set(keyOf(data), { inAt: now, firstOutAt: now, lastOutAt: now, copies: 0 });
    }
    return data;
  }

  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }

  close(): void {
    this.#inner.close();
  }

  abort(error: unknown): Promise<void> {
    return this.#inner.abort(error);
  }
}

if (import.meta.main) {
  const maxMembers = Number(Deno.args[0] ?? 1100);
  const { identity } = await generateIdentity({ type: "ed25519", comment: "relay" });
  const relay = new Relay({ maxMembers });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const secure = await runResponder(conn, {
          identity,
          suites: ALL_SUITES,
          maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
          authorize: () => Promise.resolve(),
          timeoutMs: 300_000,
        });
        await relay.join(new TimedConnection(secure));
      })().catch(() => {});
    }
  })().catch(() => {});
  await serveRpc(async (request) => {
    switch (request.call) {
      case "port":
        return (listener.addr as Deno.NetAddr).port;
      case "fanouts": {
        const done = [...fanouts.values()];
        fanouts.clear();
        return done;
      }
      case "memory": {
        const { rss, heapUsed, external } = Deno.memoryUsage();
        return { rss, heapUsed, external };
      }
      case "close":
        listener.close();
        await relay.close();
        return null;
      default:
        throw new Error(`unknown call ${String(request.call)}`);
    }
  });
  Deno.exit(0);
}
