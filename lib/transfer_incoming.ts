/**
 * The recipient's side of file transfers: verify the signed Offer against the roster and its
 * counter, wait for the user (or accept at once with `autoAccept`), check the manifest against the
 * Offer and every path in it, prove the prefixes of leftover `.part` files in a Resume, and write
 * each file through {@linkcode FileSink}, which renames it only once its SHA-256 matches. Progress
 * is reported through {@linkcode TransferEvents}; how messages travel is injected (`send`).
 *
 * It never decides for the user: offers wait for `accept()` unless the context has `autoAccept`
 * (`listen --receive DIR`). What it does not do: route messages (`lib/transfer.ts`), send files
 * (`lib/transfer_outgoing.ts`), or validate a path itself (`lib/safe_path.ts`).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.2 (Offer) to 14.5 (Cancel and interruption).
 *
 * @module
 */

import { constantTimeEqual } from "./bytes.ts";
import { FileSink, prefixProof } from "./file_sink.ts";
import { partPath } from "./free_name.ts";
import { exists, joinPath } from "./paths.ts";
import { noRoomFor, sizeLimit } from "./receive_limits.ts";
import { authorOf, fingerprintOfAuthor } from "./room_messages.ts";
import { resolveInside, safeRelativePath, sanitizeDisplayName } from "./safe_path.ts";
import {
  ACK_EVERY_BYTES,
  encodeTransfer,
  type ManifestEntry,
  ManifestParser,
  type Offer,
  type TransferMessage,
  verifyOffer,
} from "./transfer_messages.ts";
import {
  findTransfer,
  type Progress,
  type TransferContext,
  type TransferEvents,
  TransferFailure,
  transferKey,
} from "./transfer_progress.ts";

/** A transfer we receive: the verified Offer, the manifest so far, and the file being written. */
export interface Incoming extends Progress {
  offer: Offer;
  state: "offered" | "manifest" | "receiving";
  manifest: ManifestParser;
  manifestLength: number;
  files: { entry: ManifestEntry; path: string; segments: string[] }[];
  resumeFrom: Map<number, number>;
  index: number;
  sink: FileSink | undefined;
  lastAck: number;
}

/** Runs the incoming transfers of one room member. */
export class IncomingTransfers {
  #context: TransferContext;
  #events: TransferEvents;
  #now: () => number;
  #transfers = new Map<string, Incoming>();

  constructor(context: TransferContext, events: TransferEvents) {
    this.#context = context;
    this.#events = events;
    this.#now = context.now ?? Date.now;
  }

  /** The transfer with this key ({@linkcode transferKey}), finished or not. */
  get(key: string): Incoming | undefined {
    return this.#transfers.get(key);
  }

  /** Every transfer so far, finished or not. */
  values(): MapIterator<Incoming> {
    return this.#transfers.values();
  }

