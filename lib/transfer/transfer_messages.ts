/**
 * File transfer messages (section 14): the envelope the relay routes by, the signed Offer, the
 * manifest encoding, and the small control messages. Strict decoders; no state and no files.
 *
 * Mirrors: docs/PROTOCOL.md sections 14.1 to 14.4.
 *
 * @module
 */

import { concat, u16, u32, u64, u8, utf8 } from "../core/bytes.ts";
import type { Hash } from "node:crypto";
import { loadNodeCrypto } from "../core/node_crypto.ts";
import { FieldReader } from "../core/field_reader.ts";
import {
  type Identity,
  type PublicIdentity,
  signTranscript,
  verifyTranscript,
} from "../keys/identity.ts";

/** Section 14.1 message types. */
export const TRANSFER_MESSAGE = {
  offer: 0x30,
  accept: 0x31,
  reject: 0x32,
  manifest: 0x33,
  resume: 0x34,
  data: 0x35,
  ack: 0x36,
  done: 0x37,
  complete: 0x38,
  cancel: 0x39,
} as const;

/** Section 14.2: signature context of offers. */
export const OFFER_SIGNATURE_CONTEXT = "securechat/1 file offer";
/** Section 14: sizes. */
export const TRANSFER_ID_LENGTH = 16;
export const PARTY_LENGTH = 32;
export const MAX_SLICE = 15000;
export const MAX_FILES = 100_000;
export const MAX_OFFER_NAME_BYTES = 255;
export const WINDOW_BYTES = 1024 * 1024;
export const ACK_EVERY_BYTES = 256 * 1024;
/** The most manifest bytes one file may take: path length, a 4096-byte path, size and hash. */
export const MAX_MANIFEST_ENTRY_BYTES = 2 + 4096 + 8 + 32;
/**
 * Section 14.3: the most bytes one manifest may take, whatever its file count. The recipient holds
 * the manifest (and an entry per file) in memory for the whole transfer; without this cap 100,000
 * files of 4138 bytes each made 414 MB per Offer. 16 MiB still fits 100,000 files whose paths
 * average 125 bytes, more than real trees need (paths of a few dozen bytes are typical).
 */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * The most manifest bytes an Offer of `fileCount` files allows (14.3): its files' worst case, never
 * more than {@linkcode MAX_MANIFEST_BYTES}. The relay (14.1) and the recipient use the same figure.
 */
export function manifestLimit(fileCount: number): number {
  return Math.min(fileCount * MAX_MANIFEST_ENTRY_BYTES, MAX_MANIFEST_BYTES);
}

/**
 * The fewest manifest bytes an Offer can need (14.3): one entry whose path is its name, or one
 * entry per file whose path is at least "name/x".
 */
export function minManifestBytes(offer: Pick<Offer, "name" | "fileCount">): number {
  const name = utf8(offer.name).length;
  return offer.fileCount === 1 ? 2 + name + 8 + 32 : offer.fileCount * (2 + name + 2 + 8 + 32);
}

/** True for a room message type that belongs to file transfer. */
export function isTransferType(type: number): boolean {
  return type >= TRANSFER_MESSAGE.offer && type <= TRANSFER_MESSAGE.cancel;
}

/** One manifest entry (section 14.3). */
export interface ManifestEntry {
  path: string;
  size: number;
  sha256: Uint8Array;
}

/** The signed fields of an Offer (section 14.2). */
export interface Offer {
  counter: bigint;
  timestamp: number;
  name: string;
  fileCount: number;
  totalSize: number;
  manifestSha256: Uint8Array;
  signature: Uint8Array;
}

/** A decoded transfer message. */
export type TransferMessage =
  & { party: Uint8Array; transferId: Uint8Array }
  & (
    | { type: "offer"; offer: Offer }
    | { type: "accept" }
    | { type: "reject"; reason: string }
    | { type: "manifest"; offset: number; bytes: Uint8Array }
    | { type: "resume"; points: { fileIndex: number; length: number; sha256: Uint8Array }[] }
    | { type: "data"; fileIndex: number; offset: number; bytes: Uint8Array }
    | { type: "ack"; received: number }
    | { type: "done" }
    | { type: "complete" }
    | { type: "cancel"; reason: string }
  );

