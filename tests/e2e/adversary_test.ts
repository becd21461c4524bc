/**
 * An on-path attacker between real `dial` and `listen` processes: bit flips in every handshake
 * message and in records, a replayed record, a dropped record, a cut before close_notify, a reset
 * disguised as a clean close, a dropped receipt, and a downgrade that strips the hybrid suite. Each must end with its specific error and a non-zero exit,
 * and no altered byte may ever reach the receiver's output.
 */

import { deepStrictEqual, match, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  feed,
  makePeer,
  randomBytes,
  startDialer,
  startListener,
  type TestPeer,
} from "../_helpers/peers.ts";
import { type Direction, flipBit, type FrameHandler, startProxy } from "../_helpers/proxy.ts";
import type { SwitchboardOptions } from "../_helpers/switchboard.ts";

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const INPUT = randomBytes(2 * 1024 * 1024);

let root = "";
let alice: TestPeer;
let bob: TestPeer;

async function setup() {
  if (root) return;
  root = await Deno.makeTempDir({ prefix: "securechat-adversary-" });
  [alice, bob] = await Promise.all([makePeer(root, "alice"), makePeer(root, "bob")]);
}

/** Runs alice -> proxy -> bob with `handler`; alice sends INPUT, bob sends nothing. */
async function attack(handler: FrameHandler, options: SwitchboardOptions = {}) {
  await setup();
  const listener = await startListener(bob);
  await listener.closeStdin();
  const proxy = startProxy(listener.port, handler, options);
  const dialer = startDialer(alice, proxy.port, ["--expect", bob.fingerprint]);
  const feeding = feed(dialer.stdin, INPUT).catch(() => {});
  const d = await dialer.finished();
  await feeding;
  // A session failure ends a pipe-mode listener; a refused handshake does not (it keeps serving
  // others), so stop it once it has said so.
  const exited = listener.child.status.then(() => "exited");
  const outcome = await Promise.race([
    exited,
    listener.stderr.waitFor(/refused:/, 20_000).then(
      () => "refused",
      // stderr can end a moment before the exit status arrives: then the listener is exiting.
      (error) => Promise.race([exited, delay(10_000).then(() => Promise.reject(error))]),
    ),
  ]);
  if (outcome === "refused") listener.child.kill("SIGTERM");
  const l = await listener.finished();
  proxy.close();
  await proxy.done.catch(() => {});
  return { dial: d, listen: l, listenerRefused: outcome === "refused" };
}

/** The receiver's output must be an unaltered prefix of what was sent, and incomplete. */
function assertOnlyAuthenticPrefix(output: Uint8Array) {
  ok(output.length < INPUT.length, "the receiver must not have received everything");
  deepStrictEqual(output, INPUT.subarray(0, output.length));
}

// Records toListener: #0-#2 are the client's Identity, IdentityVerify and Finished; data from #3.
const FIRST_DATA = 3;

