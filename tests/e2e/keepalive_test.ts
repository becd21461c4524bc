/**
 * Keepalive end to end (PROTOCOL.md 8.6): real `listen` and `dial` processes whose keepalive
 * intervals differ. A quiet peer that answers pings is alive, whatever its own interval, also
 * when its output is slow; a side that has sent close_notify keeps asking in pipe mode, so it
 * detects a stopped peer at every stage, also while it waits for the receipt.
 */

import { deepStrictEqual, match, strictEqual } from "node:assert/strict";
import { spawnCli } from "../_helpers/cli.ts";
import {
  feed,
  LineWatcher,
  makePeer,
  randomBytes,
  type RunningPeer,
  startDialer,
  startListener,
  type TestPeer,
} from "../_helpers/peers.ts";

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

// PROTOCOL.md 8.5 and 8.6 in pipe mode: keepalives go on after close_notify until both receipts,
// so a peer that goes silent (a stopped process, a dead machine: no FIN, no reset) is detected at
// every stage, also while we wait for its receipt. On code that stopped timing the peer out after
// close_notify, these dialers wait forever; the guard kills them and fails the test.

/** Far longer than three 1 s intervals; only a dialer that never notices reaches it. */
const GUARD_MS = 20_000;

/** The peer's result, or a failure naming what hung (the process is killed). */
async function finishedWithin(peer: RunningPeer, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<"hung">((resolve) =>
    timer = setTimeout(() => resolve("hung"), GUARD_MS)
  );
  const outcome = await Promise.race([peer.finished(), guard]);
  clearTimeout(timer);
  if (outcome === "hung") {
    peer.child.kill("SIGKILL");
    await peer.finished().catch(() => {});
    throw new Error(`${what} did not end within ${GUARD_MS} ms; stderr:\n${peer.stderr.text}`);
  }
  return outcome;
}

/** A pipe listener whose standard output nobody reads until `drain()`: its writes block. */
async function startSlowReader(peer: TestPeer, extraArgs: string[] = []) {
  const child = spawnCli(["listen", "--port", "0", "--pipe", ...extraArgs], { env: peer.env });
  const stderr = new LineWatcher(child.stderr);
  const line = await stderr.waitFor(/listening on/);
  const port = Number(/:(\d+) as /.exec(line)?.[1]);
  const stdin = child.stdin.getWriter();
  return {
    child,
    port,
    stderr,
    closeStdin: () => stdin.close().catch(() => {}),
    /** Reads standard output to its end. */
    drain: () => new Response(child.stdout).bytes(),
    /** Kills it for good (also when stopped) and waits for the exit. */
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await stderr.done.catch(() => {});
    },
  };
}

function assertSilentPeerError(result: { code: number; stderr: string }) {
  strictEqual(result.code, 6, result.stderr); // a connection error, never 0
  match(
    result.stderr,
    /^securechat: error: peer silent for \d+ s: the connection is presumed dead$/m,
  );
}

Deno.test("dial --pipe --keepalive 1 with its input ended detects a listener stopped before its close_notify", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startSlowReader(bob);
    try {
      const dialer = startDialer(alice, listener.port, ["--keepalive", "1"]);
      // One byte through proves both SessionHellos were exchanged: the dialer sends data only
      // after the listener's.
      await dialer.stdin.write(encoder.encode("x"));
      const reader = listener.child.stdout.getReader();
      strictEqual((await reader.read()).value?.length, 1);
      reader.releaseLock();
      await dialer.closeStdin(); // our close_notify goes out; the listener's input stays open
      // Ample time for the dialer's close_notify to leave (the pipe shows no sign of it).
      await sleep(1000);
      Deno.kill(listener.child.pid, "SIGSTOP"); // no FIN, no reset: a silent peer
      assertSilentPeerError(await finishedWithin(dialer, "the dialer"));
    } finally {
      await listener.kill();
    }
  });
});

Deno.test("dial --pipe --keepalive 1 detects a listener stopped after its close_notify, before its receipt", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startSlowReader(bob);
    try {
      await listener.closeStdin(); // its close_notify goes out right after the session hello
      const dialer = startDialer(alice, listener.port, ["--keepalive", "1"]);
      await listener.stderr.waitFor(/verification code/);
      await dialer.stderr.waitFor(/verification code/);
      // Its receipt waits for all our bytes on its output, which nobody reads: it blocks there.
      await feed(dialer.stdin, randomBytes(1 << 20));
      let dialerEnded = false;
      dialer.finished().finally(() => dialerEnded = true).catch(() => {});
      // Ample time for its close_notify, sent within milliseconds of the session hello (a
      // standard output that ends is no signal: a process cannot close its inherited pipe).
      await sleep(2000);
      strictEqual(dialerEnded, false, dialer.stderr.text);
      Deno.kill(listener.child.pid, "SIGSTOP");
      assertSilentPeerError(await finishedWithin(dialer, "the dialer"));
    } finally {
      await listener.kill();
    }
  });
});

for (const listenerKeepalive of [["--keepalive", "1"], []]) {
  const label = listenerKeepalive.length ? "listen --keepalive 1" : "a default listener";
  Deno.test(`${label} whose output is slow is not presumed dead by dial --keepalive 1, nor presumes it dead`, async () => {
    // Regression: a side blocked on its own output reads nothing, yet counted that as the peer's
    // silence. And such a side cannot answer pings, so it now pings every second instead.
    await withPeers(async (alice, bob) => {
      const listener = await startSlowReader(bob, listenerKeepalive);
      try {
        const dialer = startDialer(alice, listener.port, ["--keepalive", "1"]);
        await dialer.stderr.waitFor(/verification code/);
        const input = randomBytes(1 << 20);
        await feed(dialer.stdin, input);
        let dialerEnded = false;
        const dialed = dialer.finished().finally(() => dialerEnded = true);
        await sleep(QUIET_MS);
        strictEqual(dialerEnded, false, `the dialer ended early: ${dialer.stderr.text}`);
        const [output] = await Promise.all([listener.drain(), listener.closeStdin()]);
        const [d, status] = await Promise.all([
          finishedWithin(dialer, "the dialer"),
          listener.child.status,
        ]);
        await dialed;
        strictEqual(status.code, 0, listener.stderr.text);
        strictEqual(d.code, 0, d.stderr);
        deepStrictEqual(output, input);
      } finally {
        await listener.kill();
      }
    });
  });
}

Deno.test("pipes with --keepalive 1 on both sides, one input ended at once, the other slow, end intact", async () => {
  // Keepalives after close_notify (and around the receipts) must not disturb an honest pipe.
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--keepalive", "1"]);
    await listener.closeStdin();
    const dialer = startDialer(alice, listener.port, ["--keepalive", "1"]);
    await dialer.stderr.waitFor(/verification code/);
    let sent = "";
    for (let i = 0; i < 8; i++) {
      const line = `slow line ${i}\n`;
      await dialer.stdin.write(encoder.encode(line));
      sent += line;
      await sleep(500);
    }
    await dialer.closeStdin();
    const [d, l] = await Promise.all([
      finishedWithin(dialer, "the dialer"),
      finishedWithin(listener, "the listener"),
    ]);
    strictEqual(l.code, 0, l.stderr);
    strictEqual(d.code, 0, d.stderr);
    strictEqual(decoder.decode(l.stdout), sent);
    strictEqual(d.stdout.length, 0);
  });
});
