/**
 * An on-path TCP proxy that, unlike `proxy.ts`, can also send a frame back the way it came, as a
 * reflecting or injecting attacker does (a peer's own ClientHello answered to it, its
 * records mirrored back, a hello slipped into an open session). Each direction is split into the
 * 12-byte magic and then protocol frames (PROTOCOL.md section 3); for each the test decides what
 * goes on toward the frame's destination (`forward`) and what goes back to its sender (`back`).
 * Writes to one socket are queued, so frames from both pumps never interleave.
 *
 * @module
 */

import type { Direction, FrameInfo } from "./proxy.ts";

export type { Direction, FrameInfo } from "./proxy.ts";

/** What to do with a unit of traffic; omitted lists send nothing that way. */
export interface Routing {
  /** Bytes to send on toward where the unit was heading. */
  forward?: Uint8Array[];
  /** Bytes to send back to the side that sent the unit. */
  back?: Uint8Array[];
}

/** A unit's fate: routed, or the whole connection cut. */
export type SwitchVerdict = Routing | "cut";

/** Decides the fate of each frame (after the magic). */
export type SwitchHandler = (
  direction: Direction,
  frame: Uint8Array,
  info: FrameInfo,
) => SwitchVerdict;

/** Options of `startSwitchboard()`. */
export interface SwitchboardOptions {
  /** Decides the fate of each side's 12-byte magic; default: forward it. */
  onMagic?(direction: Direction, magic: Uint8Array): SwitchVerdict;
  /**
   * Hides a side's reset from the other side, as an on-path attacker can: the other side gets a
   * clean FIN instead, and whatever it still sends toward the side that is gone is dropped.
   */
  hideResets?: boolean;
}

/** Forwards `frame` unchanged. */
export function forward(frame: Uint8Array): Routing {
  return { forward: [frame] };
}

/** One socket with a queue of writes, so that two pumps may write to it in turn. */
class Outlet {
  #conn: Deno.Conn;
  #chain: Promise<void> = Promise.resolve();
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  write(data: Uint8Array): Promise<void> {
    const conn = this.#conn;
    const next = this.#chain.then(async () => {
      let offset = 0;
      while (offset < data.length) offset += await conn.write(data.subarray(offset));
    });
    this.#chain = next.catch(() => {});
    return next;
  }
  closeWrite(): Promise<void> {
    const next = this.#chain.then(() => this.#conn.closeWrite());
    this.#chain = next.catch(() => {});
    return next;
  }
}

/** A running switchboard. */
export interface Switchboard {
  port: number;
  /** Resolves when the proxied connection has ended. */
  done: Promise<void>;
  close(): void;
}

/** Starts a switchboard on 127.0.0.1 in front of `targetPort`, for one connection. */
export function startSwitchboard(
  targetPort: number,
  handler: SwitchHandler,
  options: SwitchboardOptions = {},
): Switchboard {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const closeAll = () => {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const onMagic = options.onMagic ?? ((_direction, magic) => forward(magic));
  const done = (async () => {
    const inbound = await listener.accept();
    listener.close();
    const outbound = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    conns.push(inbound, outbound);
    const toDialer = new Outlet(inbound);
    const toListener = new Outlet(outbound);
    const pump = async (from: Deno.Conn, direction: Direction) => {
      const [ahead, behind] = direction === "toListener"
        ? [toListener, toDialer]
        : [toDialer, toListener];
      const apply = async (verdict: SwitchVerdict) => {
        if (verdict === "cut") return false;
        for (const out of verdict.back ?? []) await behind.write(out);
        for (const out of verdict.forward ?? []) {
          await ahead.write(out).catch((error) => {
            if (!options.hideResets) throw error; // else: dropped, that side is gone
          });
        }
        return true;
      };
      let pending = new Uint8Array(0);
      const chunk = new Uint8Array(64 * 1024);
      let magicDone = false;
      let index = 0;
      let recordIndex = 0;
      try {
        while (true) {
          const n = await from.read(chunk);
          if (n === null) break;
          const grown = new Uint8Array(pending.length + n);
          grown.set(pending);
          grown.set(chunk.subarray(0, n), pending.length);
          pending = grown;
          if (!magicDone) {
            if (pending.length < 12) continue;
            magicDone = true;
            const magic = pending.slice(0, 12);
            pending = pending.slice(12);
            if (!await apply(onMagic(direction, magic))) return closeAll();
          }
          while (pending.length >= 5) {
            const length = new DataView(pending.buffer, pending.byteOffset, 5).getUint32(1);
            if (pending.length < 5 + length) break;
            const frame = pending.slice(0, 5 + length);
            pending = pending.slice(5 + length);
            const type = frame[0]!;
            const verdict = handler(direction, frame, { index, recordIndex, type });
            index++;
            if (type === 0x17) recordIndex++;
            if (!await apply(verdict)) return closeAll();
          }
        }
        await ahead.closeWrite().catch(() => {});
      } catch {
        if (options.hideResets) await ahead.closeWrite().catch(() => {});
        else closeAll();
      }
    };
    await Promise.all([pump(inbound, "toListener"), pump(outbound, "toDialer")]);
    closeAll();
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    done,
    close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      closeAll();
    },
  };
}
