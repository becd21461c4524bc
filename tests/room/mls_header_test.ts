/**
 * Reading an MLSMessage's clear header (RFC 9420 sections 2.1.2, 6, 6.3): every wire format, the
 * varint lengths at their boundaries, and bad_mls_message for every malformed input.
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { concat, u16, u64, u8 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import { MLS_CONTENT_TYPE, readMlsHeader, WIRE_FORMAT } from "../../lib/room/mls_header.ts";
import { otherMessage, privateMessage, random, varint, vector } from "../_helpers/mls_messages.ts";
import { isCode } from "../_helpers/assert_error.ts";

const bad = isCode(ProtocolError, "bad_mls_message", "decode_error");

function badWith(detail: string) {
  return (error: unknown) => {
    bad(error);
    strictEqual((error as Error).message, `peer sent a malformed MLS message: ${detail}`);
    return true;
  };
}

/** A PrivateMessage with chosen vectors, built field by field. */
function privateWith(options: {
  groupId?: Uint8Array;
  epoch?: bigint;
  contentType?: number;
  vectors?: Uint8Array[];
}): Uint8Array {
  return concat(
    u16(1),
    u16(2),
    vector(options.groupId ?? random(32)),
    u64(options.epoch ?? 0n),
    u8(options.contentType ?? 1),
    ...(options.vectors ?? [vector(new Uint8Array(0)), vector(random(4)), vector(random(9))]),
  );
}

Deno.test("WIRE_FORMAT and MLS_CONTENT_TYPE hold the values of RFC 9420 section 6", () => {
  deepStrictEqual(WIRE_FORMAT, {
    public_message: 1,
    private_message: 2,
    welcome: 3,
    group_info: 4,
    key_package: 5,
  });
  deepStrictEqual(MLS_CONTENT_TYPE, { application: 1, proposal: 2, commit: 3 });
});

Deno.test("readMlsHeader() reads a PrivateMessage's group id, epoch and content type", () => {
  for (const contentType of ["application", "proposal", "commit"] as const) {
    for (const epoch of [0n, 1n, 0xffffffffffffffffn]) {
      const groupId = random(32);
      deepStrictEqual(readMlsHeader(privateMessage({ groupId, epoch, contentType })), {
        wireFormat: "private_message",
        groupId,
        epoch,
        contentType,
      });
    }
  }
});

Deno.test("readMlsHeader() names the other wire formats and reads no further", () => {
  for (const wireFormat of ["public_message", "welcome", "group_info", "key_package"] as const) {
    deepStrictEqual(readMlsHeader(otherMessage(wireFormat, 1)), { wireFormat });
    throws(() => readMlsHeader(otherMessage(wireFormat, 0)), badWith(`the ${wireFormat} is empty`));
  }
});

Deno.test("readMlsHeader() reads vector lengths of 1, 2 and 4 bytes at their boundaries", () => {
  for (const length of [0, 1, 63, 64, 16383, 16384, 100_000]) {
    const groupId = random(length);
    const bytes = privateWith({ groupId });
    const header = readMlsHeader(bytes);
    strictEqual(header.wireFormat, "private_message");
    if (header.wireFormat === "private_message") deepStrictEqual(header.groupId, groupId);
    // The same for the ciphertext, which is skipped.
    const ciphertext = vector(random(length));
    readMlsHeader(
      privateWith({ vectors: [vector(new Uint8Array(0)), vector(random(1)), ciphertext] }),
    );
  }
  deepStrictEqual(varint(63), Uint8Array.of(63));
  deepStrictEqual(varint(64), Uint8Array.of(0x40, 64));
  deepStrictEqual(varint(16384), Uint8Array.of(0x80, 0, 0x40, 0));
});

Deno.test("readMlsHeader() refuses a length not in its shortest form, or with prefix 0b11", () => {
  const tail = [vector(new Uint8Array(0)), vector(random(1)), vector(random(1))];
  // group_id of 5 bytes, its length on 2 and on 4 bytes.
  for (
    const length of [
      Uint8Array.of(0x40, 5),
      Uint8Array.of(0x80, 0, 0, 5),
      Uint8Array.of(0x80, 0, 0x3f, 0xff),
    ]
  ) {
    const bytes = concat(u16(1), u16(2), length, random(5), u64(0n), u8(1), ...tail);
    throws(() => readMlsHeader(bytes), badWith("group_id length is not in its shortest form"));
  }
  const prefix3 = concat(u16(1), u16(2), Uint8Array.of(0xc0, 0, 0, 0, 0, 0, 0, 5));
  throws(() => readMlsHeader(prefix3), badWith("group_id length has the invalid prefix 0b11"));
});

Deno.test("readMlsHeader() refuses another version, an unknown wire format or content type", () => {
  for (const version of [0, 2, 0x0100, 0xffff]) {
    const bytes = concat(u16(version), u16(2), random(40));
    throws(() => readMlsHeader(bytes), badWith(`version ${version} is not mls10`));
  }
  for (const wireFormat of [0, 6, 0xf000, 0xffff]) {
    const bytes = concat(u16(1), u16(wireFormat), random(40));
    throws(() => readMlsHeader(bytes), badWith(`unknown wire format ${wireFormat}`));
  }
  for (const contentType of [0, 4, 255]) {
    throws(
      () => readMlsHeader(privateWith({ contentType })),
      badWith(`unknown content type ${contentType}`),
    );
  }
});

Deno.test("readMlsHeader() refuses a PrivateMessage cut anywhere, or with a trailing byte", () => {
  const bytes = privateMessage({
    groupId: random(32),
    epoch: 5n,
    contentType: "commit",
    size: 100,
  });
  for (let length = 0; length < bytes.length; length++) {
    throws(() => readMlsHeader(bytes.subarray(0, length)), bad, `cut at ${length}`);
  }
  throws(() => readMlsHeader(concat(bytes, Uint8Array.of(0))), badWith("trailing bytes"));
  // A vector claiming more than is there.
  const long = privateWith({
    vectors: [vector(new Uint8Array(0)), vector(random(1)), Uint8Array.of(0x40, 0xff, 1)],
  });
  throws(() => readMlsHeader(long), badWith("ciphertext is cut short"));
});
