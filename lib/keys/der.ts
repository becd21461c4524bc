/**
 * A minimal DER (ITU-T X.690) reader and writer for the handful of types that key files need:
 * SEQUENCE, INTEGER, OCTET STRING, OBJECT IDENTIFIER, NULL, BIT STRING and context-specific
 * tags ([0], [1], ...).
 *
 * The reader is strict DER, not BER: definite lengths only, lengths in their shortest form,
 * INTEGERs in their shortest two's complement form, BIT STRINGs with no unused bits. It never
 * allocates from a length field: every length is checked against the bytes actually present, and
 * the whole input is capped at {@linkcode MAX_DER_LENGTH}. Malformed input throws a
 * `SyntaxError` naming what was being read; callers turn it into a `ProtocolError` (bytes from
 * the network) or a file error (bytes from disk).
 *
 * It does not know any ASN.1 module: callers walk the structure by hand, which keeps each
 * accepted shape visible where it is used (lib/keys/pkcs8.ts, lib/keys/spki.ts).
 *
 * @module
 */

import { concat } from "../core/bytes.ts";

/** Largest DER input accepted: far above an 8192-bit RSA PKCS#8 (about 4.8 KiB). */
export const MAX_DER_LENGTH = 64 * 1024;

/** Universal tags, plus the constructed SEQUENCE. */
export const TAG = {
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  sequence: 0x30,
} as const;

/** Tag of a constructed context-specific element `[n]` (EXPLICIT tagging). */
export function contextTag(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) {
    throw new RangeError(`context tag out of range: ${n}`);
  }
  return 0xa0 | n;
}

/** Reads DER elements one after another from a byte array (or from inside a SEQUENCE). */
export class DerReader {
  #bytes: Uint8Array;
  #offset = 0;
  #what: string;

  /**
   * @param bytes the DER encoding (not copied)
   * @param what what the bytes are, for error messages, e.g. "public key"
   * @throws {SyntaxError} when the input exceeds {@linkcode MAX_DER_LENGTH}
   */
  constructor(bytes: Uint8Array, what: string) {
    if (bytes.length > MAX_DER_LENGTH) {
      throw new SyntaxError(`malformed ${what}: longer than ${MAX_DER_LENGTH} bytes`);
    }
    this.#bytes = bytes;
    this.#what = what;
  }

  /** True when every byte has been read. */
  get done(): boolean {
    return this.#offset === this.#bytes.length;
  }

  /** Tag of the next element, or undefined at the end. */
  peekTag(): number | undefined {
    return this.#bytes[this.#offset];
  }

  /** Throws a SyntaxError in this reader's message shape. */
  fail(detail: string): never {
    throw new SyntaxError(`malformed ${this.#what}: ${detail}`);
  }

  /**
   * Reads the next element, which must carry `tag`, and returns its contents (a view).
   *
   * @throws {SyntaxError} on another tag, a bad length, or a length past the end
   */
  element(tag: number, name: string): Uint8Array {
    const actual = this.#bytes[this.#offset];
    if (actual !== undefined && actual !== tag) {
      this.fail(`${name}: expected tag 0x${hex2(tag)}, found 0x${hex2(actual)}`);
    }
    return this.any(name).content;
  }

  /**
   * Reads the next element whatever its tag (single-byte tags only).
   *
   * @returns its tag, its contents (a view) and its whole encoding (a view)
   * @throws {SyntaxError} on a missing element, a bad length, or a length past the end
   */
  any(name: string): { tag: number; content: Uint8Array; encoded: Uint8Array } {
    const bytes = this.#bytes;
    const start = this.#offset;
    const tag = bytes[start];
    if (tag === undefined) this.fail(`${name} is missing`);
    if ((tag & 0x1f) === 0x1f) this.fail(`${name}: multi-byte tags are not supported`);
    let offset = start + 1;
    const first = bytes[offset++];
    if (first === undefined) this.fail(`${name}: length is missing`);
    let length = first;
    if (first >= 0x80) {
      // X.690 10.1: definite form only, in the fewest octets; 3 length octets cover our cap.
      const count = first & 0x7f;
      if (count === 0) this.fail(`${name}: indefinite length is not DER`);
      if (count > 3) this.fail(`${name}: length field of ${count} bytes is too large`);
      if (offset + count > bytes.length) this.fail(`${name}: length runs past the end`);
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[offset++]!;
      if (length < 0x80 || length < 2 ** (8 * (count - 1))) {
        this.fail(`${name}: length is not in its shortest form`);
      }
    }
    if (length > bytes.length - offset) this.fail(`${name}: length runs past the end`);
    this.#offset = offset + length;
    return {
      tag,
      content: bytes.subarray(offset, offset + length),
      encoded: bytes.subarray(start, offset + length),
    };
  }

