/**
 * Keepalive end to end (PROTOCOL.md 8.6): real `listen` and `dial` processes whose keepalive
 * intervals differ. A quiet peer that answers pings is alive, whatever its own interval; and a
 * side that has sent close_notify (it can no longer ask) does not time out a peer that is quiet.
 */

import { strictEqual } from "node:assert/strict";
import { makePeer, startDialer, startListener, type TestPeer } from "../_helpers/peers.ts";

/** Longer than three of the listener's 1 s intervals, well short of the dialer's default 30 s. */
const QUIET_MS = 6000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withPeers(body: (alice: TestPeer, bob: TestPeer) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "securechat-keepalive-" });
  try {
    const [alice, bob] = await Promise.all([makePeer(root, "alice"), makePeer(root, "bob")]);
    await body(alice, bob);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("listen --keepalive 1 keeps a quiet default dialer while it streams to it", async () => {
  // Regression: the listener only pinged when it had sent nothing, so while it talked it never
  // asked; the dialer, pinging every 30 s, was presumed dead after 3 s.
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--keepalive", "1"]);
    const dialer = startDialer(alice, listener.port);
    await dialer.stderr.waitFor(/verification code/);
    let sent = "";
    for (let i = 0; i * 250 < QUIET_MS; i++) {
      const line = `tick ${i}\n`;
      await listener.stdin.write(encoder.encode(line));
      sent += line;
      await sleep(250);
    }
    await dialer.stdin.write(encoder.encode("answer after the quiet\n"));
    await Promise.all([listener.closeStdin(), dialer.closeStdin()]);
    const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
    strictEqual(l.code, 0, l.stderr);
    strictEqual(d.code, 0, d.stderr);
    strictEqual(decoder.decode(d.stdout), sent);
    strictEqual(decoder.decode(l.stdout), "answer after the quiet\n");
  });
});

Deno.test("listen --keepalive 1 with its input ended waits for a quiet default dialer", async () => {
  // Regression: after its own close_notify the listener could no longer ping, yet still timed
  // the dialer out after 3 s of quiet input; both sides failed.
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--keepalive", "1"]);
    await listener.closeStdin();
    const dialer = startDialer(alice, listener.port);
    await dialer.stderr.waitFor(/verification code/);
    await sleep(QUIET_MS);
    await dialer.stdin.write(encoder.encode("late but welcome\n"));
    await dialer.closeStdin();
    const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
    strictEqual(l.code, 0, l.stderr);
    strictEqual(d.code, 0, d.stderr);
    strictEqual(decoder.decode(l.stdout), "late but welcome\n");
    strictEqual(d.stdout.length, 0);
  });
});
