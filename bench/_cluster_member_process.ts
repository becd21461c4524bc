/**
 * A member process of the cluster benchmark: holds one {@linkcode ClusterPool} and answers the
 * {@linkcode ClusterPoolRequest}s of a {@linkcode ClusterProcessPool} over bench/_rpc.ts, so that
 * these members' MLS runs in a process of its own, apart from the relays and the other members.
 *
 * @module
 */

import { ClusterPool, type ClusterPoolRequest, wallNow } from "./_cluster_members.ts";
import { serveRpc } from "./_rpc.ts";

let pool: ClusterPool | undefined;

function need(): ClusterPool {
  if (pool === undefined) throw new Error("the pool has not been created");
  return pool;
}

async function answer(request: ClusterPoolRequest): Promise<unknown> {
  switch (request.call) {
    case "create":
      pool = await ClusterPool.create(request.options);
      return null;
    case "clock":
      return wallNow();
    case "waitRoster":
      return await need().waitRoster(request.total, request.timeoutMs);
    case "send":
      return await need().send(request.index, request.text);
    case "burst":
      return await need().burst(request.burst);
    case "arrivals":
      return await need().arrivals(request.text, request.expected, request.timeoutMs);
    case "waitDelivered":
      return await need().waitDelivered(request.total, request.timeoutMs);
    case "close":
      await pool?.close();
      pool = undefined;
      return null;
  }
}

if (import.meta.main) {
  await serveRpc((request) => answer(request as ClusterPoolRequest));
  Deno.exit(0);
}
