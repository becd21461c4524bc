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
import { useSynchronousCipherForSmallInputs } from "../lib/crypto/aead.ts";
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
  /** Bytes of the Group message as the relay read it. */
  bytes: number;
}

const fanouts = new Map<string, Fanout>();
/** The fan-out each outgoing encoding belongs to, once seen. */
const outgoing = new WeakMap<Uint8Array, Fanout>();

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

  async send(data: Uint8Array): Promise<void> {
    await this.#inner.send(data);
    this.#written([data]);
  }

  async sendBatch(messages: Uint8Array[]): Promise<void> {
    await this.#inner.sendBatch(messages);
    this.#written(messages);
  }

  /** Notes the Group messages among `messages` as written now. */
  #written(messages: Uint8Array[]): void {
    const now = performance.now();
    for (const message of messages) {
      if (message[0] !== RELAY_MESSAGE.groupFromRelay) continue;
      // The relay hands every member the same encoding: its key is worked out once, not per
      // copy, so that timing the fan-out adds little to it.
      let fanout = outgoing.get(message);
      if (fanout === undefined) {
        fanout = fanouts.get(keyOf(message));
        if (fanout === undefined) continue;
        outgoing.set(message, fanout);
      }
      if (fanout.copies++ === 0) fanout.firstOutAt = now;
      fanout.lastOutAt = now;
    }
  }

  async receive(): Promise<Uint8Array | null> {
    const data = await this.#inner.receive();
    if (data !== null && data[0] === RELAY_MESSAGE.group && data.length > 16) {
      const now = performance.now();
      const fanout = { inAt: now, firstOutAt: now, lastOutAt: now, copies: 0, bytes: data.length };
      fanouts.set(keyOf(data), fanout);
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

/**
 * The floor under a fan-out: `count` plain TCP connections to `port` (`_room_sink.ts`), and the
 * milliseconds from the first to the last of `count` concurrent writes of `bytes` bytes, once
 * per round: what this runtime's own write calls cost, with no record layer and no relay.
 */
async function writeFloor(
  port: number,
  count: number,
  bytes: number,
  rounds: number,
): Promise<number[]> {
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.setNoDelay(true);
      conns.push(conn);
    }
    const record = new Uint8Array(bytes);
    const times: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const start = performance.now();
      await Promise.all(conns.map((conn) => conn.write(record)));
      times.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return times;
  } finally {
    for (const conn of conns) conn.close();
  }
}

if (import.meta.main) {
  const maxMembers = Number(Deno.args[0] ?? 1100);
  // As `listen --relay-only` does (lib/cli/listen.ts): a room seals one small record per member
  // for every message, synchronously with node:crypto rather than a WebCrypto round trip each.
  await useSynchronousCipherForSmallInputs();
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
          // Members on the same two cores, busy with the room's commits, may take seconds to
          // say their ClientHello: only the product's deadlines are measured, not enforced here.
          timeoutMs: 300_000,
          firstFlightTimeoutMs: 300_000,
        });
        await relay.join(new TimedConnection(secure));
      })().catch((error) =>
        // To stderr, which the parent shows when a member fails to join.
        Deno.stderr.writeSync(new TextEncoder().encode(`handshake failed: ${error}\n`))
      );
    }
  })().catch(() => {});
  await serveRpc(async (request) => {
    switch (request.call) {
      case "port":
        return (listener.addr as Deno.NetAddr).port;
      case "fanouts": {
        // With `copies`: only the fan-outs that have written that many copies (the others are
        // kept, to be counted on); without: all of them.
        const wanted = typeof request.copies === "number" ? request.copies : 0;
        const done = [...fanouts].filter(([, fanout]) => fanout.copies >= wanted);
        for (const [key] of done) fanouts.delete(key);
        return done.map(([, fanout]) => fanout);
      }
      case "memory": {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (request.gc === true && gc) gc();
        const { rss, heapUsed, heapTotal, external } = Deno.memoryUsage();
        return { rss, heapUsed, heapTotal, external };
      }
      case "writeFloor":
        return await writeFloor(
          request.port as number,
          request.count as number,
          request.bytes as number,
          request.rounds as number,
        );
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
