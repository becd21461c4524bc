/**
 * Valid encodings for decoder_fuzz_test.ts, written field by field from PROTOCOL.md sections 5, 13
 * and 14 with their length fields marked, the decoders with their canonical re-encodings, and the
 * boundary table of every length field and range with its documented verdict.
 *
 * @module
 */

import { concat, fromHex, u16, u32, u64, u8, utf8 } from "../../lib/core/bytes.ts";
import { type Identity, importPublicIdentity } from "../../lib/keys/identity.ts";
import { initiatorKex, SHARE_LENGTHS, SUITE_IDS, type SuiteName } from "../../lib/crypto/kex.ts";
import {
  decodeClientHello,
  decodeFinished,
  decodeIdentity,
  decodeIdentityVerify,
  decodeServerHello,
  encodeClientHello,
  encodeFinished,
  encodeIdentity,
  encodeIdentityVerify,
  encodeServerHello,
} from "../../lib/protocol/messages.ts";
import {
  authorOf,
  decodeRoomMessage,
  encodeChat,
  encodeJoined,
  encodeLeft,
  encodeNotice,
  encodeWelcome,
  type RoomMessage,
  signChat,
  verifyChat,
} from "../../lib/chat/room_messages.ts";
import {
  decodeTransfer,
  encodeTransfer,
  signOffer,
  type TransferMessage,
  verifyOffer,
} from "../../lib/transfer/transfer_messages.ts";
import { Prng } from "../_helpers/prng.ts";
import { fuzzSeed, type LengthField } from "./_fuzz.ts";

/** Builds an encoding field by field, as the spec lists them, noting where length fields sit. */
export class Layout {
  #parts: Uint8Array[] = [];
  #offset = 0;
  readonly fields: LengthField[] = [];

