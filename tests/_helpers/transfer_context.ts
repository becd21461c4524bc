/**
 * Transfer managers wired to each other in-process: the honest model of a room for file transfer
 * now that the relay is a pipe that cannot read (PROTOCOL.md 13.4, 14.1). What a member sends with
 * `sendSealed` or `sendDirect` is handed to the recipient's `handleSealed` or `handleDirect`, in
 * the order it was sent, one message at a time per recipient, naming the sender as MLS (Sealed) or
 * the relay (Direct) would. A test plays the relay's part on Directs (Data one way, Acks the
 * other) with `relayDirect` (drop, replay, flip a byte, name another sender), or drives one
 * member's manager by hand as a hostile peer would and reads what it sent in `sent`.
 *
 * {@linkcode inTempRoom} gives a test a room and a folder and cleans both up; the transfer event
 * helpers and the relay faults ({@linkcode SEQUENCE_FAULTS}, {@linkcode flipBitOfSecond}) serve
 * the tests of Data one way and of Acks the other.
 *
 * Member ids are fingerprints of real identity keys; the files, hashes and seals are real.
 * {@linkcode sealBySpec} seals a Direct as PROTOCOL.md 14.4 says, straight on WebCrypto's
 * ChaCha20-Poly1305 (lib/ seals on node:crypto's), so that tests can check lib/'s seals against
 * the spec rather than against themselves.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { authorOf, generateIdentity } from "../../lib/keys/identity.ts";
import type { ReceivePolicy } from "../../lib/transfer/receive_policy.ts";
import { TransferManager, type TransferManagerOptions } from "../../lib/transfer/transfer.ts";
import { AckOpener } from "../../lib/transfer/ack_seal.ts";
import { DataSealer } from "../../lib/transfer/data_seal.ts";
import {
  decodeTransfer,
  encodeTransfer,
  type Offer,
  type TransferMessage,
} from "../../lib/transfer/transfer_messages.ts";

/** Members with fingerprints of fresh Ed25519 identity keys. */
export async function memberInfos(...names: string[]): Promise<MemberInfo[]> {
  return await Promise.all(names.map(async (name) => {
    const { identity } = await generateIdentity({ type: "ed25519", comment: name });
    return { name, fingerprint: identity.fingerprint };
  }));
}

/** One message a member sent: a transfer message for a Sealed, or a Direct's bytes. */
export interface Sent {
  kind: "sealed" | "direct";
  to: MemberInfo;
  bytes: Uint8Array;
}

/** A member of a {@linkcode TestRoom} that runs a TransferManager. */
export interface TestEndpoint {
  info: MemberInfo;
  /** What its manager was made with (for tests that build a part of it themselves). */
  options: TransferManagerOptions;
  manager: TransferManager;
  events: ChatEvent[];
  sent: Sent[];
  /** The transfer messages it sent in Sealed messages, decoded. */
  sealed(): TransferMessage[];
  /** Waits until `predicate` holds for its events (polling). */
  until(predicate: (events: ChatEvent[]) => boolean, timeoutMs?: number): Promise<void>;
}

/** What the relay delivers for one Direct: to whom it says it is from, and the bytes. */
export type RelayedDirect = { from: MemberInfo; bytes: Uint8Array };

/**
 * The relay's part on a stream of Directs from one member, `from`: given every Direct seen so
 * far, what to deliver for the last one.
 */
export type StreamRelay = (seen: Uint8Array[], from: MemberInfo) => RelayedDirect[];

/** A room of members, some running managers, joined by in-order in-process pipes. */
export class TestRoom {
  #members = new Map<string, MemberInfo>();
  #endpoints = new Map<string, TestEndpoint>();
  #queues = new Map<string, Promise<void>>();
  /** Errors thrown by a handler (none in a passing test: handlers report, never throw). */
  readonly errors: unknown[] = [];
  /** The relay's part on each Direct sent: what to deliver instead (default: it, unchanged). */
  relayDirect: (from: MemberInfo, to: MemberInfo, bytes: Uint8Array) => RelayedDirect[] = (
    from,
    _to,
    bytes,
  ) => [{ from, bytes }];

