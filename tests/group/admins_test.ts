import { deepStrictEqual as eql, strictEqual, throws } from "node:assert/strict";
import { concat, u16, u8 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  ADMINS_EXTENSION_TYPE,
  authorOfFingerprint,
  commitRefusal,
  decodeAdmins,
  encodeAdmins,
  fingerprintOfAuthor,
  type PolicyProposal,
  type PolicyState,
  proposalRefusal,
} from "../../lib/group/admins.ts";
import { isCode } from "../_helpers/assert_error.ts";

const author = (byte: number) => new Uint8Array(32).fill(byte);
const [A, B, C] = [author(1), author(2), author(3)];

Deno.test("`encodeAdmins()` sorts by bytes and `decodeAdmins()` reads it back", () => {
  const bytes = encodeAdmins([C, A, B]);
  eql(bytes.subarray(0, 2), u16(3));
  eql(decodeAdmins(bytes), [A, B, C]);
  eql(decodeAdmins(encodeAdmins([A])), [A]);
  const most = Array.from({ length: 256 }, (_, i) => author(0).fill(i, 31));
  strictEqual(decodeAdmins(encodeAdmins(most)).length, 256);
});

Deno.test("`encodeAdmins()` refuses no admin, 257, a duplicate and a short id", () => {
  throws(() => encodeAdmins([]), RangeError);
  throws(() => encodeAdmins(Array.from({ length: 257 }, (_, i) => author(i % 256))), RangeError);
  throws(() => encodeAdmins([A, B, A]), RangeError);
  throws(() => encodeAdmins([new Uint8Array(31)]), RangeError);
});

Deno.test("`decodeAdmins()` refuses bad counts, disorder, duplicates, short and trailing bytes", () => {
  const cases: [string, Uint8Array][] = [
    ["count 0", u16(0)],
    ["count 257", concat(u16(257), new Uint8Array(257 * 32))],
    ["unsorted", concat(u16(2), B, A)],
    ["duplicate", concat(u16(2), A, A)],
    ["cut short", concat(u16(2), A, B.subarray(1))],
    ["trailing", concat(u16(1), A, u8(0))],
    ["empty", new Uint8Array()],
  ];
  for (const [what, bytes] of cases) {
    throws(() => decodeAdmins(bytes), isCode(ProtocolError, "bad_admins"), what);
  }
});

Deno.test("`authorOfFingerprint()` inverts `fingerprintOfAuthor()` and refuses anything else", () => {
  const fingerprint = fingerprintOfAuthor(A);
  strictEqual(fingerprint, "SHA256:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE");
  eql(authorOfFingerprint(fingerprint), A);
  for (
    const bad of [
      "",
      "SHA256:",
      fingerprint.slice(0, -1),
      fingerprint + "=",
      "MD5:" + fingerprint.slice(7),
    ]
  ) {
    throws(() => authorOfFingerprint(bad), RangeError, bad);
  }
  // The last character carries 2 bits of padding, which must be zero.
  throws(() => authorOfFingerprint(fingerprint.slice(0, -1) + "F"), RangeError);
});

/** Leaves 0 (A, admin), 1 (B) and 2 (C). */
const before: PolicyState = {
  admins: [A],
  authorOf: (leaf) => [A, B, C][leaf],
  leaves: [0, 1, 2],
};

const admins = (...authors: Uint8Array[]): PolicyProposal => ({
  type: "group_context_extensions",
  proposer: 0,
  extensions: [{ extensionType: ADMINS_EXTENSION_TYPE, extensionData: encodeAdmins(authors) }],
});

Deno.test("`commitRefusal()` applies the table of section 13.3", () => {
  const table: [string, number | undefined, PolicyProposal[], boolean][] = [
    ["an admin adds", 0, [{ type: "add", proposer: 0 }], true],
    ["a member adds", 1, [{ type: "add", proposer: 1 }], false],
    ["an admin removes", 0, [{ type: "remove", proposer: 0, removed: 2 }], true],
    ["a member removes another", 1, [{ type: "remove", proposer: 1, removed: 2 }], false],
    [
      "a member commits a leaver's proposal",
      1,
      [{ type: "remove", proposer: 2, removed: 2 }],
      true,
    ],
    ["a member commits someone's proposal to remove another", 1, [{
      type: "remove",
      proposer: 2,
      removed: 0,
    }], false],
    ["an update", 1, [{ type: "update", proposer: 2 }], true],
    ["an empty commit", 2, [], true],
    ["an admin makes B admin", 0, [admins(A, B)], true],
    ["a member makes itself admin", 1, [{ ...admins(A, B), proposer: 1 }], false],
    ["an admin hands over and leaves the list", 0, [admins(B)], true],
    ["an admin lists only the member it removes", 0, [admins(C), {
      type: "remove",
      proposer: 0,
      removed: 2,
    }], false],
    ["an admin lists nobody in the group", 0, [admins(author(9))], false],
    ["a PSK", 0, [{ type: "other", proposer: 0, name: "psk" }], false],
    ["a custom proposal", 0, [{ type: "other", proposer: 0, name: "4660" }], false],
    ["an external commit", undefined, [], false],
    ["a blank leaf adds", 7, [{ type: "add", proposer: 7 }], false],
  ];
  for (const [what, committer, proposals, allowed] of table) {
    strictEqual(commitRefusal(committer, proposals, before) === undefined, allowed, what);
  }
});

Deno.test("`commitRefusal()` refuses a GroupContext with anything but one valid admins extension", () => {
  const data = encodeAdmins([A]);
  const bad: [string, { extensionType: number | string; extensionData: Uint8Array }[]][] = [
    ["no extension", []],
    ["another extension too", [{ extensionType: ADMINS_EXTENSION_TYPE, extensionData: data }, {
      extensionType: "external_senders",
      extensionData: new Uint8Array(),
    }]],
    ["two admins extensions", [
      { extensionType: ADMINS_EXTENSION_TYPE, extensionData: data },
      { extensionType: ADMINS_EXTENSION_TYPE, extensionData: data },
    ]],
    ["a malformed one", [{ extensionType: ADMINS_EXTENSION_TYPE, extensionData: u16(0) }]],
  ];
  for (const [what, extensions] of bad) {
    const proposal: PolicyProposal = { type: "group_context_extensions", proposer: 0, extensions };
    strictEqual(typeof commitRefusal(0, [proposal], before), "string", what);
  }
});

Deno.test("`proposalRefusal()` keeps only a member's proposal to remove itself", () => {
  strictEqual(proposalRefusal(2, { type: "remove", proposer: 2, removed: 2 }), undefined);
  for (
    const proposal of [
      { type: "remove", proposer: 2, removed: 1 },
      { type: "add", proposer: 2 },
      { type: "update", proposer: 2 },
      admins(A),
      { type: "other", proposer: 2, name: "psk" },
    ] satisfies PolicyProposal[]
  ) {
    strictEqual(typeof proposalRefusal(2, proposal), "string", proposal.type);
  }
  strictEqual(
    typeof proposalRefusal(undefined, { type: "remove", proposer: undefined, removed: 0 }),
    "string",
  );
});
