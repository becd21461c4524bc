/**
 * Pipe mode end to end: real `listen` and `dial` processes on loopback, real keys, real crypto.
 */

import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { type Direction, startProxy } from "../_helpers/proxy.ts";
import {
  feed,
  makePeer,
  randomBytes,
  sha256Hex,
  startDialer,
  startListener,
  type TestPeer,
} from "../_helpers/peers.ts";

const MiB = 1024 * 1024;

async function withPeers(
  body: (alice: TestPeer, bob: TestPeer, root: string) => Promise<void>,
  types: ["ed25519" | "rsa-pss", "ed25519" | "rsa-pss"] = ["ed25519", "ed25519"],
) {
  const root = await Deno.makeTempDir({ prefix: "securechat-pipe-" });
  try {
    const [alice, bob] = await Promise.all([
      makePeer(root, "alice", types[0]),
      makePeer(root, "bob", types[1]),
    ]);
    await body(alice, bob, root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("listen and dial move 50 MiB of random bytes both ways at once, intact", async () => {
  await withPeers(async (alice, bob) => {
    const toBob = randomBytes(50 * MiB);
    const toAlice = randomBytes(50 * MiB);
    const listener = await startListener(bob);
    const dialer = startDialer(alice, listener.port);
    await Promise.all([feed(dialer.stdin, toBob), feed(listener.stdin, toAlice)]);
    const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
    strictEqual(d.code, 0, d.stderr);
    strictEqual(l.code, 0, l.stderr);
    strictEqual(await sha256Hex(l.stdout), await sha256Hex(toBob));
    strictEqual(await sha256Hex(d.stdout), await sha256Hex(toAlice));
    // Both sides were told who the other is, with the same verification code.
    match(d.stderr, new RegExp(`"bob" ${bob.fingerprint.replace(/[+/]/g, "\\$&")}`));
    match(l.stderr, new RegExp(`"alice" ${alice.fingerprint.replace(/[+/]/g, "\\$&")}`));
    const code = (text: string) => /verification code: (\d{4} \d{4} \d{4})/.exec(text)?.[1];
    strictEqual(code(d.stderr), code(l.stderr));
    match(d.stderr, /suite x25519-mlkem768, records chacha20-poly1305\)/);
    match(l.stderr, /suite x25519-mlkem768, records chacha20-poly1305\)/);
  });
});

Deno.test("--record-suites: the listener's preference picks AES-256-GCM, 8 MiB each way intact; no common record suite fails on both sides with one line", async () => {
  await withPeers(async (alice, bob) => {
    const toBob = randomBytes(8 * MiB);
    const toAlice = randomBytes(8 * MiB);
    const listener = await startListener(bob, ["--record-suites", "aes-256-gcm,chacha20-poly1305"]);
    const dialer = startDialer(alice, listener.port);
    await Promise.all([feed(dialer.stdin, toBob), feed(listener.stdin, toAlice)]);
    const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
    strictEqual(d.code, 0, d.stderr);
    strictEqual(l.code, 0, l.stderr);
    strictEqual(await sha256Hex(l.stdout), await sha256Hex(toBob));
    strictEqual(await sha256Hex(d.stdout), await sha256Hex(toAlice));
    match(d.stderr, /records aes-256-gcm\)/);
    match(l.stderr, /records aes-256-gcm\)/);

    const only = await startListener(bob, ["--record-suites", "aes-256-gcm"]);
    const refused = startDialer(alice, only.port, ["--record-suites", "chacha20-poly1305"]);
    await refused.closeStdin();
    const r = await refused.finished();
    ok(r.code !== 0, "the dialer fails");
    match(r.stderr, /handshake_failure/);
    strictEqual(r.stdout.length, 0);
    // The listener says why and keeps waiting for a dialer it can serve.
    await only.stderr.waitFor(
      /no common record suite: peer accepts chacha20-poly1305, we accept aes-256-gcm/,
    );
    only.child.kill("SIGTERM");
    await only.finished();
  });
});

Deno.test("pipe mode works with RSA-PSS identities and each key agreement suite", async () => {
  await withPeers(async (alice, bob) => {
    for (const suite of ["x25519-mlkem768", "x25519", "ffdhe3072"]) {
      // ffdhe3072 is opt-in on a listener (PROTOCOL.md section 4.3).
      const listener = await startListener(bob, ["--suites", "x25519-mlkem768,x25519,ffdhe3072"]);
      const dialer = startDialer(alice, listener.port, ["--suites", suite]);
      await feed(dialer.stdin, new TextEncoder().encode(`over ${suite}\n`));
      await listener.closeStdin();
      const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
      strictEqual(d.code, 0, d.stderr);
      strictEqual(l.code, 0, l.stderr);
      strictEqual(new TextDecoder().decode(l.stdout), `over ${suite}\n`);
      match(d.stderr, new RegExp(`suite ${suite}, records chacha20-poly1305\\)`));
    }
  }, ["rsa-pss", "rsa-pss"]);
});

