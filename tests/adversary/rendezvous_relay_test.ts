/**
 * A hostile rendezvous relay (PROTOCOL.md 15.4, last paragraph: "a relay that joins the wrong
 * peers, injects, drops or cuts bytes is an attacker on the path") against real clients: the real
 * handshake to the relay, real Register and Meet, then the real end-to-end handshake and a real
 * pipe (`runPipe()`, with receipts) over the splice that `tests/_helpers/hostile_rendezvous.ts`
 * tampers with.
 *
 * Each attack is staged twice in the same test with the same frame handler: once by the relay in
 * its splice, once by an on-path attacker (`tests/_helpers/switchboard.ts`) between a dialer and a
 * listener connected directly, as tests/e2e/adversary_test.ts and tests/e2e/mitm_test.ts stage it
 * between processes. The victim's error must be exactly the one written here (class, code and
 * message, the ones those tests match), and the same both ways; the other side must not succeed
 * either; and every byte either side output must be an unaltered prefix of what was sent to it.
 * The trust checks are the CLI's (`--expect`, authorized_keys; tests/_helpers/rendezvous_session.ts).
 */

import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concat } from "../../lib/core/bytes.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import {
  connectToRelay,
  meetAt,
  registerAt,
  type Registered,
} from "../../lib/rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../../lib/rendezvous/tokens.ts";
import { readAuthorizedKeys } from "../../lib/trust/authorized_keys.ts";
import {
  bytesOf,
  framesOf,
  HostileRendezvous,
  type HostileRendezvousOptions,
  playBytes,
  type Recording,
  sameBytes,
} from "../_helpers/hostile_rendezvous.ts";
import { randomBytes } from "../_helpers/peers.ts";
import { flipBit } from "../_helpers/proxy.ts";
import { identities } from "../_helpers/relay_peers.ts";
import {
  type Cast,
  dialerSide,
  type ErrorShape,
  LISTENER_NAME,
  listenerSide,
  pinRelay,
  pipeSession,
  type SessionOutcome,
  type SideOutcome,
} from "../_helpers/rendezvous_session.ts";
import {
  type Direction,
  forward,
  startSwitchboard,
  type SwitchHandler,
  type SwitchVerdict,
} from "../_helpers/switchboard.ts";

const [relayIdentity, alice, bob, mallory, carol] = await identities(5) as [
  Identity,
  Identity,
  Identity,
  Identity,
  Identity,
];

/** What the dialer sends: several 256 KiB records (pipe mode's record size). */
const DIALER_INPUT = randomBytes(1024 * 1024 + 12345);
/** What the listener sends. */
const LISTENER_INPUT = randomBytes(600 * 1024 + 77);
const INPUTS = { toListener: DIALER_INPUT, toDialer: LISTENER_INPUT };

/** Record indices of each direction: Identity, IdentityVerify, Finished, then SessionHello. */
const SESSION_HELLO = 3;
/** The first record that carries pipe data: application record #1 (the SessionHello is #0). */
const FIRST_DATA = 4;
const CLIENT_HELLO = 0x01;
const SERVER_HELLO = 0x02;

/** How one attack is staged: the same handler in the relay's splice and on the path. */
interface Staging {
  tamper?: SwitchHandler;
  onMagic?: (direction: Direction, magic: Uint8Array) => SwitchVerdict;
}

/** Where the relay's clients find it, with its key pinned as `--relay-key` does. */
function connectTo(relay: HostileRendezvous) {
  return () =>
    connectToRelay({
      host: "127.0.0.1",
      port: relay.port,
      checkRelay: pinRelay(relayIdentity.fingerprint),
    });
}

/**
 * Through the hostile relay: `cast.listener` registers under its own token, `cast.dialer` meets
 * `meetToken` (default: the token of the key it expects), and the relay does as `options` say.
 */
