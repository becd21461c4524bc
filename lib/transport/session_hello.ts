/**
 * The SessionHello: the first application record each side sends, saying whether it wants a raw
 * pipe or a room, so a pipe never pours room messages into a file and a room never takes raw
 * bytes. Mode 2, the version-1 room of an older securechat, is retired: it is named as such in the
 * mismatch so that its user knows to upgrade.
 *
 * It works on anything that sends and receives whole records in order (`HelloChannel`): a
 * SecureConnection, or the in-process link of a room's host (lib/room/room_connection.ts).
 *
 * Mirrors: docs/PROTOCOL.md section 12 (and 13, for the mode numbers of rooms).
 *
 * @module
 */

import { ProtocolError } from "../core/errors.ts";

/** Section 12 modes: 1 pipe, 3 room (version 2 of the room protocol). */
export const MODE = { pipe: 1, chat: 3 } as const;

/** Section 12: the retired mode of the version-1 room, recognised only to name it. */
export const RETIRED_ROOM_MODE = 2;

/** A session mode. */
export type Mode = keyof typeof MODE;

/** What the exchange needs of a connection: SecureConnection satisfies it. */
export interface HelloChannel {
  send(data: Uint8Array): Promise<void>;
  receive(): Promise<Uint8Array | null>;
  abort(error: unknown): Promise<void>;
}

const OLDER_PEER_HINT =
  "the peer runs an older securechat, whose rooms cannot talk to this one: both sides need the same version";

function describe(code: number): string {
  if (code === MODE.pipe) return "pipe mode";
  if (code === MODE.chat) return "chat mode";
  if (code === RETIRED_ROOM_MODE) return "the version-1 room";
  return `an unknown mode (${code})`;
}

function hintFor(ours: Mode, theirs: number | undefined): string {
  if (theirs === RETIRED_ROOM_MODE) return OLDER_PEER_HINT;
  return ours === "pipe"
    ? "the peer runs a chat: leave out --pipe and use a terminal, or add --json"
    : "the peer is in pipe mode: add --pipe, or run both sides on a terminal";
}

/**
 * Sends our SessionHello and checks the peer's. On a mismatch the peer is sent
 * `no_application_protocol` and the connection is closed.
 *
 * @throws {ProtocolError} `mode_mismatch` or `no_session_hello`
 * @throws {SecurechatError} whatever receiving throws (alerts, truncation)
 */
export async function exchangeSessionHello(connection: HelloChannel, mode: Mode): Promise<void> {
  const sending = connection.send(Uint8Array.of(MODE[mode]));
  let first: Uint8Array | null;
  try {
    first = await connection.receive();
    await sending;
  } catch (error) {
    // Whatever failed (a bad record, truncation), the connection must not linger half-open.
    sending.catch(() => {});
    await connection.abort(error);
    throw error;
  }
  let problem: ProtocolError | undefined;
  if (first === null) {
    problem = new ProtocolError("no_session_hello", "peer closed the session before saying hello");
  } else if (first.length !== 1 || first[0] !== MODE[mode]) {
    const code = first.length === 1 ? first[0]! : undefined;
    const theirs = code === undefined ? "a malformed session hello" : describe(code);
    problem = new ProtocolError(
      "mode_mismatch",
      `the peer wants ${theirs}, we are in ${describe(MODE[mode])}`,
      { alert: "no_application_protocol", hints: [hintFor(mode, code)] },
    );
  }
  if (problem) {
    await connection.abort(problem);
    throw problem;
  }
}
