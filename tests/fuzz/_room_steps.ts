/**
 * The steps of room_fuzz_test.ts: what an attacker that is a member of the room sends (real MLS
 * messages it made, mutated or tampered with where the relay does not look, replays, another
 * group's messages and commits, stale commits, valid MLS around bad content, tampered Sealed
 * messages, Directs of junk, garbage, a message over the size limit, an honest commit, a
 * member's KeyPackage), and what an outsider sends, each as the relay message's bytes and a note
 * saying how it was made. Honest messages are written into `sent` before they go, with their
 * sender and recipient, for the check of what members show.
 *
 * @module
 */

import { concat, u16, u64, u8 } from "../../lib/core/bytes.ts";
import { encodeToRelay, MAX_RELAY_MESSAGE_BYTES } from "../../lib/chat/relay_messages.ts";
import {
  decodeRoomContent,
  encodeChat,
  encodePrivate,
  encodeSealed,
} from "../../lib/chat/room_content.ts";
import { authorOf, type Identity } from "../../lib/keys/identity.ts";
import { Newcomer, RoomGroup } from "../../lib/group/group.ts";
import { varint, vector } from "../_helpers/mls_messages.ts";
import type { Prng } from "../_helpers/prng.ts";
import type { TestMember } from "../_helpers/room.ts";
import { hex, mutateMany } from "./_fuzz.ts";
import type { RoomAttacker } from "./_room_attacker.ts";

/** What was sent as it may be shown: by whom, and to whom when private. */
export interface Sent {
  from: string;
  to?: string;
  /** It may arrive too late to be shown (a message of an epoch the room left). */
  late?: true;
}

/** Everything the round's steps share. */
export interface Context {
  prng: Prng;
  attacker: RoomAttacker;
  honest: TestMember[];
  sent: Map<string, Sent>;
  /** Commits (ours or the attacker's) of epochs the room may have left. */
  stale: { epoch: bigint; commit: Uint8Array }[];
  /** MLS messages the attacker sent, to replay. */
  own: Uint8Array[];
  marker: () => string;
}

/** What one step sends; `undefined` when it has nothing to send now. */
export type Made = {
  bytes: Uint8Array;
  how: string;
  pending?: Awaited<ReturnType<RoomGroup["prepareCommit"]>>;
};

export const chat = (text: string) => encodeChat({ kind: "text", timestamp: Date.now(), text });
export const groupMessage = (mls: Uint8Array) => concat(u8(0x42), mls);

const elsewhere = new Map<string, RoomGroup>();
/** A group of the attacker's own, which the room's relay must not mix with the room's. */
async function otherGroup(identity: Identity): Promise<RoomGroup> {
  let group = elsewhere.get(identity.fingerprint);
  if (!group) {
    elsewhere.set(identity.fingerprint, group = await RoomGroup.create(identity, "other"));
  }
  return group;
}

const keyPackages = new Map<string, Uint8Array>();
/** A genuine KeyPackage of `identity`, made once (a newcomer's, or one a member should not send). */
async function keyPackageOf(identity: Identity): Promise<Uint8Array> {
  let bytes = keyPackages.get(identity.fingerprint);
  if (!bytes) {
    keyPackages.set(
      identity.fingerprint,
      bytes = (await Newcomer.create(identity, "x")).keyPackage,
    );
  }
  return bytes;
}

/** A PrivateMessage header of the room around seeded bytes, `size` bytes in all. */
function fakePrivate(ctx: Context, size: number, contentType = 1): Uint8Array {
  const { groupId, epoch } = ctx.attacker.view;
  const head = concat(u16(1), u16(2), vector(groupId!), u64(epoch!), u8(contentType));
  const fixed = head.length + 1 + 29;
  const ciphertext = size - fixed - varint(size - fixed).length;
  return concat(
    head,
    vector(new Uint8Array(0)),
    vector(ctx.prng.bytes(28)),
    vector(ctx.prng.bytes(ciphertext)),
  );
}

