/**
 * The checks a room relay makes of a member's MLS messages before it passes them on, shared by
 * the single-process relay (lib/room/relay.ts) and the clustered one (lib/cluster/), so both
 * drop the same messages with the same words: a Commit must be a PrivateMessage commit, a Group
 * message a PrivateMessage application message or proposal, either for the room's group once it
 * is known; a KeyPackage and a Welcome of their wire formats.
 *
 * What it does not do: decide what a failed check costs (a violation, 13.8: the relay does).
 *
 * Mirrors: docs/PROTOCOL.md section 13.4 ("What the relay checks").
 *
 * @module
 */

import { constantTimeEqual } from "../core/bytes.ts";
import { type MlsHeader, readMlsHeader } from "./mls_header.ts";

/** A PrivateMessage's header, or a violation's text. */
export type Checked = { header: MlsHeader & { wireFormat: "private_message" } } | {
  problem: string;
};

/**
 * Section 13.4 "What the relay checks": a Commit must be a PrivateMessage commit, a Group
 * message a PrivateMessage application message or proposal (a commit sent as a Group message
 * would skip the ordering), and a Group message must name the room's group once it is known.
 *
 * @param groupId the room's group id, when known
 */
export function checkPrivate(
  bytes: Uint8Array,
  kind: "commit" | "group",
  groupId: Uint8Array | undefined,
): Checked {
  let header: MlsHeader;
  try {
    header = readMlsHeader(bytes);
  } catch (error) {
    return { problem: `not an MLS message (${messageOf(error)})` };
  }
  if (header.wireFormat !== "private_message") {
    return { problem: `${describe(header.wireFormat)}, not a PrivateMessage` };
  }
  const wanted = kind === "commit"
    ? header.contentType === "commit"
    : header.contentType !== "commit";
  if (!wanted) return { problem: `a PrivateMessage holding ${an(header.contentType)}` };
  if (kind === "group" && groupId !== undefined && !constantTimeEqual(header.groupId, groupId)) {
    return { problem: "for another group" };
  }
  return { header };
}

/** An MLS message's clear header, or undefined when it has none. */
export function headerOf(bytes: Uint8Array): MlsHeader | undefined {
  try {
    return readMlsHeader(bytes);
  } catch {
    return undefined;
  }
}

/** A wire format in words: "a welcome", or "not an MLS message". */
export function describe(wireFormat: string | undefined): string {
  return wireFormat === undefined ? "not an MLS message" : `${an(wireFormat)}`;
}

function an(name: string): string {
  return /^[aeiou]/.test(name) ? `an ${name}` : `a ${name}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