function envelope(type: number, party: Uint8Array, transferId: Uint8Array, body: Uint8Array) {
  return concat(u8(type), party, transferId, body);
}

function reasonBytes(reason: string): Uint8Array {
  let bytes = utf8(reason);
  while (bytes.length > 255) bytes = utf8(reason = reason.slice(0, -1));
  return concat(u8(bytes.length), bytes);
}

/** Section 14.2: the signed content of an offer. */
function offerSignedContent(
  roomId: Uint8Array,
  sender: Uint8Array,
  recipient: Uint8Array,
  transferId: Uint8Array,
  offer: Omit<Offer, "signature">,
): Uint8Array {
  return concat(
    utf8(OFFER_SIGNATURE_CONTEXT),
    u8(0),
    roomId,
    sender,
    recipient,
    transferId,
    offerFields(offer),
  );
}

/** Section 14.2: the Offer's fields from counter to manifest_sha256, signed and sent alike. */
function offerFields(offer: Omit<Offer, "signature">): Uint8Array {
  const name = utf8(offer.name);
  return concat(
    u64(offer.counter),
    u64(BigInt(offer.timestamp)),
    u16(name.length),
    name,
    u32(offer.fileCount),
    u64(BigInt(offer.totalSize)),
    offer.manifestSha256,
  );
}

/** Signs an offer with the sender's identity. */
export async function signOffer(
  identity: Identity,
  context: {
    roomId: Uint8Array;
    sender: Uint8Array;
    recipient: Uint8Array;
    transferId: Uint8Array;
  },
  offer: Omit<Offer, "signature">,
): Promise<Offer> {
  if (utf8(offer.name).length > MAX_OFFER_NAME_BYTES) throw new RangeError("offer name too long");
  const content = offerSignedContent(
    context.roomId,
    context.sender,
    context.recipient,
    context.transferId,
    offer,
  );
  return { ...offer, signature: await signTranscript(identity, content) };
}

/** Verifies an offer against the sender's key. Never throws on bad input. */
export async function verifyOffer(
  sender: PublicIdentity,
  context: {
    roomId: Uint8Array;
    sender: Uint8Array;
    recipient: Uint8Array;
    transferId: Uint8Array;
  },
  offer: Offer,
): Promise<boolean> {
  try {
    const content = offerSignedContent(
      context.roomId,
      context.sender,
      context.recipient,
      context.transferId,
      offer,
    );
    return await verifyTranscript(sender, content, offer.signature);
  } catch {
    return false;
  }
}

/** Encoders, one per message type (section 14.1). */
export const encodeTransfer = {
  offer(party: Uint8Array, id: Uint8Array, offer: Offer): Uint8Array {
    return envelope(
      TRANSFER_MESSAGE.offer,
      party,
      id,
      concat(offerFields(offer), u16(offer.signature.length), offer.signature),
    );
  },
  accept: (party: Uint8Array, id: Uint8Array) =>
    envelope(TRANSFER_MESSAGE.accept, party, id, new Uint8Array(0)),
  reject: (party: Uint8Array, id: Uint8Array, reason: string) =>
    envelope(TRANSFER_MESSAGE.reject, party, id, reasonBytes(reason)),
  manifest: (party: Uint8Array, id: Uint8Array, offset: number, bytes: Uint8Array) =>
    envelope(TRANSFER_MESSAGE.manifest, party, id, concat(u32(offset), bytes)),
  resume(
    party: Uint8Array,
    id: Uint8Array,
    points: { fileIndex: number; length: number; sha256: Uint8Array }[],
  ): Uint8Array {
    return envelope(
      TRANSFER_MESSAGE.resume,
      party,
      id,
      concat(
        u32(points.length),
        ...points.flatMap((p) => [u32(p.fileIndex), u64(BigInt(p.length)), p.sha256]),
      ),
    );
  },
  data: (party: Uint8Array, id: Uint8Array, fileIndex: number, offset: number, bytes: Uint8Array) =>
    envelope(
      TRANSFER_MESSAGE.data,
      party,
      id,
      concat(u32(fileIndex), u64(BigInt(offset)), bytes),
    ),
  ack: (party: Uint8Array, id: Uint8Array, received: number) =>
    envelope(TRANSFER_MESSAGE.ack, party, id, u64(BigInt(received))),
  done: (party: Uint8Array, id: Uint8Array) =>
    envelope(TRANSFER_MESSAGE.done, party, id, new Uint8Array(0)),
  complete: (party: Uint8Array, id: Uint8Array) =>
    envelope(TRANSFER_MESSAGE.complete, party, id, new Uint8Array(0)),
  cancel: (party: Uint8Array, id: Uint8Array, reason: string) =>
    envelope(TRANSFER_MESSAGE.cancel, party, id, reasonBytes(reason)),
};

