/**
 * A member process of the room fan-out benchmark: holds one {@linkcode MemberPool} and answers
 * the {@linkcode PoolRequest}s of a {@linkcode ProcessPool} over bench/_rpc.ts, so that these
 * members' decryption runs in a process of its own.
 *
 * @module
 */

import { MemberPool, type PoolRequest, wallNow } from "./_room_members.ts";
import { serveRpc } from "./_rpc.ts";

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

if (import.meta.main) {
  await serveRpc((request) => answer(request as PoolRequest));
  Deno.exit(0);
}
