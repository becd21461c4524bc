/**
 * Every decoder of peer data that decoder_fuzz_test.ts fuzzes (PROTOCOL.md 5: the hellos; 13.2:
 * the credential; 13.4: relay messages and RFC 9420's clear header of the MLS messages inside;
 * 13.5: room content; 14: transfer messages, Data slices and their seal), each with what a
 * refusal must look like and its canonical re-encoding; the Layout that writes encodings field by
 * field; and the seeded identities and keys the samples use. The samples are
 * _decoder_samples.ts, the boundary tables _decoder_boundaries*.ts.
 *
 * Everything replays byte for byte from SECURECHAT_FUZZ_SEED: identities are Ed25519 keys drawn
 * from the seed, so signatures are deterministic.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  concat,
  constantTimeEqual,
  fromHex,
  sha256,
  u16,
  u32,
  u64,
  u8,
} from "../../lib/core/bytes.ts";
import { type Identity, importPublicIdentity } from "../../lib/keys/identity.ts";
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
  decodeFromRelay,
  decodeToRelay,
  encodeFromRelay,
  encodeToRelay,
  type FromRelay,
  type ToRelay,
} from "../../lib/chat/relay_messages.ts";
import {
  decodeRoomContent,
  decodeSealedContent,
  encodeChat,
  encodePrivate,
  encodeSealed,
  type RoomContent,
  type SealedContent,
} from "../../lib/chat/room_content.ts";
import {
  makeCredential,
  type VerifiedCredential,
  verifyCredential,
} from "../../lib/group/credential.ts";
import {
  MLS_CONTENT_TYPE,
  type MlsHeader,
  readMlsHeader,
  WIRE_FORMAT,
} from "../../lib/room/mls_header.ts";
import {
  type DataSlice,
  decodeDataSlice,
  decodeTransfer,
  encodeDataSlice,
  encodeTransfer,
  type TransferMessage,
} from "../../lib/transfer/transfer_messages.ts";
import {
  DataOpener,
  type DataParties,
  DataSealer,
  readDirectHeader,
} from "../../lib/transfer/data_seal.ts";
import { varint } from "../_helpers/mls_messages.ts";
import { Prng } from "../_helpers/prng.ts";
import { fuzzSeed, type LengthField } from "./_fuzz.ts";

/** Builds an encoding field by field, as the spec lists them, noting where length fields sit. */
export class Layout {
  #parts: Uint8Array[] = [];
  #offset = 0;
  #openFrom: number | undefined;
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
  /**
   * An RFC 9420 variable-length vector (section 2.1.2): a 1-byte length is marked as a field, so
   * its boundaries cross into the 2-byte form; longer ones are written in their shortest form.
   */
  vector(value: Uint8Array): this {
    if (value.length < 0x40) return this.int(1, value.length, 0x3f).bytes(value);
    return this.bytes(varint(value.length)).bytes(value);
  }
  /** Another layout's bytes, with its fields. */
  embed(inner: Layout): this {
    const { bytes, fields } = inner.done();
    for (const field of fields) this.fields.push({ ...field, offset: field.offset + this.#offset });
    return this.bytes(bytes);
  }
  /** The message's last field, "the rest": a prefix that keeps a byte of it may still decode. */
  rest(value: Uint8Array | Layout): this {
    this.#openFrom = this.#offset + 1;
    return value instanceof Layout ? this.embed(value) : this.bytes(value);
  }
  done(): { bytes: Uint8Array; fields: LengthField[]; openFrom?: number } {
    const out = { bytes: concat(...this.#parts), fields: this.fields };
    return this.#openFrom === undefined ? out : { ...out, openFrom: this.#openFrom };
  }
}

/** What a decoder may throw for input it refuses, and nothing else. */
export interface Refusal {
  codes: string[];
  /** The message's shape (std rule: one shape per kind of input check). */
  message: RegExp;
  /** True when an AuthenticationError is also a refusal (a seal that does not open). */
  authentication?: boolean;
}

/** One decoder under test, with its canonical re-encoding. */
export interface Codec {
  name: string;
  refusal: Refusal;
  decode(bytes: Uint8Array): unknown;
  /** The canonical encoding of a decoded value (absent for a reader that returns only a part). */
  encode?(value: unknown): Uint8Array | Promise<Uint8Array>;
  /** True when re-encoding may differ from the input for a documented reason (see each codec). */
  normalizes?(value: unknown, input: Uint8Array): boolean;
  /** True for a value that stands for input dropped unread, without an error (spec says so). */
  dropped?(value: unknown): boolean;
  /** For a codec without `encode`: checks what it returned against its input, by the spec. */
  check?(value: unknown, input: Uint8Array): void | Promise<void>;
}

export interface Sample {
  codec: Codec;
  bytes: Uint8Array;
  fields: LengthField[];
  /** Prefixes at least this long may decode (the last field is "the rest"); shorter never. */
  openFrom?: number;
}

const malformed = (what: string): Refusal => ({
  codes: ["decode_error"],
  message: new RegExp(`^peer sent a malformed ${what}: `),
});

const HELLO: Refusal = {
  codes: ["decode_error", "illegal_parameter"],
  message: /^peer sent a malformed /,
};

// --- seeded identities and keys ---

const seed = fuzzSeed();
/** The generator every sample and key draws from, in module order. */
export const setup = new Prng(seed ^ 0xdec0de);
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

export const alice = await seededIdentity(setup, "alice");
export const bob = await seededIdentity(setup, "bob");
/** Author ids (13.4): the raw SHA-256 of an SPKI. */
export const aliceAuthor = await sha256(alice.spki);
export const bobAuthor = await sha256(bob.spki);
/** Section 13.1: the suite id on the wire, which the credential's signature covers. */
export const SUITE_ID = 83;
/** The MLS signature key of the leaf the sample credentials are for. */
export const SIGNATURE_KEY = setup.bytes(32);
/** The group id of the sample MLS messages. */
export const groupId = setup.bytes(32);
/** The data key and parties of the sample Data seals (14.4). */
export const DATA_KEY = setup.bytes(32);
export const DATA_PARTIES: DataParties = {
  sender: aliceAuthor,
  recipient: bobAuthor,
  transferId: setup.bytes(16),
};

// --- codecs ---

export const clientHello: Codec = {
  name: "ClientHello",
  refusal: HELLO,
  decode: decodeClientHello,
  encode: (v) => encodeClientHello(v as ReturnType<typeof decodeClientHello>),
  // Shares and record suites of unknown ids are skipped (5.1): their bytes do not come back.
  normalizes: (v, input) => {
    const hello = v as ReturnType<typeof decodeClientHello>;
    const sharesCount = input[1 + hello.versions.length + 32 + 4]!;
    return sharesCount > hello.shares.length ||
      encodeClientHello(hello).length !== input.length;
  },
};

export const serverHello: Codec = {
  name: "ServerHello",
  refusal: HELLO,
  decode: decodeServerHello,
  encode: (v) => encodeServerHello(v as ReturnType<typeof decodeServerHello>),
};

export const identity: Codec = {
  name: "Identity",
  refusal: HELLO,
  decode: decodeIdentity,
  encode: (v) => encodeIdentity(v as ReturnType<typeof decodeIdentity>),
  // Control and bidirectional characters of the name are replaced by "?" (they reach a terminal).
  normalizes: (v) => (v as ReturnType<typeof decodeIdentity>).name.includes("?"),
};

export const identityVerify: Codec = {
  name: "IdentityVerify",
  refusal: HELLO,
  decode: decodeIdentityVerify,
  encode: (v) => encodeIdentityVerify(v as Uint8Array),
};

export const finished: Codec = {
  name: "Finished",
  refusal: HELLO,
  decode: decodeFinished,
  encode: (v) => encodeFinished(v as Uint8Array),
};

/** 13.4, what the relay reads from a member. */
export const toRelay: Codec = {
  name: "relay message to the relay",
  refusal: malformed("relay message"),
  decode: decodeToRelay,
  encode: (v) => encodeToRelay(v as ToRelay),
};

/** 13.4, what a member reads from the relay. */
export const fromRelay: Codec = {
  name: "relay message from the relay",
  refusal: malformed("relay message"),
  decode: decodeFromRelay,
  encode: (v) => encodeFromRelay(v as FromRelay),
};

/** 13.5, the content of an application message. */
export const roomContent: Codec = {
  name: "room content",
  refusal: malformed("room message"),
  decode: decodeRoomContent,
  encode: (v) => {
    const content = v as RoomContent;
    return content.type === "chat" ? encodeChat(content) : encodeSealed(content.body);
  },
};

/** 13.5, the plaintext of a Sealed message. */
export const sealedContent: Codec = {
  name: "sealed content",
  refusal: malformed("private message"),
  decode: decodeSealedContent,
  encode: (v) => {
    const content = v as SealedContent;
    return content.type === "private"
      ? encodePrivate(content.timestamp, content.text)
      : content.message;
  },
};

/**
 * 13.2, the credential as the Authentication Service checks it (a leaf with SIGNATURE_KEY in
 * suite `suiteId`). Decoding includes the signature, so the only credentials that decode are the
 * ones alice and bob signed; the canonical encoding is theirs again (Ed25519 signs
 * deterministically), so a mutant that verified would fail the re-encoding check.
 */
export function credentialCodec(signatureKey = SIGNATURE_KEY, suiteId = SUITE_ID): Codec {
  return {
    name: "credential",
    refusal: {
      codes: ["bad_credential", "unsupported_key"],
      message:
        /^(peer sent a malformed room credential: |room credential of "SHA256:[^"]+" does not verify: it may be forged or tampered with$|unsupported key: |malformed )/,
    },
    decode: (bytes) => verifyCredential(bytes, signatureKey, suiteId),
    encode: async (v) => {
      const credential = v as VerifiedCredential;
      const signer = [alice, bob].find((id) => id.fingerprint === credential.fingerprint);
      ok(
        signer,
        `a credential of ${credential.fingerprint}, whose key nobody here holds, verified`,
      );
      return await makeCredential(signer, credential.name, signatureKey, suiteId);
    },
  };
}
export const credential = credentialCodec();

/** RFC 9420 section 6: reads one vector length (2.1.2) from `bytes` at `at`, in shortest form. */
function readVector(bytes: Uint8Array, at: number): number {
  const first = bytes[at];
  ok(first !== undefined && first >> 6 !== 3, "a vector length the header reader accepted");
  const size = [1, 2, 4][first >> 6]!;
  let length = first & 0x3f;
  for (let i = 1; i < size; i++) length = length * 256 + bytes[at + i]!;
  deepStrictEqual(bytes.subarray(at, at + size), varint(length), "vector length in shortest form");
  return at + size + length;
}

/**
 * RFC 9420 section 6, the clear header the relay reads. It returns a part of what it reads, so
 * the check is against the input: the header written again is the input's start, and a
 * PrivateMessage is exactly three more vectors.
 */
export const mlsHeader: Codec = {
  name: "MLS clear header",
  refusal: { codes: ["bad_mls_message"], message: /^peer sent a malformed MLS message: / },
  decode: readMlsHeader,
  check: (v, input) => {
    const header = v as MlsHeader;
    const start = concat(u16(1), u16(WIRE_FORMAT[header.wireFormat]));
    if (header.wireFormat !== "private_message") {
      deepStrictEqual(input.subarray(0, 4), start);
      ok(input.length > 4, "an MLS message of a header only");
      return;
    }
    const head = concat(
      start,
      varint(header.groupId.length),
      header.groupId,
      u64(header.epoch),
      u8(MLS_CONTENT_TYPE[header.contentType]),
    );
    deepStrictEqual(input.subarray(0, head.length), head, "the header as read");
    let at = head.length;
    for (let i = 0; i < 3; i++) at = readVector(input, at);
    strictEqual(at, input.length, "a PrivateMessage is exactly its header and three vectors");
  },
};

function encodeTransferMessage(m: TransferMessage): Uint8Array {
  switch (m.type) {
    case "offer":
      return encodeTransfer.offer(m.party, m.transferId, m.offer);
    case "accept":
    case "complete":
      return encodeTransfer[m.type](m.party, m.transferId);
    case "reject":
    case "cancel":
      return encodeTransfer[m.type](m.party, m.transferId, m.reason);
    case "manifest":
      return encodeTransfer.manifest(m.party, m.transferId, m.offset, m.bytes);
    case "resume":
      return encodeTransfer.resume(m.party, m.transferId, m.points);
    case "done":
      return encodeTransfer.done(m.party, m.transferId, m.dataCount);
  }
}

/** 14.1, a transfer message out of a Sealed plaintext. */
export const transfer: Codec = {
  name: "transfer message",
  refusal: {
    codes: ["bad_transfer_message"],
    message: /^peer sent a malformed transfer message: /,
  },
  decode: decodeTransfer,
  encode: (v) => encodeTransferMessage(v as TransferMessage),
};

/** 14.4, the plaintext of a Data seal. */
export const dataSlice: Codec = {
  name: "data slice",
  refusal: { codes: ["bad_transfer_message"], message: /^peer sent a malformed file data slice: / },
  decode: decodeDataSlice,
  encode: (v) => encodeDataSlice(v as DataSlice),
};

/** What the recipient does with a Direct that names no transfer of its sender: drops it unread. */
export const NAMES_NO_TRANSFER = "names no transfer";

/**
 * 14.4, a Direct's bytes as the recipient takes them: found by the clear `transfer_id` (as
 * TransferManager.handleDirect does; one naming another transfer is dropped unread), then opened
 * by a fresh opener of DATA_PARTIES' transfer, whose next sequence number is 0. Sealing again
 * under the same key and sequence gives the same bytes (the AEAD is deterministic): the canonical
 * encoding. The opener also compares the clear id with its transfer's; the lookup here is
 * what TransferManager does before it.
 */
export const dataSeal: Codec = {
  name: "data seal",
  refusal: {
    codes: ["bad_file_data", "file_data_sequence", "bad_transfer_message"],
    message:
      /^(file data failed authentication|file data was dropped or replayed on the way|peer sent a malformed file data slice: )/,
    authentication: true,
  },
  decode: async (bytes) => {
    const header = readDirectHeader(bytes);
    if (
      header?.kind !== "data" || !constantTimeEqual(header.transferId, DATA_PARTIES.transferId)
    ) {
      return NAMES_NO_TRANSFER;
    }
    return await (await DataOpener.create(DATA_KEY, DATA_PARTIES)).open(bytes);
  },
  dropped: (v) => v === NAMES_NO_TRANSFER,
  check: async (v, input) => {
    const again = await (await DataSealer.create(DATA_KEY, DATA_PARTIES)).seal(v as DataSlice);
    deepStrictEqual(again, input, "data seal: the opened slice seals again to its input");
  },
};