Deno.test("an empty input still ends with close_notify on both sides and exit 0", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob);
    const dialer = startDialer(alice, listener.port);
    await dialer.closeStdin();
    await listener.closeStdin();
    const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
    strictEqual(d.code, 0, d.stderr);
    strictEqual(l.code, 0, l.stderr);
    deepStrictEqual([d.stdout.length, l.stdout.length], [0, 0]);
  });
});

Deno.test("listen --keep-open serves one dialer after another", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--keep-open"]);
    await listener.closeStdin();
    for (const word of ["one", "two", "three"]) {
      const dialer = startDialer(alice, listener.port);
      await feed(dialer.stdin, new TextEncoder().encode(`${word}\n`));
      const d = await dialer.finished();
      strictEqual(d.code, 0, d.stderr);
      await listener.stderr.waitFor(
        new RegExp(`ended: sent 0 bytes, received ${word.length + 1}$`),
      );
    }
    listener.child.kill("SIGTERM");
    const l = await listener.finished();
    strictEqual(new TextDecoder().decode(l.stdout), "one\ntwo\nthree\n");
    strictEqual(l.stderr.includes("error:"), false, l.stderr);
  });
});

Deno.test("pipe --progress shows a progress line on stderr and leaves stdout clean", async () => {
  await withPeers(async (alice, bob) => {
    const data = randomBytes(8 * MiB);
    const listener = await startListener(bob);
    await listener.closeStdin();
    const dialer = startDialer(alice, listener.port, ["--progress"]);
    await feed(dialer.stdin, data);
    const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
    strictEqual(d.code, 0, d.stderr);
    match(d.stderr, /sent [\d.]+ (MiB|KiB), received 0 B/);
    strictEqual(await sha256Hex(l.stdout), await sha256Hex(data));
  });
});

Deno.test("no common suite fails the handshake with a one-line error on both sides", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--suites", "ffdhe3072"]);
    const dialer = startDialer(alice, listener.port, ["--suites", "x25519"]);
    await dialer.closeStdin();
    const d = await dialer.finished();
    strictEqual(d.code, 5, d.stderr);
    match(d.stderr, /handshake_failure/);
    await listener.stderr.waitFor(/no common key agreement suite/);
    listener.child.kill("SIGTERM");
    await listener.finished();
  });
});

/** Resolves with the first `count` results of `promises` to settle, in the order they settled. */
function firstSettled<T>(promises: Promise<T>[], count: number): Promise<T[]> {
  const done: T[] = [];
  return new Promise((resolve) => {
    for (const promise of promises) {
      promise.then((value) => {
        done.push(value);
        if (done.length === count) resolve([...done]);
      });
    }
  });
}

/** Writes `block` `times` times, then ends the input; stops quietly once the child is gone. */
async function feedRepeated(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  block: Uint8Array,
  times: number,
): Promise<void> {
  try {
    for (let i = 0; i < times; i++) await writer.write(block);
    await writer.close();
  } catch {
    // The process exited (the cut ended it): the rest has nowhere to go.
  }
}

/** Exit codes README documents for a broken session: authentication (truncation), protocol, connection. */
const CUT_EXIT_CODES = [4, 5, 6];

function assertOneErrorLine(label: string, code: number, stderr: string) {
  ok(CUT_EXIT_CODES.includes(code), `${label} exited ${code}:\n${stderr}`);
  const lines = stderr.split("\n").filter((line) => line !== "");
  deepStrictEqual(
    lines.filter((line) => !line.startsWith("securechat: ")),
    [],
    `${label}:\n${stderr}`,
  );
  strictEqual(
    lines.filter((line) => line.startsWith("securechat: error: ")).length,
    1,
    `${label}:\n${stderr}`,
  );
}

