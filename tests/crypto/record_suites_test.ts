/**
 * lib/crypto/record_suites.ts: the ids of PROTOCOL.md 4.5, parsing `--record-suites`, and that each
 * name makes the AEAD it says.
 */

import { deepStrictEqual as eql, strictEqual, throws } from "node:assert/strict";
import {
  ALL_RECORD_SUITES,
  createRecordAead,
  DEFAULT_RECORD_SUITES,
  parseRecordSuites,
  RECORD_SUITE_IDS,
  recordSuiteById,
} from "../../lib/crypto/record_suites.ts";
import { Aes256Gcm } from "../../lib/crypto/aead.ts";
import { ChaCha20Poly1305 } from "../../lib/crypto/chacha20_poly1305.ts";

Deno.test("record suite ids are PROTOCOL.md 4.5's, and recordSuiteById() knows only those", () => {
  eql(RECORD_SUITE_IDS, { "aes-256-gcm": 0x01, "chacha20-poly1305": 0x02 });
  strictEqual(recordSuiteById(0x01), "aes-256-gcm");
  strictEqual(recordSuiteById(0x02), "chacha20-poly1305");
  for (const id of [0x00, 0x03, 0xff]) strictEqual(recordSuiteById(id), undefined);
  eql(DEFAULT_RECORD_SUITES, ["chacha20-poly1305", "aes-256-gcm"]);
});

Deno.test("parseRecordSuites() takes a comma list in order and refuses unknown, inherited and repeated names", () => {
  eql(parseRecordSuites("aes-256-gcm"), ["aes-256-gcm"]);
  eql(parseRecordSuites(" aes-256-gcm , chacha20-poly1305 "), ["aes-256-gcm", "chacha20-poly1305"]);
  for (const text of ["", ",", "rot13", "toString", "constructor", "__proto__", "AES-256-GCM"]) {
    throws(() => parseRecordSuites(text), RangeError, JSON.stringify(text));
  }
  throws(() => parseRecordSuites("aes-256-gcm,aes-256-gcm"), /named twice/);
});

Deno.test("createRecordAead() makes each suite's own AEAD", async () => {
  const key = new Uint8Array(32).fill(5);
  for (const suite of ALL_RECORD_SUITES) {
    const aead = await createRecordAead(suite, key);
    strictEqual(
      aead instanceof (suite === "aes-256-gcm" ? Aes256Gcm : ChaCha20Poly1305),
      true,
      suite,
    );
  }
});
