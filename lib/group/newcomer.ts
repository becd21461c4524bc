/**
 * A would-be member of a room: the KeyPackage it asks to be admitted with, and the join with the
 * Welcome an admin's commit produced.
 *
 * Mirrors docs/PROTOCOL.md sections 13.1 (a KeyPackage is made for one room and used once; the
 * Welcome carries the ratchet tree, checked whole as RFC 9420 section 12.4.3.1 says: mls_join.ts),
 * 13.2 (every leaf of the tree and the GroupInfo's signer are checked by the Authentication
 * Service) and 13.3 (only admins let anyone in: the signer must be
 * an admin of the group we join).
 *
 * @module
 */

import type { Identity } from "../keys/identity.ts";
import { messageOf } from "./commits.ts";
import { GroupRejection } from "./group_errors.ts";
import { makeKeyPackage } from "./key_package.ts";
import {
  type CiphersuiteImpl,
  clientConfig,
  type ClientState,
  decodeMessage,
  encodeMlsMessage,
  type KeyPackage,
  MLS_VERSION,
  type PrivateKeyPackage,
  SUITE_ID,
  SUITE_NAME,
  suiteImpl,
} from "./mls.ts";
import { joinWelcome } from "./mls_join.ts";
import { openGroup, type RoomGroup } from "./room_group.ts";
import { CredentialBook, type GroupMember } from "./group_members.ts";

/** A would-be member before its Welcome. */
export class Newcomer {
  /** MLSMessage (mls_key_package) bytes to send to the relay. */
  readonly keyPackage: Uint8Array;
  #cs: CiphersuiteImpl;
  #public: KeyPackage;
  #private: PrivateKeyPackage;
  #book = new CredentialBook(SUITE_ID);
  #joined = false;

  private constructor(cs: CiphersuiteImpl, keyPackage: KeyPackage, keys: PrivateKeyPackage) {
    this.#cs = cs;
    this.#public = keyPackage;
    this.#private = keys;
    this.keyPackage = encodeMlsMessage({
      version: MLS_VERSION,
      wireformat: "mls_key_package",
      keyPackage,
    });
  }

  /**
   * Makes a KeyPackage for one room: valid from 5 minutes ago for 24 hours, used once.
   *
   * @param name the name to be shown as (1..64 bytes of UTF-8)
   * @throws {RangeError} on a bad name
   */
  static async create(identity: Identity, name: string): Promise<Newcomer> {
    const cs = await suiteImpl();
    const { publicPackage, privatePackage } = await makeKeyPackage(identity, name, cs);
    return new Newcomer(cs, publicPackage, privatePackage);
  }

  /**
   * Joins the group with the Welcome the relay passed on.
   *
   * @returns the group, and the admin who added us
   * @throws {GroupRejection} when the Welcome is not for this KeyPackage, MLS refuses it, or the
   *   group is not a room (another suite, not exactly one valid admins extension, a signer who
   *   is not an admin)
   * @throws {TypeError} after a successful join: a KeyPackage is used once
   */
  async join(welcome: Uint8Array): Promise<{ group: RoomGroup; addedBy: GroupMember }> {
    if (this.#joined) throw new TypeError("this KeyPackage has already been used to join");
    const decoded = decodeMessage(welcome);
    if (decoded?.wireformat !== "mls_welcome") throw new GroupRejection("not a Welcome");
    if (decoded.welcome.cipherSuite !== SUITE_NAME) {
      throw new GroupRejection(`a Welcome for suite ${decoded.welcome.cipherSuite}`);
    }
    let state: ClientState;
    let signer: number;
    try {
      ({ state, signer } = await joinWelcome(
        decoded.welcome,
        this.#public,
        this.#private,
        this.#cs,
        clientConfig(this.#book.validate),
      ));
    } catch (error) {
      throw new GroupRejection(`a Welcome MLS refuses: ${messageOf(error)}`, { cause: error });
    }
    if (state.groupContext.groupId.length !== 32) {
      throw new GroupRejection("a Welcome to a group whose id is not 32 bytes");
    }
    let group: RoomGroup;
    try {
      group = await openGroup(this.#cs, state, this.#book);
    } catch (error) {
      throw new GroupRejection(`a Welcome to a group that is not a room: ${messageOf(error)}`, {
        cause: error,
      });
    }
    const addedBy = group.members().find((member) => member.leaf === signer);
    if (addedBy === undefined || !addedBy.admin) {
      throw new GroupRejection("a Welcome from a member who is not an admin");
    }
    this.#joined = true;
    // Used once: the init key has done its only job (the leaf key lives on in the group).
    this.#private.initPrivateKey.fill(0);
    return { group, addedBy };
  }
}
