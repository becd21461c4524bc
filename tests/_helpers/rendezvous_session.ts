/**
 * An end-to-end pipe session for rendezvous tests: the real handshake over two sockets (the
 * listener as responder, the dialer as initiator), then `runPipe()` on both with byte sources and
 * collecting sinks, each side's outcome kept (its error, what it output) instead of thrown. The
 * trust checks are those of the CLI, with the same errors: a dialer refuses any key but the one
 * it asked for (`dial --expect`, lib/cli/dial.ts), a listener with an authorized_keys file admits
 * only the keys listed there (`listen --authorized-keys`, lib/cli/listen.ts). The sockets may come
 * from a relay's splice or from a direct connection (through an on-path attacker): the session
 * runs the same over both.
 *
 * Also: a way to meet at a relay (`meetThrough()`), for the tests that check that honest clients
 * still meet after an attack on the relay.
 *
 * Mirrors: docs/PROTOCOL.md sections 6.3 and 11 (the session), 15.4 (what runs over a splice).
 *
 * @module
 */

import { concat } from "../../lib/core/bytes.ts";
import { SecurechatError, TrustError } from "../../lib/core/errors.ts";
import type { ByteSource } from "../../lib/core/io.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import type { VerifiedPeer } from "../../lib/protocol/handshake_state.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../../lib/protocol/record.ts";
import { connectToRelay, meetAt, registerAt } from "../../lib/rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../../lib/rendezvous/tokens.ts";
import { type AuthorizedKey, findAuthorizedKey } from "../../lib/trust/authorized_keys.ts";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import { type PipeEnds, runPipe } from "../../lib/transport/pipe.ts";

/** Who takes part: the listener, the dialer, and the key the dialer asked for. */
export interface Cast {
  listener: Identity;
  dialer: Identity;
  /** The fingerprint the dialer expects (default: the listener's). */
  expected?: string;
  /** The listener's authorized_keys entries and file (default: it admits anyone). */
  authorized?: { keys: AuthorizedKey[]; file: string };
}

/** An error as a user sees it: its class, its stable code and its one line. */
export interface ErrorShape {
  name: string;
  code: string;
  message: string;
}

/** How one side's session ended. */
export interface SideOutcome {
  /** Undefined when the side's pipe succeeded (its peer confirmed receipt of everything). */
  error: ErrorShape | undefined;
  /** Where it failed: in the handshake, or in the pipe after it. */
  stage: "handshake" | "pipe" | "done";
  /** What the side wrote to its output: only authenticated bytes, in order. */
  output: Uint8Array;
}

/** Both sides' outcomes. */
export interface SessionOutcome {
  listener: SideOutcome;
  dialer: SideOutcome;
}

/**
 * The check of `dial NAME --expect FINGERPRINT` (lib/cli/dial.ts), with its error.
 *
 * @param where how the dialer names the listener in the message
 */
export function expectKey(where: string, expected: string): (peer: VerifiedPeer) => Promise<void> {
  return (peer) => {
    const fingerprint = peer.identity.fingerprint;
    if (fingerprint === expected) return Promise.resolve();
    return Promise.reject(
      new TrustError(
        "fingerprint_mismatch",
        `listener ${where} has key ${fingerprint}, not the expected ${expected}`,
        {
          hints: [
            "someone may be intercepting this connection (a man-in-the-middle attack), or the pin is wrong",
          ],
        },
      ),
    );
  };
}

/** The check of `listen --authorized-keys FILE` (lib/cli/listen.ts), with its error. */
export function authorizedOnly(
  keys: AuthorizedKey[],
  file: string,
): (peer: VerifiedPeer) => Promise<void> {
  return (peer) => {
    if (findAuthorizedKey(keys, peer.identity.fingerprint) !== undefined) return Promise.resolve();
    return Promise.reject(
      new TrustError(
        "unauthorized_key",
        `key ${peer.identity.fingerprint} (calling itself "${peer.name}") is not in "${file}"`,
        { alert: "access_denied" },
      ),
    );
  };
}

/** What the dialer calls the listener in the errors of these tests, direct or through a relay. */
export const LISTENER_NAME = "the-listener";

/** The shape of `error` as compared by the tests. */
export function shapeOf(error: unknown): ErrorShape {
  if (error instanceof SecurechatError) {
    return { name: error.name, code: error.code, message: error.message };
  }
  return {
    name: error instanceof Error ? error.name : typeof error,
    code: "(not a securechat error)",
    message: error instanceof Error ? error.message : String(error),
  };
}