  /** Reads a SEQUENCE and returns a reader over its contents. */
  sequence(name: string): DerReader {
    return new DerReader(this.element(TAG.sequence, name), this.#what);
  }

  /** Reads a constructed `[n]` element and returns a reader over its contents. */
  explicit(n: number, name: string): DerReader {
    return new DerReader(this.element(contextTag(n), name), this.#what);
  }

  /**
   * Reads a non-negative INTEGER and returns its magnitude, big-endian, without a leading zero.
   *
   * @throws {SyntaxError} when empty, not minimal, or negative
   */
  unsignedInteger(name: string): Uint8Array {
    const content = this.element(TAG.integer, name);
    if (content.length === 0) this.fail(`${name}: empty INTEGER`);
    if (content.length > 1 && content[0] === 0x00 && content[1]! < 0x80) {
      this.fail(`${name}: INTEGER is not in its shortest form`);
    }
    if (content.length > 1 && content[0] === 0xff && content[1]! >= 0x80) {
      this.fail(`${name}: INTEGER is not in its shortest form`);
    }
    if (content[0]! >= 0x80) this.fail(`${name}: negative INTEGER`);
    return content[0] === 0x00 && content.length > 1 ? content.subarray(1) : content;
  }

  /** Reads a non-negative INTEGER that must be at most `max` (at most 2^48). */
  smallInteger(name: string, max: number): number {
    const magnitude = this.unsignedInteger(name);
    if (magnitude.length > 6) this.fail(`${name}: INTEGER larger than ${max}`);
    let value = 0;
    for (const byte of magnitude) value = value * 256 + byte;
    if (value > max) this.fail(`${name}: ${value} is larger than ${max}`);
    return value;
  }

  /** Reads an OCTET STRING (a view). */
  octetString(name: string): Uint8Array {
    return this.element(TAG.octetString, name);
  }

  /** Reads a BIT STRING whose length is a whole number of bytes (a view). */
  bitString(name: string): Uint8Array {
    const content = this.element(TAG.bitString, name);
    if (content.length === 0) this.fail(`${name}: empty BIT STRING`);
    if (content[0] !== 0) this.fail(`${name}: BIT STRING with unused bits`);
    return content.subarray(1);
  }

  /** Reads an OBJECT IDENTIFIER in dotted form, e.g. "1.3.101.112". */
  oid(name: string): string {
    const content = this.element(TAG.oid, name);
    if (content.length === 0 || content.length > 32) this.fail(`${name}: bad OID length`);
    const arcs: number[] = [];
    let value = 0;
    for (let i = 0; i < content.length; i++) {
      const byte = content[i]!;
      // X.690 8.19.2: a subidentifier never starts with 0x80 (not minimal).
      if (value === 0 && byte === 0x80) this.fail(`${name}: OID is not in its shortest form`);
      value = value * 128 + (byte & 0x7f);
      if (value > Number.MAX_SAFE_INTEGER / 128) this.fail(`${name}: OID arc too large`);
      if (byte < 0x80) {
        arcs.push(value);
        value = 0;
      } else if (i === content.length - 1) {
        this.fail(`${name}: OID ends inside a subidentifier`);
      }
    }
    const first = arcs.shift()!;
    const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
    return [...head, ...arcs].join(".");
  }

  /** Reads a NULL. */
  null(name: string): void {
    if (this.element(TAG.null, name).length !== 0) this.fail(`${name}: NULL with content`);
  }

  /**
   * Reads an AlgorithmIdentifier (RFC 5280 section 4.1.1.2): `SEQUENCE { OID, parameters ANY
   * OPTIONAL }`.
   *
   * @returns the OID in dotted form and the parameters element, if present
   */
  algorithmIdentifier(name: string): {
    oid: string;
    parameters: { tag: number; content: Uint8Array; encoded: Uint8Array } | undefined;
  } {
    const inner = this.sequence(name);
    const oid = inner.oid(`${name} OID`);
    const parameters = inner.done ? undefined : inner.any(`${name} parameters`);
    inner.end(name);
    return { oid, parameters };
  }

  /** Throws unless every byte has been read. */
  end(name: string): void {
    if (!this.done) this.fail(`unexpected data after ${name}`);
  }
}

function hex2(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Encodes one element from its tag and contents. */
export function encodeElement(tag: number, content: Uint8Array): Uint8Array {
  const length = content.length;
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else if (length < 0x100) header = [tag, 0x81, length];
  else if (length < 0x10000) header = [tag, 0x82, length >> 8, length & 0xff];
  else if (length < 0x1000000) {
    header = [tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff];
  } else throw new RangeError(`DER element too long: ${length} bytes`);
  const out = new Uint8Array(header.length + length);
  out.set(header);
  out.set(content, header.length);
  return out;
}

/** Encodes a SEQUENCE of already encoded elements. */
export function encodeSequence(...elements: Uint8Array[]): Uint8Array {
  return encodeElement(TAG.sequence, concat(...elements));
}

/** Encodes a constructed `[n]` element around already encoded elements (EXPLICIT tagging). */
export function encodeExplicit(n: number, ...elements: Uint8Array[]): Uint8Array {
  return encodeElement(contextTag(n), concat(...elements));
}

/**
 * Encodes a non-negative INTEGER from a safe integer or a big-endian magnitude.
 *
 * @throws {RangeError} on a negative or unsafe number
 */
export function encodeInteger(value: number | Uint8Array): Uint8Array {
  let magnitude: Uint8Array;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`INTEGER out of range: ${value}`);
    }
    const bytes: number[] = [];
    for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    magnitude = Uint8Array.from(bytes);
  } else {
    let start = 0;
    while (start < value.length && value[start] === 0) start++;
    magnitude = value.subarray(start);
  }
  if (magnitude.length === 0) return encodeElement(TAG.integer, Uint8Array.of(0));
  if (magnitude[0]! >= 0x80) {
    const padded = new Uint8Array(magnitude.length + 1);
    padded.set(magnitude, 1);
    return encodeElement(TAG.integer, padded);
  }
  return encodeElement(TAG.integer, magnitude);
}