  bytes(value: Uint8Array): this {
    this.#parts.push(value);
    this.#offset += value.length;
    return this;
  }
  /** An integer field; with `cap` it is a length or count whose boundaries the fuzzer tries. */
  int(width: 1 | 2 | 4 | 8, value: number | bigint, cap?: number): this {
    if (cap !== undefined) this.fields.push({ offset: this.#offset, width, cap });
    const v = BigInt(value);
    return this.bytes(
      width === 1
        ? u8(Number(v))
        : width === 2
        ? u16(Number(v))
        : width === 4
        ? u32(Number(v))
        : u64(v),
    );
  }
  /** A length-prefixed field. */
  sized(width: 1 | 2 | 4, value: Uint8Array, cap: number): this {
    return this.int(width, value.length, cap).bytes(value);
  }
  done(): { bytes: Uint8Array; fields: LengthField[] } {
    return { bytes: concat(...this.#parts), fields: this.fields };
  }
}

export type Kind = "hello" | "room" | "transfer";

/** One decoder under test, with its canonical re-encoding and an optional signature check. */
export interface Codec {
  name: string;
  kind: Kind;
  /** The error code a refusal must carry. */
  codes: string[];
  decode(bytes: Uint8Array): unknown;
  /** The canonical encoding of a decoded value. */
  encode(value: unknown): Uint8Array;
  /** True when re-encoding may differ from the input for a documented reason (see each codec). */
  normalizes?(value: unknown, input: Uint8Array): boolean;
  /** For signed messages: does the decoded value still verify? It must not after a mutation. */
  verifies?(value: unknown): Promise<boolean>;
}

export interface Sample {
  codec: Codec;
  bytes: Uint8Array;
  fields: LengthField[];
}

const HELLO_CODES = ["decode_error", "illegal_parameter"];

// --- identities and room context for the signed samples ---

const seed = fuzzSeed();
const setup = new Prng(seed ^ 0xdec0de);
/**
 * An Ed25519 identity whose private key comes from the seed, so every sample, signature included,
 * replays byte for byte from SECURECHAT_FUZZ_SEED (generateIdentity() draws from the system).
 */
async function seededIdentity(prng: Prng, comment: string): Promise<Identity> {
  // RFC 8410 PKCS#8 and SPKI for Ed25519: a fixed prefix, then the 32-byte key.
  const pkcs8 = concat(fromHex("302e020100300506032b657004220420"), prng.bytes(32));
  const key = (usable: boolean) =>
    crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, "Ed25519", usable, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", await key(true));
  const x = Uint8Array.from(
    atob(jwk.x!.replaceAll("-", "+").replaceAll("_", "/")),
    (c) => c.charCodeAt(0),
  );
  const publicIdentity = await importPublicIdentity(concat(fromHex("302a300506032b6570032100"), x));
  return { ...publicIdentity, privateKey: await key(false), comment };
}

const alice = await seededIdentity(setup, "alice");
const bob = await seededIdentity(setup, "bob");
const roomId = setup.bytes(16);
const aliceAuthor = authorOf(alice.fingerprint);
const bobAuthor = authorOf(bob.fingerprint);

// --- codecs ---

export const clientHello: Codec = {
  name: "ClientHello",
  kind: "hello",
  codes: HELLO_CODES,
  decode: decodeClientHello,
  encode: (v) => encodeClientHello(v as ReturnType<typeof decodeClientHello>),
  // Shares of unknown suites are skipped (5.1): their bytes do not come back.
  normalizes: (v, input) => {
    const hello = v as ReturnType<typeof decodeClientHello>;
    const sharesCount = input[1 + hello.versions.length + 32 + 4]!;
    return sharesCount > hello.shares.length;
  },
};

const serverHello: Codec = {
  name: "ServerHello",
  kind: "hello",
  codes: HELLO_CODES,
  decode: decodeServerHello,
  encode: (v) => encodeServerHello(v as ReturnType<typeof decodeServerHello>),
};

const identity: Codec = {
  name: "Identity",
  kind: "hello",
  codes: HELLO_CODES,
  decode: decodeIdentity,
  encode: (v) => encodeIdentity(v as ReturnType<typeof decodeIdentity>),
  // Control and bidirectional characters of the name are replaced by "?" (they reach a terminal).
  normalizes: (v) => (v as ReturnType<typeof decodeIdentity>).name.includes("?"),
};

const identityVerify: Codec = {
  name: "IdentityVerify",
  kind: "hello",
  codes: HELLO_CODES,
  decode: decodeIdentityVerify,
  encode: (v) => encodeIdentityVerify(v as Uint8Array),
};

const finished: Codec = {
  name: "Finished",
  kind: "hello",
  codes: HELLO_CODES,
  decode: decodeFinished,
  encode: (v) => encodeFinished(v as Uint8Array),
};

function encodeRoom(message: RoomMessage): Uint8Array {
  switch (message.type) {
    case "welcome":
      return encodeWelcome(message.roomId, message.name);
    case "joined":
      return encodeJoined(message.flags, message.name, message.spki);
    case "left":
      return encodeLeft(message.author, message.reason);
    case "notice":
      return encodeNotice(message.level, message.text);
    case "chat":
      return encodeChat(message.message);
  }
}

const room: Codec = {
  name: "room message",
  kind: "room",
  codes: ["bad_room_message"],
  decode: decodeRoomMessage,
  encode: (v) => encodeRoom(v as RoomMessage),
  verifies: async (v) => {
    const message = v as RoomMessage;
    if (message.type !== "chat") return false;
    const author = [alice, bob].find((id) =>
      authorOf(id.fingerprint).every((b, i) => b === message.message.author[i])
    );
    return author !== undefined && await verifyChat(author, roomId, message.message);
  },
};

function encodeTransferMessage(m: TransferMessage): Uint8Array {
  switch (m.type) {
    case "offer":
      return encodeTransfer.offer(m.party, m.transferId, m.offer);
    case "accept":
    case "done":
    case "complete":
      return encodeTransfer[m.type](m.party, m.transferId);
    case "reject":
    case "cancel":
      return encodeTransfer[m.type](m.party, m.transferId, m.reason);
    case "manifest":
      return encodeTransfer.manifest(m.party, m.transferId, m.offset, m.bytes);
    case "resume":
      return encodeTransfer.resume(m.party, m.transferId, m.points);
    case "data":
      return encodeTransfer.data(m.party, m.transferId, m.fileIndex, m.offset, m.bytes);
    case "ack":
      return encodeTransfer.ack(m.party, m.transferId, m.received);
  }
}

export const transfer: Codec = {
  name: "transfer message",
  kind: "transfer",
  codes: ["bad_transfer_message"],
  decode: decodeTransfer,
  encode: (v) => encodeTransferMessage(v as TransferMessage),
  verifies: async (v) => {
    const m = v as TransferMessage;
    if (m.type !== "offer") return false;
    // As the recipient (bob) checks an offer the relay forwarded from its sender (party).
    return await verifyOffer(alice, {
      roomId,
      sender: m.party,
      recipient: bobAuthor,
      transferId: m.transferId,
    }, m.offer);
  },
};

// --- valid samples, field by field from the spec ---

function clientHelloLayout(
  versions: number[],
  maxRecord: number,
  shares: { id: number; share: Uint8Array }[],
): Layout {
  const l = new Layout().int(1, versions.length, 16).bytes(Uint8Array.from(versions))
    .bytes(setup.bytes(32)).int(4, maxRecord, 1_048_576).int(1, shares.length, 8);
  for (const { id, share } of shares) l.int(1, id).sized(2, share, share.length);
  return l;
}

async function helloSamples(): Promise<Sample[]> {
  const out: Sample[] = [];
  const suiteSets: SuiteName[][] = [
    ["x25519-mlkem768", "x25519"],
    ["x25519"],
    ["ffdhe3072"],
    ["x25519-mlkem768", "x25519", "ffdhe3072"],
  ];
  for (const suites of suiteSets) {
    const shares = [];
    for (const suite of suites) {
      const kex = await initiatorKex(suite, (length) => setup.bytes(length));
      shares.push({ id: SUITE_IDS[suite], share: kex.share });
    }
    const layout = clientHelloLayout([1], 1 << 14, shares).done();
    out.push({ codec: clientHello, ...layout });
  }
  // A newer peer: more versions, an unknown suite the decoder must skip.
  out.push({
    codec: clientHello,
    ...clientHelloLayout([3, 2, 1], 1 << 20, [
      { id: 0x7f, share: setup.bytes(5) },
      { id: SUITE_IDS.x25519, share: setup.bytes(32) },
    ]).done(),
  });
  for (const suite of Object.keys(SUITE_IDS) as SuiteName[]) {
    const share = setup.bytes(SHARE_LENGTHS[suite].responder);
    const layout = new Layout().int(1, 1).bytes(setup.bytes(32)).int(4, 1 << 20, 1_048_576)
      .int(1, SUITE_IDS[suite]).sized(2, share, share.length).done();
    out.push({ codec: serverHello, ...layout });
  }
  for (const name of ["", "alice", "é".repeat(32), "x".repeat(64)]) {
    const layout = new Layout().int(1, 0x0b).sized(2, alice.spki, 0xffff)
      .sized(1, utf8(name), 64).done();
    out.push({ codec: identity, ...layout });
  }
  out.push({
    codec: identityVerify,
    ...new Layout().int(1, 0x0f).sized(2, setup.bytes(64), 0xffff).done(),
  });
  out.push({ codec: finished, ...new Layout().int(1, 0x14).bytes(setup.bytes(32)).done() });
  return out;
}

async function roomSamples(): Promise<Sample[]> {
  const out: Sample[] = [];
  const add = (layout: Layout) => out.push({ codec: room, ...layout.done() });
  add(new Layout().int(1, 0x01).bytes(roomId).sized(1, utf8("alice"), 64));
  add(new Layout().int(1, 0x02).int(1, 0x06).sized(1, utf8("bob"), 64).sized(2, bob.spki, 0xffff));
  add(new Layout().int(1, 0x03).bytes(aliceAuthor).sized(1, utf8("left the room"), 255));
  add(new Layout().int(1, 0x20).int(1, 1).sized(2, utf8("slow down: message dropped"), 512));
  const texts = ["hi", "é∑😀 unicode", "x".repeat(4096)];
  for (const [i, text] of texts.entries()) {
    for (const kind of [1, 2, 3] as const) {
      const chat = await signChat(alice, roomId, {
        author: aliceAuthor,
        counter: 1_700_000_000_000_000n + BigInt(i),
        timestamp: 1_700_000_000_000 + i,
        kind,
        recipient: kind === 3 ? bobAuthor : new Uint8Array(32),
        text,
      });
      add(
        new Layout().int(1, 0x10).bytes(chat.author).int(8, chat.counter).int(8, chat.timestamp)
          .int(1, chat.kind).bytes(chat.recipient).sized(2, utf8(chat.text), 4096)
          .sized(2, chat.signature, 0xffff),
      );
    }
  }
  return out;
}

async function transferSamples(): Promise<Sample[]> {
  const out: Sample[] = [];
  const transferId = setup.bytes(16);
  const head = (type: number) => new Layout().int(1, type).bytes(aliceAuthor).bytes(transferId);
  const add = (layout: Layout) => out.push({ codec: transfer, ...layout.done() });
  const manifestSha256 = setup.bytes(32);
  for (const name of ["photos", "é".repeat(127)]) {
    const offer = await signOffer(alice, {
      roomId,
      sender: aliceAuthor,
      recipient: bobAuthor,
      transferId,
    }, {
      counter: 1_700_000_000_000_123n,
      timestamp: 1_700_000_000_000,
      name,
      fileCount: 3,
      totalSize: 123_456_789,
      manifestSha256,
    });
    add(
      head(0x30).int(8, offer.counter).int(8, offer.timestamp).sized(2, utf8(offer.name), 255)
        .int(4, offer.fileCount, 100_000).int(8, offer.totalSize).bytes(offer.manifestSha256)
        .sized(2, offer.signature, 0xffff),
    );
  }
  add(head(0x31));
  add(head(0x32).sized(1, utf8("no thanks"), 255));
  add(head(0x33).int(4, 0).bytes(setup.bytes(300)));
  add(head(0x33).int(4, 15000).bytes(setup.bytes(15000)));
  const resume = head(0x34).int(4, 2, 100_000);
  for (let k = 0; k < 2; k++) resume.int(4, k).int(8, 4096 * k).bytes(setup.bytes(32));
  add(resume);
  add(head(0x35).int(4, 1).int(8, 65536).bytes(setup.bytes(1000)));
  add(head(0x36).int(8, 262_144));
  add(head(0x37));
  add(head(0x38));
  add(head(0x39).sized(1, utf8("cancelled by the sender"), 255));
  return out;
}

export const samples = [
  ...await helloSamples(),
  ...await roomSamples(),
  ...await transferSamples(),
];

// --- boundary tables: each length field and range at its limits, with the exact verdict ---

export interface Boundary {
  what: string;
  codec: Codec;
  bytes: Uint8Array;
  valid: boolean;
}

export function boundaryTable(): Boundary[] {
  const rows: Boundary[] = [];
  const row = (what: string, codec: Codec, layout: Layout, valid: boolean) =>
    rows.push({ what, codec, bytes: layout.done().bytes, valid });
  const x = { id: SUITE_IDS.x25519, share: new Uint8Array(32).fill(9) };
  // 5.1 versions_count 1..16, max_record_plaintext 16384..1048576, shares_count 1..8.
  for (const [n, valid] of [[0, false], [1, true], [16, true], [17, false]] as const) {
    row(`versions_count ${n}`, clientHello, clientHelloLayout(Array(n).fill(1), 16384, [x]), valid);
  }
  for (
    const [m, valid] of [[16383, false], [16384, true], [1048576, true], [1048577, false], [
      2 ** 32 - 1,
      false,
    ]] as const
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
      new Layout().int(1, 1).bytes(new Uint8Array(32)).int(4, m).int(1, x.id).sized(2, x.share, 32),
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
        const share = { id: SUITE_IDS[suite], share: new Uint8Array(length).fill(7) };
        const layout = side === "initiator"
          ? clientHelloLayout([1], 16384, [share])
          : new Layout().int(1, 1).bytes(new Uint8Array(32)).int(4, 16384).int(1, share.id)
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
      new Layout().int(1, 0x0b).sized(2, alice.spki, 0xffff).sized(
        1,
        new Uint8Array(n).fill(0x61),
        255,
      ),
      valid,
    );
  }
  // 13.1 names 1..64, notices <= 512, texts 1..4096.
  for (const [n, valid] of [[0, false], [1, true], [64, true], [65, false]] as const) {
    const name = new Uint8Array(n).fill(0x62);
    row(`Welcome name ${n}`, room, new Layout().int(1, 1).bytes(roomId).sized(1, name, 255), valid);
    row(
      `Joined name ${n}`,
      room,
      new Layout().int(1, 2).int(1, 0).sized(1, name, 255).sized(2, bob.spki, 0xffff),
      valid,
    );
  }
  for (const [n, valid] of [[0, true], [511, true], [512, true], [513, false]] as const) {
    row(
      `Notice text ${n}`,
      room,
      new Layout().int(1, 0x20).int(1, 0).sized(2, new Uint8Array(n).fill(0x63), 0xffff),
      valid,
    );
  }
  for (const [level, valid] of [[0, true], [2, true], [3, false], [255, false]] as const) {
    row(
      `Notice level ${level}`,
      room,
      new Layout().int(1, 0x20).int(1, level).sized(2, utf8("x"), 512),
      valid,
    );
  }
  const chat = (o: { text?: number; kind?: number; timestamp?: number | bigint; sig?: number }) =>
    new Layout().int(1, 0x10).bytes(aliceAuthor).int(8, 1n).int(8, o.timestamp ?? 1)
      .int(1, o.kind ?? 1).bytes(new Uint8Array(32)).sized(
        2,
        new Uint8Array(o.text ?? 1).fill(0x64),
        0xffff,
      )
      .sized(2, new Uint8Array(o.sig ?? 64), 0xffff);
  for (
    const [n, valid] of [[0, false], [1, true], [4095, true], [4096, true], [4097, false]] as const
  ) {
    row(`Chat text ${n}`, room, chat({ text: n }), valid);
  }
  for (const [kind, valid] of [[0, false], [1, true], [3, true], [4, false]] as const) {
    row(`Chat kind ${kind}`, room, chat({ kind }), valid);
  }
  for (
    const [t, valid] of [
      [2n ** 53n - 1n, true],
      [2n ** 53n, false],
      [2n ** 64n - 1n, false],
    ] as const
  ) {
    row(`Chat timestamp ${t}`, room, chat({ timestamp: t }), valid);
  }
  for (const [n, valid] of [[0, true], [0xffff, true]] as const) {
    row(`Chat signature of ${n} bytes`, room, chat({ sig: n }), valid);
  }
  // 14: offer name <= 255, file_count 1..100000, slices 1..15000, u64 values below 2^53.
  const head = (type: number) =>
    new Layout().int(1, type).bytes(aliceAuthor).bytes(new Uint8Array(16));
  const offer = (o: { name?: number; files?: number; total?: bigint; timestamp?: bigint }) =>
    head(0x30).int(8, 5n).int(8, o.timestamp ?? 1n).sized(
      2,
      new Uint8Array(o.name ?? 1).fill(0x65),
      0xffff,
    )
      .int(4, o.files ?? 1).int(8, o.total ?? 0n).bytes(new Uint8Array(32)).sized(
        2,
        new Uint8Array(64),
        0xffff,
      );
  for (const [n, valid] of [[0, true], [255, true], [256, false]] as const) {
    row(`Offer name ${n}`, transfer, offer({ name: n }), valid);
  }
  for (
    const [n, valid] of [[0, false], [1, true], [99_999, true], [100_000, true], [100_001, false], [
      2 ** 32 - 1,
      false,
    ]] as const
  ) {
    row(`Offer file_count ${n}`, transfer, offer({ files: n }), valid);
  }
  for (const [v, valid] of [[2n ** 53n - 1n, true], [2n ** 53n, false]] as const) {
    row(`Offer total_size ${v}`, transfer, offer({ total: v }), valid);
    row(`Offer timestamp ${v}`, transfer, offer({ timestamp: v }), valid);
    row(`Ack received ${v}`, transfer, head(0x36).int(8, v), valid);
    row(
      `Data offset ${v}`,
      transfer,
      head(0x35).int(4, 0).int(8, v).bytes(Uint8Array.of(1)),
      valid,
    );
  }
  for (
    const [n, valid] of [[0, false], [1, true], [14_999, true], [15_000, true], [
      15_001,
      false,
    ]] as const
  ) {
    row(`Manifest slice ${n}`, transfer, head(0x33).int(4, 0).bytes(new Uint8Array(n)), valid);
    row(
      `Data slice ${n}`,
      transfer,
      head(0x35).int(4, 0).int(8, 0).bytes(new Uint8Array(n)),
      valid,
    );
  }
  for (
    const [n, valid] of [[0, true], [1, true], [100_001, false], [2 ** 32 - 1, false]] as const
  ) {
    const l = head(0x34).int(4, n);
    for (let k = 0; k < Math.min(n, 1); k++) l.int(4, k).int(8, 0).bytes(new Uint8Array(32));
    row(`Resume count ${n}`, transfer, l, valid);
  }
  for (const [n, valid] of [[0, true], [255, true]] as const) {
    row(
      `Cancel reason ${n}`,
      transfer,
      head(0x39).sized(1, new Uint8Array(n).fill(0x66), 255),
      valid,
    );
  }
  for (const type of [0x00, 0x2f, 0x3a, 0xff]) {
    row(`transfer type 0x${type.toString(16)}`, transfer, head(type), false);
  }
  for (const type of [0x00, 0x04, 0x11, 0x21, 0xff]) {
    row(`room type 0x${type.toString(16)}`, room, new Layout().int(1, type), false);
  }
  return rows;
}
