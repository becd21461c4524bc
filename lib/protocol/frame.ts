/**
 * The magic prefix and length-prefixed frames, with a buffered reader that checks every length
 * against the cap of its frame type before allocating anything for the body.
 *
 * It does not know what frames mean: the handshake modules and the record layer interpret them.
 *
 * Mirrors: docs/PROTOCOL.md section 3.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { encodeFrame, FRAME_TYPE } from "./frame.ts";
 * deepStrictEqual(encodeFrame(FRAME_TYPE.plainAlert, Uint8Array.of(40)), Uint8Array.of(0x15, 0, 0, 0, 1, 40));
 * ```
 *
 * @module
 */

import { concat, readU32, u32, u8, utf8 } from "../core/bytes.ts";
import { ConnectionError, ProtocolError } from "../core/errors.ts";
import type { ByteSource } from "../core/io.ts";

/** Section 3.1: the 12-byte magic both sides send first. */
export const MAGIC: Uint8Array = utf8("securechat\r\n");

/** Section 3.1: what a responder tells a peer that does not speak securechat. */
export const NOT_SECURECHAT_REPLY: Uint8Array = utf8(
  'securechat: this port speaks the securechat protocol; use "securechat dial"\r\n',
);

/** Section 3.2 frame types. */
export const FRAME_TYPE = {
  clientHello: 0x01,
  serverHello: 0x02,
  plainAlert: 0x15,
  record: 0x17,
} as const;

/** Bytes of a frame header: type u8, length u32. */
export const FRAME_HEADER_LENGTH = 5;

/** Section 3.2: cap on hello bodies. */
export const MAX_HELLO_LENGTH = 4096;

/** A frame read off the wire. `header` is its 5 bytes as received (the record AAD). */
export interface Frame {
  type: number;
  header: Uint8Array;
  body: Uint8Array;
}

/** Encodes one frame. @throws {RangeError} when the body is too long for a u32 */
export function encodeFrame(type: number, body: Uint8Array): Uint8Array {
  return concat(u8(type), u32(body.length), body);
}

/** The header of a frame of `type` with a body of `length` bytes. */
export function frameHeader(type: number, length: number): Uint8Array {
  return concat(u8(type), u32(length));
}

/**
 * Room a read leaves beyond what the current frame needs. Small, because a relay keeps one reader
 * per member: large frames get a buffer of their own size anyway (see #makeRoom).
 */
const READ_AHEAD = 16 * 1024;

/** A buffer larger than this that is no longer needed is replaced by a small one. */
const SHRINK_ABOVE = 64 * 1024;

/**
 * Reads the magic and frames from a byte source through one growing buffer.
 *
 * Caps are given per call, because what is allowed depends on the protocol state.
 */
export class FrameReader {
  #source: ByteSource;
  #buffer = new Uint8Array(READ_AHEAD);
  #start = 0;
  #end = 0;
  #eof = false;
  /** Whether the last frame body read was larger than READ_AHEAD (see #makeRoom). */
  #lastBodyLarge = false;

  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Hands over the bytes received past the last frame read, and forgets them: the start of
   * another stream on the same socket (docs/PROTOCOL.md 15.4, a relay's splice).
   */
  takeBuffered(): Uint8Array {
    const rest = this.#buffer.slice(this.#start, this.#end);
    this.#start = this.#end = 0;
    return rest;
  }

  async #fill(needed: number): Promise<boolean> {
    while (this.#end - this.#start < needed) {
      if (this.#eof) return false;
      this.#makeRoom(needed);
      const n = await this.#source.read(this.#buffer.subarray(this.#end));
      if (n === null || n === 0) {
        if (n === null) this.#eof = true;
        continue;
      }
      this.#end += n;
    }
    return true;
  }

  #makeRoom(needed: number): void {
    const available = this.#end - this.#start;
    if (
      !this.#lastBodyLarge && needed <= READ_AHEAD && available <= READ_AHEAD &&
      this.#buffer.length > SHRINK_ABOVE
    ) {
      // A large frame came and went, and a small one followed (a relay's member sent a commit or
      // a Welcome once): back to the small buffer, so an idle connection does not keep a 1 MiB
      // one. A bulk stream reads large frames only and never takes this path.
      const small = new Uint8Array(READ_AHEAD * 2);
      small.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = small;
      this.#start = 0;
      this.#end = available;
    }
    const want = Math.max(needed, available) + READ_AHEAD;
    if (this.#buffer.length - this.#start >= want) return;
    if (this.#buffer.length >= want) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      // Exactly what the frame needs plus one read: frames are read whole, so doubling only
      // lets a peer make us allocate twice the cap.
      const grown = new Uint8Array(want);
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
    }
    this.#end = available;
    this.#start = 0;
  }

  #take(length: number, borrow = false): Uint8Array {
    const out = borrow
      ? this.#buffer.subarray(this.#start, this.#start + length)
      : this.#buffer.slice(this.#start, this.#start + length);
    this.#start += length;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return out;
  }

  /**
   * Reads exactly `length` bytes.
   *
   * @returns the bytes, or null when the source ended before any of them arrived
   * @throws {ConnectionError} `truncated_frame` when it ended part-way
   */
  async readExactly(length: number, borrow = false): Promise<Uint8Array | null> {
    if (!(await this.#fill(length))) {
      if (this.buffered === 0) return null;
      throw truncatedFrame();
    }
    return this.#take(length, borrow);
  }

  /**
   * Reads one frame whose body length must not exceed `capOf(type)`.
   *
   * @param capOf the cap for a frame type, or undefined when the type is not allowed now
   * @param borrow true: the body is a view into the reader's buffer, valid only until the next
   *   read (saves a copy per record; the record layer decrypts it into a new buffer at once)
   * @returns the frame, or null on a clean end of stream between frames
   * @throws {ProtocolError} `unexpected_message` for a type not allowed, `record_overflow` for a
   *   length over its cap (before reading or allocating the body)
   * @throws {ConnectionError} `truncated_frame` when the stream ends inside a frame
   */
  async readFrame(
    capOf: (type: number) => number | undefined,
    borrow = false,
  ): Promise<Frame | null> {
    const header = await this.readExactly(FRAME_HEADER_LENGTH);
    if (header === null) return null;
    const type = header[0]!;
    const length = readU32(header, 1);
    const cap = capOf(type);
    if (cap === undefined) {
      throw new ProtocolError(
        "unexpected_message",
        `peer sent a frame of unexpected type 0x${type.toString(16).padStart(2, "0")}`,
        { alert: "unexpected_message" },
      );
    }
    if (length > cap) {
      throw new ProtocolError(
        "record_overflow",
        `peer sent a frame of ${length} bytes, more than the ${cap} allowed`,
        { alert: "record_overflow" },
      );
    }
    const body = await this.readExactly(length, borrow);
    if (body === null) throw truncatedFrame();
    this.#lastBodyLarge = length > READ_AHEAD;
    return { type, header, body };
  }
}

/** Section 3.2: a stream that ends inside a frame. The alert only reaches a peer still reading. */
function truncatedFrame(): ConnectionError {
  return new ConnectionError("truncated_frame", "connection closed in the middle of a message", {
    alert: "decode_error",
  });
}
