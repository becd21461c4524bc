/**
 * The adversary suite (issue 5): an on-path attacker between real `dial` and `listen` processes,
 * one behaviour per test. Each test ends with the error README documents on the side that detects
 * the attack, a non-zero exit, and no altered byte on the receiver's output (its stdout is an
 * unaltered prefix of what was sent, or empty).
 *
 * Where each attack named in the issue is covered:
 *
 * | attack                                   | file                          |
 * | ---------------------------------------- | ----------------------------- |
 * | key substitution (a man in the middle)   | tests/e2e/mitm_test.ts        |
 * | bit flips in every handshake message     | tests/e2e/adversary_test.ts   |
 * | a bit flip in a record                   | tests/e2e/adversary_test.ts   |
 * | replay of a record                       | tests/e2e/adversary_test.ts   |
 * | reordering of records                    | tests/e2e/adversary_test.ts   |
 * | dropping a record                        | tests/e2e/adversary_test.ts   |
 * | truncation (a cut before close_notify)   | tests/e2e/adversary_test.ts   |
 * | downgrade (the hybrid suite stripped)    | tests/e2e/adversary_test.ts   |
 * | reflection of a peer's own messages      | this file                     |
 * | a second handshake on an open connection | this file                     |
 * | a record after close_notify              | this file                     |
 *
 * And the attacks of the external review (issue 11), each with the test that failed before its fix:
 *
 * | attack                                                  | file                                      |
 * | ------------------------------------------------------- | ----------------------------------------- |
 * | a flood of resets to end a listener or a room           | tests/e2e/listener_flood_test.ts          |
 * | ffdhe3072 hellos to stall a listener's CPU              | tests/e2e/listener_flood_test.ts          |
 * | idle connections holding every pending handshake slot  | tests/e2e/listener_flood_test.ts          |
 * | a file offer whose manifest plants dotfiles             | tests/transfer/transfer_hostile_test.ts   |
 * | a resume that probes or destroys a foreign .part file   | tests/transfer/transfer_hostile_test.ts   |
 * | a reset disguised as a FIN after a rejected record      | tests/e2e/adversary_test.ts               |
 * | a dropped receipt                                       | tests/e2e/adversary_test.ts               |
 * | a cut connection to crash the pipe with a stack trace   | tests/e2e/pipe_test.ts                    |
 * | transfer messages that flood a slow member off the room | tests/room/relay_limits_test.ts           |
 * | a transfer id reused to take another transfer over      | tests/transfer/transfer_ids_test.ts       |
 * | hellos from many addresses evicting honest handshakes   | tests/e2e/listener_flood_test.ts          |
 * | admitted peers waiting without bound (pipe --keep-open) | tests/e2e/pipe_test.ts                    |
 *
 * And a malicious relay against a room (PROTOCOL.md 13: it cannot read, forge, alter, replay or
 * move a message to another room, nor add, remove or rename a member), with real members over
 * real sockets facing `tests/_helpers/hostile_relay.ts`; every one is in
 * `tests/adversary/malicious_relay_test.ts`:
 *
 * | attack                                                                  |
 * | ----------------------------------------------------------------------- |
 * | a Group message made up, or made in a look-alike group of its own       |
 * | a byte flipped in a Group message, in a Commit, in a Welcome            |
 * | a Group message replayed (also after a commit), a Commit replayed       |
 * | a room's messages replayed into another room (review attack (a))        |
 * | a room of the relay's own making around a member's KeyPackage           |
 * | a second "alice" with another key (review attack (b))                   |
 * | a commit by a member who is not an admin: add, remove, rename, op       |
 * | a member's client signing as another, or taking another's credential    |
 * | the relay's `sender` field rewritten                                    |
 * | a Group message dropped or reordered for one member                     |
 * | a Commit dropped for one member                                         |
 * | a removed member kept reading by the relay                              |
 * | the room split into two groups                                          |
 *
 * And a hostile rendezvous relay (PROTOCOL.md 15.4: it joins the wrong peers, injects, alters,
 * drops, replays or cuts in its splice), `tests/_helpers/hostile_rendezvous.ts`, against real
 * clients, the real end-to-end handshake and a real pipe. Each attack is also staged on the path
 * between a directly connected dialer and listener with the same frame handler, and the victim's
 * error must be the same both ways; every one is in `tests/adversary/rendezvous_relay_test.ts`:
 *
 * | attack by the relay                                         | victim: error                        |
 * | ----------------------------------------------------------- | ------------------------------------ |
 * | a dialer spliced to another listener                        | dialer: fingerprint_mismatch         |
 * | a stranger spliced into a listener's registration           | listener: unauthorized_key           |
 * | bytes injected ahead of either side's magic                 | the other side: not_securechat       |
 * | a bit flipped in the ServerHello's key share                | dialer: handshake_tampered           |
 * | a made-up record, or a ClientHello, injected in the session | listener: bad_record_mac, unexpected |
 * | a bit flipped in a record, 1000 bytes dropped from one      | listener: bad_record_mac             |
 * | a record dropped; a record replayed                         | record_dropped; record_replayed      |
 * | the connection cut mid-session                              | truncated; the sender never succeeds |
 * | an earlier session's dialer replayed to a waiting listener  | listener: handshake_tampered         |
 * | an earlier session's listener replayed to a dialer          | dialer: handshake_tampered           |
 * | a record of an earlier session replayed into a new one      | listener: bad_record_mac             |
 *
 * The first test below checks that this map stays true: every file it names holds a test for the
 * attack. The attacks of this file need a proxy that also sends frames back the way they came,
 * `tests/_helpers/switchboard.ts`.
 */