  /** Handles an Offer: verifies it, then reports it (or rejects it at once when over the limit). */
  async onOffer(message: TransferMessage & { type: "offer" }, short: string): Promise<void> {
    const senderPrint = fingerprintOfAuthor(message.party);
    const sender = this.#context.roster.get(senderPrint);
    const claimed = sender?.info.name ?? senderPrint;
    const reject = (reason: string) =>
      this.#context.emit({ type: "rejected", time: this.#now(), claimedAuthor: claimed, reason });
    if (!sender) return reject("a file offer from someone not in the room");
    // Made before the checks so that no await separates the counter check from the registration.
    const manifest = await ManifestParser.create(message.offer.fileCount);
    const ok = await verifyOffer(sender.identity, {
      roomId: this.#context.roomId,
      sender: message.party,
      recipient: authorOf(this.#context.identity.fingerprint),
      transferId: message.transferId,
    }, message.offer);
    if (!ok) return reject("a file offer whose signature does not verify (altered or forged)");
    if (!this.#context.roster.checkCounter(senderPrint, message.offer.counter)) {
      return reject("a file offer that was replayed");
    }
    const key = transferKey(message.party, message.transferId);
    if (this.#transfers.has(key)) {
      return reject("a file offer that reuses the id of an earlier transfer from that member");
    }
    const inc: Incoming = {
      id: message.transferId,
      short,
      peer: sender.info,
      party: message.party,
      name: sanitizeDisplayName(message.offer.name),
      total: message.offer.totalSize,
      bytes: 0,
      resumed: 0,
      started: this.#now(),
      lastEvent: 0,
      finished: false,
      offer: message.offer,
      state: "offered",
      manifest,
      manifestLength: 0,
      files: [],
      resumeFrom: new Map(),
      index: 0,
      sink: undefined,
      lastAck: 0,
    };
    this.#transfers.set(key, inc);
    const max = sizeLimit(this.#context.maxFileSize, this.#context.autoAccept);
    if (max !== undefined && inc.total > max) {
      inc.finished = true;
      const reason = `larger than the recipient's limit of ${max} bytes`;
      await this.#context.send(encodeTransfer.reject(inc.party, inc.id, reason));
      return this.#events.emit(inc, "receive", "rejected", { reason });
    }
    this.#context.emit({
      type: "offer",
      time: this.#now(),
      id: short,
      from: sender.info,
      name: inc.name,
      files: message.offer.fileCount,
      size: inc.total,
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
    const noRoom = await noRoomFor(inc.total, this.#context.receiveDir ?? Deno.cwd());
    if (noRoom !== undefined) {
      inc.finished = true;
      await this.#context.send(encodeTransfer.reject(inc.party, inc.id, noRoom));
      return this.#events.emit(inc, "receive", "rejected", { reason: noRoom });
    }
    inc.state = "manifest";
    inc.started = this.#now();
    await this.#context.send(encodeTransfer.accept(inc.party, inc.id));
    this.#events.emit(inc, "receive", "receiving");
  }

  /** Rejects an offer (default: the only pending one). */
  async reject(id?: string): Promise<void> {
    const inc = findTransfer(
      new Map([...this.#transfers].filter(([, t]) => t.state === "offered")),
      id,
      "offer",
    );
    inc.finished = true;
    await this.#context.send(encodeTransfer.reject(inc.party, inc.id, "declined"));
    this.#events.emit(inc, "receive", "rejected", { reason: "you declined it" });
  }

  /** Handles a Manifest slice; on the last one checks it whole and sends the Resume. */
  async onManifest(inc: Incoming, offset: number, bytes: Uint8Array): Promise<void> {
    if (inc.state !== "manifest") throw new TransferFailure("manifest out of order");
    if (offset !== inc.manifestLength) throw new TransferFailure("manifest slices out of order");
    inc.manifestLength += bytes.length;
    if (inc.manifestLength > inc.offer.fileCount * (2 + 4096 + 40)) {
      throw new TransferFailure("the manifest is larger than its files can need");
    }
    inc.manifest.push(bytes);
    if (!inc.manifest.complete) return;
    const entries = inc.manifest.entries;
    if (!constantTimeEqual(inc.manifest.digest(), inc.offer.manifestSha256)) {
      throw new TransferFailure("the manifest does not match the signed offer");
    }
    if (entries.reduce((sum, e) => sum + e.size, 0) !== inc.total) {
      throw new TransferFailure("the manifest sizes do not add up to the offer");
    }
    const root = this.#context.receiveDir ?? Deno.cwd();
    const seen = new Set<string>();
    const points = [];
    for (const [index, entry] of entries.entries()) {
      const segments = safeRelativePath(entry.path);
      // One spelling per name, as case-insensitive and normalizing file systems see it.
      const key = segments.join("/").normalize("NFC").toLowerCase();
      if (seen.has(key)) throw new TransferFailure(`the manifest lists "${entry.path}" twice`);
      seen.add(key);
      const path = await resolveInside(root, segments);
      inc.files.push({ entry, path, segments });
      const proof = await prefixProof(`${path}.part`, entry.size);
      if (proof && proof.length > 0) {
        inc.resumeFrom.set(index, proof.length);
        points.push({ fileIndex: index, length: proof.length, sha256: proof.sha256 });
      }
    }
    // A file named like another's part file would be clobbered by that part: refuse the pair.
    for (const key of seen) {
      if (seen.has(`${key}.part`)) {
        throw new TransferFailure(
          `the manifest lists both "${key}" and its part file "${key}.part"`,
        );
      }
    }
    inc.state = "receiving";
    await this.#context.send(encodeTransfer.resume(inc.party, inc.id, points));
  }

  async #advanceTo(inc: Incoming, index: number): Promise<void> {
    // Files before `index` that got no data must be empty ones: create them now.
    while (inc.index < index) {
      const file = inc.files[inc.index]!;
      if (inc.sink === undefined) {
        if (file.entry.size !== 0) throw new TransferFailure(`"${file.entry.path}" was skipped`);
        inc.sink = await FileSink.open(await this.#target(file, 0), {
          size: 0,
          sha256: file.entry.sha256,
        });
      }
      await inc.sink.finish();
      inc.sink = undefined;
      inc.index++;
    }
  }

  /** Handles a Data slice: opens the next file's sink where needed, writes, acknowledges. */
  async onData(inc: Incoming, message: TransferMessage & { type: "data" }): Promise<void> {
    if (inc.state !== "receiving") throw new TransferFailure("data before the manifest");
    if (message.fileIndex < inc.index || message.fileIndex >= inc.files.length) {
      throw new TransferFailure("data for a file out of order");
    }
    if (message.fileIndex > inc.index) {
      if (inc.sink && inc.sink.written < inc.files[inc.index]!.entry.size) {
        throw new TransferFailure(`"${inc.files[inc.index]!.entry.path}" ended early`);
      }
      if (inc.sink) {
        await inc.sink.finish();
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
      inc.sink = await FileSink.open(await this.#target(file, from), {
        size: file.entry.size,
        sha256: file.entry.sha256,
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
      await this.#context.send(encodeTransfer.ack(inc.party, inc.id, received));
    }
    if (inc.sink.written === file.entry.size) {
      await inc.sink.finish();
      inc.sink = undefined;
      inc.index++;
    }
    this.#events.progress(inc, "receive");
  }

  /**
   * The path to receive a file at, resolved again right before creating it (safe_path.ts: folders
   * change). A `.part` we are not resuming may be someone else's (a browser's half download): it
   * is never deleted; the file is received under the next free name instead (14.4).
   */
  async #target(file: { segments: string[] }, resumeFrom: number): Promise<string> {
    const path = await resolveInside(this.#context.receiveDir ?? Deno.cwd(), file.segments);
    if (resumeFrom > 0 || !(await exists(partPath(path)))) return path;
    for (let n = 1;; n++) {
      const candidate = numbered(path, n);
      if (!(await exists(candidate)) && !(await exists(partPath(candidate)))) return candidate;
    }
  }

  /** Handles Done: creates any trailing empty files, then sends Complete. */
  async onDone(inc: Incoming): Promise<void> {
    if (inc.state !== "receiving") throw new TransferFailure("done before the manifest");
    if (inc.sink) throw new TransferFailure(`"${inc.files[inc.index]!.entry.path}" ended early`);
    await this.#advanceTo(inc, inc.files.length);
    inc.finished = true;
    await this.#context.send(encodeTransfer.complete(inc.party, inc.id));
    const root = this.#context.receiveDir ?? Deno.cwd();
    const top = inc.files.length === 1
      ? inc.files[0]!.path
      : joinPath(root, inc.files[0]!.entry.path.split("/")[0]!);
    this.#events.emit(inc, "receive", "done", { path: top });
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
    this.#events.emit(inc, "receive", state, { reason });
  }
}

/** "dir/report.pdf" -> "dir/report (n).pdf"; dotfiles and names without extension get a suffix. */
function numbered(path: string, n: number): string {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const name = path.slice(slash + 1);
  const dot = name.lastIndexOf(".");
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const extension = dot > 0 ? name.slice(dot) : "";
  return `${path.slice(0, slash + 1)}${stem} (${n})${extension}`;
}
