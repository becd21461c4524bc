/**
 * The raw TCP baseline: a Deno program of securechat's shape without the crypto. `listen` accepts
 * one connection on 127.0.0.1 (port 0 prints the port chosen, as securechat does), `dial
 * HOST:PORT` connects; then both copy stdin to the connection and the connection to stdout at
 * once, with the buffers securechat's pipe mode uses (256 KiB reads of stdin, a copy per read as
 * sealing makes, 64 KiB more for reads of the socket), half-close at end of input, and exit when
 * both directions ended.
 *
 * `deno run --allow-net=127.0.0.1 bench/_raw_tcp.ts listen 0` / `... dial 127.0.0.1:PORT`
 *
 * @module
 */

import { writeAll } from "../lib/core/io.ts";
import { PIPE_RECORD_PLAINTEXT } from "../lib/protocol/record.ts";

async function send(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(PIPE_RECORD_PLAINTEXT);
  while (true) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) break;
    if (n === 0) continue;
    await writeAll(conn, buffer.slice(0, n));
  }
  await conn.closeWrite();
}

async function receive(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(PIPE_RECORD_PLAINTEXT + 64 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    await writeAll(Deno.stdout, buffer.subarray(0, n));
  }
  Deno.stdout.close();
}

async function main(args: string[]): Promise<void> {
  const [mode, where] = args;
  let conn: Deno.TcpConn;
  if (mode === "listen") {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(where ?? 0) });
    const port = (listener.addr as Deno.NetAddr).port;
    await Deno.stderr.write(new TextEncoder().encode(`listening on 127.0.0.1:${port}\n`));
    conn = await listener.accept();
    listener.close();
  } else if (mode === "dial" && where !== undefined) {
    const [hostname, port] = where.split(":");
    conn = await Deno.connect({ hostname: hostname!, port: Number(port) });
  } else {
    throw new Error("usage: _raw_tcp.ts listen [PORT] | dial HOST:PORT");
  }
  await Promise.all([send(conn), receive(conn)]);
  conn.close();
}

if (import.meta.main) await main(Deno.args);
