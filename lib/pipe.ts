/**
 * Raw pipe mode: bytes from the local input go to the peer as application data, the peer's
 * application data goes to the local output, both directions at once, binary-safe.
 *
 * End of input sends close_notify. The peer's close_notify ends the output. The session is over once
 * both happened; when the input is a terminal (nobody will type an end of input), the peer's
 * close_notify also ends our direction. Any failure aborts the connection with an alert and is
 * thrown to the caller; nothing unauthenticated ever reaches the output.
 *
 * Mirrors: docs/PROTOCOL.md section 11.
 *
 * @module
 */

import type { SecureConnection } from "./connection.ts";
import { SecurechatError } from "./errors.ts";
import { exchangeSessionHello } from "./session_hello.ts";
import { type ByteSink, type ByteSource, writeAll } from "./frame.ts";
import { PIPE_RECORD_PLAINTEXT } from "./record.ts";

/** The local side of a pipe. */
export interface PipeEnds {
  input: ByteSource;
  output: ByteSink & { close?(): void };
  /** True when the input is a terminal: the peer's close_notify then also ends our direction. */
  inputIsTerminal: boolean;
  /** Called with the running byte counts, for progress and tests. */
  onProgress?(sent: number, received: number): void;
}

/** Byte counts of a finished pipe. */
export interface PipeStats {
  sent: number;
  received: number;
}

/**
 * Runs the pipe until both directions have ended.
 *
 * @throws {SecurechatError} when authentication fails, the stream is truncated, or the peer aborts
 */
export async function runPipe(connection: SecureConnection, ends: PipeEnds): Promise<PipeStats> {
  await exchangeSessionHello(connection, "pipe");
  const stats: PipeStats = { sent: 0, received: 0 };
  let stopSending = false;
  let resolvePeerClosed: () => void = () => {};
  const peerClosed = new Promise<void>((resolve) => resolvePeerClosed = resolve);

  const receiving = (async () => {
    while (true) {
      const data = await connection.receive();
      if (data === null) break;
      await writeAll(ends.output, data);
      stats.received += data.length;
      ends.onProgress?.(stats.sent, stats.received);
    }
    try {
      ends.output.close?.();
    } catch {
      // Already closed by its reader.
    }
    resolvePeerClosed();
    // Section 8.5: a record after close_notify means someone is tampering; fail, do not ignore.
    await connection.expectEnd();
  })();

  const sending = (async () => {
    const recordSize = Math.min(PIPE_RECORD_PLAINTEXT, connection.maxSendPlaintext);
    const buffer = new Uint8Array(recordSize);
    while (!stopSending) {
      const n = await ends.input.read(buffer);
      if (n === null) break;
      if (n === 0 || stopSending) continue;
      await connection.send(buffer.slice(0, n), recordSize);
      stats.sent += n;
      ends.onProgress?.(stats.sent, stats.received);
    }
    await connection.closeWrite();
  })();

  try {
    if (ends.inputIsTerminal) {
      // Whichever ends first: the user's end of input, or the peer's close_notify.
      // (The peer's close_notify answers at once; receiving then still checks nothing follows it.)
      await Promise.race([
        sending,
        peerClosed.then(() => {
          stopSending = true;
          return connection.closeWrite();
        }),
        receiving.catch(() => {}),
      ]);
      await receiving;
    } else {
      await Promise.all([sending, receiving]);
    }
    await peerClosed;
  } catch (error) {
    stopSending = true;
    sending.catch(() => {});
    receiving.catch(() => {});
    const reported = await preferReceiveError(error, receiving);
    await connection.abort(reported);
    throw reported;
  }
  connection.close();
  return stats;
}

/**
 * A failed send usually means the connection broke; the receive side then has the precise reason
 * (truncation, an alert, a bad record), so wait a moment for it.
 */
async function preferReceiveError(error: unknown, receiving: Promise<void>): Promise<unknown> {
  if (!(error instanceof SecurechatError) || error.code !== "send_failed") return error;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    receiving.then(() => undefined, (receiveError: unknown) => receiveError),
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 2000)),
  ]);
  clearTimeout(timer);
  return outcome ?? error;
}
