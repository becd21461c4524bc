/**
 * Reads the fields of one received message, failing with one message shape ("peer sent a malformed
 * X: detail") on any overrun, bad length, bad UTF-8 or trailing bytes. Used by every decoder of
 * peer data: handshake messages, room messages and transfer messages.
 *
 * @example
 * ```ts
 * import { strictEqual, throws } from "node:assert/strict";
 * import { FieldReader } from "./field_reader.ts";
 * const r = new FieldReader(Uint8Array.of(0, 2, 104, 105), "greeting");
 * strictEqual(r.text(r.u16("length"), 16, "text"), "hi");
 * r.end();
 * throws(() => new FieldReader(Uint8Array.of(1), "greeting").u16("length"), /cut short/);
 * ```
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Sequential reader over a message body. */
export class FieldReader {
  #bytes: Uint8Array;
  #offset = 0;
  #what: string;
  #code: string | undefined;

  /**
   * @param what the message's name, for errors ("ClientHello", "room message")
   * @param code the error code (default: the alert's name)
   */
  constructor(bytes: Uint8Array, what: string, code?: string) {
    this.#bytes = bytes;
    this.#what = what;
    this.#code = code;
  }

  /** @throws {ProtocolError} always */
  fail(detail: string, alert: "decode_error" | "illegal_parameter" = "decode_error"): never {
    throw new ProtocolError(this.#code ?? alert, `peer sent a malformed ${this.#what}: ${detail}`, {
      alert,
    });
  }

  /** The next `length` bytes, copied. */
  take(length: number, field: string): Uint8Array {
    if (this.#offset + length > this.#bytes.length) this.fail(`${field} is cut short`);
    const out = this.#bytes.slice(this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }

  /** Everything left. */
  rest(): Uint8Array {
    return this.take(this.#bytes.length - this.#offset, "rest");
  }

  u8(field: string): number {
    return this.take(1, field)[0]!;
  }

  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0]! << 8) | b[1]!;
  }

  u32(field: string): number {
    return new DataView(this.take(4, field).buffer).getUint32(0);
  }

  /** A u64 that must fit a JavaScript number (sizes, offsets, times). */
  u64(field: string): number {
    const value = this.u64big(field);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${field} out of range`);
    return Number(value);
  }

  u64big(field: string): bigint {
    return new DataView(this.take(8, field).buffer).getBigUint64(0);
  }

  /** `length` bytes of UTF-8, at most `max`. */
  text(length: number, max: number, field: string): string {
    if (length > max) this.fail(`${field} longer than ${max} bytes`);
    // Outside the try: a short field must say "cut short", not "not UTF-8".
    const bytes = this.take(length, field);
    try {
      return decoder.decode(bytes);
    } catch {
      return this.fail(`${field} is not UTF-8`);
    }
  }

  /** Requires that nothing is left. */
  end(): void {
    if (this.#offset !== this.#bytes.length) this.fail("trailing bytes");
  }
}
