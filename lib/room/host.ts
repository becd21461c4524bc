/**
 * The person at the listener as a room member: a member like any dialer, whose link to the relay
 * is an in-process pair of connections instead of a socket. It is the first to arrive, so it makes
 * the group and is its admin; it admits everyone its listener let in, because the listener chose
 * them already (`--authorized-keys`).
 *
 * What it does not do: anything a dialer's member does not (lib/room/member.ts), or relay.
 *
 * Mirrors: docs/PROTOCOL.md section 13 (the host), 13.3 (the host admits whom its listener let in).
 *
 * @module
 */

import type { Identity } from "../keys/identity.ts";
import type { ReceivePolicy } from "../transfer/receive_policy.ts";
import { joinRoom } from "./member.ts";
import type { RoomParticipant } from "./participant.ts";
import type { Relay } from "./relay.ts";
import { connectedPair } from "./room_connection.ts";

/** Options of {@linkcode hostRoom}. */
export interface HostOptions extends ReceivePolicy {
  /** The listener's identity: the host's, and the relay's. */
  identity: Identity;
  /** The host's name in the room (default: the identity's comment). */
  name?: string | undefined;
  now?: () => number;
}

/**
 * Joins the person at the listener to the relay's room, in-process.
 *
 * @returns the host's Participant, once it has made the group
 */
export async function hostRoom(relay: Relay, options: HostOptions): Promise<RoomParticipant> {
  const self = { name: options.name ?? options.identity.comment, identity: options.identity };
  const [memberSide, relaySide] = connectedPair(self, self, "");
  relay.join(relaySide).catch(() => {});
  return await joinRoom(memberSide, { ...options, admitsAtOnce: () => true });
}