async function throughRelay(
  options: Omit<HostileRendezvousOptions, "identity">,
  cast: Cast,
  others: Identity[] = [],
): Promise<SessionOutcome> {
  const relay = new HostileRendezvous({ identity: relayIdentity, ...options });
  const connect = connectTo(relay);
  try {
    // Other listeners wait too, for a relay that picks the wrong one.
    const waiting: Registered[] = [];
    for (const other of others) {
      waiting.push(await registerAt(await connect(), await rendezvousToken(other.fingerprint)));
    }
    const registration = await registerAt(
      await connect(),
      await rendezvousToken(cast.listener.fingerprint),
    );
    const asked = await rendezvousToken(cast.expected ?? cast.listener.fingerprint);
    const dialer = meetAt(await connect(), asked);
    return await pipeSession({ listener: registration.paired, dialer }, cast, INPUTS);
  } finally {
    await relay.close();
  }
}

/** On the path: the dialer connects to the attacker, which connects to the listener. */
async function onPath(staging: Staging, cast: Cast): Promise<SessionOutcome> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const board = startSwitchboard(
    listener.addr.port,
    staging.tamper ?? ((_direction, frame) => forward(frame)),
    staging.onMagic === undefined ? {} : { onMagic: staging.onMagic },
  );
  try {
    const dialer = Deno.connect({ hostname: "127.0.0.1", port: board.port });
    return await pipeSession({ listener: listener.accept(), dialer }, cast, INPUTS);
  } finally {
    board.close();
    await board.done.catch(() => {});
  }
}

/** What a victim must see: where it failed, and the error. */
interface Caught {
  stage: SideOutcome["stage"];
  error: ErrorShape;
}

/** `output` is an unaltered prefix of `sent` (possibly empty, possibly all of it). */
function assertAuthenticPrefix(output: Uint8Array, sent: Uint8Array, who: string) {
  ok(output.length <= sent.length, `${who} output more than was sent`);
  ok(sameBytes(output, sent.subarray(0, output.length)), `${who} output altered bytes`);
}

/**
 * The victim failed exactly as `expected`, the other side did not succeed, and nothing either
 * output was altered; the victim got less than was sent to it.
 */
function assertCaught(outcome: SessionOutcome, victim: keyof SessionOutcome, expected: Caught) {
  const caught = outcome[victim];
  deepStrictEqual({ stage: caught.stage, error: caught.error }, expected);
  const other = outcome[victim === "listener" ? "dialer" : "listener"];
  notStrictEqual(other.stage, "done", "the other side must not succeed either");
  assertAuthenticPrefix(outcome.listener.output, DIALER_INPUT, "the listener");
  assertAuthenticPrefix(outcome.dialer.output, LISTENER_INPUT, "the dialer");
  const sentToVictim = victim === "listener" ? DIALER_INPUT : LISTENER_INPUT;
  ok(caught.output.length < sentToVictim.length, "the victim must not have received everything");
}

/** Stages `staging` through the relay and on the path; both victims must see `expected`. */
async function assertSameAsOnPath(
  staging: () => Staging,
  victim: keyof SessionOutcome,
  expected: Caught,
) {
  const cast = { listener: alice, dialer: bob };
  const relayed = await throughRelay(staging(), cast);
  assertCaught(relayed, victim, expected);
  const direct = await onPath(staging(), cast);
  assertCaught(direct, victim, expected);
}

/** The message of tests/e2e/adversary_test.ts's downgrade and tests/adversary/index_test.ts's reflection. */
const TAMPERED_HANDSHAKE =
  "cannot decrypt the peer's Identity: the handshake was altered on the way (tampering, a downgrade attempt or a man in the middle)";

const altered = (record: number): Caught => ({
  stage: "pipe",
  error: {
    name: "AuthenticationError",
    code: "bad_record_mac",
    message: `record authentication failed at record #${record}: the data was altered on the way`,
  },
});

/** A record frame's header with a body of random bytes: a record nobody sealed. */
function forgedRecord(length: number): Uint8Array {
  const frame = randomBytes(5 + length);
  frame[0] = 0x17;
  new DataView(frame.buffer).setUint32(1, length);
  return frame;
}

Deno.test("control: a hostile relay that only copies lets the pipe through intact both ways", async () => {
  const outcome = await throughRelay({}, { listener: alice, dialer: bob });
  deepStrictEqual([outcome.listener.stage, outcome.dialer.stage], ["done", "done"]);
  ok(sameBytes(outcome.listener.output, DIALER_INPUT));
  ok(sameBytes(outcome.dialer.output, LISTENER_INPUT));
});

