/**
 * Chat UI unit fixtures (chat_view, transfer_view, chat_terminal tests): members, a fixed clock
 * time, and `transfer` events of one file sent to bob.
 *
 * @module
 */

import type { MemberInfo } from "../../lib/chat/chat_events.ts";
import type { TransferEvent } from "../../lib/terminal/chat_view.ts";

/** We are alice. */
export const alice: MemberInfo = { name: "alice", fingerprint: "SHA256:aaa", self: true };
/** The room's host. */
export const bob: MemberInfo = { name: "bob", fingerprint: "SHA256:bbb", host: true };
/** Another member. */
export const carol: MemberInfo = { name: "carol", fingerprint: "SHA256:ccc" };
/** 2024-01-02 09:05 UTC. */
export const TIME = Date.UTC(2024, 0, 2, 9, 5);
/** SGR escape sequences (colours, bold), to strip from rendered lines. */
// deno-lint-ignore no-control-regex
export const SGR = /\x1b\[[0-9;]*m/g;

/** 1 KiB, for readable sizes. */
export const KIB = 1024;
/** 1 MiB, for readable sizes. */
export const MIB = 1024 * KIB;

/** A `transfer` event of `name` (4 MiB) to bob, sending, `bytes` so far, no rate or ETA yet. */
export function sendingTransfer(
  name: string,
  bytes: number,
  extra: Partial<TransferEvent> = {},
): TransferEvent {
  return {
    type: "transfer",
    time: TIME,
    id: "a1b2c3d4",
    direction: "send",
    peer: bob,
    name,
    state: "sending",
    bytes,
    total: 4 * MIB,
    ...extra,
  };
}

/** {@linkcode sendingTransfer} at 800 KiB/s with an ETA of 3 s. */
export function transferWithRate(
  name: string,
  bytes: number,
  extra: Partial<TransferEvent> = {},
): TransferEvent {
  return sendingTransfer(name, bytes, { rate: 800 * KIB, eta: 3, ...extra });
}
