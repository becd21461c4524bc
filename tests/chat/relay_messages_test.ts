/**
 * The relay messages of PROTOCOL.md 13.4: exact encodings, round trips in both directions, and a
 * decode_error for everything malformed (every truncation, a trailing byte, a type in the wrong
 * direction, bounds of Direct and of author ids).
 */

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { concat } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  decodeFromRelay,
  decodeToRelay,
  encodeFromRelay,
  encodeToRelay,
  type FromRelay,
  MAX_DIRECT_BYTES,
  MAX_RELAY_MESSAGE_BYTES,
  NOTICE_LEVEL,
  RELAY_MESSAGE,
  type ToRelay,
} from "../../lib/chat/relay_messages.ts";
import { isCode } from "../_helpers/assert_error.ts";

const id = (n: number) => new Uint8Array(32).fill(n);
const mls = (n: number, length = 5) => new Uint8Array(length).fill(n);

const decodeError = isCode(ProtocolError, "decode_error", "decode_error");

const toRelay: ToRelay[] = [
  { type: "key_package", keyPackage: mls(1) },
  { type: "commit", commit: mls(2), recipients: [] },
  { type: "commit", commit: mls(2), welcome: mls(3, 7), recipients: [id(4), id(5)] },
  { type: "commit", commit: mls(2), welcome: mls(3), recipients: [] },
  { type: "group", message: mls(6) },
  { type: "direct", recipient: id(7), bytes: Uint8Array.of(8) },
  { type: "direct", recipient: id(7), bytes: new Uint8Array(MAX_DIRECT_BYTES) },
];

const fromRelay: FromRelay[] = [
  { type: "start", role: "create" },
  { type: "start", role: "wait" },
  { type: "notice", level: NOTICE_LEVEL.warning, text: "slow down: dropped" },
  { type: "notice", level: NOTICE_LEVEL.final, text: "" },
  { type: "knock", sender: id(1), keyPackage: mls(2) },
  { type: "welcome", sender: id(1), welcome: mls(3) },
  { type: "commit", sender: id(1), commit: mls(4) },
  { type: "accepted", epoch: 0n },
  { type: "refused", epoch: 0xffffffffffffffffn },
  { type: "group", sender: id(1), message: mls(5) },
  { type: "direct", sender: id(1), bytes: new Uint8Array(MAX_DIRECT_BYTES) },
  { type: "left", sender: id(9) },
  { type: "start", role: "resume" },
  { type: "position", position: 0xffffffffffffffffn },
];

Deno.test("RELAY_MESSAGE and NOTICE_LEVEL hold the codes of 13.4", () => {
  deepStrictEqual(RELAY_MESSAGE, {
    start: 0x01,
    notice: 0x20,
    keyPackage: 0x40,
    commit: 0x41,
    group: 0x42,
    direct: 0x43,
    knock: 0x50,
    welcome: 0x51,
    commitFromRelay: 0x52,
    accepted: 0x53,
    refused: 0x54,
    groupFromRelay: 0x55,
    directFromRelay: 0x56,
    left: 0x57,
    position: 0x58,
  });
  deepStrictEqual(NOTICE_LEVEL, { info: 0, warning: 1, final: 2 });
  strictEqual(MAX_DIRECT_BYTES, 262144);
  strictEqual(MAX_RELAY_MESSAGE_BYTES, 1048576 - 32);
});

Deno.test("encodeToRelay() writes the fields of 13.4 in order", () => {
  deepStrictEqual(
    encodeToRelay({ type: "commit", commit: mls(2, 2), welcome: mls(3, 1), recipients: [id(4)] }),
    concat(Uint8Array.of(0x41, 0, 0, 0, 2, 2, 2, 0, 0, 0, 1, 3, 0, 1), id(4)),
  );
  deepStrictEqual(
    encodeToRelay({ type: "commit", commit: mls(2, 1), recipients: [] }),
    Uint8Array.of(0x41, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0),
  );
  deepStrictEqual(
    encodeToRelay({ type: "key_package", keyPackage: mls(1, 2) }),
    Uint8Array.of(0x40, 1, 1),
  );
  deepStrictEqual(encodeToRelay({ type: "group", message: mls(6, 1) }), Uint8Array.of(0x42, 6));
  deepStrictEqual(
    encodeToRelay({ type: "direct", recipient: id(7), bytes: Uint8Array.of(8, 9) }),
    concat(Uint8Array.of(0x43), id(7), Uint8Array.of(8, 9)),
  );
});