async function legit(ctx: Context, text: string, to?: TestMember): Promise<Uint8Array> {
  const group = ctx.attacker.group!;
  const content = to === undefined ? chat(text) : encodeSealed(
    await group.seal(
      group.member(authorOf(to.identity.fingerprint))!,
      encodePrivate(Date.now(), text),
    ),
  );
  const mls = await group.encrypt(content);
  ctx.sent.set(text, {
    from: ctx.attacker.identity.fingerprint,
    ...(to ? { to: to.identity.fingerprint } : {}),
  });
  ctx.own.push(mls);
  return mls;
}

/** The steps of a member attacker, by weight. */
export const MEMBER_STEPS: [number, string, (ctx: Context) => Promise<Made | undefined>][] = [
  [
    8,
    "honest",
    async (ctx) => ({
      bytes: groupMessage(await legit(ctx, `legit ${ctx.marker()}`)),
      how: "honest",
    }),
  ],
  [5, "honest private", async (ctx) => {
    const to = ctx.prng.pick(ctx.honest);
    return {
      bytes: groupMessage(await legit(ctx, `whisper ${ctx.marker()}`, to)),
      how: `private to ${to.identity.comment}`,
    };
  }],
  [18, "mutated MLS", async (ctx) => {
    const mls = await ctx.attacker.group!.encrypt(chat(`FORGED ${ctx.marker()}`));
    const { bytes, how } = mutateMany(ctx.prng, mls, {
      donors: [...ctx.attacker.heard, ...ctx.own],
    });
    return { bytes: groupMessage(bytes), how };
  }],
  [14, "tampered PrivateMessage", async (ctx) => {
    const mls = await ctx.attacker.group!.encrypt(chat(`FORGED ${ctx.marker()}`));
    const { bytes, how } = tamper(ctx, mls);
    return { bytes: groupMessage(bytes), how };
  }],
  [12, "mutated relay message", async (ctx) => {
    const base = await baseRelayMessage(ctx);
    const { bytes, how } = mutateMany(ctx.prng, base.bytes);
    return { bytes, how: `${base.how}, then ${how}` };
  }],
  [10, "replay", (ctx) => {
    const pool = [...ctx.attacker.heard, ...ctx.own];
    if (pool.length === 0) return Promise.resolve(undefined);
    return Promise.resolve({ bytes: groupMessage(ctx.prng.pick(pool)), how: "replay" });
  }],
  [7, "another group's", async (ctx) => {
    const other = await otherGroup(ctx.attacker.identity);
    if (ctx.prng.chance(0.6)) {
      return {
        bytes: groupMessage(await other.encrypt(chat(`ELSEWHERE ${ctx.marker()}`))),
        how: "message",
      };
    }
    const pending = await other.prepareCommit({});
    other.discardCommit(pending);
    return {
      bytes: encodeToRelay({ type: "commit", commit: pending.commit, recipients: [] }),
      how: "commit",
    };
  }],
  [7, "stale commit", (ctx) => {
    const stale = ctx.stale.filter((c) => c.epoch < ctx.attacker.epoch!);
    if (stale.length === 0) return Promise.resolve(undefined);
    const { commit, epoch } = ctx.prng.pick(stale);
    const welcome = ctx.prng.chance(0.3) ? concat(u16(1), u16(3), ctx.prng.bytes(200)) : undefined;
    const recipients = welcome ? [authorOf(ctx.prng.pick(ctx.honest).identity.fingerprint)] : [];
    return Promise.resolve({
      bytes: encodeToRelay({ type: "commit", commit, recipients, ...(welcome ? { welcome } : {}) }),
      how: `commit of epoch ${epoch}${welcome ? " with a Welcome" : ""}`,
    });
  }],
  [7, "valid MLS, bad content", async (ctx) => {
    const content = mutateMany(ctx.prng, chat(`FORGED ${ctx.marker()}`)).bytes;
    let shown: string | undefined;
    try {
      const decoded = decodeRoomContent(content);
      if (decoded.type === "chat") shown = decoded.text;
    } catch {
      // Refused by every member: shown as rejected.
    }
    // Content that still decodes is what the attacker said: it may be shown, once.
    if (shown !== undefined) {
      if (ctx.sent.has(shown)) return undefined;
      ctx.sent.set(shown, { from: ctx.attacker.identity.fingerprint });
    }
    return {
      bytes: groupMessage(await ctx.attacker.group!.encrypt(content)),
      how: hex(content, 16),
    };
  }],
  [5, "tampered Sealed", async (ctx) => {
    const group = ctx.attacker.group!;
    const to = ctx.prng.pick(ctx.honest);
    const sealed = await group.seal(
      group.member(authorOf(to.identity.fingerprint))!,
      encodePrivate(Date.now(), `FORGED ${ctx.marker()}`),
    );
    const { bytes, how } = mutateMany(ctx.prng, sealed);
    return {
      bytes: groupMessage(await group.encrypt(encodeSealed(bytes))),
      how: `to ${to.identity.comment}: ${how}`,
    };
  }],
  [6, "Direct of junk", (ctx) => {
    const who = ctx.prng.int(4);
    const recipient = who < 2
      ? authorOf(ctx.honest[who]!.identity.fingerprint)
      : who === 2
      ? ctx.attacker.peer.author
      : ctx.prng.bytes(32);
    const bytes = ctx.prng.bytes(ctx.prng.between(1, 2000));
    return Promise.resolve({
      bytes: encodeToRelay({ type: "direct", recipient, bytes }),
      how: `to ${["alice", "bob", "itself", "nobody"][who]}`,
    });
  }],
  [
    4,
    "garbage",
    (ctx) => Promise.resolve({ bytes: ctx.prng.bytes(ctx.prng.length(300)), how: "random bytes" }),
  ],
  [2, "over the size limit", (ctx) => {
    const size = ctx.prng.chance(0.4)
      ? MAX_RELAY_MESSAGE_BYTES
      : MAX_RELAY_MESSAGE_BYTES + ctx.prng.between(1, 32);
    return Promise.resolve({
      bytes: groupMessage(fakePrivate(ctx, size - 1)),
      how: `${size} bytes`,
    });
  }],
  [3, "honest commit", async (ctx) => {
    const pending = await ctx.attacker.group!.prepareCommit({});
    ctx.stale.push({ epoch: pending.epoch, commit: pending.commit });
    return {
      bytes: encodeToRelay({ type: "commit", commit: pending.commit, recipients: [] }),
      how: "an Update",
      pending,
    };
  }],
  [2, "member's KeyPackage", async (ctx) => ({
    bytes: encodeToRelay({
      type: "key_package",
      keyPackage: await keyPackageOf(ctx.attacker.identity),
    }),
    how: "KeyPackage",
  })],
];

