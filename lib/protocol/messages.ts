/**
 * Encoders and decoders of the handshake messages: ClientHello, ServerHello, Identity,
 * IdentityVerify and Finished. Decoders reject every length that does not fit, trailing bytes and
 * out-of-range values with `ProtocolError` (`decode_error` or `illegal_parameter`).
 *
 * Mirrors: docs/PROTOCOL.md sections 5.1 to 5.3 (and 4.5, the record suite ids).
 *
 * @module
 */

import { concat, u16, u32, u8, utf8 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";
import { SHARE_LENGTHS, SUITE_IDS, suiteById, type SuiteName } from "../crypto/kex.ts";
import {
  RECORD_SUITE_IDS,
  recordSuiteById,
  type RecordSuiteName,
} from "../crypto/record_suites.ts";
import { MAX_RECORD_PLAINTEXT, MAX_RECORD_PLAINTEXT_LIMIT } from "./record.ts";
import { replaceUnsafe } from "../core/text.ts";

/** Section 5.1: the protocol versions this implementation speaks, highest first. */
export const SUPPORTED_VERSIONS: readonly number[] = [1];
/** Length of client_random and server_random. */
export const RANDOM_LENGTH = 32;
/** Section 5.3 handshake message types. */
export const MESSAGE_TYPE = { identity: 0x0b, identityVerify: 0x0f, finished: 0x14 } as const;
/** Section 5.3: longest display name in bytes. */
export const MAX_NAME_LENGTH = 64;

function checkMaxRecord(reader: FieldReader, value: number): number {
  if (value < MAX_RECORD_PLAINTEXT || value > MAX_RECORD_PLAINTEXT_LIMIT) {
    reader.fail(`max_record_plaintext ${value} out of range`, "illegal_parameter");
  }
  return value;
}

/** A key share for one suite. */
export interface KeyShare {
  suite: SuiteName;
  share: Uint8Array;
}

/** Section 5.1. */
export interface ClientHello {
  versions: number[];
  random: Uint8Array;
  maxRecordPlaintext: number;
  shares: KeyShare[];
  /** Section 4.5: the record suites the initiator accepts, in its order of preference. */
  recordSuites: RecordSuiteName[];
}

/** Encodes a ClientHello body. */
export function encodeClientHello(hello: ClientHello): Uint8Array {
  return concat(
    u8(hello.versions.length),
    ...hello.versions.map((version) => u8(version)),
    hello.random,
    u32(hello.maxRecordPlaintext),
    u8(hello.shares.length),
    ...hello.shares.flatMap((s) => [u8(SUITE_IDS[s.suite]), u16(s.share.length), s.share]),
    u8(hello.recordSuites.length),
    ...hello.recordSuites.map((suite) => u8(RECORD_SUITE_IDS[suite])),
  );
}

/**
 * Decodes a ClientHello body. Unknown suite ids and record suite ids are skipped (a newer peer may
 * offer more), but every share of a known suite must have its exact length.
 *
 * @throws {ProtocolError}
 */
export function decodeClientHello(body: Uint8Array): ClientHello {
  const r: FieldReader = new FieldReader(body, "ClientHello");
  const versionCount = r.u8("versions_count");
  if (versionCount < 1 || versionCount > 16) r.fail("versions_count out of range");
  const versions = Array.from(r.take(versionCount, "versions"));
  const random = r.take(RANDOM_LENGTH, "client_random").slice();
  const maxRecordPlaintext = checkMaxRecord(r, r.u32("max_record_plaintext"));
  const shareCount = r.u8("shares_count");
  if (shareCount < 1 || shareCount > 8) r.fail("shares_count out of range");
  const shares: KeyShare[] = [];
  for (let i = 0; i < shareCount; i++) {
    const id = r.u8("suite_id");
    const share = r.take(r.u16("share_length"), "share").slice();
    const suite = suiteById(id);
    if (suite === undefined) continue;
    if (shares.some((s) => s.suite === suite)) r.fail(`suite ${suite} offered twice`);
    if (share.length !== SHARE_LENGTHS[suite].initiator) {
      r.fail(`${suite} share has ${share.length} bytes`, "illegal_parameter");
    }
    shares.push({ suite, share });
  }
  const recordSuiteCount = r.u8("record_suites_count");
  if (recordSuiteCount < 1 || recordSuiteCount > 8) r.fail("record_suites_count out of range");
  const recordSuites: RecordSuiteName[] = [];
  for (const id of r.take(recordSuiteCount, "record_suites")) {
    const suite = recordSuiteById(id);
    if (suite === undefined) continue;
    if (recordSuites.includes(suite)) r.fail(`record suite ${suite} offered twice`);
    recordSuites.push(suite);
  }
  r.end();
  return { versions, random, maxRecordPlaintext, shares, recordSuites };
}

/** Section 5.2. */
export interface ServerHello {
  version: number;
  random: Uint8Array;
  maxRecordPlaintext: number;
  suite: SuiteName;
  share: Uint8Array;
  /** Section 4.5: the record suite chosen from the ClientHello's. */
  recordSuite: RecordSuiteName;
}

/** Encodes a ServerHello body. */
export function encodeServerHello(hello: ServerHello): Uint8Array {
  return concat(
    u8(hello.version),
    hello.random,
    u32(hello.maxRecordPlaintext),
    u8(SUITE_IDS[hello.suite]),
    u16(hello.share.length),
    hello.share,
    u8(RECORD_SUITE_IDS[hello.recordSuite]),
  );
}

/** Decodes a ServerHello body. @throws {ProtocolError} */
export function decodeServerHello(body: Uint8Array): ServerHello {
  const r: FieldReader = new FieldReader(body, "ServerHello");
  const version = r.u8("version");
  const random = r.take(RANDOM_LENGTH, "server_random").slice();
  const maxRecordPlaintext = checkMaxRecord(r, r.u32("max_record_plaintext"));
  const id = r.u8("suite_id");
  const suite = suiteById(id);
  if (suite === undefined) r.fail(`unknown suite id ${id}`, "illegal_parameter");
  const share = r.take(r.u16("share_length"), "share").slice();
  if (share.length !== SHARE_LENGTHS[suite].responder) {
    r.fail(`${suite} share has ${share.length} bytes`, "illegal_parameter");
  }
  const recordSuiteId = r.u8("record_suite");
  const recordSuite = recordSuiteById(recordSuiteId);
  if (recordSuite === undefined) {
    r.fail(`unknown record suite id ${recordSuiteId}`, "illegal_parameter");
  }
  r.end();
  return { version, random, maxRecordPlaintext, suite, share, recordSuite };
}

/** Section 5.3 Identity. */
export interface IdentityMessage {
  spki: Uint8Array;
  name: string;
}

/** Encodes an Identity message (msg_type and body). */
export function encodeIdentity(message: IdentityMessage): Uint8Array {
  const name = utf8(message.name);
  if (name.length > MAX_NAME_LENGTH) throw new RangeError("display name longer than 64 bytes");
  return concat(
    u8(MESSAGE_TYPE.identity),
    u16(message.spki.length),
    message.spki,
    u8(name.length),
    name,
  );
}

/** Decodes an Identity message (msg_type and body). @throws {ProtocolError} */
export function decodeIdentity(message: Uint8Array): IdentityMessage {
  const r: FieldReader = new FieldReader(message, "Identity");
  if (r.u8("msg_type") !== MESSAGE_TYPE.identity) r.fail("expected an Identity message");
  const spki = r.take(r.u16("spki_length"), "spki").slice();
  const nameLength = r.u8("name_length");
  if (nameLength > MAX_NAME_LENGTH) r.fail("name longer than 64 bytes");
  let name: string;
  try {
    name = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      r.take(nameLength, "name"),
    );
  } catch {
    r.fail("name is not UTF-8");
  }
  r.end();
  return { spki, name: replaceUnsafe(name) };
}

/** Encodes an IdentityVerify message. */
export function encodeIdentityVerify(signature: Uint8Array): Uint8Array {
  return concat(u8(MESSAGE_TYPE.identityVerify), u16(signature.length), signature);
}

/** Decodes an IdentityVerify message. @throws {ProtocolError} */
export function decodeIdentityVerify(message: Uint8Array): Uint8Array {
  const r: FieldReader = new FieldReader(message, "IdentityVerify");
  if (r.u8("msg_type") !== MESSAGE_TYPE.identityVerify) r.fail("expected an IdentityVerify");
  const signature = r.take(r.u16("signature_length"), "signature").slice();
  r.end();
  return signature;
}

/** Encodes a Finished message. */
export function encodeFinished(verifyData: Uint8Array): Uint8Array {
  return concat(u8(MESSAGE_TYPE.finished), verifyData);
}

/** Decodes a Finished message. @throws {ProtocolError} */
export function decodeFinished(message: Uint8Array): Uint8Array {
  const r: FieldReader = new FieldReader(message, "Finished");
  if (r.u8("msg_type") !== MESSAGE_TYPE.finished) r.fail("expected a Finished message");
  const verifyData = r.take(32, "verify_data").slice();
  r.end();
  return verifyData;
}
