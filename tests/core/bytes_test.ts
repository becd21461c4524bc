/**
 * lib/core/bytes.ts: integer codecs at their boundaries, reads through views into shared buffers,
 * comparisons, wiping, and the hex and base64 codecs (base64 checked against node:buffer, an
 * independent implementation, on both sides of toBase64's 0x8000-byte chunking).
 */

import {
  deepStrictEqual as eql,
  notStrictEqual,
  ok,
  strictEqual,
  throws,
} from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  concat,
  constantTimeEqual,
  fromBase64,
  fromHex,
  isAllZero,
  own,
  readU16,
  readU32,
  sha256,
  toBase64,
  toHex,
  u16,
  u32,
  u64,
  u8,
  utf8,
  wipe,
} from "../../lib/core/bytes.ts";

/** Deterministic bytes (xorshift32), so a failing length reproduces. */
function pseudoRandom(length: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const bytes = (...values: number[]) => Uint8Array.of(...values);

// ---------------------------------------------------------------------------------------------
// Integer codecs

Deno.test("u8() encodes 0..255 and throws RangeError just past them", () => {
  eql(u8(0), bytes(0));
  eql(u8(1), bytes(1));
  eql(u8(0x7f), bytes(0x7f));
  eql(u8(0xff), bytes(0xff));
  for (const bad of [256, -1, 1.5, NaN, Infinity]) throws(() => u8(bad), RangeError, `${bad}`);
});

Deno.test("u16() encodes big-endian 0..0xffff and throws RangeError just past them", () => {
  eql(u16(0), bytes(0, 0));
  eql(u16(0xff), bytes(0, 0xff));
  eql(u16(0x100), bytes(1, 0));
  eql(u16(0x1234), bytes(0x12, 0x34));
  eql(u16(0xffff), bytes(0xff, 0xff));
  for (const bad of [0x10000, -1, 0.5, NaN]) throws(() => u16(bad), RangeError, `${bad}`);
});

Deno.test("u32() encodes big-endian 0..0xffffffff and throws RangeError just past them", () => {
  eql(u32(0), bytes(0, 0, 0, 0));
  eql(u32(0x01020304), bytes(1, 2, 3, 4));
  eql(u32(0x7fffffff), bytes(0x7f, 0xff, 0xff, 0xff));
  eql(u32(0x80000000), bytes(0x80, 0, 0, 0));
  eql(u32(0xffffffff), bytes(0xff, 0xff, 0xff, 0xff));
  for (const bad of [2 ** 32, -1, 2 ** 32 - 0.5, NaN]) throws(() => u32(bad), RangeError, `${bad}`);
});

Deno.test("u64() encodes big-endian 0..2^64-1 and throws RangeError just past them", () => {
  eql(u64(0n), new Uint8Array(8));
  eql(u64(1n), bytes(0, 0, 0, 0, 0, 0, 0, 1));
  eql(u64(0x0102030405060708n), bytes(1, 2, 3, 4, 5, 6, 7, 8));
  eql(u64(2n ** 53n + 1n), bytes(0, 0x20, 0, 0, 0, 0, 0, 1)); // beyond Number precision
  eql(u64(2n ** 64n - 1n), new Uint8Array(8).fill(0xff));
  throws(() => u64(2n ** 64n), RangeError);
  throws(() => u64(-1n), RangeError);
});

Deno.test("readU16() and readU32() read at an offset of a view into a shared buffer", () => {
  const shared = bytes(0xaa, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x05, 0xcc);
  const view = shared.subarray(2, 7); // 01 02 03 04 05
  strictEqual(readU16(view, 0), 0x0102);
  strictEqual(readU16(view, 3), 0x0405);
  strictEqual(readU32(view, 0), 0x01020304);
  strictEqual(readU32(view, 1), 0x02030405);
  // Unsigned: the top bit does not make a negative number.
  strictEqual(readU32(bytes(0xff, 0xff, 0xff, 0xff), 0), 0xffffffff);
  strictEqual(readU16(bytes(0x80, 0x00), 0), 0x8000);
  // The view's end is a hard end, even though the shared buffer goes on.
  throws(() => readU16(view, 4), RangeError);
  throws(() => readU32(view, 2), RangeError);
  throws(() => readU16(view, -1), RangeError);
});

Deno.test("readU16() and readU32() invert u16() and u32()", () => {
  for (const value of [0, 1, 0xff, 0x100, 0xfffe, 0xffff]) {
    strictEqual(readU16(concat(bytes(9), u16(value)), 1), value);
  }
  for (const value of [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff]) {
    strictEqual(readU32(concat(bytes(9, 9), u32(value)), 2), value);
  }
});

// ---------------------------------------------------------------------------------------------
// Comparison and wiping

Deno.test("constantTimeEqual() is true only for the same length and content", () => {
  ok(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)));
  ok(constantTimeEqual(bytes(1, 2, 3), bytes(1, 2, 3)));
  ok(constantTimeEqual(bytes(1, 2, 3, 4).subarray(1), bytes(2, 3, 4)));
  ok(!constantTimeEqual(bytes(1, 2, 3), bytes(0, 2, 3)));
  ok(!constantTimeEqual(bytes(1, 2, 3), bytes(1, 2, 2)));
  ok(!constantTimeEqual(bytes(1, 2, 3), bytes(1, 2)));
  ok(!constantTimeEqual(bytes(1, 2), bytes(1, 2, 0)));
  ok(!constantTimeEqual(new Uint8Array(0), bytes(0)));
  const a = pseudoRandom(1000);
  const b = a.slice();
  ok(constantTimeEqual(a, b));
  for (const index of [0, 500, 999]) {
    b[index]! ^= 0x80;
    ok(!constantTimeEqual(a, b), `byte ${index}`);
    b[index]! ^= 0x80;
  }
});