/** RFC 9420 section 6.3: where a PrivateMessage's fields lie (it is our own, well formed). */
function fieldsOf(
  mls: Uint8Array,
): { epoch: number; contentType: number; vectors: [number, number][] } {
  const vectors: [number, number][] = [];
  let at = 4;
  const next = () => {
    const size = [1, 2, 4][mls[at]! >> 6]!;
    let length = mls[at]! & 0x3f;
    for (let i = 1; i < size; i++) length = length * 256 + mls[at + i]!;
    vectors.push([at + size, at + size + length]);
    at += size + length;
  };
  next();
  const epoch = at;
  const contentType = at + 8;
  at += 9;
  for (let i = 0; i < 3; i++) next();
  return { epoch, contentType, vectors };
}

/**
 * A PrivateMessage changed where the relay does not look, so that it reaches the members: bits of
 * the sender data or ciphertext flipped, another epoch or content type in the clear header (both
 * bound into the AEAD), or vectors swapped with another message's. MLS must refuse each.
 */
function tamper(ctx: Context, mls: Uint8Array): { bytes: Uint8Array; how: string } {
  const { prng } = ctx;
  const fields = fieldsOf(mls);
  const out = mls.slice();
  switch (prng.int(4)) {
    case 0: {
      const [start, end] = fields.vectors[prng.between(2, 3)]!;
      const bit = start * 8 + prng.int((end - start) * 8);
      out[bit >>> 3]! ^= 1 << (bit & 7);
      return { bytes: out, how: `flip bit ${bit}` };
    }
    case 1: {
      const epoch = ctx.attacker.view.epoch! + BigInt(prng.pick([-2, -1, 1, 2]));
      out.set(u64(epoch < 0n ? 1n : epoch), fields.epoch);
      return { bytes: out, how: `epoch ${epoch}` };
    }
    case 2:
      out[fields.contentType] = 2; // a proposal: the relay passes it on, MLS binds the type
      return { bytes: out, how: "content type proposal" };
    default: {
      const donor = ctx.own.at(-1);
      if (!donor) return { bytes: concat(out, u8(0)), how: "a trailing byte" };
      const theirs = fieldsOf(donor);
      const [start] = fields.vectors[2]!;
      const [donorStart] = theirs.vectors[2]!;
      const bytes = concat(out.subarray(0, start - 1), donor.subarray(donorStart - 1));
      return { bytes, how: "sender data and ciphertext of another message" };
    }
  }
}

