/**
 * File transfer between two room members: the sender's side (walk, hash, signed offer, manifest,
 * resume check, windowed data) and the recipient's side (verify the offer, ask, validate every path,
 * prove resumable prefixes, write through FileSink, verify, rename). Both report progress as chat
 * events. The same manager serves a dialer and the host; how messages travel is injected (`send`).
 *
 * It never prints and never decides for the user: offers wait for `accept()` unless the manager
 * was made with `autoAccept` (`listen --receive DIR`).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.1 to 14.5.
 *
 * @module
 */

import { constantTimeEqual, toHex } from "./bytes.ts";
import type { ChatEvent, MemberInfo } from "./chat_events.ts";
import { SecurechatError } from "./errors.ts";
import { hashFile, prefixMatches } from "./file_hash.ts";
import { FileSink, prefixProof } from "./file_sink.ts";
import { partPath } from "./free_name.ts";
import type { Identity } from "./identity.ts";
import { hash } from "./key_schedule.ts";
import { exists, joinPath } from "./paths.ts";
import { authorOf, fingerprintOfAuthor } from "./room_messages.ts";
import type { ChatSigner, Roster } from "./room_member.ts";
import { resolveInside, safeRelativePath, sanitizeDisplayName } from "./safe_path.ts";
import {
  ACK_EVERY_BYTES,
  encodeManifest,
  encodeTransfer,
  type ManifestEntry,
  ManifestParser,
  MAX_SLICE,
  type Offer,
  signOffer,
  type TransferMessage,
  verifyOffer,
  WINDOW_BYTES,
} from "./transfer_messages.ts";

/** How often progress events are emitted per transfer. */
const PROGRESS_INTERVAL_MS = 250;

/** What a transfer manager needs from the session around it. */
export interface TransferContext {
  identity: Identity;
  roomId: Uint8Array;
  roster: Roster;
  signer: ChatSigner;
  /** Sends one transfer message toward the relay (or, for the host, to the member). */
  send(message: Uint8Array): Promise<void>;
  emit(event: ChatEvent): void;
  now?: () => number;
  /** Where accepted files are written (default: the current folder). */
  receiveDir?: string;
  /** Accept every verified offer at once (one-shot `listen --receive DIR`). */
  autoAccept?: boolean;
  /** Reject offers larger than this many bytes. */
  maxFileSize?: number;
}

interface Progress {
  id: Uint8Array;
  short: string;
  peer: MemberInfo;
  party: Uint8Array;
  name: string;
  total: number;
  bytes: number;
  resumed: number;
  started: number;
  lastEvent: number;
  finished: boolean;
}

interface Outgoing extends Progress {
  files: { local: string; entry: ManifestEntry }[];
  manifest: Uint8Array;
  acked: number;
  sent: number;
  wake: () => void;
  resume: Promise<Map<number, { length: number; sha256: Uint8Array }>>;
  gotResume: (points: Map<number, { length: number; sha256: Uint8Array }>) => void;
  cancelled?: string;
}

interface Incoming extends Progress {
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

/** Cancels with a reason the peer is told. */
class TransferFailure extends Error {}

/** Runs the transfers of one room member. */
export class TransferManager {
  #context: TransferContext;
  #now: () => number;
  #outgoing = new Map<string, Outgoing>();
  #incoming = new Map<string, Incoming>();

  constructor(context: TransferContext) {
    this.#context = context;
    this.#now = context.now ?? Date.now;
  }

  // --- shared ---

  #emit(transfer: Progress, direction: "send" | "receive", state: string, extra = {}): void {
    const now = this.#now();
    transfer.lastEvent = now;
    const seconds = (now - transfer.started) / 1000;
    const rate = seconds > 0.2 ? (transfer.bytes - transfer.resumed) / seconds : undefined;
    const event: ChatEvent = {
      type: "transfer",
      time: now,
      id: transfer.short,
      direction,
      peer: transfer.peer,
      name: transfer.name,
      state: state as "sending",
      bytes: transfer.bytes,
      total: transfer.total,
      ...extra,
    };
    if (rate !== undefined && rate > 0 && (state === "sending" || state === "receiving")) {
      event.rate = Math.round(rate);
      event.eta = Math.round((transfer.total - transfer.bytes) / rate);
    }
    if (transfer.resumed > 0) event.resumed = transfer.resumed;
    this.#context.emit(event);
  }

