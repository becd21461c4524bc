/**
 * A room as an MLS group (RFC 9420), as one member sees it: the API the chat layer codes
 * against. {@linkcode Newcomer} is a would-be member with a KeyPackage, waiting for its Welcome;
 * {@linkcode RoomGroup} is a member. The relay messages around their bytes (docs/PROTOCOL.md
 * section 13.4) are the caller's; this folder is the only one that knows MLS.
 *
 * Mirrors docs/PROTOCOL.md section 13. The modules behind it:
 * - room_group.ts, newcomer.ts: the member and the would-be member;
 * - commits.ts, admins.ts: the commit and proposal rules (13.3), the admins extension;
 * - credential.ts, group_members.ts: the credential (13.2), the Authentication Service, who is in;
 * - sealed.ts, codes.ts: Sealed messages (13.5), safety number and epoch code (13.7);
 * - key_package.ts, group_state.ts, mls.ts: KeyPackages, reading a state, and the one module
 *   that imports the MLS library (ts-mls), with the suite pin;
 * - mls_join.ts, unmerged_leaves.ts: the join from a Welcome, with the ratchet tree checked as
 *   RFC 9420 says where ts-mls 1.6.4 is stricter.
 *
 * @module
 */

export { GroupFailure, GroupRejection } from "./group_errors.ts";
export type { Admission, CommitChange, GroupEvent, PendingCommit } from "./group_types.ts";
export { Newcomer } from "./newcomer.ts";
export { RoomGroup } from "./room_group.ts";
export type { GroupMember } from "./group_members.ts";