/** A valid relay message to mutate. */
async function baseRelayMessage(ctx: Context): Promise<{ bytes: Uint8Array; how: string }> {
  const stale = ctx.stale.filter((c) => c.epoch < (ctx.attacker.epoch ?? 0n));
  switch (ctx.prng.int(ctx.attacker.group ? 4 : 3)) {
    case 0:
      return {
        bytes: encodeToRelay({
          type: "key_package",
          keyPackage: await keyPackageOf(ctx.attacker.identity),
        }),
        how: "KeyPackage",
      };
    case 1:
      return {
        bytes: encodeToRelay({
          type: "direct",
          recipient: authorOf(ctx.prng.pick(ctx.honest).identity.fingerprint),
          bytes: ctx.prng.bytes(60),
        }),
        how: "Direct",
      };
    case 2:
      if (stale.length > 0) {
        return {
          bytes: encodeToRelay({
            type: "commit",
            commit: ctx.prng.pick(stale).commit,
            recipients: [],
          }),
          how: "stale Commit",
        };
      }
      return { bytes: groupMessage(concat(u16(1), u16(2), ctx.prng.bytes(80))), how: "Group" };
    default:
      return {
        bytes: groupMessage(await ctx.attacker.group!.encrypt(chat(`FORGED ${ctx.marker()}`))),
        how: "Group",
      };
  }
}

/** The steps of an outsider: everything is a violation but its first KeyPackage. */
export const OUTSIDER_STEPS: [number, string, (ctx: Context) => Promise<Made | undefined>][] = [
  [
    3,
    "KeyPackage",
    async (ctx) => ({
      bytes: encodeToRelay({
        type: "key_package",
        keyPackage: await keyPackageOf(ctx.attacker.identity),
      }),
      how: "genuine",
    }),
  ],
  [3, "mutated KeyPackage", async (ctx) => {
    const { bytes, how } = mutateMany(ctx.prng, await keyPackageOf(ctx.attacker.identity));
    return { bytes: concat(u8(0x40), bytes), how };
  }],
  [
    3,
    "Group",
    async (ctx) => ({
      bytes: groupMessage(
        await (await otherGroup(ctx.attacker.identity)).encrypt(chat(`OUTSIDE ${ctx.marker()}`)),
      ),
      how: "from outside",
    }),
  ],
  [2, "Commit", (ctx) => {
    if (ctx.stale.length === 0) return Promise.resolve(undefined);
    return Promise.resolve({
      bytes: encodeToRelay({
        type: "commit",
        commit: ctx.prng.pick(ctx.stale).commit,
        recipients: [],
      }),
      how: "from outside",
    });
  }],
  [
    2,
    "Direct",
    (ctx) =>
      Promise.resolve({
        bytes: encodeToRelay({
          type: "direct",
          recipient: authorOf(ctx.honest[0]!.identity.fingerprint),
          bytes: ctx.prng.bytes(40),
        }),
        how: "from outside",
      }),
  ],
  [3, "mutated relay message", async (ctx) => {
    const base = await baseRelayMessage(ctx);
    const { bytes, how } = mutateMany(ctx.prng, base.bytes);
    return { bytes, how: `${base.how}, then ${how}` };
  }],
  [
    1,
    "garbage",
    (ctx) => Promise.resolve({ bytes: ctx.prng.bytes(ctx.prng.length(300)), how: "random bytes" }),
  ],
];

export function pickStep<T>(prng: Prng, steps: [number, string, T][]): [string, T] {
  let roll = prng.int(steps.reduce((sum, [weight]) => sum + weight, 0));
  for (const [weight, name, step] of steps) {
    if ((roll -= weight) < 0) return [name, step];
  }
  throw new Error("unreachable");
}
