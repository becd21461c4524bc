/**
 * Raw pipe mode: bytes from the local input go to the peer as application data, the peer's
 * application data goes to the local output, both directions at once, binary-safe.
 *
 * End of input sends close_notify. The peer's close_notify ends the output. Once both happened
 * (when the input is a terminal, nobody will type an end of input, so the peer's close_notify also
 * ends our direction), each side sends a receipt with the number of bytes it accepted, and the pipe
 * succeeds only on the peer's receipt for exactly what we sent: a TCP FIN or reset proves nothing.
 * Any failure aborts the connection with an alert and is thrown to the caller; nothing
 * unauthenticated ever reaches the output.
 *
 * Mirrors: docs/PROTOCOL.md sections 8.5 (the receipt) and 11.
 *
 * @module
 */

import type { SecureConnection } from "./secure_connection.ts";
import { AuthenticationError, SecurechatError } from "../core/errors.ts";
import { exchangeSessionHello } from "./session_hello.ts";
import { type ByteSink, type ByteSource, writeAll } from "../core/io.ts";
import { PIPE_RECORD_PLAINTEXT } from "../protocol/record.ts";

/**
 * Records being sealed or written at once. WebCrypto finishes part of each seal off the main
 * thread, and a few records in flight let that overlap with reading and writing: with read-ahead
 * into reused buffers, 1 GiB went from 8.8 s to 6.2 s on 2 cores (issue 6).
 */
const SEALS_IN_FLIGHT = 4;

/**
 * After this many bytes in either direction, record encryption moves to a worker thread: a bulk
 * transfer then reads, encrypts and writes at once, while short exchanges never pay a thread start.
 */
const OFFLOAD_AFTER_BYTES = 4 * 2 ** 20;

/**
 * Only with spare cores: moving records to and from the worker costs about 20% more CPU per MiB,
 * and on 2 cores (measured with both ends on one machine, issue 6) that bought no speed.
 */
const OFFLOAD_MIN_CORES = 4;

/**
 * Section 8.6: while a write to our output is still pending after this long, we ping the peer
 * this often. A side whose output is slow reads nothing, so it cannot answer the peer's pings;
 * the smallest `--keepalive` is 1 s, so even such a peer (silent after 3 s) hears from us in time.
 */
const SLOW_OUTPUT_PING_MS = 1000;

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
  connection.useReceipts();
  const stats: PipeStats = { sent: 0, received: 0 };
  let offloading = false;
  const offloadWhenBulk = () => {
    if (offloading || stats.sent + stats.received < OFFLOAD_AFTER_BYTES) return;
    if (navigator.hardwareConcurrency < OFFLOAD_MIN_CORES) return;
    offloading = true;
    connection.offloadCrypto().catch(() => {});
  };
  let stopSending = false;

  // Until the peer's close_notify: its data to our output, each write overlapping the receipt
  // and decryption of the next record.
  const received = (async () => {
    let writing = Promise.resolve();
    while (true) {
      let data;
      try {
        data = await connection.receive();
      } catch (error) {
        // What was authenticated before the failure still reaches the output (a synchronous
        // open can reject the next record before the previous write is done).
        await writing.catch(() => {});
        throw error;
      }
      if (data === null) break;
      await writing;
      writing = pingWhileSlow(connection, writeAll(ends.output, data)).then(() => {
        stats.received += data.length;
        ends.onProgress?.(stats.sent, stats.received);
        offloadWhenBulk();
      });
      writing.catch(() => {}); // awaited above or below; this only marks it handled meanwhile
    }
    await writing;
    try {
      ends.output.close?.();
    } catch {
      // Already closed by its reader.
    }
  })();
  // Section 8.5: after its close_notify the peer sends one more record, its receipt. Read at
  // once, so a connection that ends instead fails the pipe even while we are still sending.
  const confirmed = received.then(() => connection.receiveReceipt());

  const sending = (async () => {
    const recordSize = Math.min(PIPE_RECORD_PLAINTEXT, connection.maxSendPlaintext);
    const input = new CoalescingReader(ends.input, recordSize, recordSize * SEALS_IN_FLIGHT);
    const inFlight: Promise<void>[] = [];
    while (!stopSending) {
      const chunk = await input.next();
      if (chunk === null) break;
      if (stopSending) break;
      const sent = connection.send(chunk, recordSize).then(() => {
        input.release(chunk);
        stats.sent += chunk.length;
        ends.onProgress?.(stats.sent, stats.received);
        offloadWhenBulk();
      });
      // Awaited in turn below. When one fails, the loop stops there and the failure is
      // reported once; the ones behind it fail too and must not surface as unhandled.
      sent.catch(() => {});
      inFlight.push(sent);
      if (inFlight.length >= SEALS_IN_FLIGHT) await inFlight.shift();
    }
    await Promise.all(inFlight);
    await connection.closeNotify();
  })();

  try {
    if (ends.inputIsTerminal) {
      // Whichever ends first: the user's end of input, or the peer's close_notify.
      await Promise.race([
        sending,
        received.then(() => {
          stopSending = true;
          return connection.closeNotify();
        }),
        confirmed,
      ]);
      await received;
      await connection.closeNotify();
    } else {
      await Promise.race([Promise.all([sending, received]), confirmed]);
    }
    // Both close_notify sent and received, and the peer's data is out: our receipt, then its.
    const [, bytesConfirmed] = await Promise.all([
      connection.sendReceipt(stats.received),
      confirmed,
    ]);
    if (bytesConfirmed !== BigInt(stats.sent)) {
      throw new AuthenticationError(
        "receipt_mismatch",
        `the peer did not confirm receipt: it accepted ${bytesConfirmed} of the ${stats.sent} bytes we sent`,
        { hints: ["do not assume the peer has the data; see its messages"] },
      );
    }
  } catch (error) {
    stopSending = true;
    sending.catch(() => {});
    confirmed.catch(() => {});
    const reported = await preferReceiveError(error, confirmed);
    await connection.abort(reported);
    throw reported;
  }
  // Section 8.5: TCP FIN only now that both receipts are exchanged, then the peer's FIN.
  await connection.finish();
  return stats;
}

