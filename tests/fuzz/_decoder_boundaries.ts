/**
 * The boundary table of decoder_fuzz_test.ts: every length field, count and range of the decoders
 * in _decoder_codecs.ts at 0, 1, its limit and one past it, every type byte of the wrong
 * direction, each with the verdict PROTOCOL.md gives (sections 5, 13.2, 13.4, 13.5, 14) or RFC
 * 9420 section 6 for the MLS clear header. This file has the hellos, the relay messages and the
 * clear header; _decoder_boundaries_content.ts what travels inside the group.
 *
 * @module
 */

import { concat, u16, u64, u8, utf8 } from "../../lib/core/bytes.ts";
import { SHARE_LENGTHS, SUITE_IDS, type SuiteName } from "../../lib/crypto/kex.ts";
import { varint } from "../_helpers/mls_messages.ts";
import {
  alice,
  bobAuthor,
  clientHello,
  type Codec,
  fromRelay,
  identity,
  Layout,
  mlsHeader,
  serverHello,
  toRelay,
} from "./_decoder_codecs.ts";
import { clientHelloLayout } from "./_decoder_samples.ts";
import {
  contentRows,
  credentialRows,
  sealRows,
  transferRows,
} from "./_decoder_boundaries_content.ts";

export interface Boundary {
  what: string;
  codec: Codec;
  bytes: Uint8Array;
  valid: boolean;
}

export type Row = (what: string, codec: Codec, bytes: Uint8Array | Layout, valid: boolean) => void;

/** Every row, hellos first. */
export async function boundaryTable(): Promise<Boundary[]> {
  const rows: Boundary[] = [];
  const row: Row = (what, codec, bytes, valid) =>
    rows.push({ what, codec, bytes: bytes instanceof Layout ? bytes.done().bytes : bytes, valid });
  helloRows(row);
  relayRows(row);
  mlsRows(row);
  contentRows(row);
  await credentialRows(row);
  transferRows(row);
  await sealRows(row);
  return rows;
}

export const filled = (length: number, byte = 0x61) => new Uint8Array(length).fill(byte);

function helloRows(row: Row): void {
  const x = { id: SUITE_IDS.x25519, share: filled(32, 9) };
  // 5.1 versions_count 1..16, max_record_plaintext 16384..1048576, shares_count 1..8.
  for (const [n, valid] of [[0, false], [1, true], [16, true], [17, false]] as const) {
    row(`versions_count ${n}`, clientHello, clientHelloLayout(Array(n).fill(1), 16384, [x]), valid);
  }
  for (
    const [m, valid] of [
      [16383, false],
      [16384, true],
      [1048576, true],
      [1048577, false],
      [2 ** 32 - 1, false],
    ] as const
  ) {
    row(
      `ClientHello max_record_plaintext ${m}`,
      clientHello,
      clientHelloLayout([1], m, [x]),
      valid,
    );
    row(
      `ServerHello max_record_plaintext ${m}`,
      serverHello,
      new Layout().int(1, 1).bytes(filled(32, 0)).int(4, m).int(1, x.id).sized(2, x.share, 32)
        .int(1, 0x02),
      valid,
    );
  }
  const unknown = (k: number) => ({ id: 0x80 + k, share: Uint8Array.of(k) });
  for (const [n, valid] of [[0, false], [1, true], [8, true], [9, false]] as const) {
    const shares = n === 0 ? [] : [x, ...Array.from({ length: n - 1 }, (_, k) => unknown(k))];
    row(`shares_count ${n}`, clientHello, clientHelloLayout([1], 16384, shares), valid);
  }
  for (const suite of Object.keys(SUITE_IDS) as SuiteName[]) {
    for (const side of ["initiator", "responder"] as const) {
      const exact = SHARE_LENGTHS[suite][side];
      for (const length of [0, exact - 1, exact, exact + 1]) {
        const share = { id: SUITE_IDS[suite], share: filled(length, 7) };
        const layout = side === "initiator"
          ? clientHelloLayout([1], 16384, [share])
          : new Layout().int(1, 1).bytes(filled(32, 0)).int(4, 16384).int(1, share.id)
            .sized(2, share.share, 0xffff).int(1, 0x02);
        row(
          `${suite} ${side} share of ${length} bytes`,
          side === "initiator" ? clientHello : serverHello,
          layout,
          length === exact,
        );
      }
    }
  }
  // 5.1 record_suites_count 1..8 (unknown ids skipped); 5.2 record_suite must be known (4.5).
  for (const [n, valid] of [[0, false], [1, true], [8, true], [9, false]] as const) {
    const ids = Array.from({ length: n }, (_, k) => k === 0 ? 0x02 : 0x80 + k);
    row(`record_suites_count ${n}`, clientHello, clientHelloLayout([1], 16384, [x], ids), valid);
  }
  row(
    "record suite offered twice",
    clientHello,
    clientHelloLayout([1], 16384, [x], [2, 1, 2]),
    false,
  );
  for (const [id, valid] of [[0x00, false], [0x01, true], [0x02, true], [0x03, false]] as const) {
    row(
      `ServerHello record_suite ${id}`,
      serverHello,
      new Layout().int(1, 1).bytes(filled(32, 0)).int(4, 16384).int(1, x.id).sized(2, x.share, 32)
        .int(1, id),
      valid,
    );
  }
  // 5.3 name 0..64 bytes.
  for (const [n, valid] of [[0, true], [1, true], [63, true], [64, true], [65, false]] as const) {
    row(
      `Identity name of ${n} bytes`,
      identity,
      new Layout().int(1, 0x0b).sized(2, alice.spki, 0xffff).sized(1, filled(n), 255),
      valid,
    );
  }
}

