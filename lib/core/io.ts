/**
 * The one shape of a byte stream that every layer uses: a `ByteSource` to read from and a
 * `ByteSink` to write to (both satisfied by `Deno.Conn`, `Deno.stdin`/`Deno.stdout` and a test's
 * capture), and `writeAll()`, because `Deno.Conn.write` may write only part of a buffer.
 *
 * It knows nothing of frames, records or terminals: those layers build on it.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { writeAll } from "./io.ts";
 * const written: number[] = [];
 * // A sink that takes one byte per call, as a congested socket may.
 * await writeAll({ write: (data) => (written.push(data[0]!), Promise.resolve(1)) }, Uint8Array.of(1, 2, 3));
 * deepStrictEqual(written, [1, 2, 3]);
 * ```
 *
 * @module
 */

/** Anything with Deno.Conn's `read`: a socket, standard input, a terminal, a test's buffer. */
export interface ByteSource {
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Anything with Deno.Conn's `write`: a socket, standard output, a test's capture. */
export interface ByteSink {
  write(data: Uint8Array): Promise<number>;
}

/**
 * Writes all of `data`, calling `sink.write` until every byte is taken.
 *
 * @param sink where the bytes go
 * @param data the bytes; an empty array makes no call
 */
export async function writeAll(sink: ByteSink, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await sink.write(data.subarray(offset));
}
