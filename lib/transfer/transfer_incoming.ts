/**
 * The recipient's side of file transfers: take an Offer from a member of the room (MLS told us
 * who sent it), wait for the user (or accept at once with `autoAccept`), check the manifest
 * against the Offer and every path in it (`lib/transfer/offer_checks.ts`: each under the one name
 * the offer showed, no hidden segment unless `allowHidden`), prove the prefixes of the part files
 * it left itself for this sender and manifest (`lib/transfer/part_record.ts`) in a Resume, open
 * each Data slice with the Offer's data key (`lib/transfer/data_seal.ts`: authentic and in
 * sequence) and acknowledge it under the same key, and write each file through
 * {@linkcode FileSink}, which renames it only once its SHA-256 matches. Progress is reported
 * through {@linkcode TransferEvents}; how messages travel is injected (`sendSealed` for transfer
 * messages, `sendDirect` for Acks).
 *
 * It never decides for the user: offers wait for `accept()` unless the options have
 * `autoAccept` (`listen --receive DIR`). What it does not do: route messages
 * (`lib/transfer/transfer.ts`), send files (`lib/transfer/transfer_outgoing.ts`), or validate a
 * path itself (`lib/transfer/safe_path.ts`).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.2 (Offer) to 14.5 (Cancel and interruption).
 *
 * @module
 */

import { authorOf } from "../keys/identity.ts";
import { constantTimeEqual, wipe } from "../core/bytes.ts";
import type { MemberInfo } from "../chat/chat_events.ts";
import { AckSealer } from "./ack_seal.ts";
import { DataOpener } from "./data_seal.ts";
import { FileSink, prefixProof } from "./file_sink.ts";
import { numberedName, partPath, recordPath } from "./free_name.ts";
import { checkManifestPaths, manifestSizeProblem, offerNameProblem } from "./offer_checks.ts";
import { encodePartRecord, type FolderOwner, ownsPart, type PartOwner } from "./part_record.ts";
import { claimFolder, predictFolder, releaseFolder } from "./receive_folder.ts";
import { downloadsFolder, exists, joinPath } from "../core/paths.ts";
import { noRoomFor, sizeLimit } from "./receive_policy.ts";
import { resolveInside, sanitizeDisplayName } from "./safe_path.ts";
import {
  ACK_EVERY_BYTES,
  type DataSlice,
  encodeTransfer,
  type ManifestEntry,
  manifestLimit,
  ManifestParser,
  MAX_MANIFEST_BYTES,
  type Offer,
  type TransferMessage,
} from "./transfer_messages.ts";
import {
  findTransfer,
  type Progress,
  type TransferEvents,
  TransferFailure,
  transferKey,
  type TransferManagerOptions,
} from "./transfer_progress.ts";

/**
 * A transfer we receive: the Offer (its data key wiped once imported), the manifest so far, the
 * opener of its Data and the sealer of its Acks, and the file being written.
 */
export interface Incoming extends Progress {
  offer: Offer;
  /** Opens this transfer's Data: authentic, from its sender, in sequence (14.4). */
  opener: DataOpener;
  /** Seals this transfer's Acks under the same key, their own sequence 0, 1, 2, ... (14.4). */
  acks: AckSealer;
  state: "offered" | "manifest" | "receiving";
  manifest: ManifestParser;
  manifestLength: number;
  /** `slot`: which name the file is received at (0: its own, n: "NAME (n)"). */
  files: { entry: ManifestEntry; path: string; segments: string[]; slot: number }[];
  /** Where it is saved (fixed when it is offered). */
  folder: string;
  /** The name of the single file received, once published (it may be numbered). */
  published?: string;
  /** For a folder offer: the top-level folder it is received into ("NAME" or "NAME (n)"). */
  top?: string;
  resumeFrom: Map<number, number>;
  index: number;
  sink: FileSink | undefined;
  lastAck: number;
  /**
   * The Data slices that arrived and may not be written yet, in arrival order: each step opens
   * (already started) and writes one, after the step before it (lib/transfer/transfer.ts).
   */
  steps: Promise<void>[];
  /** The last of those steps: it ends once every slice that arrived so far is written. */
  written: Promise<void>;
}

/**
 * How many transfer keys per sender are remembered after their transfers ended, so that an Offer
 * reusing one of them is still refused (14.1) while the table itself keeps only open transfers.
 */
