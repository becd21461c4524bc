/**
 * The sender's side of file transfers: walk the file or folder, hash every file, choose the
 * transfer's data key and send the Offer, and once accepted send the manifest, check the
 * recipient's Resume claims against our own files and send the data, sealed under the data key
 * (`lib/transfer/data_seal.ts`), keeping at most a window of unacknowledged bytes in flight; open
 * the recipient's Acks, sealed under the same key the other way, in sequence. Progress is reported
 * through {@linkcode TransferEvents}; how messages travel is injected (`sendSealed` for transfer
 * messages, `sendDirect` for Data).
 *
 * What it does not do: route incoming messages (`lib/transfer/transfer.ts` hands each one to the
 * side it belongs to), or receive (`lib/transfer/transfer_incoming.ts`).
 *
 * Mirrors: docs/PROTOCOL.md sections 14.2 (Offer), 14.3 (Manifest) and 14.4 (Data, flow control
 * and resume).
 *
 * @module
 */

import { authorOf } from "../keys/identity.ts";
import { sha256, wipe } from "../core/bytes.ts";
import type { MemberInfo } from "../chat/chat_events.ts";
import { SecurechatError } from "../core/errors.ts";
import { hashFileOnce, prefixMatches } from "./file_hash.ts";
import { joinPath } from "../core/paths.ts";
import { AckOpener } from "./ack_seal.ts";
import { DataSealer } from "./data_seal.ts";
import {
  DATA_KEY_LENGTH,
  encodeManifest,
  encodeTransfer,
  type ManifestEntry,
  MAX_DATA_SLICE,
  MAX_SLICE,
  TRANSFER_ID_LENGTH,
  WINDOW_BYTES,
} from "./transfer_messages.ts";
import {
  type Progress,
  type TransferEvents,
  TransferFailure,
  transferKey,
  type TransferManagerOptions,
} from "./transfer_progress.ts";

/**
 * How many Data slices are read and sealed ahead of the ones being sent. Chosen when Data was
 * AES-256-GCM on WebCrypto's threads (4 in flight made 325-773 MB/s, one at a time 267-393, 64 KiB
 * inputs, 2-core bench machine); since Data is sealed synchronously (data_seal.ts) it only keeps
 * a few sealed Directs ready while the ones before them are being sent.
 */
export const SEALS_AHEAD = 4;

/**
 * How many Directs of one transfer are handed to `sendDirect` before the first of them is sent:
 * the connection seals records of several at once and writes them in order (issue 16).
 */
export const SENDS_IN_FLIGHT = 4;

/**
 * How many Data slices one read of the file fills (about 1 MiB): a read is an operation on
 * another thread, and one per 64 KiB slice cost more than the read itself.
 */
export const READ_SLICES = Math.max(1, Math.floor(2 ** 20 / MAX_DATA_SLICE));

/** A transfer we send: its files, the manifest, and the flow-control state. */
export interface Outgoing extends Progress {
  files: { local: string; entry: ManifestEntry }[];
  manifest: Uint8Array;
  /** Seals this transfer's Data under its data key, sequence 0, 1, 2, ... (14.4). */
  sealer: DataSealer;
  /** Opens the recipient's Acks under the same key, their own sequence 0, 1, 2, ... (14.4). */
  acks: AckOpener;
  /** True once the recipient's Accept started the stream. */
  accepted: boolean;
  acked: number;
  sent: number;
  wake: () => void;
  resume: Promise<Map<number, { length: number; sha256: Uint8Array }>>;
  gotResume: (points: Map<number, { length: number; sha256: Uint8Array }>) => void;
  cancelled?: string;
}

/** Runs the outgoing transfers of one room member. */
export class OutgoingTransfers {
  #context: TransferManagerOptions;
  #events: TransferEvents;
  #now: () => number;
  #transfers = new Map<string, Outgoing>();

  constructor(context: TransferManagerOptions, events: TransferEvents) {
    this.#context = context;
    this.#events = events;
    this.#now = context.now;
  }

  /** The transfer with this key ({@linkcode transferKey}), finished or not. */
  get(key: string): Outgoing | undefined {
    return this.#transfers.get(key);
  }

