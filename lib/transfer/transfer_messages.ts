/**
 * File transfer messages (section 14): the envelope every transfer message but Data and Ack
 * shares, the Offer with its data key, the manifest encoding, the body of a Data slice (sealed for
 * a Direct by `lib/transfer/data_seal.ts`, as are Acks), and the small control messages. Strict
 * decoders; no state, no files and no crypto.
 *
 * What it does not do: authenticate. A transfer message is the plaintext of a Sealed application
 * message (13.5), so MLS has authenticated its sender and HPKE bound its recipient before it gets
 * here; Data and Acks are authenticated by their seal.
 *
 * Mirrors: docs/PROTOCOL.md sections 14.1 to 14.4.
 *
 * @module
 */

import { concat, u16, u32, u64, u8, utf8 } from "../core/bytes.ts";
import type { Hash } from "node:crypto";
import { loadNodeCrypto } from "../core/node_crypto.ts";
import { FieldReader } from "../core/field_reader.ts";
import { MAX_DIRECT_BYTES } from "../chat/relay_messages.ts";

/** Section 14.1 message types (Data and Ack: numbers reserved, they travel as Directs, 14.4). */
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

/** Section 14: sizes. */
export const TRANSFER_ID_LENGTH = 16;
export const PARTY_LENGTH = 32;
/** Section 14.2: the Offer's per-transfer key for Data (ChaCha20-Poly1305, 14.4). */
export const DATA_KEY_LENGTH = 32;
/** Section 14.3: the most manifest bytes in one Manifest message. */
export const MAX_SLICE = 15000;
/**
 * Section 14.4: the most file bytes in one Data slice, so that its Direct (kind, transfer_id,
 * sequence, file_index, offset, the bytes and the tag) is at most the 262144 bytes of 13.4.
 */
export const MAX_DATA_SLICE = MAX_DIRECT_BYTES - 1 - TRANSFER_ID_LENGTH - 8 - 4 - 8 - 16;
export const MAX_FILES = 100_000;
export const MAX_OFFER_NAME_BYTES = 255;
/**
 * Section 14.4: the most Data a sender keeps beyond the recipient's last Ack. It bounds throughput
 * to WINDOW_BYTES per round trip: 1 MiB made 12.9 MB/s at 50 ms (bench --only send). 8 MiB allows
 * 160 MiB/s at a 50 ms round trip (the Direct pace, 192 MiB/s, up to a 40 ms one), and stays half
 * of the 16 MiB a relay queues for one member before it drops it as too slow (13.8). 4 MiB took
 * 2.94 s for a 128 MiB dial --send through bench/_delay_proxy.ts at 50 ms, 8 MiB 2.23 s (medians
 * of 3 interleaved runs, 2-core machine, issue 16).
 */
export const WINDOW_BYTES = 8 * 1024 * 1024;
/** Section 14.4: the recipient acknowledges every this many bytes, and at the end of each file. */
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
 * more than {@linkcode MAX_MANIFEST_BYTES}.
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

/**
 * True for a Sealed plaintext type that belongs to file transfer (13.5): 0x30 to 0x39 but Data and
 * Ack, which travel only as Directs (14.4).
 */
export function isTransferType(type: number): boolean {
  return type >= TRANSFER_MESSAGE.offer && type <= TRANSFER_MESSAGE.cancel &&
    type !== TRANSFER_MESSAGE.data && type !== TRANSFER_MESSAGE.ack;
}

/** One manifest entry (section 14.3). */
export interface ManifestEntry {
  path: string;
  size: number;
  sha256: Uint8Array;
}

/** The fields of an Offer (section 14.2). */
export interface Offer {
  timestamp: number;
  name: string;
  fileCount: number;
  totalSize: number;
  manifestSha256: Uint8Array;
  /** The key this transfer's Data is sealed under (14.4): random, for this transfer only. */
  dataKey: Uint8Array;
}

/** The body of a Data slice (section 14.4), the plaintext its seal protects. */
export interface DataSlice {
  fileIndex: number;
  offset: number;
  bytes: Uint8Array;
}

/**
 * A decoded transfer message. `party` is the author id the envelope names: the recipient's
 * (ours, on a message we receive: 14.1).
 */
