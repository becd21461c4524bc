/**
 * The two ways a room message can go wrong for a member (docs/PROTOCOL.md section 13.6): a
 * message to drop, after which the room goes on, and a commit the member cannot follow, after
 * which its session ends. group.ts re-exports both.
 *
 * @module
 */

import {
  EXIT,
  ProtocolError,
  SecurechatError,
  type SecurechatErrorOptions,
} from "../core/errors.ts";

/**
 * A message to drop and show as `rejected`: it does not decode, MLS refused it (wrong group, bad
 * signature, a generation already used), it breaks the proposal rule of section 13.3, or it is a
 * Sealed message for us that does not open. The group state is unchanged by it (or has only
 * consumed the message's key), and the room goes on.
 */
export class GroupRejection extends ProtocolError {
  constructor(detail: string, options: SecurechatErrorOptions = {}) {
    super("group_rejected", `rejected a room message: ${detail}`, options);
    this.name = "GroupRejection";
  }
}

/**
 * A commit this member cannot follow: MLS refused it, it breaks the commit rule of section 13.3,
 * or it skips an epoch. Its state can no longer follow the group's, so the session ends with
 * exit code 3.
 */
export class GroupFailure extends SecurechatError {
  constructor(detail: string, options: SecurechatErrorOptions = {}) {
    super("group_commit_refused", `the room's commit was refused: ${detail}`, EXIT.trust, options);
    this.name = "GroupFailure";
  }
}
