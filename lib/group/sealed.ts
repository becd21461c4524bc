/**
 * Sealed messages: a room message only one member can read, HPKE-encrypted (RFC 9180, base mode,
 * the group's suite: X-Wing, HKDF-SHA512, AES-256-GCM) to that member's current leaf encryption
 * key, inside an MLS application message every member receives.
 *
 * Mirrors docs/PROTOCOL.md section 13.5. The body is
 * `recipient (32) || enc_length u16 || enc || ciphertext`, with
 * `info = "securechat/2 sealed" || 0x00 || group_id || sender || recipient` (author ids) and an
 * empty aad. The sender's author id comes from MLS (who sent the application message), so a
 * Sealed message cannot be passed off as another member's.
 *
 * A recipient whose leaf key changed since the sender sealed (its own commit) keeps its earlier
 * leaf keys for 4 epochs: {@linkcode LeafKeyHistory}. What to seal (a /msg, a transfer message)
 * is the caller's; this module never parses the plaintext.
 *
 * @module
 */

import { concat, constantTimeEqual, u16, u8, utf8 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";
import { AUTHOR_LENGTH } from "./admins.ts";
import { GroupRejection } from "./group_errors.ts";
import type { CiphersuiteImpl } from "./mls.ts";

/** Section 13.5: the HPKE info's context string, spelled as in the spec. */
export const SEALED_CONTEXT = "securechat/2 sealed";
/** Section 13.5: how many epochs a member keeps a leaf key it has replaced. */
export const SEALED_KEY_EPOCHS = 4;

type Hpke = CiphersuiteImpl["hpke"];

/** The HPKE info of a Sealed message. */
export function sealedInfo(
  groupId: Uint8Array,
  sender: Uint8Array,
  recipient: Uint8Array,
): Uint8Array {
  return concat(utf8(SEALED_CONTEXT), u8(0), groupId, sender, recipient);
}

/**
 * Seals `plaintext` for a recipient.
 *
 * @param recipientKey the recipient leaf's HPKE public key, as in the tree
 * @returns the Sealed body: recipient || enc_length u16 || enc || ciphertext
 */
export async function seal(
  hpke: Hpke,
  parties: {
    groupId: Uint8Array;
    sender: Uint8Array;
    recipient: Uint8Array;
    recipientKey: Uint8Array;
  },
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const publicKey = await hpke.importPublicKey(parties.recipientKey);
  const info = sealedInfo(parties.groupId, parties.sender, parties.recipient);
  const { ct, enc } = await hpke.seal(publicKey, plaintext, info, new Uint8Array());
  return concat(parties.recipient, u16(enc.length), enc, ct);
}

/**
 * Splits a Sealed body.
 *
 * @throws {GroupRejection} when it is shorter than its fields
 */
export function parseSealed(
  body: Uint8Array,
): { recipient: Uint8Array; enc: Uint8Array; ciphertext: Uint8Array } {
  try {
    const reader = new FieldReader(body, "sealed message");
    const recipient = reader.take(AUTHOR_LENGTH, "recipient");
    const enc = reader.take(reader.u16("enc length"), "enc");
    return { recipient, enc, ciphertext: reader.rest() };
  } catch (error) {
    throw new GroupRejection(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Opens a Sealed body addressed to us.
 *
 * @param keys our leaf's HPKE private keys, newest first
 * @returns the plaintext, or undefined when it is addressed to someone else
 * @throws {GroupRejection} when it is for us and opens under none of our keys
 */
export async function open(
  hpke: Hpke,
  parties: { groupId: Uint8Array; sender: Uint8Array; self: Uint8Array },
  keys: Uint8Array[],
  body: Uint8Array,
): Promise<Uint8Array | undefined> {
  const { recipient, enc, ciphertext } = parseSealed(body);
  if (!constantTimeEqual(recipient, parties.self)) return undefined;
  const info = sealedInfo(parties.groupId, parties.sender, recipient);
  for (const key of keys) {
    try {
      const privateKey = await hpke.importPrivateKey(key);
      return await hpke.open(privateKey, enc, ciphertext, info, new Uint8Array());
    } catch {
      // Not this key (X-Wing decapsulates any enc to some secret; the AEAD tag decides).
    }
  }
  throw new GroupRejection(
    "a private message for us does not open: it may have been tampered with",
  );
}

/**
 * Our leaf's HPKE private keys: the current one and those replaced in the last
 * {@linkcode SEALED_KEY_EPOCHS} epochs.
 */
export class LeafKeyHistory {
  /** Newest first; `until` is the epoch from which the key was no longer ours. */
  #keys: { key: Uint8Array; until: bigint | undefined }[] = [];

  /**
   * Records our leaf key in `epoch` (after every epoch change): a new one pushes the previous
   * one into the history, and keys replaced 4 epochs ago are wiped.
   */
  note(epoch: bigint, key: Uint8Array): void {
    const current = this.#keys[0];
    if (current === undefined || !constantTimeEqual(current.key, key)) {
      if (current !== undefined) current.until = epoch;
      this.#keys.unshift({ key: key.slice(), until: undefined });
    }
    const keep = (entry: { until: bigint | undefined }) =>
      entry.until === undefined || epoch - entry.until < BigInt(SEALED_KEY_EPOCHS);
    for (const entry of this.#keys) if (!keep(entry)) entry.key.fill(0);
    this.#keys = this.#keys.filter(keep);
  }

  /** The keys to try, newest first. */
  keys(): Uint8Array[] {
    return this.#keys.map((entry) => entry.key);
  }
}
