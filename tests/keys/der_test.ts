import { deepStrictEqual as eql, strictEqual, throws } from "node:assert/strict";
import {
  DerReader,
  encodeBitString,
  encodeElement,
  encodeExplicit,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
  MAX_DER_LENGTH,
} from "../../lib/keys/der.ts";
import { fromHex, toHex } from "../../lib/core/bytes.ts";

Deno.test("`DerReader` reads back what the encoders write", () => {
  const der = encodeSequence(
    encodeInteger(600_000),
    encodeInteger(Uint8Array.of(0x00, 0x00, 0x80, 0x01)),
    encodeOctetString(Uint8Array.of(1, 2, 3)),
    encodeBitString(Uint8Array.of(9)),
    encodeNull(),
    encodeOid("1.2.840.113549.1.5.13"),
    encodeExplicit(2, encodeInteger(32)),
  );
  const outer = new DerReader(der, "test");
  const r = outer.sequence("outer");
  outer.end("outer");
  strictEqual(r.smallInteger("a", 1e6), 600_000);
  eql(r.unsignedInteger("b"), Uint8Array.of(0x80, 0x01));
  eql(r.octetString("c"), Uint8Array.of(1, 2, 3));
  eql(r.bitString("d"), Uint8Array.of(9));
  r.null("e");
  strictEqual(r.oid("f"), "1.2.840.113549.1.5.13");
  strictEqual(r.explicit(2, "g").smallInteger("g", 100), 32);
  r.end("outer");
});

Deno.test("`encodeOid()` matches known encodings", () => {
  strictEqual(toHex(encodeOid("1.3.101.112")), "06032b6570");
  strictEqual(toHex(encodeOid("1.2.840.113549.1.1.1")), "06092a864886f70d010101");
  strictEqual(
    toHex(encodeOid("2.16.840.1.101.3.4.1.42")),
    "060960864801650304012a",
  );
  throws(() => encodeOid("1.40"), SyntaxError);
  throws(() => encodeOid("abc"), SyntaxError);
});

Deno.test("`encodeElement()` uses the shortest length form at each boundary", () => {
  for (
    const [length, header] of [[127, "047f"], [128, "048180"], [255, "0481ff"], [
      256,
      "04820100",
    ]] as const
  ) {
    const encoded = encodeElement(0x04, new Uint8Array(length));
    strictEqual(toHex(encoded.subarray(0, header.length / 2)), header);
    strictEqual(new DerReader(encoded, "test").octetString("x").length, length);
  }
});

Deno.test("`DerReader` rejects malformed input with a SyntaxError naming the field", () => {
  const cases: [string, string, (r: DerReader) => unknown][] = [
    ["empty input", "", (r) => r.sequence("seq")],
    ["missing length", "30", (r) => r.sequence("seq")],
    ["length past the end", "3005020100", (r) => r.sequence("seq")],
    ["indefinite length", "3080020100 0000", (r) => r.sequence("seq")],
    ["non-minimal long length", "30810302 0100", (r) => r.sequence("seq")],
    ["non-minimal two-byte length", "3082000302 0100", (r) => r.sequence("seq")],
    ["four length bytes", "3084000000030201 00", (r) => r.sequence("seq")],
    ["wrong tag", "040100", (r) => r.sequence("seq")],
    ["empty INTEGER", "0200", (r) => r.unsignedInteger("n")],
    ["non-minimal INTEGER", "0202007f", (r) => r.unsignedInteger("n")],
    ["negative INTEGER", "020180", (r) => r.unsignedInteger("n")],
    ["INTEGER over its bound", "020203e9", (r) => r.smallInteger("n", 1000)],
    ["BIT STRING with unused bits", "03020100", (r) => r.bitString("b")],
    ["empty BIT STRING", "0300", (r) => r.bitString("b")],
    ["NULL with content", "050100", (r) => r.null("z")],
    ["OID with a non-minimal arc", "06032b8001", (r) => r.oid("o")],
    ["OID ending mid-arc", "06022b81", (r) => r.oid("o")],
    ["trailing bytes", "050000", (r) => (r.null("z"), r.end("z"))],
  ];
  for (const [name, hex, read] of cases) {
    throws(() => read(new DerReader(fromHex(hex.replace(/ /g, "")), "test")), SyntaxError, name);
  }
});

Deno.test("`DerReader` refuses input over MAX_DER_LENGTH before reading it", () => {
  throws(() => new DerReader(new Uint8Array(MAX_DER_LENGTH + 1), "test"), /longer than 65536/);
});
