/**
 * The boundary table of decoder_fuzz_test.ts: every length field, count and range of the decoders
 * in _decoder_samples.ts at 0, 1, its limit and one past it, every type byte of the wrong
 * direction, each with the verdict PROTOCOL.md gives (sections 5, 13.2, 13.4, 13.5, 14) or RFC
 * 9420 section 6 for the MLS clear header. Encodings that must verify (credentials, Data seals)
 * are signed or sealed here by hand from the spec's field lists, so a valid row also proves the
 * code reads the spec as written.
 *
 * @module
 */

import { concat, own, u16, u32, u64, u8, utf8 } from "../../lib/core/bytes.ts";
import { SHARE_LENGTHS, SUITE_IDS, type SuiteName } from "../../lib/crypto/kex.ts";
import { type Identity, signTranscript } from "../../lib/keys/identity.ts";
import { MAX_DATA_SLICE } from "../../lib/transfer/transfer_messages.ts";
import type { DataParties } from "../../lib/transfer/data_seal.ts";
import { varint } from "../_helpers/mls_messages.ts";
import {
  alice,
  aliceAuthor,
  bob,
  bobAuthor,
  clientHello,
  clientHelloLayout,
  type Codec,
  credential,
  credentialCodec,
  DATA_KEY,
  DATA_PARTIES,
  dataSeal,
  dataSlice,
  fromRelay,
  identity,
  Layout,
  mlsHeader,
  roomContent,
  sealedContent,
  serverHello,
  SIGNATURE_KEY,
  SUITE_ID,
  toRelay,
  transfer,
} from "./_decoder_samples.ts";

export interface Boundary {
  what: string;
  codec: Codec;
  bytes: Uint8Array;
  valid: boolean;
}

type Row = (what: string, codec: Codec, bytes: Uint8Array | Layout, valid: boolean) => void;

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