/** 13.4: both directions, every length and count, and each type where it does not belong. */
function relayRows(row: Row): void {
  const mls = (length: number) => filled(length, 0x4d);
  row("an empty record", toRelay, new Uint8Array(0), false);
  row("an empty record", fromRelay, new Uint8Array(0), false);
  for (const [type, name] of [[0x40, "KeyPackage"], [0x42, "Group"]] as const) {
    row(`${name} of 0 bytes`, toRelay, Uint8Array.of(type), false);
    row(`${name} of 1 byte`, toRelay, Uint8Array.of(type, 1), true);
  }
  const commit = (
    o: { commit?: number; welcome?: number; count?: number; recipients?: number },
  ) => {
    const l = new Layout().int(1, 0x41).sized(4, mls(o.commit ?? 9), 1_048_544)
      .sized(4, mls(o.welcome ?? 0), 1_048_544).int(2, o.count ?? 0);
    for (let i = 0; i < (o.recipients ?? o.count ?? 0); i++) l.bytes(filled(32, i));
    return l;
  };
  row("Commit with an empty commit", toRelay, commit({ commit: 0 }), false);
  row("Commit without a Welcome", toRelay, commit({}), true);
  row("Commit with a Welcome and no recipients", toRelay, commit({ welcome: 5 }), true);
  row("Commit with a Welcome and 2 recipients", toRelay, commit({ welcome: 5, count: 2 }), true);
  row("Commit listing recipients without a Welcome", toRelay, commit({ count: 1 }), false);
  row(
    "Commit counting 2 recipients, carrying 1",
    toRelay,
    commit({ welcome: 5, count: 2, recipients: 1 }),
    false,
  );
  row(
    "Commit with a byte after its recipients",
    toRelay,
    commit({ welcome: 5, count: 1 }).bytes(u8(0)),
    false,
  );
  row(
    "Commit whose commit_length runs past the end",
    toRelay,
    new Layout().int(1, 0x41).int(4, 10).bytes(mls(9)),
    false,
  );
  for (
    const [n, valid] of [[0, false], [1, true], [262144, true], [262145, false]] as const
  ) {
    row(
      `Direct of ${n} bytes`,
      toRelay,
      new Layout().int(1, 0x43).bytes(bobAuthor).bytes(mls(n)),
      valid,
    );
    row(
      `relayed Direct of ${n} bytes`,
      fromRelay,
      new Layout().int(1, 0x56).bytes(bobAuthor).bytes(mls(n)),
      valid,
    );
  }
  row("Direct with a recipient cut short", toRelay, concat(u8(0x43), filled(31)), false);
  for (const type of [0x00, 0x01, 0x20, 0x44, 0x50, 0x53, 0x57, 0xff]) {
    row(`type 0x${type.toString(16)} to the relay`, toRelay, concat(u8(type), filled(40)), false);
  }
  for (
    const [role, valid] of [[0, false], [1, true], [2, true], [3, true], [4, false]] as const
  ) {
    row(`Start role ${role}`, fromRelay, Uint8Array.of(0x01, role), valid);
  }
  row("Start without a role", fromRelay, Uint8Array.of(0x01), false);
  row("Start with a trailing byte", fromRelay, Uint8Array.of(0x01, 1, 0), false);
  for (const level of [0, 2, 3, 255]) {
    // The level is the relay's word; any value decodes (members show unknown levels as info).
    row(
      `Notice level ${level}`,
      fromRelay,
      new Layout().int(1, 0x20).int(1, level).sized(2, utf8("x"), 0xffff),
      true,
    );
  }
  for (const n of [0, 0xffff]) {
    row(
      `Notice text of ${n} bytes`,
      fromRelay,
      new Layout().int(1, 0x20).int(1, 0).sized(2, filled(n), 0xffff),
      true,
    );
  }
  row(
    "Notice text that is not UTF-8",
    fromRelay,
    new Layout().int(1, 0x20).int(1, 0).sized(2, Uint8Array.of(0xc3), 0xffff),
    false,
  );
  row(
    "Notice text cut short",
    fromRelay,
    new Layout().int(1, 0x20).int(1, 0).int(2, 5).bytes(filled(4)),
    false,
  );
  for (
    const [type, name] of [[0x50, "Knock"], [0x51, "Welcome"], [0x52, "Commit"], [
      0x55,
      "Group",
    ]] as const
  ) {
    row(`relayed ${name} of 0 bytes`, fromRelay, concat(u8(type), bobAuthor), false);
    row(`relayed ${name} of 1 byte`, fromRelay, concat(u8(type), bobAuthor, u8(1)), true);
    row(`relayed ${name} with a sender cut short`, fromRelay, concat(u8(type), filled(31)), false);
  }
  for (const [type, name] of [[0x53, "Accepted"], [0x54, "Refused"]] as const) {
    for (const [n, valid] of [[7, false], [8, true], [9, false]] as const) {
      row(`${name} epoch of ${n} bytes`, fromRelay, concat(u8(type), filled(n, 0xff)), valid);
    }
  }
  for (const [n, valid] of [[31, false], [32, true], [33, false]] as const) {
    row(`Left sender of ${n} bytes`, fromRelay, concat(u8(0x57), filled(n)), valid);
  }
  // Section 16.4: a clustered relay's Position is a u64, nothing more.
  for (const [n, valid] of [[7, false], [8, true], [9, false]] as const) {
    row(`Position of ${n} bytes`, fromRelay, concat(u8(0x58), filled(n, 0xff)), valid);
  }
  for (const type of [0x00, 0x40, 0x41, 0x42, 0x43, 0x59, 0xff]) {
    row(
      `type 0x${type.toString(16)} from the relay`,
      fromRelay,
      concat(u8(type), filled(40)),
      false,
    );
  }
}