Deno.test("isAllZero() is true for empty and all-zero arrays only", () => {
  ok(isAllZero(new Uint8Array(0)));
  ok(isAllZero(new Uint8Array(64)));
  ok(!isAllZero(bytes(1)));
  for (const index of [0, 31, 63]) {
    const one = new Uint8Array(64);
    one[index] = 0x80;
    ok(!isAllZero(one), `byte ${index}`);
  }
});

Deno.test("wipe() zeroes every array given, skips undefined, and touches only the view", () => {
  const a = pseudoRandom(32, 1);
  const b = pseudoRandom(16, 2);
  wipe(a, undefined, b);
  ok(isAllZero(a) && isAllZero(b));
  wipe();
  wipe(undefined);
  const shared = bytes(1, 2, 3, 4, 5);
  wipe(shared.subarray(1, 4));
  eql(shared, bytes(1, 0, 0, 0, 5));
});

// ---------------------------------------------------------------------------------------------
// Hex

Deno.test("toHex() and fromHex() round-trip every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const hex = toHex(all);
  strictEqual(hex.length, 512);
  strictEqual(hex.slice(0, 8), "00010203");
  strictEqual(hex.slice(-4), "feff");
  eql(fromHex(hex), all);
  eql(fromHex(hex.toUpperCase()), all);
  strictEqual(toHex(new Uint8Array(0)), "");
  eql(fromHex(""), new Uint8Array(0));
  eql(fromHex("0aFf"), bytes(0x0a, 0xff));
});

Deno.test("fromHex() throws SyntaxError on odd length or a non-hex digit", () => {
  for (const bad of ["0", "abc", "zz", "0g", "0x00", " 00", "00 ", "+1", "-1", "٠٠"]) {
    throws(() => fromHex(bad), SyntaxError, JSON.stringify(bad));
  }
});

// ---------------------------------------------------------------------------------------------
// Base64

Deno.test("toBase64() and fromBase64() round-trip lengths 0..70 and match node:buffer", () => {
  for (let length = 0; length <= 70; length++) {
    const data = pseudoRandom(length, length + 1);
    const text = toBase64(data);
    strictEqual(text, Buffer.from(data).toString("base64"), `length ${length}`);
    strictEqual(text.length, 4 * Math.ceil(length / 3));
    eql(fromBase64(text), data, `length ${length}`);
  }
});