  /**
   * Has the relay hand each Direct that `sender` sends, with every one it sent before, to `relay`
   * and deliver what that returns instead; everyone else's Directs go through unchanged.
   */
  tamperWithDirectsFrom(sender: MemberInfo, relay: StreamRelay): void {
    const seen: Uint8Array[] = [];
    this.relayDirect = (from, _to, bytes) => {
      if (from.fingerprint !== sender.fingerprint) return [{ from, bytes }];
      seen.push(bytes);
      return relay(seen, from);
    };
  }

  /** A member present in the room but driven by the test (no manager). */
  addPeer(info: MemberInfo): void {
    this.#members.set(info.fingerprint, { name: info.name, fingerprint: info.fingerprint });
  }

  /** A member running a TransferManager with `policy`. */
  join(info: MemberInfo, policy: ReceivePolicy = {}): TestEndpoint {
    this.addPeer(info);
    const events: ChatEvent[] = [];
    const sent: Sent[] = [];
    const from = this.#members.get(info.fingerprint)!;
    const options: TransferManagerOptions = {
      self: { ...from, self: true },
      peers: {
        byAuthor: (author) => {
          const fingerprint = [...this.#members.keys()].find((f) =>
            authorOf(f).every((b, i) => b === author[i])
          );
          return fingerprint === undefined ? undefined : this.#members.get(fingerprint);
        },
      },
      sendSealed: (bytes, to) => {
        sent.push({ kind: "sealed", to, bytes });
        this.#deliver(to, (target) => target.manager.handleSealed(from, bytes));
        return Promise.resolve();
      },
      sendDirect: (bytes, to) => {
        sent.push({ kind: "direct", to, bytes });
        for (const relayed of this.relayDirect(from, to, bytes)) {
          this.#deliver(to, (target) => target.manager.handleDirect(relayed.from, relayed.bytes));
        }
        return Promise.resolve();
      },
      emit: (event) => events.push(event),
      now: Date.now,
      ...policy,
    };
    const manager = new TransferManager(options);
    const endpoint: TestEndpoint = {
      info: from,
      options,
      manager,
      events,
      sent,
      sealed: () => sent.filter((s) => s.kind === "sealed").map((s) => decodeTransfer(s.bytes)),
      async until(predicate, timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        while (!predicate(events)) {
          if (Date.now() > deadline) {
            throw new Error(`timed out; events: ${JSON.stringify(events.slice(-10))}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      },
    };
    this.#endpoints.set(info.fingerprint, endpoint);
    return endpoint;
  }

  /** Removes a member from the room: it is no longer among the peers, and gets nothing more. */
  leave(info: MemberInfo): void {
    this.#members.delete(info.fingerprint);
    this.#endpoints.delete(info.fingerprint);
  }

  /** Hands `deliver` to `to`'s manager after everything queued for it before. */
  #deliver(to: MemberInfo, deliver: (target: TestEndpoint) => Promise<void>): void {
    const target = this.#endpoints.get(to.fingerprint);
    if (target === undefined) return;
    const previous = this.#queues.get(to.fingerprint) ?? Promise.resolve();
    this.#queues.set(
      to.fingerprint,
      previous.then(() => deliver(target)).catch((error) => void this.errors.push(error)),
    );
  }

  /**
   * Waits until every message sent so far, and every one those caused, has been handled (Data
   * slices written: a manager takes them in before it writes them).
   */
  async settled(): Promise<void> {
    for (;;) {
      const pending = [...this.#queues.values()];
      await Promise.all(pending);
      for (const endpoint of this.#endpoints.values()) await endpoint.manager.idle();
      const now = [...this.#queues.values()];
      if (now.length === pending.length && now.every((p, i) => p === pending[i])) return;
    }
  }

  /** Ends every transfer as a lost connection would and waits until nothing runs any more. */
  async close(): Promise<void> {
    for (const endpoint of this.#endpoints.values()) {
      await endpoint.manager.abortAll("the test is over");
    }
    await this.settled();
    for (const endpoint of this.#endpoints.values()) await endpoint.manager.stopped();
    await this.settled();
  }
}

/**
 * Runs `body` with a fresh {@linkcode TestRoom} and a fresh temporary folder, checks that no
 * handler threw, and (also when `body` fails) closes the room and removes the folder.
 *
 * @returns what `body` returned
 */
export async function inTempRoom<T>(
  prefix: string,
  body: (room: TestRoom, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  const room = new TestRoom();
  try {
    const result = await body(room, dir);
    deepStrictEqual(room.errors, []);
    return result;
  } finally {
    await room.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A transfer's progress event, as a member's manager emits it. */
export type TransferEvent = ChatEvent & { type: "transfer" };

/** The transfer events among `events`. */
export function transferEvents(events: ChatEvent[]): TransferEvent[] {
  return events.filter((e): e is TransferEvent => e.type === "transfer");
}

/** A predicate for `until`: a transfer in `direction` has ended, however it ended. */
export function transferEnded(direction: "send" | "receive"): (events: ChatEvent[]) => boolean {
  return (events) =>
    transferEvents(events).some((e) =>
      e.direction === direction && ["done", "failed", "cancelled", "rejected"].includes(e.state)
    );
}

/** The last transfer event `endpoint` emitted (in `direction` only, when given). */
export function lastTransfer(
  endpoint: TestEndpoint,
  direction?: "send" | "receive",
): TransferEvent {
  const events = transferEvents(endpoint.events);
  return events.filter((e) => direction === undefined || e.direction === direction).at(-1)!;
}

/**
 * What a relay does to a stream of Directs from one member: given every Direct seen so far, the
 * bytes to deliver for the last one (none to drop it, more to replay).
 */
export type StreamFault = (seen: Uint8Array[]) => Uint8Array[];

/**
 * The faults the receiver of a stream catches by its sequence numbers alone: the second Direct
 * dropped, replaced by the first, delivered twice, or held back behind the third. Every other
 * Direct goes through unchanged.
 */
export const SEQUENCE_FAULTS: readonly (readonly [string, StreamFault])[] = [
  ["dropped", (seen) => seen.length === 2 ? [] : [seen.at(-1)!]],
  ["replayed", (seen) => seen.length === 2 ? [seen[0]!] : [seen.at(-1)!]],
  ["sent twice", (seen) => seen.length === 2 ? [seen[1]!, seen[1]!] : [seen.at(-1)!]],
  [
    "reordered",
    (seen) => seen.length === 2 ? [] : seen.length === 3 ? [seen[2]!, seen[1]!] : [seen.at(-1)!],
  ],
];

/** The relay's part when it does `fault` to a stream, each Direct still named as from its sender. */
export function fromTheSender(fault: StreamFault): StreamRelay {
  return (seen, from) => fault(seen).map((bytes) => ({ from, bytes }));
}

/** The fault of flipping one bit of the second Direct, at `offset` (from the end when negative). */
export function flipBitOfSecond(offset: number): StreamFault {
  return (seen) => {
    const bytes = seen.at(-1)!.slice();
    if (seen.length === 2) bytes[offset < 0 ? bytes.length + offset : offset]! ^= 1;
    return [bytes];
  };
}

/**
 * What a hostile or hand-driven sender does: sends transfer messages to `to`'s manager as from
 * `from` (a member the test drives), and seals Data under the key of its own Offer.
 */
export class HandSender {
  readonly from: MemberInfo;
  readonly to: TestEndpoint;
  readonly id: Uint8Array;
  readonly dataKey: Uint8Array;
  #sealer: DataSealer | undefined;

  constructor(from: MemberInfo, to: TestEndpoint, id?: Uint8Array) {
    this.from = from;
    this.to = to;
    this.id = id ?? crypto.getRandomValues(new Uint8Array(16));
    this.dataKey = crypto.getRandomValues(new Uint8Array(32));
  }

  /** The recipient's author id: the `party` of every message sent to it. */
  get party(): Uint8Array {
    return authorOf(this.to.info.fingerprint);
  }

  /** Sends an Offer with this sender's data key (a copy: the recipient wipes what it decodes). */
  offer(fields: Omit<Offer, "dataKey">): Promise<void> {
    return this.sealed(
      encodeTransfer.offer(this.party, this.id, { ...fields, dataKey: this.dataKey }),
    );
  }

  /** Sends any transfer message, as the plaintext of a Sealed from `from`. */
  sealed(message: Uint8Array): Promise<void> {
    return this.to.manager.handleSealed(this.from, message);
  }

  /** Seals the next Data slice under the data key, as the honest sender would. */
  async seal(fileIndex: number, offset: number, bytes: Uint8Array): Promise<Uint8Array> {
    this.#sealer ??= await DataSealer.create(this.dataKey, {
      sender: authorOf(this.from.fingerprint),
      recipient: this.party,
      transferId: this.id,
    });
    return await this.#sealer.seal({ fileIndex, offset, bytes });
  }

  /** Seals the next Data slice and delivers it as a Direct from `from`. */
  async data(fileIndex: number, offset: number, bytes: Uint8Array): Promise<void> {
    await this.to.manager.handleDirect(this.from, await this.seal(fileIndex, offset, bytes));
    await this.to.manager.idle();
  }

  /** Sends Done, counting the Data slices sealed so far (or `dataCount`). */
  done(dataCount = this.#sealer?.count ?? 0): Promise<void> {
    return this.sealed(encodeTransfer.done(this.party, this.id, dataCount));
  }

  /**
   * The Acks the recipient sent back for this transfer (Directs to `from` naming its id), each
   * opened in sequence under the data key: the `received` counts.
   */
  async acks(): Promise<number[]> {
    const opener = await AckOpener.create(this.dataKey, {
      sender: authorOf(this.from.fingerprint),
      recipient: this.party,
      transferId: this.id,
    });
    const received = [];
    for (const sent of this.to.sent) {
      if (sent.kind !== "direct" || sent.to.fingerprint !== this.from.fingerprint) continue;
      if (sent.bytes[0] !== 2 || !sameBytes(sent.bytes.subarray(1, 17), this.id)) continue;
      received.push(await opener.open(sent.bytes));
    }
    return received;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The transfer's parties, as the seal of 14.4 names them (raw author ids and the id). */
export interface SpecParties {
  sender: Uint8Array;
  recipient: Uint8Array;
  transferId: Uint8Array;
}

/**
 * PROTOCOL.md 14.4 computed here, independently of lib/: the Direct's bytes for the Data
 * (`kind` 1) or Ack (`kind` 2) with this sequence number and plaintext. `parties` are the
 * transfer's: an Ack names its recipient first.
 */
export async function sealBySpec(
  kind: 1 | 2,
  key: Uint8Array,
  parties: SpecParties,
  sequence: bigint,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setUint32(0, kind === 1 ? 0 : 1);
  new DataView(iv.buffer).setBigUint64(4, sequence);
  const seq = new Uint8Array(8);
  new DataView(seq.buffer).setBigUint64(0, sequence);
  const [from, to] = kind === 1
    ? [parties.sender, parties.recipient]
    : [parties.recipient, parties.sender];
  const aad = new Uint8Array([
    ...new TextEncoder().encode("securechat/2 file data"),
    0,
    kind,
    ...from,
    ...to,
    ...parties.transferId,
    ...seq,
  ]);
  // WebCrypto's newer algorithms take their keys in "raw-secret" format.
  const cryptoKey = await crypto.subtle.importKey(
    "raw-secret" as "raw",
    key as Uint8Array<ArrayBuffer>,
    "ChaCha20-Poly1305",
    false,
    ["encrypt"],
  );
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "ChaCha20-Poly1305", iv, additionalData: aad },
      cryptoKey,
      plaintext as Uint8Array<ArrayBuffer>,
    ),
  );
  return new Uint8Array([kind, ...parties.transferId, ...seq, ...sealed]);
}

/** `length` random bytes (getRandomValues fills at most 65536 at a time). */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(i + 65536, length)));
  }
  return out;
}

/** The names in `path`, sorted. */
export async function listDir(path: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}
