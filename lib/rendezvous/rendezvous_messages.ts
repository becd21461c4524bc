/**
 * The Rendezvous messages: what a client and a rendezvous relay say to each other on the relay
 * connection before it is spliced or handed to a room, one message per application record,
 * `type u8 || body`. A client sends one request (Register, Meet, Room or ResumeRoom) and, once
 * paired, its last record (Spliced); the relay answers Waiting, Paired, Refused, Joined or Redirect.
 *
 * Every decoder is strict: a type of the other direction, a field cut short or too long, a reason
 * that is not UTF-8 or a trailing byte is a `ProtocolError` with alert `decode_error`.
 *
 * What it does not do: decide what a message means at this point of the exchange (the relay and
 * the client do), or derive tokens (lib/rendezvous/tokens.ts).
 *
 * Mirrors: docs/PROTOCOL.md section 15.2, and 16.4 (ResumeRoom) and 16.5 (Redirect) for clustered
 * relays.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { decodeRendezvousAnswer, encodeRendezvousAnswer } from "./rendezvous_messages.ts";
 * const answer = { type: "waiting", expiresIn: 3600 } as const;
 * deepStrictEqual(decodeRendezvousAnswer(encodeRendezvousAnswer(answer)), answer);
 * ```
 *
 * @module
 */

import { concat, u32, u64, u8, utf8 } from "../core/bytes.ts";
import { FieldReader } from "../core/field_reader.ts";

/** Section 15.2 message types, both directions. */
export const RENDEZVOUS_MESSAGE = {
  register: 0x01,
  meet: 0x02,
  room: 0x03,
  resumeRoom: 0x04,
  spliced: 0x10,
  waiting: 0x81,
  paired: 0x82,
  refused: 0x83,
  joined: 0x84,
  redirect: 0x85,
} as const;

/** Section 15.3: a token is a SHA-256 output. */
export const TOKEN_LENGTH = 32;

/** Section 15.2: a Refused reason's length is one byte. */
export const MAX_REASON_BYTES = 255;

/** Section 16.5: a Redirect's `host:port` length is one byte. */
export const MAX_REDIRECT_BYTES = 255;

/** A client's message to the relay. */
export type RendezvousRequest =
  | { type: "register" | "meet" | "room"; token: Uint8Array }
  /** Section 16.4: continue in a room after `position` of its log. */
  | { type: "resume_room"; token: Uint8Array; position: bigint }
  | { type: "spliced" };

/** The relay's message to a client. */
export type RendezvousAnswer =
  | { type: "waiting"; expiresIn: number }
  | { type: "paired" }
  | { type: "refused"; reason: string }
  | { type: "joined" }
  /** Section 16.5: the listener waits at another relay of the cluster, `host:port`. */
  | { type: "redirect"; address: string };

/**
 * Encodes a client's message.
 *
 * @throws {RangeError} when a token is not 32 bytes
 */
export function encodeRendezvousRequest(request: RendezvousRequest): Uint8Array {
  if (request.type === "spliced") return u8(RENDEZVOUS_MESSAGE.spliced);
  if (request.token.length !== TOKEN_LENGTH) {
    throw new RangeError(
      `a rendezvous token is ${TOKEN_LENGTH} bytes, not ${request.token.length}`,
    );
  }
  if (request.type === "resume_room") {
    return concat(u8(RENDEZVOUS_MESSAGE.resumeRoom), request.token, u64(request.position));
  }
  return concat(u8(RENDEZVOUS_MESSAGE[request.type]), request.token);
}

/**
 * Decodes a client's message.
 *
 * @throws {ProtocolError} `decode_error` on an unknown type, a wrong length or trailing bytes
 */
