/**
 * Worker script of the room fan-out benchmark: holds one {@linkcode MemberPool} and answers the
 * {@linkcode PoolRequest}s of a {@linkcode WorkerPool} in the main thread, so that the members'
 * decryption and signature checks run on another core.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { MemberPool, type PoolReply, type PoolRequest, wallNow } from "./_room_members.ts";

let pool: MemberPool | undefined;

function need(): MemberPool {
  if (pool === undefined) throw new Error("the pool has not been created");
  return pool;
}

async function answer(request: PoolRequest): Promise<unknown> {
  switch (request.call) {
    case "create":
      pool = await MemberPool.create(request.options);
      return pool.size;
    case "clock":
      return wallNow();
    case "waitRoster":
      return await need().waitRoster(request.total, request.timeoutMs);
    case "send":
      return await need().send(request.index, request.text);
    case "arrivals":
      return await need().arrivals(request.text, request.expected, request.timeoutMs);
    case "forget":
      return await need().forget(request.text);
    case "delivered":
      return await need().delivered();
    case "close":
      await pool?.close();
      pool = undefined;
      return undefined;
  }
}

self.onmessage = (event: MessageEvent<PoolRequest>) => {
  const request = event.data;
  answer(request).then(
    (value) => self.postMessage({ id: request.id, value } satisfies PoolReply),
    (error) =>
      self.postMessage(
        {
          id: request.id,
          error: error instanceof Error ? error.message : String(error),
        } satisfies PoolReply,
      ),
  );
};