import { deepStrictEqual, match, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  feed,
  makePeer,
  randomBytes,
  type RunningPeer,
  startDialer,
  startListener,
  type TestPeer,
} from "../_helpers/peers.ts";
import {
  type Direction,
  forward,
  startSwitchboard,
  type SwitchboardOptions,
  type SwitchHandler,
} from "../_helpers/switchboard.ts";

/** What the dialer sends: several 256 KiB records (pipe mode's record size). */
const DIALER_INPUT = randomBytes(1024 * 1024 + 12345);
/** What the listener sends, when a test has it send. */
const LISTENER_INPUT = randomBytes(600 * 1024 + 77);

/** Record indices of each direction: Identity, IdentityVerify, Finished, then SessionHello. */
const SESSION_HELLO = 3;
/** The first record that carries pipe data. */
const FIRST_DATA = 4;
/** Frame types (PROTOCOL.md 3.2). */
const CLIENT_HELLO = 0x01;
const SERVER_HELLO = 0x02;
/** A record frame of one content byte: a SessionHello or an alert such as close_notify (8.1). */
const ONE_BYTE_RECORD_LENGTH = 5 + 1 + 1 + 16;

/** No keepalive records (PROTOCOL.md 8.6): only the records a test counts are on the wire. */
const NO_KEEPALIVE = ["--keepalive", "0"];

let root = "";
let alice: TestPeer;
let bob: TestPeer;

async function setup() {
  if (root) return;
  root = await Deno.makeTempDir({ prefix: "securechat-adversary-suite-" });
  [alice, bob] = await Promise.all([makePeer(root, "alice"), makePeer(root, "bob")]);
}

/** How one attack is staged. */
interface Scenario extends SwitchboardOptions {
  handler: SwitchHandler;
  /** Sent by the dialer, then end of input; without it the dialer's input stays open. */
  dialerInput?: Uint8Array;
  /** Sent by the listener, then end of input; without it the listener's input stays open. */
  listenerInput?: Uint8Array;
}