const filled = (length: number, byte = 0x61) => new Uint8Array(length).fill(byte);

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
      new Layout().int(1, 1).bytes(filled(32, 0)).int(4, m).int(1, x.id).sized(2, x.share, 32),
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
            .sized(2, share.share, 0xffff);
        row(
          `${suite} ${side} share of ${length} bytes`,
          side === "initiator" ? clientHello : serverHello,
          layout,
          length === exact,
        );
      }
    }
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
    const [n, valid] of [[0, false], [1, true], [65536, true], [65537, false]] as const
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
  for (const [role, valid] of [[0, false], [1, true], [2, true], [3, false]] as const) {
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
  for (const type of [0x00, 0x40, 0x41, 0x42, 0x43, 0x58, 0xff]) {
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

/** 13.5: Chat and Sealed content, and the plaintext of a Sealed. */
function contentRows(row: Row): void {
  const chat = (o: { kind?: number; timestamp?: bigint; text?: Uint8Array }) =>
    new Layout().int(1, 0x10).int(1, o.kind ?? 1).int(8, o.timestamp ?? 1n)
      .sized(2, o.text ?? utf8("x"), 0xffff);
  const whisper = (o: { timestamp?: bigint; text?: Uint8Array }) =>
    new Layout().int(1, 0x12).int(8, o.timestamp ?? 1n).sized(2, o.text ?? utf8("x"), 0xffff);
  for (
    const [n, valid] of [[0, false], [1, true], [4095, true], [4096, true], [4097, false]] as const
  ) {
    row(`Chat text of ${n} bytes`, roomContent, chat({ text: filled(n, 0x64) }), valid);
    row(`Private text of ${n} bytes`, sealedContent, whisper({ text: filled(n, 0x64) }), valid);
  }
  for (const [kind, valid] of [[0, false], [1, true], [2, true], [3, false]] as const) {
    row(`Chat kind ${kind}`, roomContent, chat({ kind }), valid);
  }
  for (
    const [t, valid] of [[2n ** 53n - 1n, true], [2n ** 53n, false], [
      2n ** 64n - 1n,
      false,
    ]] as const
  ) {
    row(`Chat timestamp ${t}`, roomContent, chat({ timestamp: t }), valid);
    row(`Private timestamp ${t}`, sealedContent, whisper({ timestamp: t }), valid);
  }
  row("Chat text that is not UTF-8", roomContent, chat({ text: Uint8Array.of(0xff) }), false);
  row("Chat with a trailing byte", roomContent, chat({}).bytes(u8(0)), false);
  row("Private with a trailing byte", sealedContent, whisper({}).bytes(u8(0)), false);
  for (const [n, valid] of [[0, false], [31, false], [32, true], [33, true]] as const) {
    row(`Sealed body of ${n} bytes`, roomContent, concat(u8(0x11), filled(n)), valid);
  }
  for (const type of [0x00, 0x12, 0x13, 0x30, 0xff]) {
    row(
      `room content type 0x${type.toString(16)}`,
      roomContent,
      concat(u8(type), filled(60)),
      false,
    );
  }
  // 0x30..0x39 are handed to the transfer layer as they are; it refuses Data (0x35), see below.
  for (
    const [type, valid] of [
      [0x10, false],
      [0x11, false],
      [0x2f, false],
      [0x30, true],
      [0x35, true],
      [0x39, true],
      [0x3a, false],
    ] as const
  ) {
    row(
      `sealed content type 0x${type.toString(16)}`,
      sealedContent,
      concat(u8(type), filled(60)),
      valid,
    );
  }
}

/**
 * 13.2: a credential signed by hand from the spec's field list, with each field set as given;
 * the signature covers what `signed` says (by default what the credential carries).
 */
async function credentialBytes(o: {
  version?: number;
  name?: Uint8Array;
  spki?: Uint8Array;
  signer?: Identity;
  signed?: { name?: Uint8Array; signatureKey?: Uint8Array; suite?: number };
  signature?: (signature: Uint8Array) => Uint8Array;
}): Promise<Uint8Array> {
  const name = o.name ?? utf8("alice");
  const spki = o.spki ?? alice.spki;
  const signedName = o.signed?.name ?? name;
  const key = o.signed?.signatureKey ?? SIGNATURE_KEY;
  const signed = concat(
    utf8("securechat/2 mls credential"),
    u8(0),
    u16(o.signed?.suite ?? SUITE_ID),
    u16(key.length),
    key,
    u8(signedName.length),
    signedName,
    u16(spki.length),
    spki,
  );
  let signature = await signTranscript(o.signer ?? alice, signed);
  if (o.signature) signature = o.signature(signature);
  return new Layout().int(1, o.version ?? 1).sized(1, name, 255).sized(2, spki, 0xffff)
    .sized(2, signature, 0xffff).done().bytes;
}

async function credentialRows(row: Row): Promise<void> {
  for (const [n, valid] of [[0, false], [1, true], [64, true], [65, false]] as const) {
    row(
      `credential name of ${n} bytes`,
      credential,
      await credentialBytes({ name: filled(n) }),
      valid,
    );
  }
  for (const [version, valid] of [[0, false], [1, true], [2, false]] as const) {
    row(`credential version ${version}`, credential, await credentialBytes({ version }), valid);
  }
  row(
    "credential name that is not UTF-8",
    credential,
    await credentialBytes({ name: Uint8Array.of(0xc3) }),
    false,
  );
  row(
    "credential with a trailing byte",
    credential,
    concat(await credentialBytes({}), u8(0)),
    false,
  );
  row(
    "credential of bob's key signed by alice",
    credential,
    await credentialBytes({ spki: bob.spki }),
    false,
  );
  row(
    "credential whose signature covers another name",
    credential,
    await credentialBytes({ signed: { name: utf8("alicf") } }),
    false,
  );
  row(
    "credential signed for another MLS signature key",
    credential,
    await credentialBytes({ signed: { signatureKey: filled(32, 1) } }),
    false,
  );
  row(
    "credential signed for suite 1",
    credential,
    await credentialBytes({ signed: { suite: 1 } }),
    false,
  );
  row(
    "credential with an empty signature",
    credential,
    await credentialBytes({ signature: () => new Uint8Array(0) }),
    false,
  );
  row(
    "credential with a signature bit flipped",
    credential,
    await credentialBytes({ signature: (s) => s.map((b, i) => i === 10 ? b ^ 4 : b) }),
    false,
  );
  row(
    "credential with a spki that is not a key",
    credential,
    await credentialBytes({ spki: filled(44, 0x30) }),
    false,
  );
  const genuine = await credentialBytes({});
  row("a genuine credential", credential, genuine, true);
  row(
    "a genuine credential, checked for another leaf's key",
    credentialCodec(filled(32, 1)),
    genuine,
    false,
  );
  row(
    "a genuine credential, checked in suite 1",
    credentialCodec(SIGNATURE_KEY, 1),
    genuine,
    false,
  );
}

/** 14.1 to 14.4: envelope, Offer, Manifest, Resume, counters, and Data slices. */
function transferRows(row: Row): void {
  const head = (type: number) => new Layout().int(1, type).bytes(aliceAuthor).bytes(filled(16, 0));
  const offer = (
    o: { name?: number; files?: number; total?: bigint; timestamp?: bigint; key?: number },
  ) =>
    head(0x30).int(8, o.timestamp ?? 1n).sized(2, filled(o.name ?? 1, 0x65), 0xffff)
      .int(4, o.files ?? 1).int(8, o.total ?? 0n).bytes(filled(32, 0)).bytes(
        filled(o.key ?? 32, 9),
      );
  for (const [n, valid] of [[0, true], [255, true], [256, false]] as const) {
    row(`Offer name ${n}`, transfer, offer({ name: n }), valid);
  }
  for (
    const [n, valid] of [[0, false], [1, true], [100_000, true], [100_001, false], [
      2 ** 32 - 1,
      false,
    ]] as const
  ) {
    row(`Offer file_count ${n}`, transfer, offer({ files: n }), valid);
  }
  for (const [n, valid] of [[31, false], [32, true], [33, false]] as const) {
    row(`Offer data_key of ${n} bytes`, transfer, offer({ key: n }), valid);
  }
  for (const [v, valid] of [[2n ** 53n - 1n, true], [2n ** 53n, false]] as const) {
    row(`Offer total_size ${v}`, transfer, offer({ total: v }), valid);
    row(`Offer timestamp ${v}`, transfer, offer({ timestamp: v }), valid);
    row(`Ack received ${v}`, transfer, head(0x36).int(8, v), valid);
    row(`Done data_count ${v}`, transfer, head(0x37).int(8, v), valid);
    row(`Data offset ${v}`, dataSlice, new Layout().int(4, 0).int(8, v).bytes(u8(1)), valid);
  }
  for (
    const [n, valid] of [[0, false], [1, true], [14_999, true], [15_000, true], [
      15_001,
      false,
    ]] as const
  ) {
    row(`Manifest slice ${n}`, transfer, head(0x33).int(4, 0).bytes(filled(n)), valid);
  }
  for (
    const [n, valid] of [[0, false], [1, true], [MAX_DATA_SLICE, true], [
      MAX_DATA_SLICE + 1,
      false,
    ]] as const
  ) {
    row(
      `Data slice of ${n} bytes`,
      dataSlice,
      new Layout().int(4, 0).int(8, 0).bytes(filled(n)),
      valid,
    );
  }
  row(
    "Data file_index 2^32-1",
    dataSlice,
    new Layout().int(4, 2 ** 32 - 1).int(8, 0).bytes(u8(1)),
    true,
  );
  row("Data slice cut in its offset", dataSlice, new Layout().int(4, 0).int(4, 0), false);
  for (
    const [n, valid] of [[0, true], [1, true], [100_001, false], [2 ** 32 - 1, false]] as const
  ) {
    const l = head(0x34).int(4, n);
    for (let k = 0; k < Math.min(n, 1); k++) l.int(4, k).int(8, 0).bytes(filled(32, 0));
    row(`Resume count ${n}`, transfer, l, valid);
  }
  for (const [n, valid] of [[0, true], [255, true]] as const) {
    row(`Cancel reason ${n}`, transfer, head(0x39).sized(1, filled(n, 0x66), 255), valid);
    row(`Reject reason ${n}`, transfer, head(0x32).sized(1, filled(n, 0x66), 255), valid);
  }
  row("Accept with a trailing byte", transfer, head(0x31).bytes(u8(0)), false);
  row(
    "a transfer message cut in its transfer_id",
    transfer,
    concat(u8(0x31), aliceAuthor, filled(15)),
    false,
  );
  // 14.1: Data travels only as a Direct, sealed (14.4), never inside a Sealed message.
  row("transfer type 0x35 (Data)", transfer, head(0x35).int(4, 0).int(8, 0).bytes(u8(1)), false);
  for (const type of [0x00, 0x2f, 0x3a, 0xff]) {
    row(`transfer type 0x${type.toString(16)}`, transfer, head(type), false);
  }
}

/** 14.4, sealed by hand: `transfer_id || sequence || AES-256-GCM(data_key, nonce, aad, slice)`. */
async function sealByHand(
  plaintext: Uint8Array,
  o: { sequence?: bigint; parties?: DataParties; key?: Uint8Array; transferId?: Uint8Array } = {},
): Promise<Uint8Array> {
  const sequence = o.sequence ?? 0n;
  const parties = o.parties ?? DATA_PARTIES;
  const nonce = concat(new Uint8Array(4), u64(sequence));
  const aad = concat(
    utf8("securechat/2 file data"),
    u8(0),
    parties.sender,
    parties.recipient,
    parties.transferId,
    u64(sequence),
  );
  const key = await crypto.subtle.importKey(
    "raw",
    (o.key ?? DATA_KEY) as Uint8Array<ArrayBuffer>,
    "AES-GCM",
    false,
    ["encrypt"],
  );
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: own(nonce), additionalData: own(aad) },
    key,
    plaintext as Uint8Array<ArrayBuffer>,
  );
  return concat(o.transferId ?? parties.transferId, u64(sequence), new Uint8Array(sealed));
}