Deno.test("encodeFromRelay() writes the fields of 13.4 in order", () => {
  deepStrictEqual(encodeFromRelay({ type: "start", role: "create" }), Uint8Array.of(0x01, 1));
  deepStrictEqual(encodeFromRelay({ type: "start", role: "wait" }), Uint8Array.of(0x01, 2));
  deepStrictEqual(
    encodeFromRelay({ type: "notice", level: 1, text: "hé" }),
    Uint8Array.of(0x20, 1, 0, 3, 0x68, 0xc3, 0xa9),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "accepted", epoch: 258n }),
    Uint8Array.of(0x53, 0, 0, 0, 0, 0, 0, 1, 2),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "refused", epoch: 1n }),
    Uint8Array.of(0x54, 0, 0, 0, 0, 0, 0, 0, 1),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "knock", sender: id(1), keyPackage: mls(2, 1) }),
    concat(Uint8Array.of(0x50), id(1), Uint8Array.of(2)),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "welcome", sender: id(1), welcome: mls(3, 1) }),
    concat(Uint8Array.of(0x51), id(1), Uint8Array.of(3)),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "commit", sender: id(1), commit: mls(4, 1) }),
    concat(Uint8Array.of(0x52), id(1), Uint8Array.of(4)),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "group", sender: id(1), message: mls(5, 1) }),
    concat(Uint8Array.of(0x55), id(1), Uint8Array.of(5)),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "direct", sender: id(1), bytes: Uint8Array.of(6) }),
    concat(Uint8Array.of(0x56), id(1), Uint8Array.of(6)),
  );
  deepStrictEqual(
    encodeFromRelay({ type: "left", sender: id(9) }),
    concat(Uint8Array.of(0x57), id(9)),
  );
});

Deno.test("decodeToRelay() and decodeFromRelay() undo their encoders", () => {
  for (const message of toRelay) deepStrictEqual(decodeToRelay(encodeToRelay(message)), message);
  for (const message of fromRelay) {
    deepStrictEqual(decodeFromRelay(encodeFromRelay(message)), message);
  }
});

/** Every length shorter than `bytes` up to 80 (past every fixed field), and one byte short. */
function cuts(bytes: Uint8Array): number[] {
  const lengths = Array.from({ length: Math.min(bytes.length, 80) }, (_, i) => i);
  return bytes.length > 80 ? [...lengths, bytes.length - 1] : lengths;
}

Deno.test("decodeToRelay() and decodeFromRelay() refuse every truncation and a trailing byte", () => {
  // A message cut short may still decode as a shorter one only where the last field is the rest
  // of the record (an MLS message, Direct bytes): then the cut is the MLS layer's to find, as
  // long as something is left. Every other cut, and any trailing byte after a fixed layout, fails.
  for (const message of toRelay) {
    const bytes = encodeToRelay(message);
    for (const length of cuts(bytes)) {
      const cut = bytes.subarray(0, length);
      try {
        const decoded = decodeToRelay(cut);
        // Only an open-ended last field may be shorter.
        strictEqual(
          ["key_package", "group", "direct"].includes(decoded.type),
          true,
          `${message.type} cut at ${length}`,
        );
      } catch (error) {
        decodeError(error);
      }
    }
    if (message.type === "commit") {
      throws(() => decodeToRelay(concat(bytes, Uint8Array.of(0))), decodeError);
    }
  }
  for (const message of fromRelay) {
    const bytes = encodeFromRelay(message);
    for (const length of cuts(bytes)) {
      const cut = bytes.subarray(0, length);
      try {
        const decoded = decodeFromRelay(cut);
        strictEqual(
          ["knock", "welcome", "commit", "group", "direct"].includes(decoded.type),
          true,
          `${message.type} cut at ${length}`,
        );
      } catch (error) {
        decodeError(error);
      }
    }
    if (["start", "notice", "accepted", "refused", "left"].includes(message.type)) {
      throws(() => decodeFromRelay(concat(bytes, Uint8Array.of(0))), decodeError, message.type);
    }
  }
});