interface Outcome {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/** Resolves true when `promise` settles within `ms`, else false. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]);
  clearTimeout(timer);
  return settled;
}

/** Waits for `peer` to exit; if it has not within `ms`, kills it and says so in the outcome. */
async function settle(peer: RunningPeer, ms: number): Promise<Outcome & { killed: boolean }> {
  const exited = await within(peer.child.status, ms);
  if (!exited) peer.child.kill("SIGKILL");
  return { ...await peer.finished(), killed: !exited };
}

/**
 * Runs alice (dialer) -> switchboard -> bob (listener) under `scenario`. An input left open is
 * closed once either process has exited (or the listener refused the connection, after which a
 * pipe-mode listener keeps serving and is stopped here).
 */
async function stage(scenario: Scenario) {
  await setup();
  const listener = await startListener(bob, NO_KEEPALIVE);
  const feeding: Promise<void>[] = [];
  if (scenario.listenerInput) {
    feeding.push(feed(listener.stdin, scenario.listenerInput).catch(() => {}));
  }
  const board = startSwitchboard(listener.port, scenario.handler, scenario);
  const dialer = startDialer(alice, board.port, [
    "--expect",
    bob.fingerprint,
    ...NO_KEEPALIVE,
  ]);
  if (scenario.dialerInput) feeding.push(feed(dialer.stdin, scenario.dialerInput).catch(() => {}));

  let refused = false;
  const refusal = listener.stderr.waitFor(/refused:/, 60_000).then(() => refused = true, () => {});
  await Promise.race([dialer.child.status, listener.child.status, refusal]);
  if (!scenario.dialerInput) await dialer.closeStdin();
  if (!scenario.listenerInput) await listener.closeStdin();
  const dial = await settle(dialer, 20_000);
  // The listener ends with its session, or refuses the connection and keeps serving.
  await within(Promise.race([listener.child.status, refusal]), 20_000);
  if (refused) listener.child.kill("SIGTERM");
  const listen = await settle(listener, 20_000);
  await Promise.all(feeding);
  board.close();
  await board.done.catch(() => {});
  ok(!dial.killed, `the dialer hung and was killed:\n${dial.stderr}`);
  ok(!listen.killed, `the listener hung and was killed:\n${listen.stderr}`);
  return { dial, listen, listenerRefused: refused };
}

/** `output` is an unaltered prefix of `sent`, and shorter than it (the attack cut it short). */
function assertOnlyAuthenticPrefix(output: Uint8Array, sent: Uint8Array) {
  ok(output.length < sent.length, `the receiver must not have received everything`);
  deepStrictEqual(output, sent.subarray(0, output.length));
}

/** The one error line a process printed, `securechat: error: ...`. */
function errorLine(stderr: string): string {
  const lines = stderr.split("\n").filter((line) => line.startsWith("securechat: error: "));
  strictEqual(lines.length, 1, `expected one error line in:\n${stderr}`);
  return lines[0]!;
}

/** Which side receives what `direction` carries. */
function receiverOf(direction: Direction): "dial" | "listen" {
  return direction === "toListener" ? "listen" : "dial";
}

/** Records `direction` carries that a test lets one side send. */
function inputFor(direction: Direction): Pick<Scenario, "dialerInput" | "listenerInput"> {
  return direction === "toListener"
    ? { dialerInput: DIALER_INPUT }
    : { listenerInput: LISTENER_INPUT };
}

function sentOver(direction: Direction): Uint8Array {
  return direction === "toListener" ? DIALER_INPUT : LISTENER_INPUT;
}

// The map in the module comment: each row names a file and the test there that covers the attack.
const ELSEWHERE: { attack: string; file: string; tests: string[] }[] = [
  {
    attack: "key substitution",
    file: "../e2e/mitm_test.ts",
    tests: [
      "a key-substituting man in the middle is detected by both sides",
      "without pins, a man in the middle shows up as different verification codes",
    ],
  },
  {
    attack: "bit flips in every handshake message",
    file: "../e2e/adversary_test.ts",
    tests: [
      "a bit flipped in the ${name} fails the handshake on both sides",
      ...[
        "ClientHello",
        "ServerHello's key share",
        "server Identity",
        "server IdentityVerify",
        "server Finished",
        "client Identity",
        "client IdentityVerify",
        "client Finished",
      ].map((message) => `["${message}", `),
    ],
  },
  {
    attack:
      "a record suite changed in the ServerHello (downgrade to another suite, or an unknown one)",
    file: "../e2e/adversary_test.ts",
    tests: ["a record suite changed in the ServerHello fails the handshake on both sides"],
  },
  {
    attack: "a bit flip in a record",
    file: "../e2e/adversary_test.ts",
    tests: ["a bit flipped in a record fails authentication at the receiver"],
  },
  {
    attack: "replay",
    file: "../e2e/adversary_test.ts",
    tests: ["a replayed record is detected as a replay"],
  },
  {
    attack: "reordering",
    file: "../e2e/adversary_test.ts",
    tests: ["reordered records are detected"],
  },
  {
    attack: "dropping",
    file: "../e2e/adversary_test.ts",
    tests: ["a dropped record is detected as missing"],
  },
  {
    attack: "truncation",
    file: "../e2e/adversary_test.ts",
    tests: ["a connection cut before close_notify is reported as truncation"],
  },
  {
    attack: "downgrade",
    file: "../e2e/adversary_test.ts",
    tests: ["stripping the hybrid suite from the offer (downgrade) is detected"],
  },
  // Issue 11, the external review.
  {
    attack: "a flood of resets",
    file: "../e2e/listener_flood_test.ts",
    tests: [
      "listen --keep-open survives many rounds of connections reset right after connecting",
      "listen --relay-only (a room) survives many rounds of resets and still admits a member",
    ],
  },
  {
    attack: "ffdhe3072 CPU flood",
    file: "../e2e/listener_flood_test.ts",
    tests: ["an honest dial completes within 2 s during a flood of ffdhe3072 hellos"],
  },
  {
    attack: "idle connections",
    file: "../e2e/listener_flood_test.ts",
    tests: ["an honest dial gets through while 300 connections that send only the magic are held"],
  },
  {
    attack: "dotfiles planted by an offer",
    file: "../transfer/transfer_hostile_test.ts",
    tests: [
      'an offer for "holiday-photos" whose manifest plants dotfiles is refused before anything is written',
      "a hidden file under the offer's name is refused without --allow-hidden-files",
    ],
  },
  {
    attack: "resume on a foreign .part file",
    file: "../transfer/transfer_hostile_test.ts",
    tests: [
      "a foreign report.pdf.part is never read, changed or deleted, even when its prefix matches",
    ],
  },
  {
    attack: "a reset disguised as a FIN",
    file: "../e2e/adversary_test.ts",
    tests: ["a bit flip whose reset the attacker turns into a clean FIN still fails the sender"],
  },
  {
    attack: "a dropped receipt",
    file: "../e2e/adversary_test.ts",
    tests: ["a dropped receipt fails the sender, though the receiver got everything"],
  },
  {
    attack: "a cut connection",
    file: "../e2e/pipe_test.ts",
    tests: ["a connection cut mid-transfer of 64 MiB each way ends both sides with one error line"],
  },
  {
    // The relay of PROTOCOL.md 13 no longer sees transfers (their messages are sealed inside the
    // group): it holds each member to a Direct byte rate, and drops a member too slow to read.
    attack: "transfer messages flooding a slow member",
    file: "../room/relay_limits_test.ts",
    tests: [
      "Relay holds a member to its Direct bytes a second",
      "Relay drops a member whose queue passes 16 MiB (in-memory link); the others get everything",
    ],
  },
  {
    attack: "a reused transfer id",
    file: "../transfer/transfer_ids_test.ts",
    tests: [
      "a hostile offer reusing another member's transfer id cannot take that transfer over",
      "a sender reusing the id of its own earlier transfer is refused with a specific reason",
    ],
  },
  {
    attack: "hellos from many addresses",
    file: "../e2e/listener_flood_test.ts",
    tests: [
      "an honest dial gets through while 11 other addresses keep the pending table full of hellos",
    ],
  },
  {
    attack: "admitted peers waiting without bound",
    file: "../e2e/pipe_test.ts",
    tests: [
      "listen --keep-open keeps at most 4 peers from one address waiting and refuses the rest as busy",
    ],
  },
  // A malicious relay against a room.
  {
    attack: "a made-up Group message",
    file: "./malicious_relay_test.ts",
    tests: [
      "a Group message the relay made up is rejected, never shown",
      "a chat line from a non-member's look-alike group (same group id and epoch) is rejected",
    ],
  },
  {
    attack: "an altered Group message, Commit or Welcome",
    file: "./malicious_relay_test.ts",
    tests: [
      "a byte flipped in a Group message is rejected, and the lost line is counted",
      "a byte flipped in a Commit is dropped as rejected; the genuine one that follows is applied",
      "a byte flipped in a Welcome is refused: the newcomer keeps waiting, and joins with the real one",
    ],
  },
  {
    attack: "a replayed Group message or Commit",
    file: "./malicious_relay_test.ts",
    tests: [
      "a Group message delivered twice is shown once, also when replayed after a commit",
      "a replayed Commit is rejected as a replay; the room goes on",
    ],
  },
  {
    attack: "messages moved to another room (review attack (a))",
    file: "./malicious_relay_test.ts",
    tests: [
      "cross-room: alice's lines of room 1 replayed into room 2 are never shown as from alice",
    ],
  },
  {
    attack: "a room of the relay's own making",
    file: "./malicious_relay_test.ts",
    tests: [
      "the relay's own room takes in only a waiting newcomer, who sees the relay's key admitted her",
      "a member refuses a Welcome to the relay's own room, made with its KeyPackage",
    ],
  },
  {
    attack: "a second alice (review attack (b))",
    file: "./malicious_relay_test.ts",
    tests: [
      "the relay cannot add a second alice: its Welcome and commit are dropped, never show her",
      "a second alice that an admin let in is shown with her own fingerprint, both names told apart",
      "a member that renames itself alice is told apart by its fingerprint, and the rename is shown",
    ],
  },
  {
    attack: "a commit by a member who is not an admin",
    file: "./malicious_relay_test.ts",
    tests: [
      "a commit by a member who is not an admin that ${rogueCommit.what} is refused by every honest member",
      'what: "adds eve (who knocked)"',
      'what: "removes bob"',
      'renames bob: removes him and adds a "bob" of her own',
      'what: "makes herself an admin"',
    ],
  },
  {
    attack: "impersonation of a member",
    file: "./malicious_relay_test.ts",
    tests: [
      "a member cannot sign as another: mallory's line from alice's leaf is rejected, alice's own shown",
      `what: "puts alice's credential on her own leaf"`,
      "the relay's sender field is not trusted: bob's line relabelled as alice's is shown from bob",
    ],
  },
  {
    attack: "messages dropped or reordered for one member",
    file: "./malicious_relay_test.ts",
    tests: [
      "a Group message dropped for carol only: her next line from bob says 1 has not arrived",
      "two Group messages swapped for carol are both shown once, in the relay's order",
      "a Commit dropped for carol only: she reads nothing of the new epoch, and the next commit ends her session",
      "a removed member whose removal the relay hides reads nothing said after it",
    ],
  },
  {
    attack: "a room split into two groups",
    file: "./malicious_relay_test.ts",
    tests: ["a relay that splits the room into two groups is caught by the epoch codes"],
  },
  // A hostile rendezvous relay.
  {
    attack: "a rendezvous relay joining the wrong peers",
    file: "./rendezvous_relay_test.ts",
    tests: [
      "a relay that splices a dialer to another listener is caught by the dialer's key check, as key substitution is",
      "a relay that splices a stranger into a listener's registration is refused by its authorized_keys, as a man in the middle is",
    ],
  },
  {
    attack: "a rendezvous relay injecting, altering, dropping or cutting in its splice",
    file: "./rendezvous_relay_test.ts",
    tests: [
      "a relay that ${what} is caught by the ${victim} as on the path: ${expected.error.code}",
      `what: "injects bytes ahead of the dialer's magic"`,
      `what: "injects bytes ahead of the listener's magic"`,
      `what: "flips a bit in the ServerHello's key share"`,
      'what: "injects a record it made up after the handshake"',
      `what: "injects the dialer's ClientHello after the first data record"`,
      'what: "flips a bit in a record"',
      'what: "drops a record"',
      'what: "drops 1000 bytes from the middle of a record"',
      'what: "replays a record"',
      'what: "cuts the connection mid-session"',
      "a relay that cuts mid-session never lets the sender believe its data arrived",
    ],
  },
  {
    attack: "a rendezvous relay replaying an earlier session",
    file: "./rendezvous_relay_test.ts",
    tests: [
      "a relay that replays an earlier session's dialer to a waiting listener fails its handshake, as a replaying attacker does",
      "a relay that answers a dialer with an earlier session's listener fails the dialer's handshake, as a replaying attacker does",
      "a relay that replays a record of an earlier session into a new one is caught as altered",
    ],
  },
];

Deno.test("every attack of the map that lives outside this file has its test where the map says", async () => {
  for (const { attack, file, tests } of ELSEWHERE) {
    const source = await Deno.readTextFile(new URL(file, import.meta.url));
    for (const name of tests) {
      ok(source.includes(name), `${attack}: ${file} has no test "${name}"`);
    }
  }
});

// Reflection: a peer is sent its own messages back (PROTOCOL.md 5.3 context strings, 7.3
// per-direction keys).

Deno.test("a dialer answered with its own magic and ClientHello fails with unexpected_message (exit 5)", async () => {
  const { dial, listen, listenerRefused } = await stage({
    dialerInput: DIALER_INPUT,
    // The attacker plays the listener: the dialer's opening goes back to it, nothing goes on.
    onMagic: (direction, magic) => direction === "toListener" ? { back: [magic] } : forward(magic),
    handler: (direction, frame, info) => {
      if (direction === "toDialer") return forward(frame);
      return info.type === CLIENT_HELLO ? { back: [frame] } : {};
    },
  });
  strictEqual(dial.code, 5, dial.stderr);
  match(
    errorLine(dial.stderr),
    /^securechat: error: peer sent a message before ServerHello out of order$/,
  );
  strictEqual(dial.stdout.length, 0);
  // The listener never heard from the dialer.
  ok(listenerRefused, listen.stderr);
  match(listen.stderr, /refused: peer closed the connection before saying anything/);
  strictEqual(listen.stdout.length, 0);
});

Deno.test("the listener's own Identity reflected to it in place of the dialer's fails its handshake", async () => {
  const { dial, listen, listenerRefused } = await stage({
    dialerInput: DIALER_INPUT,
    handler: (direction, frame, info) =>
      direction === "toDialer" && info.type === 0x17 && info.recordIndex === 0
        ? { forward: [frame], back: [frame] }
        : forward(frame),
  });
  // The listener detects it: its own Identity is sealed under its own handshake key (7.3).
  ok(listenerRefused, listen.stderr);
  match(
    listen.stderr,
    /^securechat: warning: connection from 127\.0\.0\.1:\d+ refused: cannot decrypt the peer's Identity: the handshake was altered on the way \(tampering, a downgrade attempt or a man in the middle\)$/m,
  );
  strictEqual(listen.stdout.length, 0);
  // The dialer, already past its flight, reads the listener's alert (6.2) and stops.
  strictEqual(dial.code, 5, dial.stderr);
  match(
    errorLine(dial.stderr),
    /^securechat: error: peer rejected the handshake with alert "bad_record_mac"$/,
  );
  strictEqual(dial.stdout.length, 0);
});

for (const direction of ["toListener", "toDialer"] as const) {
  const victim = direction === "toListener" ? "dialer" : "listener";
  Deno.test(`the ${victim}'s records reflected back to it fail authentication as altered (exit 4)`, async () => {
    const outcome = await stage({
      ...inputFor(direction),
      handler: (where, frame, info) =>
        where === direction && info.type === 0x17 && info.recordIndex >= FIRST_DATA
          ? { back: [frame] }
          : forward(frame),
    });
    // The victim opens its own record with the peer's key of this direction: nothing matches.
    const detector = outcome[receiverOf(direction) === "listen" ? "dial" : "listen"];
    strictEqual(detector.code, 4, detector.stderr);
    match(
      errorLine(detector.stderr),
      /^securechat: error: record authentication failed at record #1: the data was altered on the way$/,
    );
    strictEqual(detector.stdout.length, 0);
    // The intended receiver got no data and no close_notify: truncation.
    const receiver = outcome[receiverOf(direction)];
    strictEqual(receiver.code, 4, receiver.stderr);
    match(
      errorLine(receiver.stderr),
      /^securechat: error: connection ended without close_notify: the data may be truncated$/,
    );
    assertOnlyAuthenticPrefix(receiver.stdout, sentOver(direction));
  });
}

// A second handshake on an open connection: after the handshake only record frames are allowed
// (PROTOCOL.md 3.2, 6: any other input is unexpected_message).

const INJECTIONS: {
  what: string;
  direction: Direction;
  type: string;
  build(opening: Opening): Uint8Array;
}[] = [
  {
    what: "the dialer's ClientHello",
    direction: "toListener",
    type: "0x01",
    build: (o) => o.clientHello!,
  },
  {
    what: "the dialer's whole opening (magic and ClientHello)",
    direction: "toListener",
    type: "0x73",
    build: (o) => concatBytes(o.clientMagic!, o.clientHello!),
  },
  {
    what: "the listener's ServerHello",
    direction: "toDialer",
    type: "0x02",
    build: (o) => o.serverHello!,
  },
];

/** What the attacker recorded of the real handshake. */
interface Opening {
  clientMagic?: Uint8Array;
  clientHello?: Uint8Array;
  serverHello?: Uint8Array;
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

for (const { what, direction, type, build } of INJECTIONS) {
  Deno.test(`${what} injected after the first data record fails with unexpected_message (exit 5)`, async () => {
    const opening: Opening = {};
    const outcome = await stage({
      ...inputFor(direction),
      onMagic: (where, magic) => {
        if (where === "toListener") opening.clientMagic = magic;
        return forward(magic);
      },
      handler: (where, frame, info) => {
        if (info.type === CLIENT_HELLO) opening.clientHello = frame;
        if (info.type === SERVER_HELLO) opening.serverHello = frame;
        if (where === direction && info.type === 0x17 && info.recordIndex === FIRST_DATA) {
          return { forward: [frame, build(opening)] };
        }
        return forward(frame);
      },
    });
    const receiver = outcome[receiverOf(direction)];
    strictEqual(receiver.code, 5, receiver.stderr);
    match(
      errorLine(receiver.stderr),
      new RegExp(`^securechat: error: peer sent a frame of unexpected type ${type}$`),
    );
    assertOnlyAuthenticPrefix(receiver.stdout, sentOver(direction));
    ok(receiver.stdout.length > 0, "the data before the injection is delivered");
    const sender = outcome[receiverOf(direction) === "listen" ? "dial" : "listen"];
    notStrictEqual(sender.code, 0, sender.stderr);
  });
}

Deno.test("the dialer's handshake flight replayed into the open session fails authentication (exit 4)", async () => {
  const flight: Uint8Array[] = [];
  const { listen, dial } = await stage({
    dialerInput: DIALER_INPUT,
    handler: (direction, frame, info) => {
      if (direction !== "toListener" || info.type !== 0x17) return forward(frame);
      if (info.recordIndex < SESSION_HELLO) flight.push(frame);
      return info.recordIndex === FIRST_DATA ? { forward: [frame, ...flight] } : forward(frame);
    },
  });
  // Sealed under the dialer's handshake key, the old Identity opens under no application key.
  strictEqual(listen.code, 4, listen.stderr);
  match(
    errorLine(listen.stderr),
    /^securechat: error: record authentication failed at record #2: the data was altered on the way$/,
  );
  assertOnlyAuthenticPrefix(listen.stdout, DIALER_INPUT);
  notStrictEqual(dial.code, 0, dial.stderr);
});

// A record after close_notify (PROTOCOL.md 8.5: after receiving close_notify a side treats any
// further record as unexpected_message). The attacker lets the listener's close_notify through,
// then replays an earlier listener record behind it.

/** Forwards the listener's close_notify followed by a copy of its first data record. */
function replayAfterCloseNotify(): SwitchHandler {
  let early: Uint8Array | undefined;
  return (direction, frame, info) => {
    if (direction !== "toDialer" || info.type !== 0x17) return forward(frame);
    if (info.recordIndex === FIRST_DATA) early = frame;
    // Past the SessionHello the only one-byte record the listener sends is its close_notify.
    if (info.recordIndex > SESSION_HELLO && frame.length === ONE_BYTE_RECORD_LENGTH) {
      return { forward: [frame, early!] };
    }
    return forward(frame);
  };
}

Deno.test("a record replayed after close_notify never reaches the output", async () => {
  const { dial } = await stage({
    dialerInput: new TextEncoder().encode("bye\n"),
    listenerInput: LISTENER_INPUT,
    handler: replayAfterCloseNotify(),
  });
  // Everything before close_notify is authentic and complete; the copy behind it is not output.
  deepStrictEqual(dial.stdout, LISTENER_INPUT);
});

Deno.test({
  // Regression: pipe mode once stopped reading at close_notify, so this went unnoticed.
  name: "a record replayed after close_notify is reported as record_after_close (exit 5)",
  fn: async () => {
    const { dial } = await stage({
      dialerInput: new TextEncoder().encode("bye\n"),
      listenerInput: LISTENER_INPUT,
      handler: replayAfterCloseNotify(),
    });
    strictEqual(dial.code, 5, dial.stderr);
    match(
      errorLine(dial.stderr),
      /^securechat: error: peer sent data after its close_notify: the stream may have been tampered with$/,
    );
    ok(dial.stdout.length <= LISTENER_INPUT.length, "the replayed copy is not output");
    deepStrictEqual(dial.stdout, LISTENER_INPUT.subarray(0, dial.stdout.length));
  },
});

Deno.test({
  name: "adversary suite cleanup",
  fn: async () => {
    if (root) await Deno.remove(root, { recursive: true });
  },
});