  #progress(transfer: Progress, direction: "send" | "receive"): void {
    if (this.#now() - transfer.lastEvent >= PROGRESS_INTERVAL_MS) {
      this.#emit(transfer, direction, direction === "send" ? "sending" : "receiving");
    }
  }

  #find<T extends Progress>(map: Map<string, T>, id: string | undefined, what: string): T {
    const open = [...map.values()].filter((t) => !t.finished);
    const found = id === undefined ? (open.length === 1 ? open[0] : undefined) : map.get(id);
    if (!found) {
      const known = open.map((t) => t.short).join(", ") || "none";
      throw new SecurechatError(
        "unknown_transfer",
        id === undefined ? `say which ${what}: ${known}` : `no ${what} "${id}" (open: ${known})`,
      );
    }
    return found;
  }

  /** Handles one transfer message; `party` is the other member (the relay filled it in). */
  async handle(message: TransferMessage): Promise<void> {
    const key = toHex(message.transferId).slice(0, 8);
    if (message.type === "offer") return await this.#onOffer(message, key);
    const out = this.#outgoing.get(key);
    const fromRecipient = out && constantTimeEqual(out.party, message.party);
    const inc = this.#incoming.get(key);
    const fromSender = inc && constantTimeEqual(inc.party, message.party);
    switch (message.type) {
      case "accept":
        if (fromRecipient && !out.finished) this.#stream(out);
        return;
      case "reject":
      case "cancel":
        if (fromRecipient && !out.finished) {
          out.finished = true;
          out.cancelled = message.reason;
          out.wake();
          out.gotResume(new Map());
          this.#emit(out, "send", message.type === "reject" ? "rejected" : "cancelled", {
            reason: sanitizeDisplayName(message.reason),
          });
        } else if (fromSender && !inc.finished && message.type === "cancel") {
          await this.#endIncoming(inc, "cancelled", sanitizeDisplayName(message.reason), true);
        }
        return;
      case "resume":
        if (fromRecipient) {
          out.gotResume(new Map(message.points.map((p) => [p.fileIndex, p])));
        }
        return;
      case "ack":
        if (fromRecipient) {
          out.acked = Math.max(out.acked, message.received);
          out.wake();
        }
        return;
      case "complete":
        if (fromRecipient && !out.finished) {
          out.finished = true;
          this.#emit(out, "send", "done");
        }
        return;
      case "manifest":
      case "data":
      case "done":
        if (!fromSender || inc.finished) return;
        try {
          if (message.type === "manifest") {
            await this.#onManifest(inc, message.offset, message.bytes);
          } else if (message.type === "data") await this.#onData(inc, message);
          else await this.#onDone(inc);
        } catch (error) {
          if (inc.finished) return; // cancelled meanwhile: a write into the aborted sink failed
          const reason = error instanceof Error ? error.message : String(error);
          await this.#endIncoming(inc, "failed", reason, true);
          await this.#context.send(encodeTransfer.cancel(inc.party, inc.id, reason)).catch(
            () => {},
          );
        }
        return;
    }
  }

  /** The connection is gone: stop everything, keeping `.part` files so a resend resumes. */
  async abortAll(reason: string): Promise<void> {
    for (const out of this.#outgoing.values()) {
      if (out.finished) continue;
      out.finished = true;
      out.cancelled = reason;
      out.wake();
      out.gotResume(new Map());
      this.#emit(out, "send", "failed", { reason });
    }
    for (const inc of this.#incoming.values()) {
      if (!inc.finished) await this.#endIncoming(inc, "failed", reason, false);
    }
  }

  /** A member left: end the transfers with it (keeping `.part` files for a resend). */
  async abortWith(fingerprint: string, reason: string): Promise<void> {
    for (const out of this.#outgoing.values()) {
      if (out.finished || out.peer.fingerprint !== fingerprint) continue;
      out.finished = true;
      out.cancelled = reason;
      out.wake();
      out.gotResume(new Map());
      this.#emit(out, "send", "failed", { reason });
    }
    for (const inc of this.#incoming.values()) {
      if (!inc.finished && inc.peer.fingerprint === fingerprint) {
        await this.#endIncoming(inc, "failed", reason, false);
      }
    }
  }

  /** Cancels a transfer in either direction (default: the only open one). */
  async cancel(id?: string): Promise<void> {
    const open = [...this.#outgoing.values(), ...this.#incoming.values()].filter((t) =>
      !t.finished && (id === undefined || t.short === id)
    );
    if (open.length !== 1) this.#find(new Map(open.map((t) => [t.short, t])), id, "transfer");
    const transfer = open[0]!;
    // Finished first, synchronously: data already on its way must not turn this into a failure.
    const out = this.#outgoing.get(transfer.short);
    if (out === transfer) {
      out.finished = true;
      out.cancelled = "cancelled";
      out.wake();
      out.gotResume(new Map());
      this.#emit(out, "send", "cancelled", { reason: "you cancelled it" });
    } else {
      await this.#endIncoming(transfer as Incoming, "cancelled", "you cancelled it", true);
    }
    await this.#context.send(
      encodeTransfer.cancel(transfer.party, transfer.id, "cancelled by the other side"),
    ).catch(() => {});
  }

  // --- sender (14.2 to 14.4) ---

  /** Offers the file or folder at `path` to `peer`. */
  async offer(path: string, peer: MemberInfo): Promise<void> {
    const files = await collectFiles(path);
    const entries = [];
    for (const file of files) {
      const { size, sha256 } = await hashFile(file.local);
      entries.push({ local: file.local, entry: { path: file.relative, size, sha256 } });
    }
    const manifest = encodeManifest(entries.map((e) => e.entry));
    const id = crypto.getRandomValues(new Uint8Array(16));
    const party = authorOf(peer.fingerprint);
    const name = baseName(path);
    const offer = await signOffer(this.#context.identity, {
      roomId: this.#context.roomId,
      sender: authorOf(this.#context.identity.fingerprint),
      recipient: party,
      transferId: id,
    }, {
      counter: this.#context.signer.nextCounter(),
      timestamp: this.#now(),
      name,
      fileCount: entries.length,
      totalSize: entries.reduce((sum, e) => sum + e.entry.size, 0),
      manifestSha256: await hash(manifest),
    });
    let gotResume: Outgoing["gotResume"] = () => {};
    const out: Outgoing = {
      id,
      short: toHex(id).slice(0, 8),
      peer,
      party,
      name,
      total: offer.totalSize,
      bytes: 0,
      resumed: 0,
      started: this.#now(),
      lastEvent: 0,
      finished: false,
      files: entries,
      manifest,
      acked: 0,
      sent: 0,
      wake: () => {},
      resume: new Promise((resolve) => gotResume = resolve),
      gotResume: (points) => gotResume(points),
    };
    this.#outgoing.set(out.short, out);
    await this.#context.send(encodeTransfer.offer(party, id, offer));
    this.#emit(out, "send", "waiting");
  }

  async #stream(out: Outgoing): Promise<void> {
    try {
      for (let offset = 0; offset < out.manifest.length; offset += MAX_SLICE) {
        const slice = out.manifest.subarray(offset, offset + MAX_SLICE);
        await this.#context.send(encodeTransfer.manifest(out.party, out.id, offset, slice));
      }
      const points = await out.resume;
      out.started = this.#now();
      for (const [index, { local, entry }] of out.files.entries()) {
        if (out.finished) return;
        const point = points.get(index);
        let start = 0;
        if (point && point.length <= entry.size && point.length > 0) {
          if (await prefixMatches(local, point.length, point.sha256)) start = point.length;
        }
        out.resumed += start;
        out.bytes += start;
        await this.#sendFile(out, index, local, start, entry.size);
      }
      if (!out.finished) await this.#context.send(encodeTransfer.done(out.party, out.id));
    } catch (error) {
      if (out.finished) return;
      out.finished = true;
      const reason = error instanceof Error ? error.message : String(error);
      // Report before the courtesy Cancel: on a dead connection that send fails slowly.
      this.#emit(out, "send", "failed", { reason });
      await this.#context.send(encodeTransfer.cancel(out.party, out.id, reason)).catch(() => {});
    }
  }

  async #sendFile(out: Outgoing, index: number, local: string, start: number, size: number) {
    if (start >= size) return;
    using file = await Deno.open(local, { read: true });
    await file.seek(start, Deno.SeekMode.Start);
    const buffer = new Uint8Array(MAX_SLICE);
    let offset = start;
    while (offset < size && !out.finished) {
      while (out.sent - out.acked > WINDOW_BYTES && !out.finished) {
        await new Promise<void>((resolve) => out.wake = resolve);
      }
      const n = await file.read(buffer.subarray(0, Math.min(MAX_SLICE, size - offset)));
      if (n === null) throw new TransferFailure(`"${local}" shrank while it was being sent`);
      await this.#context.send(
        encodeTransfer.data(out.party, out.id, index, offset, buffer.slice(0, n)),
      );
      offset += n;
      out.sent += n;
      out.bytes += n;
      this.#progress(out, "send");
    }
  }

  // --- recipient (14.2 to 14.5) ---

  async #onOffer(message: TransferMessage & { type: "offer" }, key: string): Promise<void> {
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
    const inc: Incoming = {
      id: message.transferId,
      short: key,
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
    this.#incoming.set(key, inc);
    const max = this.#context.maxFileSize;
    if (max !== undefined && inc.total > max) {
      inc.finished = true;
      const reason = `larger than the recipient's limit of ${max} bytes`;
      await this.#context.send(encodeTransfer.reject(inc.party, inc.id, reason));
      return this.#emit(inc, "receive", "rejected", { reason });
    }
    this.#context.emit({
      type: "offer",
      time: this.#now(),
      id: key,
      from: sender.info,
      name: inc.name,
      files: message.offer.fileCount,
      size: inc.total,
    });
    if (this.#context.autoAccept) await this.accept(key);
  }

  /** Accepts an offer (default: the only pending one). */
  async accept(id?: string): Promise<void> {
    const inc = this.#find(
      new Map([...this.#incoming].filter(([, t]) => t.state === "offered")),
      id,
      "offer",
    );
    inc.state = "manifest";
    inc.started = this.#now();
    await this.#context.send(encodeTransfer.accept(inc.party, inc.id));
    this.#emit(inc, "receive", "receiving");
  }

  /** Rejects an offer (default: the only pending one). */
  async reject(id?: string): Promise<void> {
    const inc = this.#find(
      new Map([...this.#incoming].filter(([, t]) => t.state === "offered")),
      id,
      "offer",
    );
    inc.finished = true;
    await this.#context.send(encodeTransfer.reject(inc.party, inc.id, "declined"));
    this.#emit(inc, "receive", "rejected", { reason: "you declined it" });
  }

  async #onManifest(inc: Incoming, offset: number, bytes: Uint8Array): Promise<void> {
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

  async #onData(inc: Incoming, message: TransferMessage & { type: "data" }): Promise<void> {
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
    this.#progress(inc, "receive");
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

  async #onDone(inc: Incoming): Promise<void> {
    if (inc.state !== "receiving") throw new TransferFailure("done before the manifest");
    if (inc.sink) throw new TransferFailure(`"${inc.files[inc.index]!.entry.path}" ended early`);
    await this.#advanceTo(inc, inc.files.length);
    inc.finished = true;
    await this.#context.send(encodeTransfer.complete(inc.party, inc.id));
    const root = this.#context.receiveDir ?? Deno.cwd();
    const top = inc.files.length === 1
      ? inc.files[0]!.path
      : joinPath(root, inc.files[0]!.entry.path.split("/")[0]!);
    this.#emit(inc, "receive", "done", { path: top });
  }

  async #endIncoming(
    inc: Incoming,
    state: "failed" | "cancelled",
    reason: string,
    remove: boolean,
  ) {
    inc.finished = true;
    await inc.sink?.abort(remove).catch(() => {});
    inc.sink = undefined;
    this.#emit(inc, "receive", state, { reason });
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

function baseName(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, "");
  return trimmed.slice(Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\")) + 1) ||
    "file";
}

/**
 * The regular files at `path` (a file, or a folder walked recursively in name order), with paths
 * relative to its parent using "/". Symbolic links are not followed.
 *
 * @throws {SecurechatError} when `path` is missing or has no regular files
 */
export async function collectFiles(path: string): Promise<{ local: string; relative: string }[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch {
    throw new SecurechatError("no_such_file", `cannot send "${path}": no such file or folder`);
  }
  const top = baseName(path);
  if (info.isFile) return [{ local: path, relative: top }];
  if (!info.isDirectory) {
    throw new SecurechatError("not_a_file", `cannot send "${path}": not a regular file or folder`);
  }
  const out: { local: string; relative: string }[] = [];
  const walk = async (dir: string, relative: string) => {
    const entries = [];
    for await (const entry of Deno.readDir(dir)) entries.push(entry);
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const entry of entries) {
      const local = joinPath(dir, entry.name);
      if (entry.isFile) out.push({ local, relative: `${relative}/${entry.name}` });
      else if (entry.isDirectory) await walk(local, `${relative}/${entry.name}`);
    }
  };
  await walk(path, top);
  if (out.length === 0) {
    throw new SecurechatError("empty_folder", `cannot send "${path}": it holds no files`);
  }
  return out;
}
