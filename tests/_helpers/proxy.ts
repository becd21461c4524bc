/**
 * An on-path TCP proxy for adversarial tests. It forwards the 12-byte magic, then splits each
 * direction into protocol frames and lets the test decide, frame by frame, what goes on: the frame
 * as is, an altered copy, several copies, nothing, or a cut of the whole connection.
 *
 * @module
 */

import { startSwitchboard, type SwitchboardOptions } from "./switchboard.ts";

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

/** A running proxy. */
export interface Proxy {
  port: number;
  /** Resolves when the proxied connection has ended. */
  done: Promise<void>;
  close(): void;
}

/**
 * Starts a proxy on 127.0.0.1 in front of `targetPort`, for one connection: a switchboard
 * (tests/_helpers/switchboard.ts) that only ever forwards.
 */
export function startProxy(
  targetPort: number,
  handler: FrameHandler,
  options: SwitchboardOptions = {},
): Proxy {
  return startSwitchboard(targetPort, (direction, frame, info) => {
    const verdict = handler(direction, frame, info);
    return verdict === "cut" ? "cut" : { forward: verdict };
  }, options);
}
