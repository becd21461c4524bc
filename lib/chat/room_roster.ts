/**
 * Who is in the room, as a participant shows it: the group's members (lib/group) turned into the
 * `MemberInfo` the UIs and `--json` share, with names made safe to print and told apart when two
 * members ask for the same one. The group decides membership; this only names it.
 *
 * What it does not do: check anything (MLS and lib/group's credential checks did), or change
 * membership.
 *
 * Mirrors: docs/PROTOCOL.md section 13.7.
 *
 * @module
 */

import type { MemberInfo } from "./chat_events.ts";
import type { GroupMember } from "../group/group.ts";
import { replaceUnsafe } from "../core/text.ts";
import { fingerprintOfAuthor } from "../keys/identity.ts";

/** The first characters of a fingerprint's base64 that tell two same-named members apart. */
const SHORT_PRINT = 6;

/** The room's members, by fingerprint, in the group's leaf order. */
export class Roster {
  #members = new Map<string, MemberInfo>();
  #hostFingerprint: string | undefined;

  /**
   * @param hostFingerprint the relay's identity: when it is a member too, it is the host (the
   *   person at the listener), and shown as such
   */
  constructor(hostFingerprint?: string) {
    this.#hostFingerprint = hostFingerprint;
  }

  /** Replaces the members with the group's current ones. */
  update(members: readonly GroupMember[]): void {
    const counts = new Map<string, number>();
    const names = members.map((member) => replaceUnsafe(member.name) || "member");
    for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
    this.#members.clear();
    members.forEach((member, i) => {
      const name = names[i]!;
      const info: MemberInfo = {
        name: counts.get(name)! > 1
          ? `${name}-${member.fingerprint.slice("SHA256:".length, "SHA256:".length + SHORT_PRINT)}`
          : name,
        fingerprint: member.fingerprint,
      };
      if (member.self) info.self = true;
      if (member.fingerprint === this.#hostFingerprint) info.host = true;
      if (member.admin) info.admin = true;
      this.#members.set(member.fingerprint, info);
    });
  }

  /** Every member, ourselves included. */
  list(): MemberInfo[] {
    return [...this.#members.values()];
  }

  /** Number of members. */
  get size(): number {
    return this.#members.size;
  }

  /** The member with this fingerprint. */
  get(fingerprint: string): MemberInfo | undefined {
    return this.#members.get(fingerprint);
  }

  /** The member with this raw author id. */
  byAuthor(author: Uint8Array): MemberInfo | undefined {
    return author.length === 32 ? this.#members.get(fingerprintOfAuthor(author)) : undefined;
  }

  /**
   * Finds a member by exact name, or by fingerprint (with or without "SHA256:", a prefix of at
   * least 6 characters).
   */
  find(query: string): MemberInfo | undefined {
    const members = this.list();
    const byName = members.filter((member) => member.name === query);
    if (byName.length === 1) return byName[0];
    const bare = query.replace(/^SHA256:/, "");
    if (bare.length < SHORT_PRINT) return undefined;
    const byPrint = members.filter((member) => member.fingerprint.slice(7).startsWith(bare));
    return byPrint.length === 1 ? byPrint[0] : undefined;
  }
}