/** Replaces the party of an encoded transfer message (what the relay does when forwarding). */
export function withParty(message: Uint8Array, party: Uint8Array): Uint8Array {
  const out = message.slice();
  out.set(party, 1);
  return out;
}

/** The party of an encoded transfer message, without decoding the rest. */
export function partyOf(message: Uint8Array): Uint8Array | undefined {
  return message.length >= 1 + PARTY_LENGTH + TRANSFER_ID_LENGTH
    ? message.subarray(1, 1 + PARTY_LENGTH)
    : undefined;
}

/** Decodes a transfer message. @throws {ProtocolError} `bad_transfer_message` */
export function decodeTransfer(bytes: Uint8Array): TransferMessage {
  const r = new FieldReader(bytes, "transfer message", "bad_transfer_message");
  const type = r.u8("type");
  const party = r.take(PARTY_LENGTH, "party");
  const transferId = r.take(TRANSFER_ID_LENGTH, "transfer_id");
  const head = { party, transferId };
  let message: TransferMessage;
  switch (type) {
    case TRANSFER_MESSAGE.offer: {
      const counter = r.u64big("counter");
      const timestamp = r.u64("timestamp");
      const name = r.text(r.u16("name_length"), MAX_OFFER_NAME_BYTES, "name");
      const fileCount = r.u32("file_count");
      if (fileCount < 1 || fileCount > MAX_FILES) r.fail(`file_count ${fileCount} out of range`);
      const totalSize = r.u64("total_size");
      const manifestSha256 = r.take(32, "manifest_sha256");
      const signature = r.take(r.u16("sig_length"), "signature");
      message = {
        ...head,
        type: "offer",
        offer: { counter, timestamp, name, fileCount, totalSize, manifestSha256, signature },
      };
      break;
    }
    case TRANSFER_MESSAGE.accept:
      message = { ...head, type: "accept" };
      break;
    case TRANSFER_MESSAGE.reject:
    case TRANSFER_MESSAGE.cancel: {
      const reason = r.text(r.u8("reason_length"), 255, "reason");
      message = { ...head, type: type === TRANSFER_MESSAGE.reject ? "reject" : "cancel", reason };
      break;
    }
    case TRANSFER_MESSAGE.manifest: {
      const offset = r.u32("offset");
      const slice = r.rest();
      if (slice.length === 0 || slice.length > MAX_SLICE) r.fail("manifest slice size");
      message = { ...head, type: "manifest", offset, bytes: slice };
      break;
    }
    case TRANSFER_MESSAGE.resume: {
      const count = r.u32("count");
      if (count > MAX_FILES) r.fail("too many resume points");
      const points = [];
      for (let i = 0; i < count; i++) {
        points.push({
          fileIndex: r.u32("file_index"),
          length: r.u64("length"),
          sha256: r.take(32, "prefix_sha256"),
        });
      }
      message = { ...head, type: "resume", points };
      break;
    }
    case TRANSFER_MESSAGE.data: {
      const fileIndex = r.u32("file_index");
      const offset = r.u64("offset");
      const slice = r.rest();
      if (slice.length === 0 || slice.length > MAX_SLICE) r.fail("data slice size");
      message = { ...head, type: "data", fileIndex, offset, bytes: slice };
      break;
    }
    case TRANSFER_MESSAGE.ack:
      message = { ...head, type: "ack", received: r.u64("received") };
      break;
    case TRANSFER_MESSAGE.done:
      message = { ...head, type: "done" };
      break;
    case TRANSFER_MESSAGE.complete:
      message = { ...head, type: "complete" };
      break;
    default:
      return r.fail(`unknown transfer message type 0x${type.toString(16)}`);
  }
  r.end();
  return message;
}

