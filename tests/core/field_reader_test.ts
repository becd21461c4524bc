/**
 * FieldReader: each field kind read big-endian, and every refusal (cut short, too long, not UTF-8,
 * out of range, trailing bytes) in the one error shape every decoder of peer data shares.
 */

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { ProtocolError } from "../../lib/core/errors.ts";
import { FieldReader } from "../../lib/core/field_reader.ts";
import { isCode } from "../_helpers/assert_error.ts";

function reader(bytes: number[], what = "greeting", code?: string): FieldReader {
  return new FieldReader(Uint8Array.from(bytes), what, code);
}

/** A ProtocolError with `code` and `alert` and the message "peer sent a malformed <what>: <detail>". */
function malformed(what: string, detail: string, code = "decode_error", alert = "decode_error") {
  return (error: unknown) => {
    isCode(ProtocolError, code, alert)(error);
    strictEqual((error as Error).message, `peer sent a malformed ${what}: ${detail}`);
    return true;
  };
}

// --- reads ---

Deno.test("FieldReader reads u8, u16, u32, u64 and u64big big-endian, in sequence", () => {
  // deno-fmt-ignore
  const r = reader([
    0xfe,
    0x12, 0x34,
    0xde, 0xad, 0xbe, 0xef,
    0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
  ]);
  strictEqual(r.u8("a"), 0xfe);
  strictEqual(r.u16("b"), 0x1234);
  strictEqual(r.u32("c"), 0xdeadbeef, "u32 is unsigned");
  strictEqual(r.u64("d"), Number.MAX_SAFE_INTEGER);
  strictEqual(r.u64big("e"), 2n ** 64n - 2n);
  r.end();
});

Deno.test("FieldReader reads the maximum of each width", () => {
  strictEqual(reader([0xff]).u8("x"), 255);
  strictEqual(reader([0xff, 0xff]).u16("x"), 65535);
  strictEqual(reader([0xff, 0xff, 0xff, 0xff]).u32("x"), 4294967295);
  strictEqual(reader(Array(8).fill(0xff)).u64big("x"), 2n ** 64n - 1n);
  strictEqual(reader(Array(8).fill(0)).u64("x"), 0);
});

Deno.test("FieldReader reads correctly from a view that does not start its buffer", () => {
  const backing = Uint8Array.from([0xaa, 0xaa, 0xaa, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xbb]);
  const r = new FieldReader(backing.subarray(3, 15), "view");
  strictEqual(r.u32("u32"), 1);
  strictEqual(r.u64big("u64"), 2n);
  r.end();
});

Deno.test("FieldReader.take() returns a copy of the next bytes; take(0) is empty", () => {
  const bytes = Uint8Array.of(1, 2, 3, 4);
  const r = new FieldReader(bytes, "blob");
  const first = r.take(3, "first");
  deepStrictEqual(first, Uint8Array.of(1, 2, 3));
  bytes[0] = 99;
  strictEqual(first[0], 1, "a copy, not a view");
  first[1] = 77;
  strictEqual(bytes[1], 2, "the input is not written through");
  deepStrictEqual(r.take(0, "none"), new Uint8Array(0));
  deepStrictEqual(r.take(1, "last"), Uint8Array.of(4));
  deepStrictEqual(r.take(0, "none at the end"), new Uint8Array(0));
  r.end();
});

Deno.test("FieldReader.rest() returns everything left, then nothing", () => {
  const r = reader([1, 2, 3, 4]);
  r.u8("first");
  deepStrictEqual(r.rest(), Uint8Array.of(2, 3, 4));
  deepStrictEqual(r.rest(), new Uint8Array(0));
  r.end();
});

Deno.test("FieldReader.text() decodes UTF-8 up to max bytes, keeping a BOM", () => {
  const hi = reader([0, 2, 104, 105]);
  strictEqual(hi.text(hi.u16("length"), 16, "text"), "hi");
  hi.end();
  strictEqual(reader([0xc3, 0xa9]).text(2, 2, "text"), "é", "exactly max bytes");
  strictEqual(reader([0xef, 0xbb, 0xbf, 0x61]).text(4, 4, "text"), "\ufeffa");
  strictEqual(reader([]).text(0, 0, "text"), "");
});

Deno.test("FieldReader.end() accepts an exhausted reader, including an empty input", () => {
  reader([]).end();
  const r = reader([7]);
  r.u8("x");
  r.end();
});

// --- refusals ---

