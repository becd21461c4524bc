/**
 * What a relay must do with one relay message from a connection, written from PROTOCOL.md 13.4
 * ("Order", "Fan-out", "What the relay checks") and 13.8 (the size limit, one KeyPackage at a
 * time), for room_fuzz_test.ts to predict each verdict before it sends and compare it with what
 * the real relay did. It reads the message with the same decoder and clear-header reader the relay
 * uses (both fuzzed on their own in decoder_fuzz_test.ts); the decisions are the spec's, not
 * copied from lib/room/relay.ts. Rates are left out: the fuzzer stays within them.
 *
 * @module
 */

import { constantTimeEqual, toHex } from "../../lib/core/bytes.ts";
import {
  decodeToRelay,
  MAX_RELAY_MESSAGE_BYTES,
  type ToRelay,
} from "../../lib/chat/relay_messages.ts";
import { type MlsHeader, readMlsHeader } from "../../lib/room/mls_header.ts";

/** What the relay knows of the room and of the sender. */
export interface RelayView {
  /** The sender is in the group, or waits to be admitted. */
  role: "member" | "waiting";
  /** A waiting sender's KeyPackage was passed on as a Knock: one at a time (13.8). */
  knocked: boolean;
  /** The room's group id and epoch, once a commit was accepted. */
  groupId: Uint8Array | undefined;
  epoch: bigint | undefined;
  /** Author ids (hex) of the connections in the group. */
  members: Set<string>;
}

/** The relay's verdict on one message. */
export type Verdict =
  /** It does not decode: the session ends with decode_error (13.4). */
  | { kind: "decode_error" }
  /** Dropped with a warning Notice (13.8); a Commit for another group also gets Refused. */
  | { kind: "violation"; why: string; refused?: bigint }
  /** A waiting newcomer's KeyPackage, passed to the group. */
  | { kind: "knock" }
  /** A member's KeyPackage: dropped without a word (13.4 Start: one that crossed Start). */
  | { kind: "ignored" }
  /** The epoch's commit: the room moves on. */
  | { kind: "accepted"; epoch: bigint }
  /** A commit for another epoch: Refused with the room's epoch. */
  | { kind: "refused"; epoch: bigint }
  /** Passed on: a Group message to the other members, a Direct to its recipient. */
  | { kind: "forwarded" }
  /** A Direct for someone not in the group: an info Notice to its sender. */
  | { kind: "undeliverable" };

function header(bytes: Uint8Array): MlsHeader | undefined {
  try {
    return readMlsHeader(bytes);
  } catch {
    return undefined;
  }
}

/** 13.4: a Commit a PrivateMessage of content type commit, a Group message one that is not. */
function privateProblem(bytes: Uint8Array, commit: boolean): string | undefined {
  const read = header(bytes);
  if (read === undefined) return "not an MLS message";
  if (read.wireFormat !== "private_message") return `a ${read.wireFormat}, not a PrivateMessage`;
  if ((read.contentType === "commit") !== commit) {
    return `a PrivateMessage holding a ${read.contentType}`;
  }
  return undefined;
}

function commitVerdict(message: ToRelay & { type: "commit" }, view: RelayView): Verdict {
  if (view.role !== "member") return { kind: "violation", why: "a Commit from outside the group" };
  const problem = privateProblem(message.commit, true);
  if (problem) return { kind: "violation", why: `a Commit that is ${problem}` };
  if (message.welcome !== undefined && header(message.welcome)?.wireFormat !== "welcome") {
    return { kind: "violation", why: "a Commit whose Welcome is not a Welcome" };
  }
  const read = header(message.commit) as MlsHeader & { wireFormat: "private_message" };
  if (view.groupId !== undefined && view.epoch !== undefined) {
    if (!constantTimeEqual(read.groupId, view.groupId)) {
      return { kind: "violation", why: "a Commit for another group", refused: view.epoch };
    }
    if (read.epoch !== view.epoch) return { kind: "refused", epoch: view.epoch };
  }
  // No epoch follows the last one: a commit for it could never be answered by a next epoch.
  if (read.epoch === 2n ** 64n - 1n) {
    return { kind: "violation", why: "a Commit for the last epoch" };
  }
  return { kind: "accepted", epoch: read.epoch };
}

/**
 * The relay's verdict on `bytes` from a connection the relay sees as `view`.
 *
 * @returns what the relay must do; the caller updates `view` after a knock or an accepted commit
 */
export function relayVerdict(bytes: Uint8Array, view: RelayView): Verdict {
  if (bytes.length > MAX_RELAY_MESSAGE_BYTES) {
    return { kind: "violation", why: `a relay message over ${MAX_RELAY_MESSAGE_BYTES} bytes` };
  }
  let message: ToRelay;
  try {
    message = decodeToRelay(bytes);
  } catch {
    return { kind: "decode_error" };
  }
  switch (message.type) {
    case "key_package":
      if (view.role === "member") return { kind: "ignored" };
      if (view.knocked) return { kind: "violation", why: "a second KeyPackage" };
      if (header(message.keyPackage)?.wireFormat !== "key_package") {
        return { kind: "violation", why: "a KeyPackage that is not one" };
      }
      return { kind: "knock" };
    case "commit":
      return commitVerdict(message, view);
    case "group": {
      if (view.role !== "member") return { kind: "violation", why: "a group message from outside" };
      const problem = privateProblem(message.message, false);
      if (problem) return { kind: "violation", why: `a group message that is ${problem}` };
      const read = header(message.message) as MlsHeader & { wireFormat: "private_message" };
      if (view.groupId !== undefined && !constantTimeEqual(read.groupId, view.groupId)) {
        return { kind: "violation", why: "a group message for another group" };
      }
      return { kind: "forwarded" };
    }
    case "direct":
      if (view.role !== "member") return { kind: "violation", why: "a Direct from outside" };
      return view.members.has(toHex(message.recipient))
        ? { kind: "forwarded" }
        : { kind: "undeliverable" };
  }
}
