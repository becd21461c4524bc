/**
 * An on-path TCP proxy for adversarial tests. It forwards the 12-byte magic, then splits each
 * direction into protocol frames and lets the test decide, frame by frame, what goes on: the frame
 * as is, an altered copy, several copies, nothing, or a cut of the whole connection.
 *
 * @module
 */

/** Which way a frame travels. */
export type Direction = "toListener" | "toDialer";

/** Where a frame stands in its direction. */
export interface FrameInfo {
  /** Index among all frames of this direction (0 = the first hello). */
  index: number;
  /** Index among record frames (type 0x17) of this direction. */
  recordIndex: number;
  /** The frame type byte. */
  type: number;
}

/** What to do with a frame: forward these frames (possibly none), or cut the connection. */
export type FrameVerdict = Uint8Array[] | "cut";

/** Decides each frame's fate. */
export type FrameHandler = (
  direction: Direction,
  frame: Uint8Array,
  info: FrameInfo,
) => FrameVerdict;

/** Forward everything unchanged. */
export const passThrough: FrameHandler = (_direction, frame) => [frame];

/** A copy of `frame` with one bit flipped at `offset` (negative counts from the end). */
export function flipBit(frame: Uint8Array, offset: number): Uint8Array {
  const out = frame.slice();
  const at = offset < 0 ? out.length + offset : offset;
  out[at]! ^= 0x01;
  return out;
}

class StreamBuffer {
  #data = new Uint8Array(0);
  push(chunk: Uint8Array) {
    const next = new Uint8Array(this.#data.length + chunk.length);
    next.set(this.#data);
    next.set(chunk, this.#data.length);
    this.#data = next;
  }
  take(length: number): Uint8Array | undefined {
    if (this.#data.length < length) return undefined;
    const out = this.#data.slice(0, length);
    this.#data = this.#data.slice(length);
    return out;
  }
  peek(length: number): Uint8Array | undefined {
    return this.#data.length < length ? undefined : this.#data.subarray(0, length);
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  let offset = 0;
  while (offset < data.length) offset += await conn.write(data.subarray(offset));
}

/** A running proxy. */
export interface Proxy {
  port: number;
  /** Resolves when the proxied connection has ended. */
  done: Promise<void>;
  close(): void;
}

/** Starts a proxy on 127.0.0.1 in front of `targetPort`, for one connection. */
export function startProxy(targetPort: number, handler: FrameHandler): Proxy {
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
  const done = (async () => {
    const inbound = await listener.accept();
    listener.close();
    const outbound = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    conns.push(inbound, outbound);
    const pump = async (from: Deno.Conn, to: Deno.Conn, direction: Direction) => {
      const buffer = new StreamBuffer();
      const chunk = new Uint8Array(64 * 1024);
      let magicDone = false;
      let index = 0;
      let recordIndex = 0;
      try {
        while (true) {
          const n = await from.read(chunk);
          if (n === null) break;
          buffer.push(chunk.subarray(0, n));
          if (!magicDone) {
            const magic = buffer.take(12);
            if (!magic) continue;
            await writeAll(to, magic);
            magicDone = true;
          }
          while (true) {
            const header = buffer.peek(5);
            if (!header) break;
            const length = new DataView(header.buffer, header.byteOffset, 5).getUint32(1);
            const frame = buffer.take(5 + length);
            if (!frame) break;
            const type = frame[0]!;
            const verdict = handler(direction, frame, { index, recordIndex, type });
            index++;
            if (type === 0x17) recordIndex++;
            if (verdict === "cut") {
              closeAll();
              return;
            }
            for (const out of verdict) await writeAll(to, out);
          }
        }
        await to.closeWrite().catch(() => {});
      } catch {
        closeAll();
      }
    };
    await Promise.all([
      pump(inbound, outbound, "toListener"),
      pump(outbound, inbound, "toDialer"),
    ]);
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
