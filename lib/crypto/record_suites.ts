/**
 * Record suites (docs/PROTOCOL.md section 4.5): the AEAD that protects records, chosen in the
 * hellos like the key agreement suite. Names, wire ids, the default preference, and the one
 * function that makes a suite's AEAD from a key.
 *
 * Both suites take the same 32-byte key and 12-byte nonce and add a 16-byte tag, so the key
 * schedule (section 7.3) and the record layout (section 8.1) do not depend on the choice.
 *
 * @module
 */

import { Aes256Gcm } from "./aead.ts";
import { ChaCha20Poly1305 } from "./chacha20_poly1305.ts";

/** Section 4.5: record suite ids. */
export const RECORD_SUITE_IDS = {
  "aes-256-gcm": 0x01,
  "chacha20-poly1305": 0x02,
} as const;

/** A record suite's name. */
export type RecordSuiteName = keyof typeof RECORD_SUITE_IDS;

/** Every record suite this implementation speaks. */
export const ALL_RECORD_SUITES: readonly RecordSuiteName[] = ["chacha20-poly1305", "aes-256-gcm"];

/**
 * Both sides' default preference. ChaCha20-Poly1305 first because it is the faster of the two in
 * this runtime: `deno task bench --only pipe` (the pipe with each suite, same run) and the AEAD
 * figures in section 4.5.
 */
export const DEFAULT_RECORD_SUITES: readonly RecordSuiteName[] = ALL_RECORD_SUITES;

/** The suite with wire id `id`, or undefined for an id this version does not define. */
export function recordSuiteById(id: number): RecordSuiteName | undefined {
  return (Object.keys(RECORD_SUITE_IDS) as RecordSuiteName[]).find((name) =>
    RECORD_SUITE_IDS[name] === id
  );
}

/** @throws {RangeError} for a name that is not a record suite */
export function parseRecordSuites(text: string): RecordSuiteName[] {
  const names = text.split(",").map((name) => name.trim()).filter((name) => name !== "");
  if (names.length === 0) throw new RangeError("no record suite named");
  for (const name of names) {
    if (!Object.hasOwn(RECORD_SUITE_IDS, name)) {
      throw new RangeError(
        `unknown record suite "${name}" (known: ${ALL_RECORD_SUITES.join(", ")})`,
      );
    }
  }
  if (new Set(names).size !== names.length) throw new RangeError("a record suite named twice");
  return names as RecordSuiteName[];
}

/** What records need of an AEAD: both suites' classes have this shape. */
export interface RecordAead {
  seal(nonce: Uint8Array, plaintext: Uint8Array, additionalData: Uint8Array): Promise<Uint8Array>;
  open(nonce: Uint8Array, sealed: Uint8Array, additionalData: Uint8Array): Promise<Uint8Array>;
  /** A faster way to seal a whole record frame, where the AEAD has one (see ChaCha20Poly1305). */
  sealRecord?(
    nonce: Uint8Array,
    header: Uint8Array,
    type: number,
    content: Uint8Array,
  ): Uint8Array | undefined;
}

/** Imports a 32-byte key for `suite`. The caller keeps (and wipes) its bytes. */
export function createRecordAead(suite: RecordSuiteName, key: Uint8Array): Promise<RecordAead> {
  return suite === "aes-256-gcm" ? Aes256Gcm.create(key) : ChaCha20Poly1305.create(key);
}