export function decodeRendezvousRequest(bytes: Uint8Array): RendezvousRequest {
  const reader = new FieldReader(bytes, "rendezvous request");
  const type = reader.u8("type");
  let request: RendezvousRequest;
  switch (type) {
    case RENDEZVOUS_MESSAGE.register:
      request = { type: "register", token: reader.take(TOKEN_LENGTH, "token") };
      break;
    case RENDEZVOUS_MESSAGE.meet:
      request = { type: "meet", token: reader.take(TOKEN_LENGTH, "token") };
      break;
    case RENDEZVOUS_MESSAGE.room:
      request = { type: "room", token: reader.take(TOKEN_LENGTH, "token") };
      break;
    case RENDEZVOUS_MESSAGE.resumeRoom: {
      const token = reader.take(TOKEN_LENGTH, "token");
      request = { type: "resume_room", token, position: reader.u64big("position") };
      break;
    }
    case RENDEZVOUS_MESSAGE.spliced:
      request = { type: "spliced" };
      break;
    default:
      return reader.fail(`unknown type 0x${type.toString(16).padStart(2, "0")}`);
  }
  reader.end();
  return request;
}

/**
 * Encodes the relay's message.
 *
 * @throws {RangeError} when `expiresIn` is not a u32, or a reason or redirect address is longer
 *   than 255 bytes, or an address is empty
 */
export function encodeRendezvousAnswer(answer: RendezvousAnswer): Uint8Array {
  switch (answer.type) {
    case "waiting":
      return concat(u8(RENDEZVOUS_MESSAGE.waiting), u32(answer.expiresIn));
    case "paired":
      return u8(RENDEZVOUS_MESSAGE.paired);
    case "joined":
      return u8(RENDEZVOUS_MESSAGE.joined);
    case "redirect": {
      const address = utf8(answer.address);
      if (address.length === 0 || address.length > MAX_REDIRECT_BYTES) {
        throw new RangeError(`a Redirect address is 1 to ${MAX_REDIRECT_BYTES} bytes`);
      }
      return concat(u8(RENDEZVOUS_MESSAGE.redirect), u8(address.length), address);
    }
    case "refused": {
      const reason = utf8(answer.reason);
      if (reason.length > MAX_REASON_BYTES) {
        throw new RangeError(`a Refused reason is at most ${MAX_REASON_BYTES} bytes`);
      }
      return concat(u8(RENDEZVOUS_MESSAGE.refused), u8(reason.length), reason);
    }
  }
}

/**
 * Decodes the relay's message.
 *
 * @throws {ProtocolError} `decode_error` on an unknown type, a wrong length, a reason that is not
 *   UTF-8 or trailing bytes
 */
export function decodeRendezvousAnswer(bytes: Uint8Array): RendezvousAnswer {
  const reader = new FieldReader(bytes, "rendezvous answer");
  const type = reader.u8("type");
  let answer: RendezvousAnswer;
  switch (type) {
    case RENDEZVOUS_MESSAGE.waiting:
      answer = { type: "waiting", expiresIn: reader.u32("expires_in") };
      break;
    case RENDEZVOUS_MESSAGE.paired:
      answer = { type: "paired" };
      break;
    case RENDEZVOUS_MESSAGE.refused:
      answer = {
        type: "refused",
        reason: reader.text(reader.u8("reason_length"), MAX_REASON_BYTES, "reason"),
      };
      break;
    case RENDEZVOUS_MESSAGE.joined:
      answer = { type: "joined" };
      break;
    case RENDEZVOUS_MESSAGE.redirect: {
      const address = reader.text(reader.u8("address_length"), MAX_REDIRECT_BYTES, "address");
      if (address.length === 0) reader.fail("the Redirect address is empty");
      answer = { type: "redirect", address };
      break;
    }
    default:
      return reader.fail(`unknown type 0x${type.toString(16).padStart(2, "0")}`);
  }
  reader.end();
  return answer;
}

/**
 * The reasons a relay gives in Refused (sections 15.2, 15.6, 16.4), spelled once for the relay that
 * sends them and the client that recognises them.
 */
export const REFUSAL = {
  noListener: "no listener is waiting for that token",
  full: "the relay is full",
  tooManyWaiting: "too many waiting listeners from you",
  expired: "registration expired",
  tooManyConnections: "too many connections from you",
  malformed: "a malformed or unexpected request",
  shuttingDown: "the relay is shutting down",
  /** Section 16.4: a ResumeRoom at a relay that keeps no room log (no cluster), or too late. */
  nothingToResume: "nothing to resume: join the room again",
  tooLateToResume: "too late to resume: join the room again",
} as const;