  /** Every transfer so far, finished or not. */
  values(): MapIterator<Outgoing> {
    return this.#transfers.values();
  }

  /**
   * Offers the file or folder at `path` to `peer`.
   *
   * @param short names the transfer to the user, unique among this member's (lib/transfer/transfer.ts)
   * @throws {SecurechatError} code "not_in_room" when `peer` is ourselves or not in the room, and
   *   the errors of {@linkcode collectFiles}
   */
  async offer(path: string, peer: MemberInfo, short: (id: Uint8Array) => string): Promise<void> {
    const party = authorOf(peer.fingerprint);
    const member = this.#context.peers.byAuthor(party);
    if (member === undefined || peer.fingerprint === this.#context.self.fingerprint) {
      throw new SecurechatError(
        "not_in_room",
        `cannot send "${path}" to "${peer.name}": not another member of the room`,
      );
    }
    const files = await collectFiles(path);
    const entries = [];
    for (const file of files) {
      const { size, sha256 } = await hashFileOnce(file.local);
      entries.push({ local: file.local, entry: { path: file.relative, size, sha256 } });
    }
    const manifest = encodeManifest(entries.map((e) => e.entry));
    // Unique per recipient as assigned: a recipient keys transfers by (sender, id).
    let id = crypto.getRandomValues(new Uint8Array(TRANSFER_ID_LENGTH));
    while (this.#transfers.has(transferKey(party, id))) id = crypto.getRandomValues(id);
    const name = baseName(path);
    // A fresh key for this transfer alone (14.2), so that its sequence numbers are its nonces.
    const dataKey = crypto.getRandomValues(new Uint8Array(DATA_KEY_LENGTH));
    let message: Uint8Array;
    let sealer: DataSealer;
    let acks: AckOpener;
    try {
      const parties = {
        sender: authorOf(this.#context.self.fingerprint),
        recipient: party,
        transferId: id,
      };
      sealer = await DataSealer.create(dataKey, parties);
      acks = await AckOpener.create(dataKey, parties);
      message = encodeTransfer.offer(party, id, {
        timestamp: this.#now(),
        name,
        fileCount: entries.length,
        totalSize: entries.reduce((sum, e) => sum + e.entry.size, 0),
        manifestSha256: await sha256(manifest),
        dataKey,
      });
    } finally {
      wipe(dataKey);
    }
    let gotResume: Outgoing["gotResume"] = () => {};
    const out: Outgoing = {
      id,
      short: short(id),
      peer: member,
      party,
      name,
      total: entries.reduce((sum, e) => sum + e.entry.size, 0),
      bytes: 0,
      resumed: 0,
      started: this.#now(),
      lastEvent: 0,
      finished: false,
      files: entries,
      manifest,
      sealer,
      acks,
      accepted: false,
      acked: 0,
      sent: 0,
      wake: () => {},
      resume: new Promise((resolve) => gotResume = resolve),
      gotResume: (points) => gotResume(points),
    };
    this.#transfers.set(transferKey(party, id), out);
    await this.#context.sendSealed(message, out.peer);
    this.#events.emit(out, "send", "waiting");
  }

  /** After the Accept: sends the manifest, waits for the Resume, then sends every file. */
  async stream(out: Outgoing): Promise<void> {
    try {
      for (let offset = 0; offset < out.manifest.length; offset += MAX_SLICE) {
        const slice = out.manifest.subarray(offset, offset + MAX_SLICE);
        await this.#context.sendSealed(
          encodeTransfer.manifest(out.party, out.id, offset, slice),
          out.peer,
        );
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
      if (!out.finished) {
        const done = encodeTransfer.done(out.party, out.id, out.sealer.count);
        await this.#context.sendSealed(done, out.peer);
      }
    } catch (error) {
      await this.#fail(out, error);
    }
  }

  /**
   * Handles an Ack Direct of `out` (14.4): opens it, in sequence, and widens the window by what it
   * acknowledges, never beyond what was sent (an Ack for more would open our window wider than the
   * recipient's memory and disk were promised). One that does not open, or opens out of sequence,
   * ends the transfer and tells the recipient why (Cancel).
   */
  async onAck(out: Outgoing, bytes: Uint8Array): Promise<void> {
    let received: number;
    try {
      received = await out.acks.open(bytes);
    } catch (error) {
      return await this.#fail(out, error);
    }
    out.acked = Math.max(out.acked, Math.min(received, out.sent));
    out.wake();
  }

  /** Ends a running transfer that failed with `error` and tells the recipient why (Cancel). */
  async #fail(out: Outgoing, error: unknown): Promise<void> {
    if (out.finished) return;
    const reason = error instanceof Error ? error.message : String(error);
    // Report before the courtesy Cancel: on a dead connection that send fails slowly.
    this.end(out, "failed", reason, reason);
    await this.#context.sendSealed(encodeTransfer.cancel(out.party, out.id, reason), out.peer)
      .catch(() => {});
  }

  /**
   * Ends a transfer that is still running: wakes its stream so that it stops, and reports
   * `state`. `cancelled` is the reason kept on the transfer, `reason` the one reported.
   */
  end(
    out: Outgoing,
    state: "rejected" | "cancelled" | "failed",
    cancelled: string,
    reason: string,
  ): void {
    out.finished = true;
    out.cancelled = cancelled;
    out.wake();
    out.gotResume(new Map());
    this.#events.emit(out, "send", state, { reason });
  }

  /**
   * Sends one file's Data from `start`: reads and seals up to {@linkcode SEALS_AHEAD} slices ahead
   * of the ones being sent, and hands them to `sendDirect` in
   * the order they were sealed, up to {@linkcode SENDS_IN_FLIGHT} at once, never more than
   * {@linkcode WINDOW_BYTES} beyond the last Ack.
   */
  async #sendFile(out: Outgoing, index: number, local: string, start: number, size: number) {
    if (start >= size) return;
    using file = await Deno.open(local, { read: true });
    await file.seek(start, Deno.SeekMode.Start);
    // seal() copies the slice before it returns, so one buffer serves every read; each read
    // fills it with READ_SLICES slices, sealed from it one by one.
    const buffer = new Uint8Array(READ_SLICES * MAX_DATA_SLICE);
    let readFrom = 0;
    let readTo = 0;
    const ahead: { sealed: Promise<Uint8Array>; length: number }[] = [];
    const sending: Promise<void>[] = [];
    let aheadBytes = 0;
    let offset = start;
    try {
      while ((offset < size || ahead.length > 0 || sending.length > 0) && !out.finished) {
        const length = Math.min(MAX_DATA_SLICE, size - offset);
        if (
          offset < size && ahead.length < SEALS_AHEAD &&
          out.sent + aheadBytes + length - out.acked <= WINDOW_BYTES
        ) {
          if (readFrom === readTo) {
            const want = Math.min(buffer.length, size - offset);
            const got = await file.read(buffer.subarray(0, want));
            if (got === null) {
              throw new TransferFailure(`"${local}" shrank while it was being sent`);
            }
            [readFrom, readTo] = [0, got];
          }
          const n = Math.min(length, readTo - readFrom);
          const sealed = out.sealer.seal({
            fileIndex: index,
            offset,
            bytes: buffer.subarray(readFrom, readFrom + n),
          });
          readFrom += n;
          ahead.push({ sealed, length: n });
          aheadBytes += n;
          offset += n;
        } else if (ahead.length > 0 && sending.length < SENDS_IN_FLIGHT) {
          const next = ahead.shift()!;
          aheadBytes -= next.length;
          // Handed over in seal order; the calls overlap, the Directs keep their order.
          const send = this.#context.sendDirect(await next.sealed, out.peer);
          send.catch(() => {}); // reported when its turn comes, below
          sending.push(send);
          out.sent += next.length;
          out.bytes += next.length;
        } else if (sending.length > 0) {
          await sending.shift();
          this.#events.progress(out, "send");
        } else {
          // The window is full: wait for an Ack (or the end of the transfer).
          await new Promise<void>((resolve) => out.wake = resolve);
        }
      }
    } finally {
      // What was not sent (the transfer ended): its outcome no longer matters.
      for (const left of ahead) left.sealed.catch(() => {});
      await Promise.allSettled(sending);
    }
  }
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
