/**
 * The Rendezvous messages of PROTOCOL.md 15.2: exact encodings, round trips, and a decode_error
 * for everything malformed (every truncation, a trailing byte, a type of the other direction, a
 * reason that is not UTF-8).
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { concat, toHex, utf8 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  decodeRendezvousAnswer,
  decodeRendezvousRequest,
  encodeRendezvousAnswer,
  encodeRendezvousRequest,
  MAX_REASON_BYTES,
  type RendezvousAnswer,
  type RendezvousRequest,
} from "../../lib/rendezvous/rendezvous_messages.ts";
import { isCode } from "../_helpers/assert_error.ts";

const decodeError = isCode(ProtocolError, "decode_error", "decode_error");
const token = new Uint8Array(32).map((_, i) => i);

const requests: [RendezvousRequest, string][] = [
  [{ type: "register", token }, "01" + toHex(token)],
  [{ type: "meet", token }, "02" + toHex(token)],
  [{ type: "room", token }, "03" + toHex(token)],
  // Section 16.4: a room and the position of its log to continue after.
  [{ type: "resume_room", token, position: 258n }, "04" + toHex(token) + "0000000000000102"],
  [
    { type: "resume_room", token, position: 2n ** 64n - 1n },
    "04" + toHex(token) + "ffffffffffffffff",
  ],
  [{ type: "spliced" }, "10"],
];

const answers: [RendezvousAnswer, string][] = [
  [{ type: "waiting", expiresIn: 3600 }, "8100000e10"],
  [{ type: "waiting", expiresIn: 0 }, "8100000000"],
  [{ type: "waiting", expiresIn: 2 ** 32 - 1 }, "81ffffffff"],
  [{ type: "paired" }, "82"],
  [{ type: "refused", reason: "" }, "8300"],
  [{ type: "refused", reason: "full" }, "830466756c6c"],
  [{ type: "refused", reason: "é".repeat(127) }, "83fe" + toHex(utf8("é".repeat(127)))],
  [{ type: "refused", reason: "x".repeat(MAX_REASON_BYTES) }, "83ff" + "78".repeat(255)],
  [{ type: "joined" }, "84"],
  // Section 16.5: `length u8 || host:port`.
  [{ type: "redirect", address: "10.0.0.2:65433" }, "850e" + toHex(utf8("10.0.0.2:65433"))],
  [{ type: "redirect", address: "r".repeat(255) }, "85ff" + "72".repeat(255)],
];

Deno.test("encodeRendezvousRequest() writes section 15.2's bytes, and decoding gives the request back", () => {
  for (const [request, hex] of requests) {
    strictEqual(toHex(encodeRendezvousRequest(request)), hex);
    deepStrictEqual(decodeRendezvousRequest(encodeRendezvousRequest(request)), request);
  }
});

Deno.test("encodeRendezvousAnswer() writes section 15.2's bytes, and decoding gives the answer back", () => {
  for (const [answer, hex] of answers) {
    strictEqual(toHex(encodeRendezvousAnswer(answer)), hex);
    deepStrictEqual(decodeRendezvousAnswer(encodeRendezvousAnswer(answer)), answer);
  }
});

Deno.test("decodeRendezvousRequest() refuses every truncation and a trailing byte", () => {
  for (const [request] of requests) {
    const bytes = encodeRendezvousRequest(request);
    for (let length = 0; length < bytes.length; length++) {
      throws(() => decodeRendezvousRequest(bytes.subarray(0, length)), decodeError);
    }
    throws(() => decodeRendezvousRequest(concat(bytes, Uint8Array.of(0))), decodeError);
  }
});

Deno.test("decodeRendezvousAnswer() refuses every truncation and a trailing byte", () => {
  for (const [answer] of answers) {
    const bytes = encodeRendezvousAnswer(answer);
    for (let length = 0; length < bytes.length; length++) {
      throws(() => decodeRendezvousAnswer(bytes.subarray(0, length)), decodeError);
    }
    throws(() => decodeRendezvousAnswer(concat(bytes, Uint8Array.of(0))), decodeError);
  }
});

Deno.test("the decoders refuse a type of the other direction and every unknown type", () => {
  for (let type = 0; type < 256; type++) {
    const body = concat(Uint8Array.of(type), token);
    const isRequest = [0x01, 0x02, 0x03, 0x04].includes(type);
    if (!isRequest) throws(() => decodeRendezvousRequest(body), decodeError);
    if (type !== 0x10) {
      throws(() => decodeRendezvousRequest(Uint8Array.of(type)), decodeError);
    }
    if (![0x81, 0x82, 0x84].includes(type)) {
      throws(() => decodeRendezvousAnswer(Uint8Array.of(type)), decodeError);
    }
  }
});

Deno.test("decodeRendezvousAnswer() refuses a Refused reason that is not UTF-8", () => {
  throws(() => decodeRendezvousAnswer(Uint8Array.of(0x83, 2, 0xc3, 0x28)), decodeError);
  throws(() => decodeRendezvousAnswer(Uint8Array.of(0x83, 1, 0xff)), decodeError);
});

Deno.test("a Redirect must name an address: empty, not UTF-8 or over 255 bytes is refused", () => {
  throws(() => decodeRendezvousAnswer(Uint8Array.of(0x85, 0)), decodeError);
  throws(() => decodeRendezvousAnswer(Uint8Array.of(0x85, 1, 0xff)), decodeError);
  throws(() => encodeRendezvousAnswer({ type: "redirect", address: "" }), RangeError);
  throws(() => encodeRendezvousAnswer({ type: "redirect", address: "r".repeat(256) }), RangeError);
});

Deno.test("the encoders refuse a token that is not 32 bytes, a long reason and a bad expires_in", () => {
  throws(() => encodeRendezvousRequest({ type: "meet", token: new Uint8Array(31) }), RangeError);
  throws(() => encodeRendezvousRequest({ type: "room", token: new Uint8Array(33) }), RangeError);
  throws(() => encodeRendezvousAnswer({ type: "refused", reason: "x".repeat(256) }), RangeError);
  throws(() => encodeRendezvousAnswer({ type: "refused", reason: "é".repeat(128) }), RangeError);
  throws(() => encodeRendezvousAnswer({ type: "waiting", expiresIn: 2 ** 32 }), RangeError);
  throws(() => encodeRendezvousAnswer({ type: "waiting", expiresIn: -1 }), RangeError);
  throws(() => encodeRendezvousAnswer({ type: "waiting", expiresIn: 1.5 }), RangeError);
});