/** Pings the peer every SLOW_OUTPUT_PING_MS until `write` settles (section 8.6). */
function pingWhileSlow(connection: SecureConnection, write: Promise<void>): Promise<void> {
  const timer = setInterval(() => connection.ping(), SLOW_OUTPUT_PING_MS);
  return write.finally(() => clearInterval(timer));
}

/**
 * A failed send usually means the connection broke; the receive side then has the precise reason
 * (truncation, an alert, a bad record), so wait a moment for it.
 */
async function preferReceiveError(error: unknown, receiving: Promise<unknown>): Promise<unknown> {
  if (!(error instanceof SecurechatError) || error.code !== "send_failed") return error;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    receiving.then(() => undefined, (receiveError: unknown) => receiveError),
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 2000)),
  ]);
  clearTimeout(timer);
  return outcome ?? error;
}

/**
 * Reads the input ahead of the sender into record-sized buffers and hands out everything read so
 * far in one piece: while records are being sealed, small reads (a pipe gives 64 KiB at a time)
 * merge into full records, and when the sender is idle, a single typed line goes out at once.
 * Buffers are reused (fresh ones cost a page fault per 4 KiB): the caller hands each chunk back
 * with `release()` once its send has settled, in the order it got them.
 */
class CoalescingReader {
  #input: ByteSource;
  #bufferSize: number;
  #limit: number;
  #ready: Uint8Array[] = [];
  #readyBytes = 0;
  #buffer: Uint8Array;
  #position = 0;
  #ended = false;
  #error: { reason: unknown } | undefined;
  #wake: (() => void) | undefined;
  #room: (() => void) | undefined;
  #spare: Uint8Array[] = [];

  constructor(input: ByteSource, bufferSize: number, limit: number) {
    this.#input = input;
    this.#bufferSize = bufferSize;
    this.#limit = limit;
    this.#buffer = new Uint8Array(bufferSize);
    this.#pump().catch((reason: unknown) => {
      this.#error = { reason };
      this.#wake?.();
    });
  }

  async #pump(): Promise<void> {
    while (true) {
      while (this.#readyBytes >= this.#limit) {
        await new Promise<void>((resolve) => this.#room = resolve);
      }
      if (this.#position === this.#bufferSize) {
        this.#buffer = this.#spare.pop() ?? new Uint8Array(this.#bufferSize);
        this.#position = 0;
      }
      const start = this.#position;
      const n = await this.#input.read(this.#buffer.subarray(start));
      if (n === null) {
        this.#ended = true;
        this.#wake?.();
        return;
      }
      if (n === 0) continue;
      this.#position += n;
      this.#readyBytes += n;
      const last = this.#ready.at(-1);
      if (
        last !== undefined && last.buffer === this.#buffer.buffer &&
        last.byteOffset + last.length === start
      ) {
        // Contiguous with what is still waiting: one larger record instead of two.
        this.#ready[this.#ready.length - 1] = this.#buffer.subarray(last.byteOffset, start + n);
      } else {
        this.#ready.push(this.#buffer.subarray(start, start + n));
      }
      this.#wake?.();
    }
  }

  /** Everything read and not yet taken (at most one buffer), or null at the end of input. */
  async next(): Promise<Uint8Array | null> {
    while (this.#ready.length === 0) {
      if (this.#error) throw this.#error.reason;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
    const chunk = this.#ready.shift()!;
    this.#readyBytes -= chunk.length;
    this.#room?.();
    this.#room = undefined;
    return chunk;
  }

  /** Takes back a chunk whose send settled; the last chunk of a buffer frees the buffer. */
  release(chunk: Uint8Array): void {
    if (chunk.byteOffset + chunk.length === this.#bufferSize) {
      this.#spare.push(new Uint8Array(chunk.buffer));
    }
  }
}
