/**
 * Fixtures for the record layer tests (record_test.ts, record_protection_test.ts): fixed traffic
 * secrets, deterministic payloads, and frames split the way `open()` takes them.
 *
 * @module
 */

import { FRAME_HEADER_LENGTH } from "../../lib/protocol/frame.ts";

/** A fixed traffic secret per name (its SHA-256), so each test is reproducible. */
export async function secret(name: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name)));
}

/** A record frame as the `[header, body]` pair that `open()` takes. */
export function splitFrame(frame: Uint8Array): [Uint8Array, Uint8Array] {
  return [frame.subarray(0, FRAME_HEADER_LENGTH), frame.subarray(FRAME_HEADER_LENGTH)];
}

/** `length` deterministic bytes, `(i * 13 + seed) & 0xff`. */
export function pattern(length: number, seed = 0): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 13 + seed) & 0xff);
}
