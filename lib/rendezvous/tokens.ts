/**
 * Rendezvous tokens: the opaque names a listener and its dialers, or the members of a room, meet
 * under at a rendezvous relay. A dialer derives the listener's token from the fingerprint it
 * already knows, so neither side talks to the other first; the relay sees only the hash.
 *
 * What it does not do: keep a token secret (anyone who knows the fingerprint or the room name
 * derives the same one), or talk to a relay (lib/rendezvous/rendezvous_client.ts does).
 *
 * Mirrors: docs/PROTOCOL.md section 15.3. The labels are spelled exactly as there.
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { roomToken } from "./tokens.ts";
 * strictEqual((await roomToken("book club")).length, 32);
 * ```
 *
 * @module
 */

import { concat, sha256, utf8 } from "../core/bytes.ts";
import { UsageError } from "../core/errors.ts";
import { hasUnsafeCharacter, replaceUnsafe } from "../core/text.ts";
import { authorOf } from "../keys/identity.ts";

/** Section 15.3: the label of a listener's rendezvous token. */
export const RENDEZVOUS_TOKEN_LABEL = "securechat/2 rendezvous";

/** Section 15.3: the label of a room's token. */
export const ROOM_TOKEN_LABEL = "securechat/2 room";

/** Section 15.3: the longest room name, in UTF-8 bytes. */
export const MAX_ROOM_NAME_BYTES = 64;

/**
 * The token a listener registers under and its dialers meet it by:
 * `SHA-256("securechat/2 rendezvous" || 0x00 || listener author id)`, the author id being the
 * 32 bytes the fingerprint spells.
 *
 * @param listenerFingerprint the listener's `SHA256:...` fingerprint
 * @returns the 32-byte token
 * @throws {UsageError} when the text is not a fingerprint
 */
export async function rendezvousToken(listenerFingerprint: string): Promise<Uint8Array> {
  let author: Uint8Array;
  try {
    author = authorOf(listenerFingerprint);
  } catch {
    throw new UsageError(
      `not a key fingerprint: "${replaceUnsafe(listenerFingerprint).slice(0, 80)}"`,
      {
        hints: ['a fingerprint is "SHA256:" and 43 characters, as `securechat fingerprint` prints'],
      },
    );
  }
  return await sha256(concat(utf8(RENDEZVOUS_TOKEN_LABEL), Uint8Array.of(0), author));
}

/**
 * The token of a room on a rendezvous relay: `SHA-256("securechat/2 room" || 0x00 || name)`. The
 * name's UTF-8 bytes are taken as they are (no normalization), so members must type the same
 * characters.
 *
 * @param name 1 to 64 bytes of UTF-8, with no control or bidirectional formatting character
 * @returns the 32-byte token
 * @throws {UsageError} on an empty, too long or unsafe name
 */
export async function roomToken(name: string): Promise<Uint8Array> {
  const bytes = utf8(name);
  if (bytes.length === 0) throw new UsageError("a room name cannot be empty");
  if (bytes.length > MAX_ROOM_NAME_BYTES) {
    throw new UsageError(`room name longer than ${MAX_ROOM_NAME_BYTES} bytes`);
  }
  if (hasUnsafeCharacter(name)) {
    throw new UsageError(
      `room name "${replaceUnsafe(name)}" contains control or bidirectional formatting characters`,
    );
  }
  return await sha256(concat(utf8(ROOM_TOKEN_LABEL), Uint8Array.of(0), bytes));
}