Deno.test("toBase64() and fromBase64() round-trip across the 0x8000-byte chunk boundary", () => {
  for (const length of [0x7fff, 0x8000, 0x8001, 0x10000, 0x10001, 100_000]) {
    const data = pseudoRandom(length, length);
    const text = toBase64(data);
    strictEqual(text, Buffer.from(data).toString("base64"), `length ${length}`);
    eql(fromBase64(text), data, `length ${length}`);
  }
});

Deno.test("fromBase64() accepts missing padding and ignores whitespace", () => {
  eql(fromBase64(""), new Uint8Array(0));
  eql(fromBase64("AQ=="), bytes(1));
  eql(fromBase64("AQ"), bytes(1));
  eql(fromBase64("AQI="), bytes(1, 2));
  eql(fromBase64("AQI"), bytes(1, 2));
  eql(fromBase64("AQID"), bytes(1, 2, 3));
  eql(fromBase64("AQID\r\nBAU=\n"), bytes(1, 2, 3, 4, 5));
  eql(fromBase64(" +/+/ "), bytes(0xfb, 0xff, 0xbf));
  // An OpenSSH-style fingerprint body: unpadded, 43 characters for 32 bytes.
  const digest = pseudoRandom(32, 7);
  eql(fromBase64(toBase64(digest).replace(/=+$/, "")), digest);
});

Deno.test("fromBase64() throws SyntaxError on invalid input", () => {
  const cases = [
    "A", // one character cannot encode a byte
    "AQID" + "A",
    "AQ===", // too much padding
    "A===",
    "=",
    "AQ=A", // padding in the middle
    "AQ==AQ==",
    "-_8", // base64url alphabet
    "AQ*D",
    "AQ\u0000D",
    "AQÉD",
  ];
  for (const bad of cases) throws(() => fromBase64(bad), SyntaxError, JSON.stringify(bad));
});

// ---------------------------------------------------------------------------------------------
// concat, own, utf8, sha256

Deno.test("concat() joins parts into a new array", () => {
  eql(concat(), new Uint8Array(0));
  eql(concat(new Uint8Array(0), new Uint8Array(0)), new Uint8Array(0));
  eql(concat(bytes(1), new Uint8Array(0), bytes(2, 3)), bytes(1, 2, 3));
  const shared = bytes(9, 1, 2, 9, 3, 9);
  eql(concat(shared.subarray(1, 3), shared.subarray(4, 5)), bytes(1, 2, 3));
  const single = bytes(1, 2);
  const copy = concat(single);
  eql(copy, single);
  notStrictEqual(copy, single);
  notStrictEqual(copy.buffer, single.buffer);
});

Deno.test("own() returns an ArrayBuffer-backed copy of exactly the view", () => {
  const shared = bytes(0, 1, 2, 3, 4, 5);
  const view = shared.subarray(2, 5);
  const copy = own(view);
  eql(copy, bytes(2, 3, 4));
  ok(copy.buffer instanceof ArrayBuffer);
  strictEqual(copy.byteOffset, 0);
  strictEqual(copy.buffer.byteLength, 3);
  shared[2] = 0xee;
  strictEqual(copy[0], 2, "the copy does not follow the original");
  const fromShared = new Uint8Array(new SharedArrayBuffer(4)).fill(7);
  const ownedShared = own(fromShared);
  ok(ownedShared.buffer instanceof ArrayBuffer);
  eql(ownedShared, bytes(7, 7, 7, 7));
  eql(own(new Uint8Array(0)), new Uint8Array(0));
});

Deno.test("utf8() encodes strings as UTF-8", () => {
  eql(utf8(""), new Uint8Array(0));
  eql(utf8("securechat\r\n"), bytes(...[..."securechat\r\n"].map((c) => c.charCodeAt(0))));
  eql(utf8("é€😀"), bytes(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80));
});

Deno.test("sha256() matches the FIPS 180-2 vectors", async () => {
  strictEqual(
    toHex(await sha256(utf8("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  strictEqual(
    toHex(await sha256(new Uint8Array(0))),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  // A view into a larger buffer hashes only the view.
  const shared = concat(bytes(0xff), utf8("abc"), bytes(0xff));
  eql(await sha256(shared.subarray(1, 4)), await sha256(utf8("abc")));
});
