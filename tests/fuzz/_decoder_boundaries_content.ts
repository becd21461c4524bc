/**
 * The boundary table of decoder_fuzz_test.ts, continued: what travels inside the group (13.5
 * room content and Sealed plaintexts, the 13.2 credential, 14 transfer messages, Data slices and
 * their seal). Encodings that must verify (credentials, Data seals) are signed or sealed here by
 * hand from the spec's field lists, so a valid row also proves the code reads the spec as written.
 *
 * @module
 */

import { concat, own, u16, u32, u64, u8, utf8 } from "../../lib/core/bytes.ts";
import { type Identity, signTranscript } from "../../lib/keys/identity.ts";
import { MAX_DATA_SLICE } from "../../lib/transfer/transfer_messages.ts";
import type { DataParties } from "../../lib/transfer/data_seal.ts";
import {
  alice,
  aliceAuthor,
  bob,
  bobAuthor,
  credential,
  credentialCodec,
  DATA_KEY,
  DATA_PARTIES,
  dataSeal,
  dataSlice,
  Layout,
  roomContent,
  sealedContent,
  SIGNATURE_KEY,
  SUITE_ID,
  transfer,
} from "./_decoder_codecs.ts";
import { filled, type Row } from "./_decoder_boundaries.ts";

/** 13.5: Chat and Sealed content, and the plaintext of a Sealed. */
export function contentRows(row: Row): void {
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

export async function credentialRows(row: Row): Promise<void> {
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
export function transferRows(row: Row): void {
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
  // 14.4: so does an Ack, the other way.
  row("transfer type 0x36 (Ack)", transfer, head(0x36).int(8, 262_144), false);
  for (const type of [0x00, 0x2f, 0x3a, 0xff]) {
    row(`transfer type 0x${type.toString(16)}`, transfer, head(type), false);
  }
}

/**
 * 14.4, sealed by hand: `kind (1, data) || transfer_id || sequence || ChaCha20-Poly1305(data_key,
 * nonce, aad, slice)`, the nonce `direction (0, data) u32 || sequence u64`.
 */
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
    u8(1),
    parties.sender,
    parties.recipient,
    parties.transferId,
    u64(sequence),
  );
  const key = await crypto.subtle.importKey(
    "raw-secret" as "raw",
    (o.key ?? DATA_KEY) as Uint8Array<ArrayBuffer>,
    "ChaCha20-Poly1305",
    false,
    ["encrypt"],
  );
  const sealed = await crypto.subtle.encrypt(
    { name: "ChaCha20-Poly1305", iv: own(nonce), additionalData: own(aad) },
    key,
    plaintext as Uint8Array<ArrayBuffer>,
  );
  return concat(u8(1), o.transferId ?? parties.transferId, u64(sequence), new Uint8Array(sealed));
}

export async function sealRows(row: Row): Promise<void> {
  const slice = (n: number) => concat(u32(3), u64(1024n), filled(n, 0x44));
  row("a slice of 1 byte sealed by hand", dataSeal, await sealByHand(slice(1)), true);
  const largest = await sealByHand(slice(MAX_DATA_SLICE));
  if (largest.length !== 262144) {
    throw new Error(`the largest sealed slice is ${largest.length} bytes`);
  }
  row(`a slice of ${MAX_DATA_SLICE} bytes sealed (a Direct of 262144)`, dataSeal, largest, true);
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
