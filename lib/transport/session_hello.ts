/**
 * The SessionHello: the first application record each side sends, saying whether it wants a raw
 * pipe or a chat, so a pipe never pours chat frames into a file and a room never takes raw bytes.
 *
 * Mirrors: docs/PROTOCOL.md section 12.
 *
 * @module
 */

import type { SecureConnection } from "./secure_connection.ts";
import { ProtocolError } from "../core/errors.ts";

/** Section 12 modes. */
export const MODE = { pipe: 1, chat: 2 } as const;

/** A session mode. */
export type Mode = keyof typeof MODE;

function describe(code: number): string {
  if (code === MODE.pipe) return "pipe mode";
  if (code === MODE.chat) return "chat mode";
  return `an unknown mode (${code})`;
}

/**
 * Sends our SessionHello and checks the peer's. On a mismatch the peer is sent
 * `no_application_protocol` and the connection is closed.
 *
 * @throws {ProtocolError} `mode_mismatch` or `no_session_hello`
 * @throws {SecurechatError} whatever receiving throws (alerts, truncation)
 */
export async function exchangeSessionHello(
  connection: SecureConnection,
  mode: Mode,
): Promise<void> {
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
    const theirs = first.length === 1 ? describe(first[0]!) : "a malformed session hello";
    problem = new ProtocolError(
      "mode_mismatch",
      `the peer wants ${theirs}, we are in ${describe(MODE[mode])}`,
      {
        alert: "no_application_protocol",
        hints: [
          mode === "pipe"
            ? "the peer runs a chat: leave out --pipe and use a terminal, or add --json"
            : "the peer is in pipe mode: add --pipe, or run both sides on a terminal",
        ],
      },
    );
  }
  if (problem) {
    await connection.abort(problem);
    throw problem;
  }
}
