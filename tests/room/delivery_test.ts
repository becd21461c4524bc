/**
 * One member's outgoing queue, over a fake connection: order, batching, dropping a member that
 * does not keep up, and a connection that stops accepting data.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { RoomConnection } from "../../lib/room/room_connection.ts";
import { MAX_PENDING_BYTES, MemberOutbox } from "../../lib/room/delivery.ts";

/** A connection whose writes wait until `release()` is called (or fail when `fail` is set). */
function fakeConnection() {
  const batches: Uint8Array[][] = [];
  let release: () => void = () => {};
  const state = { closed: false, fail: false, hold: false };
  const connection = {
    sendBatch(messages: Uint8Array[]): Promise<void> {
      if (state.fail) return Promise.reject(new Error("broken pipe"));
      batches.push(messages);
      if (!state.hold) return Promise.resolve();
      return new Promise<void>((resolve) => release = resolve);
    },
    close() {
      state.closed = true;
    },
  } as unknown as RoomConnection;
  return { connection, batches, state, release: () => release() };
}

const message = (n: number, size = 4) => new Uint8Array(size).fill(n);

Deno.test("MemberOutbox.deliver() sends in order, batching what piled up during a write", async () => {
  const fake = fakeConnection();
  fake.state.hold = true;
  const outbox = new MemberOutbox(fake.connection, "alice", () => {});
  outbox.deliver(message(0));
  for (let i = 1; i <= 300; i++) outbox.deliver(message(i));
  fake.state.hold = false;
  fake.release();
  await outbox.flush();
  // The first write carried one message; the 300 queued behind it went out 256 and 44.
  deepStrictEqual(fake.batches.map((batch) => batch.length), [1, 256, 44]);
  deepStrictEqual(
    fake.batches.flat().map((bytes) => bytes[0]),
    [...Array(301).keys()].map((i) => i & 0xff),
  );
  ok(!outbox.gone);
});

Deno.test("MemberOutbox.deliver() drops a member whose backlog passes MAX_PENDING_BYTES (16 MiB)", async () => {
  strictEqual(MAX_PENDING_BYTES, 16 * 1024 * 1024);
  const fake = fakeConnection();
  fake.state.hold = true;
  const log: string[] = [];
  const outbox = new MemberOutbox(fake.connection, "slow", (line) => log.push(line));
  const big = MAX_PENDING_BYTES / 4;
  for (let i = 0; i < 4; i++) outbox.deliver(message(i, big));
  ok(!outbox.gone, "exactly MAX_PENDING_BYTES is still kept");
  outbox.deliver(message(4, 1));
  ok(outbox.gone && fake.state.closed);
  strictEqual(outbox.lost, "dropped: it did not keep up with the room");
  deepStrictEqual(log, ['dropping "slow": it does not keep up with the room']);
  fake.release();
  await outbox.flush();
  strictEqual(fake.batches.length, 1, "nothing more is written once the member is dropped");
});

Deno.test("MemberOutbox marks a member gone when its connection stops accepting data", async () => {
  const fake = fakeConnection();
  fake.state.fail = true;
  const outbox = new MemberOutbox(fake.connection, "gone", () => {});
  outbox.deliver(message(1));
  await outbox.flush();
  ok(outbox.gone && fake.state.closed);
  strictEqual(outbox.lost, "connection lost (it stopped accepting data)");
  outbox.deliver(message(2));
  await outbox.flush();
  strictEqual(fake.batches.length, 0);
});
