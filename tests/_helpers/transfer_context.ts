/**
 * A recipient's transfer machinery for tests that drive it message by message: a roster holding
 * the recipient and the other members by name, a real signer, and a `send` and `emit` that only
 * collect what the recipient would send and show.
 */

import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import { ChatSigner } from "../../lib/chat/chat_signer.ts";
import { Roster } from "../../lib/chat/room_roster.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import type { ReceivePolicy } from "../../lib/transfer/receive_policy.ts";
import { TransferManager } from "../../lib/transfer/transfer.ts";
import type { TransferContext } from "../../lib/transfer/transfer_progress.ts";

/** The recipient's context; `sent` and `events` fill as it runs. */
export function recipientContext(
  roomId: Uint8Array,
  members: [self: [Identity, string], ...others: [Identity, string][]],
  policy: ReceivePolicy = {},
): { context: TransferContext; sent: Uint8Array[]; events: ChatEvent[] } {
  const self = members[0][0];
  const roster = new Roster(roomId, self.fingerprint);
  for (const [identity, name] of members) {
    const info: MemberInfo = { name, fingerprint: identity.fingerprint };
    if (identity === self) info.self = true;
    roster.addIdentity(identity, info);
  }
  const sent: Uint8Array[] = [];
  const events: ChatEvent[] = [];
  const context: TransferContext = {
    identity: self,
    roomId,
    roster,
    signer: new ChatSigner(self, roomId),
    send: (message) => {
      sent.push(message);
      return Promise.resolve();
    },
    emit: (event) => events.push(event),
    ...policy,
  };
  return { context, sent, events };
}

/** The recipient's TransferManager over {@linkcode recipientContext}. */
export function recipientManager(
  roomId: Uint8Array,
  members: [self: [Identity, string], ...others: [Identity, string][]],
  policy: ReceivePolicy = {},
): { manager: TransferManager; sent: Uint8Array[]; events: ChatEvent[] } {
  const { context, sent, events } = recipientContext(roomId, members, policy);
  return { manager: new TransferManager(context), sent, events };
}