Deno.test("FieldReader refuses each fixed-width read that is cut short", () => {
  const cases: [string, (r: FieldReader) => unknown, number][] = [
    ["u8", (r) => r.u8("flags"), 1],
    ["u16", (r) => r.u16("flags"), 2],
    ["u32", (r) => r.u32("flags"), 4],
    ["u64", (r) => r.u64("flags"), 8],
    ["u64big", (r) => r.u64big("flags"), 8],
  ];
  for (const [name, read, width] of cases) {
    for (let have = 0; have < width; have++) {
      throws(
        () => read(reader(Array(have).fill(0))),
        malformed("greeting", "flags is cut short"),
        `${name} with ${have} bytes`,
      );
    }
  }
});

Deno.test("FieldReader refuses a read cut short after earlier fields", () => {
  const r = reader([1, 0]);
  strictEqual(r.u8("version"), 1);
  throws(() => r.u16("length"), malformed("greeting", "length is cut short"));
});

Deno.test("FieldReader.take() refuses a length past the end", () => {
  throws(() => reader([1, 2, 3]).take(4, "key"), malformed("greeting", "key is cut short"));
  const r = reader([0, 5, 1, 2, 3, 4]);
  throws(() => r.take(r.u16("key_length"), "key"), malformed("greeting", "key is cut short"));
});

Deno.test("FieldReader.text() refuses a length over max before reading the bytes", () => {
  // Only 1 byte is there: the length check speaks first.
  throws(
    () => reader([0x61]).text(17, 16, "name"),
    malformed("greeting", "name longer than 16 bytes"),
  );
  throws(
    () => reader(Array(17).fill(0x61)).text(17, 16, "name"),
    malformed("greeting", "name longer than 16 bytes"),
  );
});

Deno.test("FieldReader.text() says cut short, not 'not UTF-8', for a short field", () => {
  // Two bytes of a three-byte sequence: short input, and invalid UTF-8 on its own.
  throws(
    () => reader([0xe2, 0x82]).text(3, 16, "name"),
    malformed("greeting", "name is cut short"),
  );
});

Deno.test("FieldReader.text() refuses bytes that are not UTF-8", () => {
  const invalid: [string, number[]][] = [
    ["a lone continuation byte", [0x80]],
    ["a truncated sequence", [0xe2, 0x82]],
    ["an overlong encoding", [0xc0, 0xaf]],
    ["a surrogate", [0xed, 0xa0, 0x80]],
    ["beyond U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["0xff", [0x61, 0xff]],
  ];
  for (const [name, bytes] of invalid) {
    throws(
      () => reader(bytes).text(bytes.length, 16, "name"),
      malformed("greeting", "name is not UTF-8"),
      name,
    );
  }
});

Deno.test("FieldReader.u64() refuses a value above Number.MAX_SAFE_INTEGER", () => {
  throws(
    () => reader([0x00, 0x20, 0, 0, 0, 0, 0, 0]).u64("size"),
    malformed("greeting", "size out of range"),
  );
  throws(() => reader(Array(8).fill(0xff)).u64("size"), malformed("greeting", "size out of range"));
  strictEqual(reader([0x00, 0x20, 0, 0, 0, 0, 0, 0]).u64big("size"), 2n ** 53n);
});

Deno.test("FieldReader.end() refuses trailing bytes", () => {
  throws(() => reader([0]).end(), malformed("greeting", "trailing bytes"));
  const r = reader([0, 1, 2]);
  r.u16("two");
  throws(() => r.end(), malformed("greeting", "trailing bytes"));
});

Deno.test("FieldReader errors carry the given code, else the alert's name", () => {
  throws(
    () => reader([], "room message", "bad_room_message").u8("type"),
    malformed("room message", "type is cut short", "bad_room_message"),
  );
  throws(
    () => reader([], "ServerHello").fail("bad suite", "illegal_parameter"),
    malformed("ServerHello", "bad suite", "illegal_parameter", "illegal_parameter"),
  );
  throws(
    () => reader([], "transfer", "bad_transfer").fail("bad id", "illegal_parameter"),
    malformed("transfer", "bad id", "bad_transfer", "illegal_parameter"),
  );
  throws(() => reader([]).fail("nope"), malformed("greeting", "nope"));
});

Deno.test("FieldReader errors are ProtocolErrors with the protocol exit code", () => {
  try {
    reader([]).u8("x");
    ok(false, "should have thrown");
  } catch (error) {
    ok(error instanceof ProtocolError);
    strictEqual(error.exitCode, 5);
  }
});