Deno.test("a bit flipped in a record fails authentication at the receiver", async () => {
  const { dial, listen } = await attack((direction, frame, info) =>
    direction === "toListener" && info.recordIndex === FIRST_DATA + 1
      ? [flipBit(frame, 5 + 100)]
      : [frame]
  );
  strictEqual(listen.code, 4, listen.stderr);
  match(listen.stderr, /error: record authentication failed at record #1: the data was altered/);
  assertOnlyAuthenticPrefix(listen.stdout);
  notStrictEqual(dial.code, 0, dial.stderr);
});

Deno.test("a replayed record is detected as a replay", async () => {
  const { dial, listen } = await attack((direction, frame, info) =>
    direction === "toListener" && info.recordIndex === FIRST_DATA + 1 ? [frame, frame] : [frame]
  );
  strictEqual(listen.code, 4, listen.stderr);
  match(listen.stderr, /error: record authentication failed: got record #1 again where #2 was due/);
  assertOnlyAuthenticPrefix(listen.stdout);
  notStrictEqual(dial.code, 0);
});

Deno.test("a dropped record is detected as missing", async () => {
  const { dial, listen } = await attack((direction, frame, info) =>
    direction === "toListener" && info.recordIndex === FIRST_DATA + 1 ? [] : [frame]
  );
  strictEqual(listen.code, 4, listen.stderr);
  match(
    listen.stderr,
    /error: record authentication failed: got record #2 where #1 was due: record #1 is missing/,
  );
  assertOnlyAuthenticPrefix(listen.stdout);
  notStrictEqual(dial.code, 0);
});

Deno.test("reordered records are detected", async () => {
  let held: Uint8Array | undefined;
  const { listen } = await attack((direction, frame, info) => {
    if (direction !== "toListener") return [frame];
    if (info.recordIndex === FIRST_DATA + 1) {
      held = frame;
      return [];
    }
    if (info.recordIndex === FIRST_DATA + 2 && held) return [frame, held];
    return [frame];
  });
  strictEqual(listen.code, 4, listen.stderr);
  match(listen.stderr, /record authentication failed: got record #2 where #1 was due/);
  assertOnlyAuthenticPrefix(listen.stdout);
});

Deno.test("a connection cut before close_notify is reported as truncation", async () => {
  const { dial, listen } = await attack((direction, frame, info) =>
    direction === "toListener" && info.recordIndex === FIRST_DATA + 2 ? "cut" : [frame]
  );
  strictEqual(listen.code, 4, listen.stderr);
  match(listen.stderr, /error: connection ended without close_notify: the data may be truncated/);
  assertOnlyAuthenticPrefix(listen.stdout);
  notStrictEqual(dial.code, 0, dial.stderr);
});

// PROTOCOL.md 8.5: success rests on the receiver's authenticated receipt, never on how TCP ends.
// Records toDialer: #3 the listener's SessionHello, #4 its close_notify (its input is empty), #5
// its receipt.
const LISTENER_RECEIPT = 5;

Deno.test("a bit flip whose reset the attacker turns into a clean FIN still fails the sender", async () => {
  const { dial, listen } = await attack(
    (direction, frame, info) =>
      direction === "toListener" && info.recordIndex === FIRST_DATA + 1
        ? [flipBit(frame, 5 + 100)]
        : [frame],
    { hideResets: true },
  );
  strictEqual(listen.code, 4, listen.stderr);
  match(listen.stderr, /error: record authentication failed at record #1: the data was altered/);
  assertOnlyAuthenticPrefix(listen.stdout);
  strictEqual(dial.code, 4, dial.stderr);
  match(
    dial.stderr,
    /^securechat: error: the peer did not confirm receipt: the connection ended before its receipt arrived$/m,
  );
});

Deno.test("a dropped receipt fails the sender, though the receiver got everything", async () => {
  const { dial, listen } = await attack((direction, frame, info) =>
    direction === "toDialer" && info.recordIndex === LISTENER_RECEIPT ? [] : [frame]
  );
  strictEqual(listen.code, 0, listen.stderr);
  deepStrictEqual(listen.stdout, INPUT);
  strictEqual(dial.code, 4, dial.stderr);
  match(
    dial.stderr,
    /^securechat: error: the peer did not confirm receipt: the connection ended before its receipt arrived$/m,
  );
});

/** Where the last byte of each message is: the ServerHello ends with its record suite (5.2). */
const HANDSHAKE_FLIPS: [string, Direction, number][] = [
  ["ClientHello", "toListener", 0],
  ["ServerHello's key share", "toDialer", 0],
  ["server Identity", "toDialer", 1],
  ["server IdentityVerify", "toDialer", 2],
  ["server Finished", "toDialer", 3],
  ["client Identity", "toListener", 1],
  ["client IdentityVerify", "toListener", 2],
  ["client Finished", "toListener", 3],
];

for (const [name, where, index] of HANDSHAKE_FLIPS) {
  Deno.test(`a bit flipped in the ${name} fails the handshake on both sides`, async () => {
    // The ServerHello's last byte is its record suite; its key share ends just before.
    const at = name.startsWith("ServerHello") ? -2 : -1;
    const { dial, listen, listenerRefused } = await attack((direction, frame, info) =>
      direction === where && info.index === index ? [flipBit(frame, at)] : [frame]
    );
    notStrictEqual(dial.code, 0, dial.stderr);
    ok(listenerRefused || listen.code !== 0, listen.stderr);
    strictEqual(listen.stdout.length, 0);
    strictEqual(dial.stdout.length, 0);
    match(
      dial.stderr + listen.stderr,
      /signature over the handshake does not verify|Finished check failed|the handshake was altered on the way|degenerate key share/,
    );
  });
}

Deno.test("a record suite changed in the ServerHello fails the handshake on both sides", async () => {
  // 0x02 (chacha20-poly1305) becomes 0x03, an id this version does not know, or 0x01
  // (aes-256-gcm), one the dialer offered: the transcript then differs from the listener's.
  const cases: [number, RegExp][] = [
    [0x01, /unknown record suite id 3/],
    [0x03, /the handshake was altered on the way|does not verify|Finished check failed/],
  ];
  for (const [mask, expected] of cases) {
    const { dial, listen, listenerRefused } = await attack((direction, frame, info) => {
      if (direction !== "toDialer" || info.index !== 0) return [frame];
      const changed = frame.slice();
      changed[changed.length - 1]! ^= mask;
      return [changed];
    });
    notStrictEqual(dial.code, 0, dial.stderr);
    ok(listenerRefused || listen.code !== 0, listen.stderr);
    strictEqual(dial.stdout.length + listen.stdout.length, 0);
    match(dial.stderr, expected);
  }
});

Deno.test("stripping the hybrid suite from the offer (downgrade) is detected", async () => {
  const { dial, listen, listenerRefused } = await attack((direction, frame, info) => {
    if (direction !== "toListener" || info.index !== 0) return [frame];
    return [stripFirstShare(frame)];
  });
  strictEqual(dial.code, 4, dial.stderr);
  // The handshake keys depend on the whole transcript, so the dialer cannot even read the reply.
  match(
    dial.stderr,
    /error: cannot decrypt the peer's Identity: the handshake was altered on the way/,
  );
  ok(listenerRefused, listen.stderr);
  strictEqual(listen.stdout.length, 0);
});

/** Rewrites a ClientHello frame without its first key share (PROTOCOL.md 5.1 layout). */
function stripFirstShare(frame: Uint8Array): Uint8Array {
  const body = frame.subarray(5);
  const versions = body[0]!;
  const sharesAt = 1 + versions + 32 + 4;
  const count = body[sharesAt]!;
  const firstLength = (body[sharesAt + 2]! << 8) | body[sharesAt + 3]!;
  const rest = body.subarray(sharesAt + 4 + firstLength);
  const newBody = new Uint8Array(sharesAt + 1 + rest.length);
  newBody.set(body.subarray(0, sharesAt));
  newBody[sharesAt] = count - 1;
  newBody.set(rest, sharesAt + 1);
  const out = new Uint8Array(5 + newBody.length);
  out[0] = frame[0]!;
  new DataView(out.buffer).setUint32(1, newBody.length);
  out.set(newBody, 5);
  return out;
}

Deno.test({
  name: "adversary suite cleanup",
  fn: async () => {
    if (root) await Deno.remove(root, { recursive: true });
  },
});
