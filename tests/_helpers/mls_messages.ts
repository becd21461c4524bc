/**
 * Hand-built RFC 9420 MLSMessages for tests of the relay, which reads only their clear header: a
 * PrivateMessage with a chosen group id, epoch and content type (its three remaining vectors
 * random bytes, since the relay never decrypts), and KeyPackage, Welcome and other wire formats
 * as a header followed by random bytes.
 *
 * @module
 */

import { concat, u16, u64, u8 } from "../../lib/core/bytes.ts";
import {
  MLS_CONTENT_TYPE,
  MLS_VERSION_10,
  type MlsContentType,
  WIRE_FORMAT,
  type WireFormat,
} from "../../lib/room/mls_header.ts";

/** RFC 9420 section 2.1.2: a vector length in its shortest varint form. */
export function varint(length: number): Uint8Array {
  if (length < 0x40) return u8(length);
  if (length < 0x4000) return u16(0x4000 | length);
  if (length < 0x40000000) {
    return Uint8Array.of(
      0x80 | (length >>> 24),
      (length >>> 16) & 0xff,
      (length >>> 8) & 0xff,
      length & 0xff,
    );
  }
  throw new RangeError("vector too long for MLS");
}

/** An MLS variable-length vector. */
export function vector(bytes: Uint8Array): Uint8Array {
  return concat(varint(bytes.length), bytes);
}

export function random(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** A PrivateMessage: the header the relay reads, then random "ciphertext" of `size` bytes. */
export function privateMessage(options: {
  groupId: Uint8Array;
  epoch: bigint;
  contentType: MlsContentType;
  size?: number;
}): Uint8Array {
  return concat(
    u16(MLS_VERSION_10),
    u16(WIRE_FORMAT.private_message),
    vector(options.groupId),
    u64(options.epoch),
    u8(MLS_CONTENT_TYPE[options.contentType]),
    vector(new Uint8Array(0)),
    vector(random(16)),
    vector(random(options.size ?? 64)),
  );
}

/** An MLSMessage of another wire format: its header, then `size` random bytes. */
export function otherMessage(wireFormat: Exclude<WireFormat, "private_message">, size = 64) {
  return concat(u16(MLS_VERSION_10), u16(WIRE_FORMAT[wireFormat]), random(size));
}

export const keyPackage = (size = 256): Uint8Array => otherMessage("key_package", size);
export const welcome = (size = 512): Uint8Array => otherMessage("welcome", size);
