/**
 * A listener under bad input: garbage bytes, a plain HTTP request and a peer that stalls in the
 * handshake are each closed, with a warning, while a concurrent honest dialer is served.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { dialOnce, makePeer, startListener } from "../_helpers/peers.ts";

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(4096);
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      break;
    }
    if (n === null) break;
    chunks.push(...buffer.subarray(0, n));
  }
  return Uint8Array.from(chunks);
}

Deno.test("the listener tells off HTTP, drops garbage and slow peers, and serves an honest dialer", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-robust-" });
  try {
    const [alice, bob] = await Promise.all([makePeer(root, "alice"), makePeer(root, "bob")]);
    // --keep-open: the listener must outlive the honest session to show the slow peer is cut.
    const listener = await startListener(bob, ["--handshake-timeout", "2", "--keep-open"]);
    await listener.closeStdin();
    const target = { hostname: "127.0.0.1", port: listener.port };

    // A slow peer: the magic, then nothing.
    const slow = await Deno.connect(target);
    await slow.write(new TextEncoder().encode("securechat\r\n"));
    const slowStart = Date.now();
    const slowDone = readAll(slow).then(() => Date.now() - slowStart);

    // A plain HTTP client.
    const http = await Deno.connect(target);
    await http.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const httpReply = new TextDecoder().decode(await readAll(http));
    match(httpReply, /this port speaks the securechat protocol/);
    http.close();

    // Garbage after a correct magic: a frame header claiming 4 GiB.
    const garbage = await Deno.connect(target);
    await garbage.write(
      Uint8Array.of(...new TextEncoder().encode("securechat\r\n"), 1, 255, 255, 255, 255),
    );
    const garbageReply = await readAll(garbage);
    garbage.close();
    // It was answered with the magic and a plain alert frame (record_overflow = 22), then closed.
    strictEqual(new TextDecoder().decode(garbageReply.subarray(0, 12)), "securechat\r\n");
    deepStrictEqual(Array.from(garbageReply.subarray(12)), [0x15, 0, 0, 0, 1, 22]);

    // Meanwhile an honest dialer is served.
    const honest = await dialOnce(alice, listener.port, "still here\n");
    strictEqual(honest.code, 0, honest.stderr);

    const slowMs = await slowDone;
    slow.close();
    ok(slowMs >= 1500 && slowMs < 8000, `slow peer cut after ${slowMs} ms`);

    await listener.stderr.waitFor(/refused: handshake did not finish/);
    listener.child.kill("SIGTERM");
    const l = await listener.finished();
    strictEqual(new TextDecoder().decode(l.stdout), "still here\n");
    match(l.stderr, /refused: peer does not speak securechat/);
    match(l.stderr, /refused: peer sent a frame of 4294967295 bytes, more than the 4096 allowed/);
    match(l.stderr, /refused: handshake did not finish within 2 s/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dial to a port where nothing listens fails with a one-line error and exit 6", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-robust-" });
  try {
    const alice = await makePeer(root, "alice");
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const result = await dialOnce(alice, port, "");
    strictEqual(result.code, 6, result.stderr);
    match(result.stderr, /^securechat: error: cannot connect to 127\.0\.0\.1:\d+: refused$/m);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dial to something that is not securechat says so", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-robust-" });
  try {
    const alice = await makePeer(root, "alice");
    const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      const conn = await fake.accept();
      await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
      conn.close();
    })();
    const result = await dialOnce(alice, (fake.addr as Deno.NetAddr).port, "");
    await serving;
    fake.close();
    strictEqual(result.code, 5, result.stderr);
    match(result.stderr, /error: the peer does not speak securechat/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
