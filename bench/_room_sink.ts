/**
 * A process that accepts TCP connections on 127.0.0.1 and reads and discards everything: the far
 * end of the room fan-out benchmark's floor, the plain writes the relay process can make to as
 * many sockets as a room has members (`writeFloor` in `_room_relay_process.ts`).
 *
 * It answers `port` over bench/_rpc.ts.
 *
 * @module
 */

import { serveRpc } from "./_rpc.ts";

if (import.meta.main) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(64 * 1024);
        while (await conn.read(buffer) !== null) {
          // Discarded.
        }
      })().catch(() => {}).finally(() => conn.close());
    }
  })().catch(() => {});
  await serveRpc((request) => {
    if (request.call === "port") return Promise.resolve((listener.addr as Deno.NetAddr).port);
    return Promise.reject(new Error(`unknown call ${String(request.call)}`));
  });
  Deno.exit(0);
}
