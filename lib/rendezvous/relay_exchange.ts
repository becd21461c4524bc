/**
 * The relay's half of the records exchanged before a splice (PROTOCOL.md 15.2, 15.4): a receive
 * under a deadline, Refused or Redirect (16.5) with its goodbye, Paired with its close_notify, and the check that a
 * paired client's next record is Spliced. Small steps on one SecureConnection each, shared by the
 * relay's request, registration and pairing code.
 *
 * What it does not do: decide anything (lib/rendezvous/rendezvous_relay.ts does).
 *
 * @module
 */

import { sha256, toHex } from "../core/bytes.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import {
  decodeRendezvousRequest,
  encodeRendezvousAnswer,
  type RendezvousAnswer,
} from "./rendezvous_messages.ts";

/** How long a refused client is given to read the Refused before its connection is closed. */
export const FAREWELL_MS = 2_000;

/**
 * The next record, or `"late"` when none came within `timeoutMs` (the receive is then left to
 * fail when the caller closes the connection).
 */
export async function receiveWithin(
  secure: SecureConnection,
  timeoutMs: number,
): Promise<Uint8Array | null | "late"> {
  const receiving = secure.receive();
  receiving.catch(() => {}); // it loses the race when late, and fails once closed
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      receiving,
      new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), timeoutMs)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Refused, close_notify, and the connection closed once the client has closed its side (or after
 * FAREWELL_MS): closing with its bytes unread would reset the connection, which may destroy the
 * Refused before the client reads it. Never throws.
 *
 * @param pending a receive already waiting on the connection, read before any other
 */
export function refuse(
  secure: SecureConnection,
  reason: string,
  pending?: Promise<Uint8Array | null>,
): Promise<void> {
  return lastAnswer(secure, { type: "refused", reason }, pending);
}

/**
 * Section 16.5: Redirect to the relay at `address` where the listener waits, then close_notify,
 * closed as after Refused. Never throws.
 */
export function redirect(secure: SecureConnection, address: string): Promise<void> {
  return lastAnswer(secure, { type: "redirect", address });
}

/** A final answer (Refused, Redirect), close_notify, and the close once the client read it. */
async function lastAnswer(
  secure: SecureConnection,
  answer: RendezvousAnswer,
  pending?: Promise<Uint8Array | null>,
): Promise<void> {
  const timer = setTimeout(() => secure.close(), FAREWELL_MS);
  try {
    await secure.send(encodeRendezvousAnswer(answer));
    await secure.closeWrite();
    if (pending !== undefined && await pending === null) return;
    while (await secure.receive() !== null) {
      // Discarded: the client has its answer.
    }
  } catch {
    // Gone already, or cut by the timer.
  } finally {
    clearTimeout(timer);
    secure.close();
  }
}

/**
 * Section 15.4: Paired, then at once close_notify (without closing TCP), the relay's last record
 * on the connection. It also stops our keepalives and our answers to pings, so that none can
 * follow Paired into what the client will read as its session. Failures show in the next receive.
 */
export function sendPaired(secure: SecureConnection): void {
  secure.send(encodeRendezvousAnswer({ type: "paired" })).catch(() => {});
  secure.closeNotify().catch(() => {});
}

/**
 * Reads what a paired client sent after Paired: it must be exactly Spliced.
 *
 * @throws {Error} saying what came instead
 */
export async function expectSpliced(next: Promise<Uint8Array | null>): Promise<void> {
  const data = await next;
  if (data === null) throw new Error("a client closed after Paired");
  if (decodeRendezvousRequest(data).type !== "spliced") {
    throw new Error("a client sent another request instead of Spliced");
  }
}

/** How the log names a token: `#` and 6 hex digits of its hash, enough to follow it, no more. */
export async function tokenLabel(token: Uint8Array): Promise<string> {
  return "#" + toHex(await sha256(token)).slice(0, 6);
}