// Joining the wrong peers.

Deno.test("a relay that splices a dialer to another listener is caught by the dialer's key check, as key substitution is", async () => {
  // Bob asks for alice; the relay gives him mallory's registration. On the path: the attacker
  // sends bob's connection to mallory's listener. Mallory is a real listener that admits anyone.
  const cast = { listener: mallory, dialer: bob, expected: alice.fingerprint };
  const expected: Caught = {
    stage: "handshake",
    error: {
      name: "TrustError",
      code: "fingerprint_mismatch",
      message:
        `listener ${LISTENER_NAME} has key ${mallory.fingerprint}, not the expected ${alice.fingerprint}`,
    },
  };
  const relayed = await throughRelay(
    { choose: (token, waiting) => waiting.find((w) => !sameBytes(w.token, token)) },
    cast,
    [alice],
  );
  assertCaught(relayed, "dialer", expected);
  assertCaught(await onPath({}, cast), "dialer", expected);
  // Bob refused before sending his Identity: mallory learned nothing of who dialed.
  strictEqual(relayed.listener.stage, "handshake");
});

Deno.test("a relay that splices a stranger into a listener's registration is refused by its authorized_keys, as a man in the middle is", async () => {
  // Alice admits only bob. Mallory, in league with the relay, meets carol's token and accepts
  // whatever key answers; the relay hands him alice's registration.
  const root = await Deno.makeTempDir({ prefix: "securechat-rendezvous-adversary-" });
  try {
    const file = `${root}/authorized_keys`;
    await Deno.writeTextFile(file, `${bob.fingerprint} bob\n`);
    const authorized = { keys: await readAuthorizedKeys(file), file };
    const cast = { listener: alice, dialer: mallory, expected: alice.fingerprint, authorized };
    const expected: Caught = {
      stage: "handshake",
      error: {
        name: "TrustError",
        code: "unauthorized_key",
        message:
          `key ${mallory.fingerprint} (calling itself "${mallory.comment}") is not in "${file}"`,
      },
    };
    const relay = new HostileRendezvous({
      identity: relayIdentity,
      choose: (_token, waiting) => waiting[0],
    });
    const connect = connectTo(relay);
    const registration = await registerAt(
      await connect(),
      await rendezvousToken(alice.fingerprint),
    );
    const dialer = meetAt(await connect(), await rendezvousToken(carol.fingerprint));
    const relayed = await pipeSession({ listener: registration.paired, dialer }, cast, INPUTS);
    await relay.close();
    assertCaught(relayed, "listener", expected);
    assertCaught(await onPath({}, cast), "listener", expected);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

// Injecting, altering, dropping, replaying and cutting in the splice.

const HTTP_LINE = new TextEncoder().encode("GET / HTTP/1.1\r\n");

/** Injects `bytes` ahead of the magic that travels `where`. */
function injectBeforeMagic(where: Direction, bytes: Uint8Array): Staging {
  return {
    onMagic: (direction, magic) => ({ forward: direction === where ? [bytes, magic] : [magic] }),
  };
}

/** Applies `change` to the record `recordIndex` travelling `where`; forwards all else. */
function atRecord(
  where: Direction,
  recordIndex: number,
  change: (frame: Uint8Array) => ReturnType<SwitchHandler>,
): Staging {
  return {
    tamper: (direction, frame, info) =>
      direction === where && info.type === 0x17 && info.recordIndex === recordIndex
        ? change(frame)
        : forward(frame),
  };
}

const FRAME_ATTACKS: {
  what: string;
  victim: keyof SessionOutcome;
  staging: () => Staging;
  expected: Caught;
}[] = [
  {
    what: "injects bytes ahead of the dialer's magic",
    victim: "listener",
    staging: () => injectBeforeMagic("toListener", HTTP_LINE),
    expected: {
      stage: "handshake",
      error: {
        name: "ProtocolError",
        code: "not_securechat",
        message: "peer does not speak securechat (it sent something else, perhaps HTTP)",
      },
    },
  },
  {
    what: "injects bytes ahead of the listener's magic",
    victim: "dialer",
    staging: () => injectBeforeMagic("toDialer", HTTP_LINE),
    expected: {
      stage: "handshake",
      error: {
        name: "ProtocolError",
        code: "not_securechat",
        message: "the peer does not speak securechat",
      },
    },
  },
  {
    what: "flips a bit in the ServerHello's key share",
    victim: "dialer",
    staging: () => ({
      // The last byte is the record suite (PROTOCOL.md 5.2); the key share ends just before.
      tamper: (direction, frame, info) =>
        forward(
          direction === "toDialer" && info.type === SERVER_HELLO ? flipBit(frame, -2) : frame,
        ),
    }),
    expected: {
      stage: "handshake",
      error: {
        name: "AuthenticationError",
        code: "handshake_tampered",
        message: TAMPERED_HANDSHAKE,
      },
    },
  },
  {
    what: "injects a record it made up after the handshake",
    victim: "listener",
    staging: () =>
      atRecord("toListener", FIRST_DATA, (frame) => ({
        forward: [forgedRecord(frame.length - 5), frame],
      })),
    expected: altered(1),
  },
  {
    what: "injects the dialer's ClientHello after the first data record",
    victim: "listener",
    staging: () => {
      let hello: Uint8Array | undefined;
      return {
        tamper: (direction, frame, info) => {
          if (info.type === CLIENT_HELLO) hello = frame;
          return direction === "toListener" && info.type === 0x17 &&
              info.recordIndex === FIRST_DATA
            ? { forward: [frame, hello!] }
            : forward(frame);
        },
      };
    },
    expected: {
      stage: "pipe",
      error: {
        name: "ProtocolError",
        code: "unexpected_message",
        message: "peer sent a frame of unexpected type 0x01",
      },
    },
  },
  {
    what: "flips a bit in a record",
    victim: "listener",
    staging: () => atRecord("toListener", FIRST_DATA, (frame) => forward(flipBit(frame, 5 + 100))),
    expected: altered(1),
  },
  {
    what: "drops a record",
    victim: "listener",
    staging: () => atRecord("toListener", FIRST_DATA, () => ({})),
    expected: {
      stage: "pipe",
      error: {
        name: "AuthenticationError",
        code: "record_dropped",
        message:
          "record authentication failed: got record #2 where #1 was due: record #1 is missing (dropped or reordered on the way)",
      },
    },
  },
  {
    what: "drops 1000 bytes from the middle of a record",
    victim: "listener",
    staging: () =>
      atRecord("toListener", FIRST_DATA, (frame) =>
        forward(concat(
          frame.subarray(0, 5000),
          frame.subarray(6000),
        ))),
    expected: altered(1),
  },
  {
    what: "replays a record",
    victim: "listener",
    staging: () => atRecord("toListener", FIRST_DATA, (frame) => ({ forward: [frame, frame] })),
    expected: {
      stage: "pipe",
      error: {
        name: "AuthenticationError",
        code: "record_replayed",
        message:
          "record authentication failed: got record #1 again where #2 was due: a record was replayed or reordered",
      },
    },
  },
  {
    what: "cuts the connection mid-session",
    victim: "listener",
    staging: () => atRecord("toListener", FIRST_DATA + 2, () => "cut"),
    expected: {
      stage: "pipe",
      error: {
        name: "AuthenticationError",
        code: "truncated",
        message: "connection ended without close_notify: the data may be truncated",
      },
    },
  },
];

for (const { what, victim, staging, expected } of FRAME_ATTACKS) {
  Deno.test(`a relay that ${what} is caught by the ${victim} as on the path: ${expected.error.code}`, async () => {
    await assertSameAsOnPath(staging, victim, expected);
  });
}

/**
 * What a sender may see of a cut (tests/e2e/pipe_test.ts cuts at 16 points): its receipt
 * missing, its own incoming direction truncated between records or inside one, or its writes
 * refused. Never success.
 */
const CUT_AT_SENDER = ["no_receipt", "truncated", "truncated_frame", "send_failed"];

Deno.test("a relay that cuts mid-session never lets the sender believe its data arrived", async () => {
  // PROTOCOL.md 15.4: "a cut session never confirms delivery in pipe mode".
  for (const run of [throughRelay, onPath]) {
    const outcome = await run(
      atRecord("toListener", FIRST_DATA + 2, () => "cut"),
      { listener: alice, dialer: bob },
    );
    strictEqual(outcome.dialer.stage, "pipe");
    ok(CUT_AT_SENDER.includes(outcome.dialer.error!.code), JSON.stringify(outcome.dialer.error));
  }
});

// Replaying a recorded earlier session.

/** An honest session alice (listener) and bob (dialer) had through a relay that recorded it. */
async function recordedSession(): Promise<Recording> {
  const recorder = new HostileRendezvous({ identity: relayIdentity });
  const connect = connectTo(recorder);
  const token = await rendezvousToken(alice.fingerprint);
  const registration = await registerAt(await connect(), token);
  const dialer = meetAt(await connect(), token);
  const outcome = await pipeSession(
    { listener: registration.paired, dialer },
    { listener: alice, dialer: bob },
    INPUTS,
  );
  deepStrictEqual([outcome.listener.stage, outcome.dialer.stage], ["done", "done"]);
  await recorder.close();
  return recorder.sessions[0]!;
}

/** A replayed client flight (or server flight) opens under no key of the new handshake. */
const REPLAYED_FLIGHT: Caught = {
  stage: "handshake",
  error: {
    name: "AuthenticationError",
    code: "handshake_tampered",
    message: TAMPERED_HANDSHAKE,
  },
};

Deno.test("a relay that replays an earlier session's dialer to a waiting listener fails its handshake, as a replaying attacker does", async () => {
  const earlier = bytesOf(await recordedSession(), "toListener");
  const cast = { listener: alice, dialer: bob };

  const relay = new HostileRendezvous({ identity: relayIdentity });
  const registration = await registerAt(
    await connectTo(relay)(),
    await rendezvousToken(alice.fingerprint),
  );
  const [relayed] = await Promise.all([
    listenerSide(registration.paired, cast, LISTENER_INPUT),
    relay.impersonateDialer(await rendezvousToken(alice.fingerprint), earlier),
  ]);
  await relay.close();

  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [direct] = await Promise.all([
    listenerSide(listener.accept(), cast, LISTENER_INPUT),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }).then((conn) =>
      playBytes(conn, earlier)
    ),
  ]);
  for (const outcome of [relayed, direct]) {
    deepStrictEqual({ stage: outcome.stage, error: outcome.error }, REPLAYED_FLIGHT);
    strictEqual(outcome.output.length, 0);
  }
});

Deno.test("a relay that answers a dialer with an earlier session's listener fails the dialer's handshake, as a replaying attacker does", async () => {
  const earlier = bytesOf(await recordedSession(), "toDialer");
  const cast = { listener: alice, dialer: bob };

  const relay = new HostileRendezvous({ identity: relayIdentity, playListener: earlier });
  const socket = meetAt(await connectTo(relay)(), await rendezvousToken(alice.fingerprint));
  const relayed = await dialerSide(socket, cast, DIALER_INPUT);
  await relay.close();

  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [direct] = await Promise.all([
    dialerSide(
      Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
      cast,
      DIALER_INPUT,
    ),
    listener.accept().then((conn) => playBytes(conn, earlier)),
  ]);
  for (const outcome of [relayed, direct]) {
    deepStrictEqual({ stage: outcome.stage, error: outcome.error }, REPLAYED_FLIGHT);
    strictEqual(outcome.output.length, 0);
  }
});

Deno.test("a relay that replays a record of an earlier session into a new one is caught as altered", async () => {
  const records = framesOf(bytesOf(await recordedSession(), "toListener"))
    .filter((frame) => frame[0] === 0x17);
  const oldFirstData = records[FIRST_DATA]!;
  await assertSameAsOnPath(
    () => atRecord("toListener", FIRST_DATA, () => forward(oldFirstData)),
    "listener",
    altered(1),
  );
});

Deno.test("the SessionHello index of these tests is the one on the wire", async () => {
  // Guards the constants above: record SESSION_HELLO toListener is the dialer's one-byte hello.
  const frames = framesOf(bytesOf(await recordedSession(), "toListener"));
  const records = frames.filter((frame) => frame[0] === 0x17);
  strictEqual(records[SESSION_HELLO]!.length, 5 + 1 + 1 + 16);
  ok(records[FIRST_DATA]!.length > 256 * 1024);
});
