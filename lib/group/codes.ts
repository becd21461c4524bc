/**
 * The codes members read to each other (docs/PROTOCOL.md section 13.7): the safety number of two
 * members, and the epoch code of the room.
 *
 * Both are the verification code of section 7.4 (8 bytes as a u64, modulo 10^12, in three groups
 * of four digits) over the first 8 bytes of SHA-256 of:
 *
 * ```
 * safety number: "securechat/2 safety number" || 0x00 || smaller author id || larger author id
 * epoch code:    "securechat/2 epoch code" || 0x00 || epoch_authenticator
 * ```
 *
 * The safety number depends only on the two identity keys, so both members compute the same one
 * and it never changes; the epoch code depends on the MLS epoch secret, so two members see the
 * same one exactly when they are in the same epoch of the same group.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { safetyNumber } from "./codes.ts";
 * const a = new Uint8Array(32).fill(1), b = new Uint8Array(32).fill(2);
 * strictEqual(await safetyNumber(a, b), await safetyNumber(b, a));
 * ```
 *
 * @module
 */

import { concat, sha256, u8, utf8 } from "../core/bytes.ts";
import { formatVerificationCode } from "../crypto/key_schedule.ts";
import { compareAuthors } from "./admins.ts";

/** Section 13.7: the safety number's context string. */
export const SAFETY_NUMBER_CONTEXT = "securechat/2 safety number";
/** Section 13.7: the epoch code's context string. */
export const EPOCH_CODE_CONTEXT = "securechat/2 epoch code";

/** The safety number of two members, the same whichever order they are given in. */
export async function safetyNumber(a: Uint8Array, b: Uint8Array): Promise<string> {
  const [smaller, larger] = compareAuthors(a, b) <= 0 ? [a, b] : [b, a];
  return await code(concat(utf8(SAFETY_NUMBER_CONTEXT), u8(0), smaller, larger));
}

/** The epoch code of an MLS epoch_authenticator. */
export async function epochCode(epochAuthenticator: Uint8Array): Promise<string> {
  return await code(concat(utf8(EPOCH_CODE_CONTEXT), u8(0), epochAuthenticator));
}

async function code(input: Uint8Array): Promise<string> {
  return formatVerificationCode((await sha256(input)).subarray(0, 8));
}
