/**
 * Trust end to end: known_hosts on first use, match and change; `--expect` pins; authorized_keys
 * refuses an unknown dialer while the listener keeps serving an authorized one.
 */

import { doesNotMatch, match, strictEqual } from "node:assert/strict";
import { dialOnce, makePeer, startListener, startPeer, type TestPeer } from "../_helpers/peers.ts";

async function withRoot(body: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "securechat-trust-" });
  try {
    await body(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** One pipe session: bob listens, `dialer` dials with `input`; returns the dialer's result. */
async function session(
  bob: TestPeer,
  dialer: TestPeer,
  extra: string[] = [],
  listenArgs: string[] = [],
) {
  const listener = await startListener(bob, listenArgs);
  await listener.closeStdin();
  const result = await dialOnce(dialer, listener.port, "ping\n", extra);
  if (result.code !== 0) listener.child.kill("SIGTERM");
  const l = await listener.finished();
  return { dial: result, listen: l, port: listener.port };
}

Deno.test("dial records the listener on first contact, then matches it silently", async () => {
  await withRoot(async (root) => {
    const [alice, bob] = await Promise.all([makePeer(root, "alice"), makePeer(root, "bob")]);
    const first = await session(bob, alice);
    strictEqual(first.dial.code, 0, first.dial.stderr);
    match(first.dial.stderr, /first contact with 127\.0\.0\.1:\d+: trusting its key SHA256:/);
    match(first.dial.stderr, /compare the verification code/);
    const knownHosts = await Deno.readTextFile(`${alice.home}/known_hosts`);
    strictEqual(knownHosts.includes(`127.0.0.1:${first.port} ${bob.fingerprint}`), true);

    const listener = await startListenerOnPort(bob, first.port);
    await listener.closeStdin();
    const again = await dialOnce(alice, first.port, "two\n");
    strictEqual(again.code, 0, again.stderr);
    doesNotMatch(again.stderr, /first contact/);
    await listener.finished();
    strictEqual(await Deno.readTextFile(`${alice.home}/known_hosts`), knownHosts);
  });
});

async function startListenerOnPort(peer: TestPeer, port: number) {
  // The port was just freed by the previous listener; retry briefly if the OS still holds it.
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const running = startPeer(["listen", "--port", String(port), "--pipe"], peer.env);
      const line = await Promise.race([
        running.stderr.waitFor(/listening on|error/),
        running.child.status.then(() => "exited"),
      ]);
      if (/listening on/.test(line)) return { ...running, port };
      await running.finished();
    } catch {
      // Try again.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`cannot listen on port ${port} again`);
}

Deno.test("dial refuses loudly when the listener's key changed, and says how to fix it", async () => {
  await withRoot(async (root) => {
    const [alice, bob, eve] = await Promise.all([
      makePeer(root, "alice"),
      makePeer(root, "bob"),
      makePeer(root, "eve"),
    ]);
    const first = await session(bob, alice);
    strictEqual(first.dial.code, 0, first.dial.stderr);
    // Eve now answers on the port alice knows as bob's.
    const listener = await startListenerOnPort(eve, first.port);
    const result = await dialOnce(alice, first.port, "secret\n");
    strictEqual(result.code, 3, result.stderr);
    match(
      result.stderr,
      /error: host key for "127\.0\.0\.1:\d+" changed: expected "SHA256:.*", got "SHA256:.*"/,
    );
    match(result.stderr, /man-in-the-middle/);
    match(result.stderr, /remove line 1 of ".*known_hosts"/);
    // Nothing of alice's input reached eve, and alice never revealed her identity.
    const l = await (async () => {
      await listener.closeStdin();
      listener.child.kill("SIGTERM");
      return await listener.finished();
    })();
    strictEqual(l.stdout.length, 0);
    doesNotMatch(l.stderr, new RegExp(alice.fingerprint.replace(/[+/]/g, "\\$&")));
  });
});

Deno.test("dial --expect accepts the pinned key and refuses any other", async () => {
  await withRoot(async (root) => {
    const [alice, bob, eve] = await Promise.all([
      makePeer(root, "alice"),
      makePeer(root, "bob"),
      makePeer(root, "eve"),
    ]);
    const good = await session(bob, alice, ["--expect", bob.fingerprint]);
    strictEqual(good.dial.code, 0, good.dial.stderr);
    doesNotMatch(good.dial.stderr, /first contact/);
    const bad = await session(bob, alice, ["--expect", eve.fingerprint]);
    strictEqual(bad.dial.code, 3, bad.dial.stderr);
    match(
      bad.dial.stderr,
      /error: listener 127\.0\.0\.1:\d+ has key SHA256:\S+, not the expected SHA256:/,
    );
    const malformed = await session(bob, alice, ["--expect", "SHA256:short"]);
    strictEqual(malformed.dial.code, 2, malformed.dial.stderr);
  });
});

Deno.test("listen --authorized-keys refuses an unknown dialer and keeps serving an authorized one", async () => {
  await withRoot(async (root) => {
    const [alice, bob, mallory] = await Promise.all([
      makePeer(root, "alice"),
      makePeer(root, "bob"),
      makePeer(root, "mallory"),
    ]);
    const authorized = `${root}/authorized_keys`;
    await Deno.writeTextFile(authorized, `# friends\n${alice.fingerprint} alice-laptop\n`);
    const listener = await startListener(bob, ["--authorized-keys", authorized]);
    await listener.closeStdin();
    const refused = await dialOnce(mallory, listener.port, "let me in\n");
    strictEqual(refused.code === 0, false, refused.stderr);
    match(refused.stderr, /access_denied/);
    await listener.stderr.waitFor(/refused: key SHA256:\S+ \(calling itself "mallory"\) is not in/);
    const admitted = await dialOnce(alice, listener.port, "hello bob\n");
    strictEqual(admitted.code, 0, admitted.stderr);
    const l = await listener.finished();
    strictEqual(l.code, 0, l.stderr);
    strictEqual(new TextDecoder().decode(l.stdout), "hello bob\n");
    match(l.stderr, /"alice-laptop" SHA256:/);
  });
});