/** RFC 9420 section 6 and 2.1.2: the clear header the relay reads. */
function mlsRows(row: Row): void {
  const vec = (bytes: Uint8Array) => concat(varint(bytes.length), bytes);
  const pm = (o: {
    version?: number;
    wire?: number;
    group?: Uint8Array;
    contentType?: number;
    ciphertext?: Uint8Array;
    tail?: Uint8Array;
  }) =>
    concat(
      u16(o.version ?? 1),
      u16(o.wire ?? 2),
      o.group ?? vec(filled(32, 0x47)),
      u64(7n),
      u8(o.contentType ?? 1),
      vec(new Uint8Array(0)),
      vec(filled(28, 0x53)),
      o.ciphertext ?? vec(filled(40, 0x43)),
      o.tail ?? new Uint8Array(0),
    );
  for (const [version, valid] of [[0, false], [1, true], [2, false]] as const) {
    row(`MLS version ${version}`, mlsHeader, pm({ version }), valid);
  }
  for (
    const [wire, valid] of [[0, false], [1, true], [3, true], [4, true], [5, true], [6, false], [
      0xffff,
      false,
    ]] as const
  ) {
    row(
      `MLS wire format ${wire} with a body`,
      mlsHeader,
      concat(u16(1), u16(wire), filled(20)),
      valid,
    );
  }
  for (const wire of [1, 3, 4, 5]) {
    row(`MLS wire format ${wire}, header only`, mlsHeader, concat(u16(1), u16(wire)), false);
  }
  for (
    const [contentType, valid] of [[0, false], [1, true], [2, true], [3, true], [4, false]] as const
  ) {
    row(`MLS content type ${contentType}`, mlsHeader, pm({ contentType }), valid);
  }
  row("group_id of 63 bytes, 1-byte length", mlsHeader, pm({ group: vec(filled(63)) }), true);
  row("group_id of 64 bytes, 2-byte length", mlsHeader, pm({ group: vec(filled(64)) }), true);
  row(
    "group_id of 5 bytes, 2-byte length",
    mlsHeader,
    pm({ group: concat(u16(0x4005), filled(5)) }),
    false,
  );
  row(
    "group_id of 64 bytes, 4-byte length",
    mlsHeader,
    pm({ group: concat(Uint8Array.of(0x80, 0, 0, 64), filled(64)) }),
    false,
  );
  row(
    "group_id length with prefix 0b11",
    mlsHeader,
    pm({ group: concat(u8(0xc0), filled(8)) }),
    false,
  );
  row(
    "ciphertext of 16383 bytes, 2-byte length",
    mlsHeader,
    pm({ ciphertext: vec(filled(16383)) }),
    true,
  );
  row(
    "ciphertext of 16384 bytes, 4-byte length",
    mlsHeader,
    pm({ ciphertext: vec(filled(16384)) }),
    true,
  );
  row(
    "ciphertext of 100 bytes, 4-byte length",
    mlsHeader,
    pm({ ciphertext: concat(Uint8Array.of(0x80, 0, 0, 100), filled(100)) }),
    false,
  );
  row("PrivateMessage with a trailing byte", mlsHeader, pm({ tail: u8(0) }), false);
  row(
    "PrivateMessage without its ciphertext",
    mlsHeader,
    pm({ ciphertext: new Uint8Array(0) }),
    false,
  );
  row(
    "ciphertext length past the end",
    mlsHeader,
    pm({ ciphertext: concat(u8(41), filled(40)) }),
    false,
  );
}