Deno.test("decodeToRelay() refuses types of the other direction and unknown ones, naming them", () => {
  for (const type of [0x00, 0x01, 0x20, 0x44, 0x50, 0x52, 0x55, 0x57, 0xff]) {
    throws(() => decodeToRelay(Uint8Array.of(type, 1, 2, 3)), (error: unknown) => {
      decodeError(error);
      strictEqual(
        (error as Error).message,
        `peer sent a malformed relay message: type 0x${
          type.toString(16).padStart(2, "0")
        } is not one a member sends`,
      );
      return true;
    });
  }
  for (const type of [0x00, 0x40, 0x41, 0x42, 0x43, 0x58, 0xff]) {
    throws(() => decodeFromRelay(Uint8Array.of(type, 1, 2, 3)), decodeError);
  }
  throws(() => decodeToRelay(new Uint8Array(0)), (error: unknown) => {
    decodeError(error);
    strictEqual((error as Error).message, "peer sent a malformed relay message: empty record");
    return true;
  });
});

Deno.test("decodeToRelay() bounds a Direct to 1..262144 bytes, and MLS messages to at least one", () => {
  const direct = (length: number) =>
    concat(Uint8Array.of(RELAY_MESSAGE.direct), id(1), new Uint8Array(length));
  throws(() => decodeToRelay(direct(0)), decodeError);
  strictEqual((decodeToRelay(direct(1)) as { bytes: Uint8Array }).bytes.length, 1);
  strictEqual(
    (decodeToRelay(direct(MAX_DIRECT_BYTES)) as { bytes: Uint8Array }).bytes.length,
    MAX_DIRECT_BYTES,
  );
  throws(() => decodeToRelay(direct(MAX_DIRECT_BYTES + 1)), decodeError);
  throws(() => decodeToRelay(Uint8Array.of(RELAY_MESSAGE.keyPackage)), decodeError);
  throws(() => decodeToRelay(Uint8Array.of(RELAY_MESSAGE.group)), decodeError);
  // A commit of length 0.
  throws(
    () => decodeToRelay(Uint8Array.of(RELAY_MESSAGE.commit, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    decodeError,
  );
  // Recipients without a Welcome.
  throws(
    () =>
      decodeToRelay(
        concat(Uint8Array.of(RELAY_MESSAGE.commit, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 1), id(1)),
      ),
    (error: unknown) => {
      decodeError(error);
      strictEqual(
        (error as Error).message,
        "peer sent a malformed relay message: recipients without a Welcome",
      );
      return true;
    },
  );
  // A commit length that runs past the end.
  throws(
    () => decodeToRelay(Uint8Array.of(RELAY_MESSAGE.commit, 0xff, 0xff, 0xff, 0xff, 1)),
    decodeError,
  );
});

Deno.test("decodeFromRelay() refuses an unknown Start role and a Notice text that is not UTF-8", () => {
  for (const role of [0, 4, 255]) {
    throws(() => decodeFromRelay(Uint8Array.of(RELAY_MESSAGE.start, role)), decodeError);
  }
  throws(() => decodeFromRelay(Uint8Array.of(RELAY_MESSAGE.notice, 0, 0, 1, 0xff)), decodeError);
  throws(() => decodeFromRelay(Uint8Array.of(RELAY_MESSAGE.notice, 0, 0, 2, 0x41)), decodeError);
});

Deno.test("encodeToRelay() and encodeFromRelay() refuse what the wire cannot carry", () => {
  throws(
    () => encodeToRelay({ type: "direct", recipient: id(1).subarray(1), bytes: Uint8Array.of(1) }),
    RangeError,
  );
  throws(
    () => encodeToRelay({ type: "direct", recipient: id(1), bytes: new Uint8Array(0) }),
    RangeError,
  );
  throws(
    () =>
      encodeToRelay({
        type: "direct",
        recipient: id(1),
        bytes: new Uint8Array(MAX_DIRECT_BYTES + 1),
      }),
    RangeError,
  );
  throws(() => encodeToRelay({ type: "group", message: new Uint8Array(0) }), RangeError);
  throws(() => encodeToRelay({ type: "commit", commit: mls(1), recipients: [id(1)] }), RangeError);
  throws(
    () =>
      encodeToRelay({ type: "commit", commit: mls(1), welcome: new Uint8Array(0), recipients: [] }),
    RangeError,
  );
  throws(() => encodeFromRelay({ type: "left", sender: new Uint8Array(31) }), RangeError);
  throws(() => encodeFromRelay({ type: "notice", level: 256, text: "" }), RangeError);
  throws(() => encodeFromRelay({ type: "notice", level: 0, text: "x".repeat(65536) }), RangeError);
  throws(() => encodeFromRelay({ type: "accepted", epoch: -1n }), RangeError);
});