export type TransferMessage =
  & { party: Uint8Array; transferId: Uint8Array }
  & (
    | { type: "offer"; offer: Offer }
    | { type: "accept" }
    | { type: "reject"; reason: string }
    | { type: "manifest"; offset: number; bytes: Uint8Array }
    | { type: "resume"; points: { fileIndex: number; length: number; sha256: Uint8Array }[] }
    | { type: "done"; dataCount: number }
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

/** Section 14.2: the Offer's body. */
function offerBody(offer: Offer): Uint8Array {
  const name = utf8(offer.name);
  if (name.length > MAX_OFFER_NAME_BYTES) throw new RangeError("offer name too long");
  if (offer.dataKey.length !== DATA_KEY_LENGTH) {
    throw new RangeError(`data key must be ${DATA_KEY_LENGTH} bytes`);
  }
  return concat(
    u64(BigInt(offer.timestamp)),
    u16(name.length),
    name,
    u32(offer.fileCount),
    u64(BigInt(offer.totalSize)),
    offer.manifestSha256,
    offer.dataKey,
  );
}

/**
 * Encoders, one per message type that travels in a Sealed message (section 14.1); `party` is the
 * recipient's author id.
 */
export const encodeTransfer = {
  offer: (party: Uint8Array, id: Uint8Array, offer: Offer) =>
    envelope(TRANSFER_MESSAGE.offer, party, id, offerBody(offer)),
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
  done: (party: Uint8Array, id: Uint8Array, dataCount: number) =>
    envelope(TRANSFER_MESSAGE.done, party, id, u64(BigInt(dataCount))),
  complete: (party: Uint8Array, id: Uint8Array) =>
    envelope(TRANSFER_MESSAGE.complete, party, id, new Uint8Array(0)),
  cancel: (party: Uint8Array, id: Uint8Array, reason: string) =>
    envelope(TRANSFER_MESSAGE.cancel, party, id, reasonBytes(reason)),
};

/** Section 14.4: the body of a Data slice, `file_index u32 || offset u64 || bytes`. */
export function encodeDataSlice(slice: DataSlice): Uint8Array {
  return concat(u32(slice.fileIndex), u64(BigInt(slice.offset)), slice.bytes);
}

/** Section 14.4: what comes before a Data slice's bytes, `file_index u32 || offset u64`. */
export function encodeDataSliceHeader(slice: DataSlice): Uint8Array {
  return concat(u32(slice.fileIndex), u64(BigInt(slice.offset)));
}

/** `file_index u32 || offset u64`. */
const DATA_SLICE_HEADER_LENGTH = 12;

/**
 * Decodes the body of a Data slice (1 to {@linkcode MAX_DATA_SLICE} bytes). The slice's `bytes`
 * are a view into `bytes`, not a copy.
 *
 * @throws {ProtocolError} `bad_transfer_message`
 */
export function decodeDataSlice(bytes: Uint8Array): DataSlice {
  const r = new FieldReader(bytes, "file data slice", "bad_transfer_message");
  const fileIndex = r.u32("file_index");
  const offset = r.u64("offset");
  // A view, not a copy: an opened plaintext is the opener's own buffer (data_seal.ts).
  const slice = bytes.subarray(DATA_SLICE_HEADER_LENGTH);
  if (slice.length === 0 || slice.length > MAX_DATA_SLICE) r.fail("data slice size");
  return { fileIndex, offset, bytes: slice };
}

/**
 * Decodes a transfer message that came out of a Sealed message (any type of 14.1 but Data and
 * Ack).
 *
 * @throws {ProtocolError} `bad_transfer_message`
 */
export function decodeTransfer(bytes: Uint8Array): TransferMessage {
  const r = new FieldReader(bytes, "transfer message", "bad_transfer_message");
  const type = r.u8("type");
  const party = r.take(PARTY_LENGTH, "party");
  const transferId = r.take(TRANSFER_ID_LENGTH, "transfer_id");
  const head = { party, transferId };
  let message: TransferMessage;
  switch (type) {
    case TRANSFER_MESSAGE.offer: {
      const timestamp = r.u64("timestamp");
      const name = r.text(r.u16("name_length"), MAX_OFFER_NAME_BYTES, "name");
      const fileCount = r.u32("file_count");
      if (fileCount < 1 || fileCount > MAX_FILES) r.fail(`file_count ${fileCount} out of range`);
      const totalSize = r.u64("total_size");
      const manifestSha256 = r.take(32, "manifest_sha256");
      const dataKey = r.take(DATA_KEY_LENGTH, "data_key");
      message = {
        ...head,
        type: "offer",
        offer: { timestamp, name, fileCount, totalSize, manifestSha256, dataKey },
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
    case TRANSFER_MESSAGE.data:
      // Data is sealed under the Offer's data key and travels only as a Direct (14.4).
      return r.fail("file data (0x35) travels only as a Direct");
    case TRANSFER_MESSAGE.ack:
      // Acks are flow control of the data channel, sealed under the data key like Data (14.4).
      return r.fail("file acks (0x36) travel only as Directs");
    case TRANSFER_MESSAGE.done:
      message = { ...head, type: "done", dataCount: r.u64("data_count") };
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