async function sealRows(row: Row): Promise<void> {
  const slice = (n: number) => concat(u32(3), u64(1024n), filled(n, 0x44));
  row("a slice of 1 byte sealed by hand", dataSeal, await sealByHand(slice(1)), true);
  const largest = await sealByHand(slice(MAX_DATA_SLICE));
  if (largest.length !== 65536) {
    throw new Error(`the largest sealed slice is ${largest.length} bytes`);
  }
  row(`a slice of ${MAX_DATA_SLICE} bytes sealed (a Direct of 65536)`, dataSeal, largest, true);
  row("a sealed slice of 0 bytes", dataSeal, await sealByHand(slice(0)), false);
  row(
    `a sealed slice of ${MAX_DATA_SLICE + 1} bytes`,
    dataSeal,
    await sealByHand(slice(MAX_DATA_SLICE + 1)),
    false,
  );
  row(
    "a slice sealed as sequence 1, first to arrive",
    dataSeal,
    await sealByHand(slice(1), { sequence: 1n }),
    false,
  );
  row(
    "a slice sealed for another recipient",
    dataSeal,
    await sealByHand(slice(1), { parties: { ...DATA_PARTIES, recipient: aliceAuthor } }),
    false,
  );
  row(
    "a slice sealed by another sender",
    dataSeal,
    await sealByHand(slice(1), { parties: { ...DATA_PARTIES, sender: bobAuthor } }),
    false,
  );
  row(
    "a slice moved to another transfer",
    dataSeal,
    await sealByHand(slice(1), { transferId: filled(16, 0x54) }),
    false,
  );
  row(
    "a slice sealed under another key",
    dataSeal,
    await sealByHand(slice(1), { key: filled(32, 0x4b) }),
    false,
  );
  const short = await sealByHand(slice(1));
  row("a sealed slice of header and tag only", dataSeal, short.subarray(0, 40), false);
  row("a sealed slice shorter than header and tag", dataSeal, short.subarray(0, 39), false);
}