/** Section 14.3: the canonical manifest encoding. */
export function encodeManifest(entries: ManifestEntry[]): Uint8Array {
  return concat(
    ...entries.flatMap((entry) => {
      const path = utf8(entry.path);
      return [u16(path.length), path, u64(BigInt(entry.size)), entry.sha256];
    }),
  );
}

/**
 * Parses a manifest as its slices arrive (14.3), entry by entry, hashing as it goes, so the work
 * stays linear in the manifest's size however it was sliced.
 */
export class ManifestParser {
  readonly entries: ManifestEntry[] = [];
  #pending: Uint8Array = new Uint8Array(0);
  #hash: Hash;
  #count: number;
  #length = 0;

  private constructor(count: number, hash: Hash) {
    this.#count = count;
    this.#hash = hash;
  }

  /** A parser for a manifest of `count` entries, at most {@linkcode manifestLimit}`(count)` bytes. */
  static async create(count: number): Promise<ManifestParser> {
    return new ManifestParser(count, (await loadNodeCrypto()).createHash("sha256"));
  }

  /**
   * Adds the next slice.
   *
   * @throws {ProtocolError} for a malformed entry, trailing bytes, or more bytes than
   *   {@linkcode manifestLimit} allows for its count (checked before the slice is kept)
   */
  push(bytes: Uint8Array): void {
    this.#length += bytes.length;
    if (this.#length > manifestLimit(this.#count)) {
      new FieldReader(bytes, "manifest", "bad_transfer_message").fail(
        `larger than ${manifestLimit(this.#count)} bytes`,
      );
    }
    this.#hash.update(bytes);
    this.#pending = this.#pending.length === 0 ? bytes : concat(this.#pending, bytes);
    while (this.entries.length < this.#count && this.#pending.length >= 2) {
      const pathLength = (this.#pending[0]! << 8) | this.#pending[1]!;
      const need = 2 + pathLength + 8 + 32;
      if (this.#pending.length < need) break;
      this.entries.push(...decodeManifest(this.#pending.subarray(0, need), 1));
      this.#pending = this.#pending.subarray(need);
    }
    if (this.entries.length === this.#count && this.#pending.length > 0) {
      new FieldReader(this.#pending, "manifest", "bad_transfer_message").fail("trailing bytes");
    }
  }

  /** True once every entry arrived. */
  get complete(): boolean {
    return this.entries.length === this.#count;
  }

  /** SHA-256 of everything pushed. */
  digest(): Uint8Array {
    return new Uint8Array(this.#hash.digest());
  }
}

/** Decodes a manifest of `count` entries. @throws {ProtocolError} */
export function decodeManifest(bytes: Uint8Array, count: number): ManifestEntry[] {
  const r = new FieldReader(bytes, "transfer message", "bad_transfer_message");
  const entries: ManifestEntry[] = [];
  for (let i = 0; i < count; i++) {
    const path = r.text(r.u16("path_length"), 4096, "path");
    entries.push({ path, size: r.u64("size"), sha256: r.take(32, "sha256") });
  }
  r.end();
  return entries;
}