export const RECENT_IDS_PER_SENDER = 1024;

/**
 * How many transfers one sender may have open with us at a time (offered, accepted or
 * receiving); a further Offer is rejected at once (14.1). Each open transfer holds a manifest
 * parser and a key here; the relay, which cannot see transfers, no longer bounds them.
 */
export const MAX_OPEN_PER_SENDER = 256;

/** Runs the incoming transfers of one room member. */
export class IncomingTransfers {
  #context: TransferManagerOptions;
  #events: TransferEvents;
  #now: () => number;
  /** The open transfers: each is removed once its final event is out. */
  #transfers = new Map<string, Incoming>();
  /** Sender fingerprint to the keys of its latest offers, oldest first, at most RECENT_IDS_PER_SENDER. */
  #recent = new Map<string, Set<string>>();

  constructor(context: TransferManagerOptions, events: TransferEvents) {
    this.#context = context;
    this.#events = events;
    this.#now = context.now;
  }

  /** Sends a transfer message to the other member of `inc`, sealed to it (14.1). */
  #send(inc: Incoming, message: Uint8Array): Promise<void> {
    return this.#context.sendSealed(message, inc.peer);
  }

  /** The open transfer with this key ({@linkcode transferKey}). */
  get(key: string): Incoming | undefined {
    return this.#transfers.get(key);
  }

  /** The open transfers (offered, accepted or receiving). */
  values(): MapIterator<Incoming> {
    return this.#transfers.values();
  }

  /** How many transfers the table holds: only open ones, however many have ended. */
  get size(): number {
    return this.#transfers.size;
  }

  /** True when `sender` already used `key` (open, or among its recent ones); remembers it. */
  #reused(sender: string, key: string): boolean {
    let keys = this.#recent.get(sender);
    if (!keys) this.#recent.set(sender, keys = new Set());
    if (this.#transfers.has(key) || keys.has(key)) return true;
    keys.add(key);
    if (keys.size > RECENT_IDS_PER_SENDER) keys.delete(keys.values().next().value!);
    return false;
  }

  /** Reports the final `state` of `inc` and forgets it: the table holds open transfers only. */
  #final(inc: Incoming, state: string, extra: Record<string, unknown>): void {
    inc.finished = true;
    this.#transfers.delete(transferKey(inc.party, inc.id));
    this.#events.emit(inc, "receive", state, extra);
  }

  /**
   * Handles an Offer from `from`, a member of the room (MLS authenticated the sender and the
   * Sealed envelope bound us as its recipient): registers it, then reports it, or rejects it at
   * once when its name, size or file count cannot be accepted.
   */
  async onOffer(
    from: MemberInfo,
    message: TransferMessage & { type: "offer" },
    short: string,
  ): Promise<void> {
    const senderPrint = from.fingerprint;
    const reject = (reason: string) =>
      this.#context.emit({ type: "rejected", time: this.#now(), claimedAuthor: from.name, reason });
    const party = authorOf(senderPrint);
    // Made before the checks so that no await separates the id check from the registration.
    const manifest = await ManifestParser.create(message.offer.fileCount);
    const parties = {
      sender: party,
      recipient: authorOf(this.#context.self.fingerprint),
      transferId: message.transferId,
    };
    let opener: DataOpener;
    let acks: AckSealer;
    try {
      opener = await DataOpener.create(message.offer.dataKey, parties);
      acks = await AckSealer.create(message.offer.dataKey, parties);
    } finally {
      wipe(message.offer.dataKey);
    }
    const key = transferKey(party, message.transferId);
    if (this.#reused(senderPrint, key)) {
      return reject("a file offer that reuses the id of an earlier transfer from that member");
    }
    const open = [...this.#transfers.values()].filter((t) => t.peer.fingerprint === senderPrint);
    const tooMany = open.length >= MAX_OPEN_PER_SENDER;
    let folder: string;
    try {
      folder = this.#context.receiveDir ?? downloadsFolder();
    } catch (error) {
      return reject(error instanceof Error ? error.message : String(error));
    }
    const inc: Incoming = {
      id: message.transferId,
      short,
      peer: from,
      party,
      name: sanitizeDisplayName(message.offer.name),
      total: message.offer.totalSize,
      bytes: 0,
      resumed: 0,
      started: this.#now(),
      lastEvent: 0,
      finished: false,
      offer: message.offer,
      opener,
      acks,
      state: "offered",
      manifest,
      manifestLength: 0,
      files: [],
      resumeFrom: new Map(),
      index: 0,
      sink: undefined,
      lastAck: 0,
      steps: [],
      written: Promise.resolve(),
      folder,
    };
    this.#transfers.set(key, inc);
    const max = sizeLimit(this.#context.maxFileSize, this.#context.autoAccept);
    const refused =
      (tooMany
        ? `too many file offers open from "${sanitizeDisplayName(from.name)}" ` +
          `(at most ${MAX_OPEN_PER_SENDER})`
        : undefined) ??
        offerNameProblem(message.offer.name, this.#context.allowHidden === true) ??
        manifestSizeProblem(message.offer);
    if (refused !== undefined || (max !== undefined && inc.total > max)) {
      inc.finished = true;
      const reason = refused ?? `larger than the recipient's limit of ${max} bytes`;
      await this.#send(inc, encodeTransfer.reject(inc.party, inc.id, reason));
      return this.#final(inc, "rejected", { reason });
    }
    // A folder offer goes into a folder of its own (14.3): say which, as it stands now. A
    // single-entry manifest may be a file or a folder of one; that is known with the manifest.
    const saveAs = message.offer.fileCount > 1
      ? await predictFolder(folder, message.offer.name, folderOwner(inc))
      : undefined;
    this.#context.emit({
      type: "offer",
      time: this.#now(),
      id: short,
      from,
      name: inc.name,
      ...(saveAs !== undefined && saveAs !== message.offer.name
        ? { saveAs: sanitizeDisplayName(saveAs) }
        : {}),
      files: message.offer.fileCount,
      size: inc.total,
      folder,
      hidden: this.#context.allowHidden ? "allowed" : "refused",
    });
    if (this.#context.autoAccept) await this.accept(short);
  }

  /** Accepts an offer (default: the only pending one). */
  async accept(id?: string): Promise<void> {
    const inc = findTransfer(
      new Map([...this.#transfers].filter(([, t]) => t.state === "offered")),
      id,
      "offer",
    );
    // The default downloads folder is ours to create, private; a folder the user named must exist.
    if (this.#context.receiveDir === undefined) {
      await Deno.mkdir(inc.folder, { recursive: true, mode: 0o700 });
    }
    // No await between counting what is promised and marking this one accepted (14.5).
    const noRoom = await noRoomFor(inc.total, inc.folder, () => this.#promisedBytes());
    if (noRoom !== undefined) {
      inc.finished = true;
      await this.#send(inc, encodeTransfer.reject(inc.party, inc.id, noRoom));
      return this.#final(inc, "rejected", { reason: noRoom });
    }
    inc.state = "manifest";
    inc.started = this.#now();
    await this.#send(inc, encodeTransfer.accept(inc.party, inc.id));
    this.#events.emit(inc, "receive", "receiving");
  }

  /** Bytes still to come of the transfers accepted and not ended: the disk space they may take. */
  #promisedBytes(): number {
    let sum = 0;
    for (const t of this.#transfers.values()) {
      if (!t.finished && t.state !== "offered") sum += t.total - t.bytes;
    }
    return sum;
  }

  /** Rejects an offer (default: the only pending one). */
  async reject(id?: string): Promise<void> {
    const inc = findTransfer(
      new Map([...this.#transfers].filter(([, t]) => t.state === "offered")),
      id,
      "offer",
    );
    inc.finished = true;
    await this.#send(inc, encodeTransfer.reject(inc.party, inc.id, "declined"));
    this.#final(inc, "rejected", { reason: "you declined it" });
  }

  /** Handles a Manifest slice; on the last one checks it whole and sends the Resume. */
  async onManifest(inc: Incoming, offset: number, bytes: Uint8Array): Promise<void> {
    if (inc.state !== "manifest") throw new TransferFailure("manifest out of order");
    if (offset !== inc.manifestLength) throw new TransferFailure("manifest slices out of order");
    inc.manifestLength += bytes.length;
    // Checked before the slice is kept: memory stays within the cap (14.3).
    if (inc.manifestLength > manifestLimit(inc.offer.fileCount)) {
      throw new TransferFailure(
        `the manifest is larger than its files can need or the limit of ${MAX_MANIFEST_BYTES} bytes`,
      );
    }
    inc.manifest.push(bytes);
    if (!inc.manifest.complete) return;
    const entries = inc.manifest.entries;
    if (!constantTimeEqual(inc.manifest.digest(), inc.offer.manifestSha256)) {
      throw new TransferFailure("the manifest does not match the offer");
    }
    if (entries.reduce((sum, e) => sum + e.size, 0) !== inc.total) {
      throw new TransferFailure("the manifest sizes do not add up to the offer");
    }
    const root = inc.folder;
    const checked = checkManifestPaths(inc.offer.name, entries, this.#context.allowHidden === true);
    if (!(entries.length === 1 && checked[0]!.length === 1)) {
      // Never into a folder that was there: one of our own, numbered when the name is taken,
      // or the one this sender's same manifest started in (resume).
      inc.top = await claimFolder(root, inc.offer.name, folderOwner(inc));
      for (const segments of checked) segments[0] = inc.top;
    }
    const points = [];
    for (const [index, entry] of entries.entries()) {
      const segments = checked[index]!;
      const path = await resolveInside(root, segments);
      const owner = this.#owner(inc, index);
      // Only a part file this securechat left for this sender and this very file is read.
      const slot = await ownedSlot(path, owner);
      inc.files.push({ entry, path, segments, slot: slot ?? 0 });
      if (slot === undefined) continue;
      const proof = await prefixProof(partPath(numberedName(path, slot)), entry.size);
      if (proof && proof.length > 0) {
        inc.resumeFrom.set(index, proof.length);
        points.push({ fileIndex: index, length: proof.length, sha256: proof.sha256 });
      }
    }
    inc.state = "receiving";
    await this.#send(inc, encodeTransfer.resume(inc.party, inc.id, points));
  }

  async #advanceTo(inc: Incoming, index: number): Promise<void> {
    // Files before `index` that got no data must be empty ones: create them now.
    while (inc.index < index) {
      const file = inc.files[inc.index]!;
      if (inc.sink === undefined) {
        if (file.entry.size !== 0) throw new TransferFailure(`"${file.entry.path}" was skipped`);
        inc.sink = await FileSink.open(await this.#target(inc, inc.index, 0), {
          size: 0,
          sha256: file.entry.sha256,
          record: encodePartRecord(this.#owner(inc, inc.index)),
        });
      }
      await this.#published(inc, await inc.sink.finish());
      inc.sink = undefined;
      inc.index++;
    }
  }

  /**
   * Handles a Data slice, opened and in sequence (`lib/transfer/data_seal.ts`): opens the next
   * file's sink where needed, writes, acknowledges (an Ack Direct, sealed under the data key).
   */
  async onData(inc: Incoming, message: DataSlice): Promise<void> {
    if (inc.state !== "receiving") throw new TransferFailure("data before the manifest");
    if (message.fileIndex < inc.index || message.fileIndex >= inc.files.length) {
      throw new TransferFailure("data for a file out of order");
    }
    if (message.fileIndex > inc.index) {
      if (inc.sink && inc.sink.written < inc.files[inc.index]!.entry.size) {
        throw new TransferFailure(`"${inc.files[inc.index]!.entry.path}" ended early`);
      }
      if (inc.sink) {
        await this.#published(inc, await inc.sink.finish());
        inc.sink = undefined;
        inc.index++;
      }
      await this.#advanceTo(inc, message.fileIndex);
    }
    const file = inc.files[inc.index]!;
    if (inc.sink === undefined) {
      const resume = inc.resumeFrom.get(inc.index) ?? 0;
      const from = message.offset === resume ? resume : 0;
      if (message.offset !== from) throw new TransferFailure("data does not start where agreed");
      inc.sink = await FileSink.open(await this.#target(inc, inc.index, from), {
        size: file.entry.size,
        sha256: file.entry.sha256,
        record: encodePartRecord(this.#owner(inc, inc.index)),
        ...(from > 0 ? { resumeFrom: from } : {}),
      });
      inc.resumed += from;
      inc.bytes += from;
    }
    await inc.sink.write(message.offset, message.bytes);
    inc.bytes += message.bytes.length;
    const received = inc.bytes - inc.resumed;
    if (received - inc.lastAck >= ACK_EVERY_BYTES || inc.sink.written === file.entry.size) {
      inc.lastAck = received;
      // Sealed and sent in one step per slice: onData runs once at a time, so Acks leave in
      // their sequence order.
      await this.#context.sendDirect(await inc.acks.seal(received), inc.peer);
    }
    if (inc.sink.written === file.entry.size) {
      await this.#published(inc, await inc.sink.finish());
      inc.sink = undefined;
      inc.index++;
    }
    this.#events.progress(inc, "receive");
  }

  /** Who a part file of this transfer's file `index` belongs to (its resume record). */
  #owner(inc: Incoming, index: number): PartOwner {
    const entry = inc.manifest.entries[index]!;
    return {
      sender: inc.peer.fingerprint,
      manifestSha256: inc.offer.manifestSha256,
      fileIndex: index,
      size: entry.size,
      sha256: entry.sha256,
    };
  }

  /** Notes where a single file (not a folder of one) ended up ("NAME (1)" when taken). */
  #published(inc: Incoming, path: string): void {
    if (inc.top === undefined) inc.published = path;
  }

  /**
   * The path to receive a file at, resolved again right before creating it (safe_path.ts: folders
   * change). When resuming, the slot whose part file was proven ours. Otherwise our own part file
   * for this very file (the sender declined the resume) is started over; anything else at a part
   * or record name may be someone else's (a browser's half download): it is never read, changed
   * or deleted, and the file is received under the next free name instead (14.4).
   */
  async #target(inc: Incoming, index: number, resumeFrom: number): Promise<string> {
    const file = inc.files[index]!;
    const path = await resolveInside(inc.folder, file.segments);
    if (resumeFrom > 0) return numberedName(path, file.slot);
    const owner = this.#owner(inc, index);
    for (let n = 0;; n++) {
      const candidate = numberedName(path, n);
      if (await ownsPart(candidate, owner)) {
        await Deno.remove(partPath(candidate));
        await Deno.remove(recordPath(candidate));
        return candidate;
      }
      const taken = (n > 0 && await exists(candidate)) || await exists(partPath(candidate)) ||
        await exists(recordPath(candidate));
      if (!taken) return candidate;
    }
  }

  /**
   * Handles Done: checks that every Data slice the sender counts arrived (14.4), creates any
   * trailing empty files, then sends Complete.
   */
  async onDone(inc: Incoming, dataCount: number): Promise<void> {
    if (inc.state !== "receiving") throw new TransferFailure("done before the manifest");
    inc.opener.end(dataCount);
    if (inc.sink) throw new TransferFailure(`"${inc.files[inc.index]!.entry.path}" ended early`);
    await this.#advanceTo(inc, inc.files.length);
    inc.finished = true;
    if (inc.top !== undefined) await releaseFolder(inc.folder, inc.top);
    await this.#send(inc, encodeTransfer.complete(inc.party, inc.id));
    // Every path lies under the folder claimed for it (or is the single file).
    const top = inc.published ?? joinPath(inc.folder, inc.files[0]!.segments[0]!);
    this.#final(inc, "done", { path: top });
  }

  /**
   * Ends a transfer: closes the file being written and reports `state`. With `remove` its `.part`
   * is deleted (either side cancelled); without, it is kept so that a resend resumes.
   */
  async end(
    inc: Incoming,
    state: "failed" | "cancelled",
    reason: string,
    remove: boolean,
  ) {
    inc.finished = true;
    await inc.sink?.abort(remove).catch(() => {});
    inc.sink = undefined;
    // Kept when the connection broke, so that a resend resumes into the same folder.
    if (remove && inc.top !== undefined) await releaseFolder(inc.folder, inc.top).catch(() => {});
    this.#final(inc, state, { reason });
  }
}

/** Who a folder offer's top-level folder belongs to (its folder record). */
function folderOwner(inc: Incoming): FolderOwner {
  return { sender: inc.peer.fingerprint, manifestSha256: inc.offer.manifestSha256 };
}

/**
 * The first slot (0: `path` itself, n: "NAME (n)") whose part file is ours for `owner`, looking
 * only where part files or records exist; undefined when there is none.
 */
async function ownedSlot(path: string, owner: PartOwner): Promise<number | undefined> {
  for (let n = 0;; n++) {
    const candidate = numberedName(path, n);
    if (await ownsPart(candidate, owner)) return n;
    if (!(await exists(partPath(candidate))) && !(await exists(recordPath(candidate)))) {
      return undefined;
    }
  }
}