/** A byte source over `data`, read in whatever pieces the pipe asks for. */
export function sourceOf(data: Uint8Array): ByteSource {
  let offset = 0;
  return {
    read(buffer) {
      if (offset === data.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, data.length - offset);
      buffer.set(data.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

/** Pipe ends that read `input` and keep everything written to the output. */
function endsOf(input: Uint8Array, output: Uint8Array[]): PipeEnds {
  return {
    input: sourceOf(input),
    output: {
      write(data: Uint8Array) {
        output.push(data.slice());
        return Promise.resolve(data.length);
      },
    },
    inputIsTerminal: false,
  };
}

/** Options of the end-to-end handshake both sides run (a session's, as `dial` and `listen`). */
function sessionOptions(identity: Identity) {
  return {
    identity,
    name: identity.comment,
    suites: ["x25519-mlkem768", "x25519"] as const,
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    timeoutMs: 10_000,
  };
}

/**
 * Runs the handshake and a pipe over `sockets`: the dialer sends `inputs.toListener`, the
 * listener `inputs.toDialer`. Never throws: each side's failure is in its outcome.
 */
export async function pipeSession(
  sockets: { listener: Promise<Deno.Conn>; dialer: Promise<Deno.Conn> },
  cast: Cast,
  inputs: { toListener: Uint8Array; toDialer: Uint8Array },
): Promise<SessionOutcome> {
  const [listener, dialer] = await Promise.all([
    listenerSide(sockets.listener, cast, inputs.toDialer),
    dialerSide(sockets.dialer, cast, inputs.toListener),
  ]);
  return { listener, dialer };
}

/** The listener's half of {@linkcode pipeSession}: responder handshake, then a pipe sending `input`. */
export function listenerSide(
  socket: Promise<Deno.Conn>,
  cast: Cast,
  input: Uint8Array,
): Promise<SideOutcome> {
  return outcomeOf(async (output) => {
    const secure = await StageError.wrap("handshake", async () =>
      runResponder(await socket, {
        ...sessionOptions(cast.listener),
        authorize: cast.authorized === undefined
          ? () => Promise.resolve()
          : authorizedOnly(cast.authorized.keys, cast.authorized.file),
      }));
    await StageError.wrap("pipe", () => runPipe(secure, endsOf(input, output)));
  });
}

/** The dialer's half of {@linkcode pipeSession}: initiator handshake, then a pipe sending `input`. */
export function dialerSide(
  socket: Promise<Deno.Conn>,
  cast: Cast,
  input: Uint8Array,
): Promise<SideOutcome> {
  return outcomeOf(async (output) => {
    const secure = await StageError.wrap("handshake", async () =>
      runInitiator(await socket, {
        ...sessionOptions(cast.dialer),
        checkPeer: expectKey(LISTENER_NAME, cast.expected ?? cast.listener.fingerprint),
      }));
    await StageError.wrap("pipe", () => runPipe(secure, endsOf(input, output)));
  });
}

/** Runs one side, keeping what it output and how it ended. */
async function outcomeOf(body: (output: Uint8Array[]) => Promise<void>): Promise<SideOutcome> {
  const output: Uint8Array[] = [];
  try {
    await body(output);
    return { error: undefined, stage: "done", output: concat(...output) };
  } catch (error) {
    // Every step of a side is wrapped: the error says where it happened.
    const staged = error as StageError;
    return { error: shapeOf(staged.cause), stage: staged.stage, output: concat(...output) };
  }
}

/** A failure tagged with the stage it happened in. */
class StageError extends Error {
  readonly stage: "handshake" | "pipe";
  constructor(stage: "handshake" | "pipe", cause: unknown) {
    super(stage, { cause });
    this.stage = stage;
  }

  static async wrap<T>(stage: "handshake" | "pipe", body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw new StageError(stage, error);
    }
  }
}

/** A relay to meet at: where it listens and the key to pin. */
export interface RelayAddress {
  port: number;
  fingerprint: string;
}

/** The relay's key check of these tests: exactly the relay's fingerprint, as `--relay-key` does. */
export function pinRelay(fingerprint: string): (peer: VerifiedPeer) => Promise<void> {
  return expectKey("relay", fingerprint);
}

/**
 * An honest listener registers at `relay` under its own token and an honest dialer meets it;
 * resolves with the two spliced sockets (the listener's once paired).
 *
 * @param timeoutMs the deadline of each handshake with the relay and of each answer
 */
export async function meetThrough(
  relay: RelayAddress,
  cast: { listener: Identity },
  timeoutMs = 10_000,
): Promise<{ listener: Deno.Conn; dialer: Deno.Conn }> {
  const connect = () =>
    connectToRelay({
      host: "127.0.0.1",
      port: relay.port,
      checkRelay: pinRelay(relay.fingerprint),
      timeoutMs,
    });
  const token = await rendezvousToken(cast.listener.fingerprint);
  const registration = await registerAt(await connect(), token, { timeoutMs });
  const dialer = await meetAt(await connect(), token, { timeoutMs });
  return { listener: await registration.paired, dialer };
}
