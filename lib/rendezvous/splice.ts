/**
 * The splice of a rendezvous relay: copies every byte from each of two sockets to the other, the
 * bytes already read past each side's Spliced record first. A FIN from one side ends that
 * direction only (the other side is sent a FIN once everything before it is written); a reset or
 * a failed read or write on either closes both. A splice with no byte either way for `idleMs`
 * closes both. With a byte budget, each copy waits for its address's budget before writing
 * (back-pressure: nothing is dropped).
 *
 * Runtime caveat: Deno reads a reset as an end of stream, so a side that resets first ends its
 * direction like a FIN; the next write to it fails, and that closes both.
 *
 * It reads with large buffers (growing from 16 KiB to 256 KiB while reads fill them, so an idle
 * splice holds little memory) and overlaps each write with the next read.
 *
 * What it does not do: read or check anything it copies (the end-to-end session runs through it,
 * authenticated end to end), or decide whom to splice (lib/rendezvous/rendezvous_relay.ts does).
 *
 * Mirrors: docs/PROTOCOL.md sections 15.4 (splicing) and 15.6 (the byte budget, the idle limit).
 *
 * @module
 */

import { writeAll } from "../core/io.ts";
import { SplicedSocket } from "../transport/spliced_socket.ts";
import type { ByteBudgets } from "./byte_budget.ts";

/** Section 15.6: a splice with no byte either way for this long is closed. */
export const DEFAULT_SPLICE_IDLE_MS = 300_000;

/** The first read buffer of each direction, and the largest it grows to. */
const MIN_BUFFER_BYTES = 16 * 1024;
const MAX_BUFFER_BYTES = 256 * 1024;

/** One side of a splice: a detached socket and the bytes read past its last record. */
export type SpliceEnd = SplicedSocket | { conn: Deno.Conn; leftover: Uint8Array };

/** Options of {@linkcode splice}. */
export interface SpliceOptions {
  /** Per-address byte budgets (none: no limit). */
  budgets?: ByteBudgets;
  /** Closes both after this long without a byte either way (default 300 s; 0: never). */
  idleMs?: number;
}

/** How a splice ended. */
export interface SpliceOutcome {
  /** Bytes copied from `a` to `b`, and from `b` to `a`, leftovers included. */
  aToB: number;
  bToA: number;
  /**
   * `finished`: both sides sent FIN and everything was copied; `idle`: no byte for `idleMs`;
   * `failed`: a read or write failed (a reset, a vanished peer); `closed`: `close()` was called.
   */
  end: "finished" | "idle" | "failed" | "closed";
}

/** A running splice. */
export interface Splice {
  /** Resolves once both sockets are closed; never rejects. */
  readonly done: Promise<SpliceOutcome>;
  /** Closes both sockets now. */
  close(): void;
}

/** One direction's running count. */
interface Direction {
  copied: number;
}

/**
 * Starts copying between `a` and `b`. The splice owns both sockets from now on: it closes them
 * when it ends.
 */
export function splice(a: SpliceEnd, b: SpliceEnd, options: SpliceOptions = {}): Splice {
  const sockets = [socketOf(a), socketOf(b)] as const;
  const budgets = sockets.map((socket) => {
    const address = addressOf(socket);
    return address === undefined ? undefined : options.budgets?.acquire(address);
  });
  // Both addresses pay for each byte, but one address (both ends behind one NAT) pays once.
  const charges = budgets[0]?.prefix === budgets[1]?.prefix ? [budgets[0]] : budgets;
  const idleMs = options.idleMs ?? DEFAULT_SPLICE_IDLE_MS;
  let lastActivity = Date.now();
  let end: SpliceOutcome["end"] | undefined;
  const pauses = new Map<ReturnType<typeof setTimeout>, () => void>();
  let idleTimer: ReturnType<typeof setTimeout> | undefined;

  const stop = (why: SpliceOutcome["end"]) => {
    end ??= why;
    clearTimeout(idleTimer);
    for (const [timer, wake] of pauses) {
      clearTimeout(timer);
      wake();
    }
    pauses.clear();
    for (const socket of sockets) {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    }
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        pauses.delete(timer);
        resolve();
      }, ms);
      pauses.set(timer, resolve);
    });

  const charge = (bytes: number): number => {
    let wait = 0;
    for (const budget of charges) if (budget) wait = Math.max(wait, budget.take(bytes));
    return wait;
  };

  const copy = async (from: Deno.Conn, to: Deno.Conn, direction: Direction) => {
    const buffers = [new Uint8Array(MIN_BUFFER_BYTES), new Uint8Array(MIN_BUFFER_BYTES)];
    let size = MIN_BUFFER_BYTES;
    let which = 0;
    let writing: Promise<void> | undefined;
    while (end === undefined) {
      if (buffers[which]!.length < size) buffers[which] = new Uint8Array(size);
      const buffer = buffers[which]!;
      which ^= 1;
      const n = await from.read(buffer);
      if (n === null) break;
      lastActivity = Date.now();
      if (n === buffer.length) size = Math.min(size * 2, MAX_BUFFER_BYTES);
      const wait = charge(n);
      // The buffer read into next was last written from two rounds ago: wait for that write.
      if (writing !== undefined) await writing;
      if (wait > 0) await pause(wait);
      if (end !== undefined) break;
      writing = writeAll(to, buffer.subarray(0, n)).then(() => {
        direction.copied += n;
      });
      writing.catch(() => {}); // awaited next round or below; this only marks it handled
    }
    if (writing !== undefined) await writing;
    if (end === undefined) await to.closeWrite();
  };

  const watchIdle = () => {
    if (idleMs <= 0 || end !== undefined) return;
    const left = lastActivity + idleMs - Date.now();
    if (left <= 0) return stop("idle");
    idleTimer = setTimeout(watchIdle, left);
  };
  watchIdle();

  const forward: Direction = { copied: 0 };
  const backward: Direction = { copied: 0 };
  const directions = [
    copy(sockets[0], sockets[1], forward),
    copy(sockets[1], sockets[0], backward),
  ].map((running) => running.catch(() => stop("failed")));
  const done = Promise.all(directions).then(() => {
    stop("finished");
    for (const budget of budgets) budget?.release();
    return { aToB: forward.copied, bToA: backward.copied, end: end! };
  });
  return { done, close: () => stop("closed") };
}

function socketOf(end: SpliceEnd): Deno.Conn {
  return end instanceof SplicedSocket ? end : new SplicedSocket(end.conn, end.leftover);
}

function addressOf(socket: Deno.Conn): string | undefined {
  try {
    return (socket.remoteAddr as Deno.NetAddr).hostname;
  } catch {
    return undefined;
  }
}
