/**
 * Reads the clear header of an RFC 9420 MLSMessage: the protocol version, the wire format and,
 * for a PrivateMessage, the group id, the epoch and the content type. That is everything the relay
 * may know of a message (docs/PROTOCOL.md 13: it orders commits by epoch and keeps each room's
 * messages to its group); the rest is ciphertext it cannot read.
 *
 * A PrivateMessage is checked to its end: its three remaining vectors (authenticated_data,
 * encrypted_sender_data, ciphertext) must fill the message exactly, so a message cut short or
 * padded is refused here and never fanned out. Other wire formats are checked no further than
 * their header: the relay only passes them on, and members parse them with MLS.
 *
 * What it does not do: decrypt, verify or interpret anything (it imports no MLS library), or
 * decide what a wrong header costs (lib/room/relay.ts does).
 *
 * Mirrors: RFC 9420 sections 2.1.2 (variable-length vectors), 6 (MLSMessage) and 6.3
 * (PrivateMessage); docs/PROTOCOL.md section 13.4 ("What the relay checks").
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { readMlsHeader } from "./mls_header.ts";
 * // mls10, private_message, group_id<V> = 0xAB, epoch 7, commit, then three empty vectors.
 * const bytes = Uint8Array.of(0, 1, 0, 2, 1, 0xab, 0, 0, 0, 0, 0, 0, 0, 7, 3, 0, 0, 0);
 * deepStrictEqual(readMlsHeader(bytes), {
 *   wireFormat: "private_message",
 *   groupId: Uint8Array.of(0xab),
 *   epoch: 7n,
 *   contentType: "commit",
 * });
 * ```
 *
 * @module
 */

import { ProtocolError } from "../core/errors.ts";

/** RFC 9420 section 6: ProtocolVersion mls10. */
export const MLS_VERSION_10 = 1;

/** RFC 9420 section 6: WireFormat values. */
export const WIRE_FORMAT = {
  public_message: 1,
  private_message: 2,
  welcome: 3,
  group_info: 4,
  key_package: 5,
} as const;

/** RFC 9420 section 6: ContentType values. */
export const MLS_CONTENT_TYPE = { application: 1, proposal: 2, commit: 3 } as const;

/** A wire format's name. */
export type WireFormat = keyof typeof WIRE_FORMAT;

/** A content type's name. */
export type MlsContentType = keyof typeof MLS_CONTENT_TYPE;

/** What the relay may read of an MLSMessage. */
export type MlsHeader =
  | {
    wireFormat: "private_message";
    groupId: Uint8Array;
    epoch: bigint;
    contentType: MlsContentType;
  }
  | { wireFormat: Exclude<WireFormat, "private_message"> };

function nameOf<T extends Record<string, number>>(table: T, value: number): keyof T | undefined {
  for (const [name, code] of Object.entries(table)) if (code === value) return name;
  return undefined;
}

/**
 * A cursor over the message that skips what it need not keep: the relay reads every message of
 * up to 1 MiB, so nothing past the group id is copied.
 */
class HeaderReader {
  #bytes: Uint8Array;
  #view: DataView;
  offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.#bytes.length - this.offset;
  }

  fail(detail: string): never {
    throw new ProtocolError("bad_mls_message", `peer sent a malformed MLS message: ${detail}`, {
      alert: "decode_error",
    });
  }

  #need(length: number, field: string): number {
    if (length > this.remaining) this.fail(`${field} is cut short`);
    const at = this.offset;
    this.offset += length;
    return at;
  }

  u8(field: string): number {
    return this.#bytes[this.#need(1, field)]!;
  }

  u16(field: string): number {
    return this.#view.getUint16(this.#need(2, field));
  }

  u64(field: string): bigint {
    return this.#view.getBigUint64(this.#need(8, field));
  }

  /**
   * RFC 9420 section 2.1.2: a vector's length is a QUIC-style varint of 1, 2 or 4 bytes (prefix
   * 0b11 is invalid), in its shortest form, so that every message has one encoding.
   */
  #varint(field: string): number {
    const first = this.u8(`${field} length`);
    const prefix = first >> 6;
    if (prefix === 3) this.fail(`${field} length has the invalid prefix 0b11`);
    let value = first & 0x3f;
    const extra = prefix === 0 ? 0 : prefix === 1 ? 1 : 3;
    for (let i = 0; i < extra; i++) value = value * 256 + this.u8(`${field} length`);
    const minimum = prefix === 0 ? 0 : prefix === 1 ? 0x40 : 0x4000;
    if (value < minimum) this.fail(`${field} length is not in its shortest form`);
    return value;
  }

  /** A variable-length vector, copied. */
  vector(field: string): Uint8Array {
    const length = this.#varint(field);
    const at = this.#need(length, field);
    return this.#bytes.slice(at, at + length);
  }

  /** A variable-length vector, skipped. */
  skipVector(field: string): void {
    this.#need(this.#varint(field), field);
  }
}

/**
 * Reads an MLSMessage's clear header.
 *
 * @param bytes a whole MLSMessage
 * @returns its wire format, and for a PrivateMessage its group id, epoch and content type
 * @throws {ProtocolError} `bad_mls_message` (alert `decode_error`) when the version is not mls10,
 *   the wire format or content type is unknown, a length is malformed, nothing follows the
 *   header, or a PrivateMessage is cut short or followed by trailing bytes
 */
export function readMlsHeader(bytes: Uint8Array): MlsHeader {
  const reader = new HeaderReader(bytes);
  const version = reader.u16("version");
  if (version !== MLS_VERSION_10) reader.fail(`version ${version} is not mls10`);
  const code = reader.u16("wire_format");
  const wireFormat = nameOf(WIRE_FORMAT, code);
  if (wireFormat === undefined) return reader.fail(`unknown wire format ${code}`);
  if (wireFormat !== "private_message") {
    if (reader.remaining === 0) reader.fail(`the ${wireFormat} is empty`);
    return { wireFormat };
  }
  // RFC 9420 section 6.3: PrivateMessage.
  const groupId = reader.vector("group_id");
  const epoch = reader.u64("epoch");
  const contentCode = reader.u8("content_type");
  const contentType = nameOf(MLS_CONTENT_TYPE, contentCode);
  if (contentType === undefined) return reader.fail(`unknown content type ${contentCode}`);
  reader.skipVector("authenticated_data");
  reader.skipVector("encrypted_sender_data");
  reader.skipVector("ciphertext");
  if (reader.remaining !== 0) reader.fail("trailing bytes");
  return { wireFormat, groupId, epoch, contentType };
}