Deno.test("a connection cut mid-transfer of 64 MiB each way ends both sides with one error line", async () => {
  await withPeers(async (alice, bob) => {
    const block = randomBytes(MiB);
    // Pipe records are 256 KiB; record #3 of each direction is the SessionHello.
    const rounds: [Direction, number][] = [4, 5, 9, 37, 61, 100, 150, 230].flatMap((index) => [
      ["toListener", index],
      ["toDialer", index + 1],
    ]);
    for (const [direction, recordIndex] of rounds) {
      const listener = await startListener(bob, ["--keepalive", "0"]);
      const proxy = startProxy(
        listener.port,
        (to, frame, info) => to === direction && info.recordIndex === recordIndex ? "cut" : [frame],
      );
      const dialer = startDialer(alice, proxy.port, ["--keepalive", "0"]);
      const feeding = Promise.all([
        feedRepeated(dialer.stdin, block, 64),
        feedRepeated(listener.stdin, block, 64),
      ]);
      const [d, l] = await Promise.all([dialer.finished(), listener.finished()]);
      await feeding;
      proxy.close();
      await proxy.done.catch(() => {});
      const round = `cut ${direction} at record #${recordIndex}`;
      assertOneErrorLine(`${round}: dialer`, d.code, d.stderr);
      assertOneErrorLine(`${round}: listener`, l.code, l.stderr);
    }
  });
});

Deno.test("listen --keep-open keeps at most 4 peers from one address waiting and refuses the rest as busy", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--keep-open"]);
    await listener.closeStdin();
    // The first peer keeps its input open: the listener is busy until it ends.
    const first = startDialer(alice, listener.port);
    await listener.stderr.waitFor(/connection from/);
    // Seven more complete the handshake meanwhile. Before the cap all seven waited, without bound.
    const others = Array.from({ length: 7 }, (_, i) => {
      const dialer = startDialer(alice, listener.port);
      feed(dialer.stdin, new TextEncoder().encode(`waiting ${i}\n`));
      return dialer.finished();
    });
    // Before the cap none was refused (all seven waited): this fails after 10 s.
    await listener.stderr.waitFor(/refused: already serving a peer/, 10_000);
    const refused = await firstSettled(others, 3);
    for (const r of refused) {
      ok(r.code !== 0, r.stderr);
      match(r.stderr, /user_canceled/);
    }
    const busyLines = listener.stderr.lines.filter((line) => /refused: already serving/.test(line));
    deepStrictEqual(busyLines.map((line) => line.replace(/^.*refused: /, "")), [
      "already serving a peer (4 waiting)",
      "already serving a peer (4 waiting)",
      "already serving a peer (4 waiting)",
    ]);
    // The first session ends; the four that waited are served in turn, each with its input.
    await feed(first.stdin, new TextEncoder().encode("first\n"));
    const f = await first.finished();
    strictEqual(f.code, 0, f.stderr);
    const served = (await Promise.all(others)).filter((r) => r.code === 0);
    strictEqual(served.length, 4);
    // The listener went on: the four that waited were served in turn, and one more after them.
    const last = startDialer(alice, listener.port);
    await feed(last.stdin, new TextEncoder().encode("after\n"));
    strictEqual((await last.finished()).code, 0);
    await listener.stderr.waitFor(/ended: sent 0 bytes, received 6$/);
    listener.child.kill("SIGTERM");
    const l = await listener.finished();
    const lines = new TextDecoder().decode(l.stdout).split("\n").filter((x) => x !== "");
    strictEqual(lines.length, 6, lines.join());
    deepStrictEqual([lines[0], lines.at(-1)], ["first", "after"]);
    strictEqual(l.stderr.includes("error:"), false, l.stderr);
  });
});

Deno.test("listen --keep-open --max-waiting 1 keeps one peer waiting and refuses the others", async () => {
  await withPeers(async (alice, bob) => {
    const listener = await startListener(bob, ["--keep-open", "--max-waiting", "1"]);
    await listener.closeStdin();
    const first = startDialer(alice, listener.port);
    await listener.stderr.waitFor(/connection from/);
    const others = Array.from({ length: 3 }, (_, i) => {
      const dialer = startDialer(alice, listener.port);
      feed(dialer.stdin, new TextEncoder().encode(`waiting ${i}\n`));
      return dialer.finished();
    });
    await listener.stderr.waitFor(/refused: already serving a peer/, 10_000);
    const refused = await firstSettled(others, 2);
    for (const r of refused) ok(r.code !== 0, r.stderr);
    await feed(first.stdin, new TextEncoder().encode("first\n"));
    strictEqual((await first.finished()).code, 0);
    strictEqual((await Promise.all(others)).filter((r) => r.code === 0).length, 1);
    listener.child.kill("SIGTERM");
    const l = await listener.finished();
    match(l.stderr, /refused: already serving a peer \(1 waiting\)/);
    strictEqual(new TextDecoder().decode(l.stdout).split("\n").length, 3); // two lines and ""
  });
});