/** Encodes an OCTET STRING. */
export function encodeOctetString(content: Uint8Array): Uint8Array {
  return encodeElement(TAG.octetString, content);
}

/** Encodes a BIT STRING holding whole bytes (no unused bits). */
export function encodeBitString(content: Uint8Array): Uint8Array {
  const inner = new Uint8Array(content.length + 1);
  inner.set(content, 1);
  return encodeElement(TAG.bitString, inner);
}

/** Encodes a NULL. */
export function encodeNull(): Uint8Array {
  return Uint8Array.of(TAG.null, 0);
}

/**
 * Encodes an OBJECT IDENTIFIER from its dotted form.
 *
 * @throws {SyntaxError} on a malformed dotted string
 */
export function encodeOid(dotted: string): Uint8Array {
  if (!/^[0-2](\.\d+)+$/.test(dotted)) throw new SyntaxError(`invalid OID "${dotted}"`);
  const arcs = dotted.split(".").map(Number);
  if (arcs[0]! < 2 && arcs[1]! >= 40) throw new SyntaxError(`invalid OID "${dotted}"`);
  const values = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  const bytes: number[] = [];
  for (const value of values) {
    if (!Number.isSafeInteger(value)) throw new SyntaxError(`invalid OID "${dotted}"`);
    const group = [value % 128];
    for (let v = Math.floor(value / 128); v > 0; v = Math.floor(v / 128)) {
      group.unshift(0x80 | v % 128);
    }
    bytes.push(...group);
  }
  return encodeElement(TAG.oid, Uint8Array.from(bytes));
}
