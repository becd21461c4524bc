/**
 * What the room's MLS group costs its members (PROTOCOL.md 13.1): the time to commit an Add, to
 * apply someone else's commit, to join from a Welcome, to remove a member, to encrypt and to read
 * an application message, and the sizes of a KeyPackage, a commit and a Welcome, in a group of
 * 100 members against one of 10 (the baseline), through lib/group's RoomGroup and Newcomer with
 * real keys. From the Welcome's growth per member it works out the largest room an admin can
 * still admit someone to: the commit and its Welcome travel in one relay message of at most
 * 1 MiB less 32 bytes (13.8).
 *
 * Only the room's suite (X-Wing, 13.1) is measured: lib/group pins it, and the classical suite
 * the spec compares it with is not reachable through lib/group's API.
 *
 * `deno run -A bench/room_mls.ts [--members 100] [--baseline-members 10] [--repeats 5]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { encodeChat } from "../lib/chat/room_content.ts";
import { MAX_RELAY_MESSAGE_BYTES } from "../lib/chat/relay_messages.ts";
import { generateIdentity, type Identity } from "../lib/keys/identity.ts";
import { Newcomer, RoomGroup } from "../lib/group/group.ts";
import { median } from "./_measure.ts";
import { printHeading, printInfo, printRow, type Row, type Section } from "./_report.ts";

/** Options of {@linkcode benchRoomMls}. */
export interface RoomMlsOptions {
  /** Members of the measured group (default 100). */
  members?: number;
  /** Members of the baseline group (default 10). */
  baselineMembers?: number;
  /** Commits, joins and removals timed per group; the median is kept (default 5). */
  repeats?: number;
}

/** Application messages timed per group. */
const MESSAGES = 200;

interface Figures {
  members: number;
  keyPackageBytes: number;
  commitMs: number;
  applyMs: number;
  joinMs: number;
  removeMs: number;
  applyRemoveMs: number;
  commitBytes: number;
  welcomeBytes: number;
  removeBytes: number;
  encryptMs: number;
  decryptMs: number;
  messageBytes: number;
}

async function people(count: number): Promise<Identity[]> {
  const made = [];
  for (let i = 0; i < count; i++) {
    made.push((await generateIdentity({ type: "ed25519", comment: `m${i}` })).identity);
  }
  return made;
}

async function timed<T>(step: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await step();
  return [result, performance.now() - started];
}

/**
 * A group of `count`: an admin who added everyone in one commit, and one member (the observer)
 * who joined from that Welcome and applies every later commit. The others never join: nothing
 * measured here depends on them.
 */
async function group(count: number): Promise<{ admin: RoomGroup; observer: RoomGroup }> {
  const [first, ...rest] = await people(count);
  const admin = await RoomGroup.create(first!, "admin");
  const newcomers = await Promise.all(rest.map((person, i) => Newcomer.create(person, `m${i}`)));
  const admissions = [];
  for (const newcomer of newcomers) {
    admissions.push(await admin.checkKeyPackage(newcomer.keyPackage));
  }
  const pending = await admin.prepareCommit({ add: admissions });
  await admin.confirmCommit(pending);
  const { group: observer } = await newcomers[0]!.join(pending.welcome!);
  return { admin, observer };
}

async function measure(count: number, repeats: number): Promise<Figures> {
  const { admin, observer } = await group(count);
  const newcomerIds = await people(repeats);
  const commit: number[] = [];
  const apply: number[] = [];
  const join: number[] = [];
  const remove: number[] = [];
  const applyRemove: number[] = [];
  let sizes = { keyPackage: 0, commit: 0, welcome: 0, remove: 0 };
  for (const person of newcomerIds) {
    const newcomer = await Newcomer.create(person, "newcomer");
    const admission = await admin.checkKeyPackage(newcomer.keyPackage);
    const [pending, commitMs] = await timed(async () => {
      const made = await admin.prepareCommit({ add: [admission] });
      await admin.confirmCommit(made);
      return made;
    });
    commit.push(commitMs);
    apply.push((await timed(() => observer.process(pending.commit)))[1]);
    const [joined, joinMs] = await timed(() => newcomer.join(pending.welcome!));
    join.push(joinMs);
    // Removed again, so the group stays at `count` members.
    const leaving = admin.member(joined.group.self().author)!;
    const [removal, removeMs] = await timed(async () => {
      const made = await admin.prepareCommit({ remove: [leaving] });
      await admin.confirmCommit(made);
      return made;
    });
    remove.push(removeMs);
    applyRemove.push((await timed(() => observer.process(removal.commit)))[1]);
    sizes = {
      keyPackage: newcomer.keyPackage.length,
      commit: pending.commit.length,
      welcome: pending.welcome!.length,
      remove: removal.commit.length,
    };
  }
  const content = encodeChat({ kind: "text", timestamp: Date.now(), text: "x".repeat(100) });
  const messages: Uint8Array[] = [];
  const [, encryptMs] = await timed(async () => {
    for (let i = 0; i < MESSAGES; i++) messages.push(await admin.encrypt(content));
  });
  const [, decryptMs] = await timed(async () => {
    for (const message of messages) await observer.process(message);
  });
  return {
    members: count,
    keyPackageBytes: sizes.keyPackage,
    commitMs: median(commit),
    applyMs: median(apply),
    joinMs: median(join),
    removeMs: median(remove),
    applyRemoveMs: median(applyRemove),
    commitBytes: sizes.commit,
    welcomeBytes: sizes.welcome,
    removeBytes: sizes.remove,
    encryptMs: encryptMs / MESSAGES,
    decryptMs: decryptMs / MESSAGES,
    messageBytes: messages[0]!.length,
  };
}

/**
 * The largest group an admin can add one member to, from the sizes of that Add's commit and
 * Welcome at two group sizes: the Welcome grows by one ratchet tree leaf per member, and the
 * relay message carrying both (type, two u32 lengths, a u16 count, one recipient) may be at most
 * MAX_RELAY_MESSAGE_BYTES (13.8).
 */
function largestFrom(
  small: Pick<Figures, "members" | "welcomeBytes" | "commitBytes">,
  large: Pick<Figures, "members" | "welcomeBytes" | "commitBytes">,
): { perMember: number; largest: number } {
  const perMember = (large.welcomeBytes - small.welcomeBytes) / (large.members - small.members);
  const fixed = large.welcomeBytes + large.commitBytes - perMember * large.members;
  const room = MAX_RELAY_MESSAGE_BYTES - 1 - 4 - 4 - 2 - 32 - fixed;
  return { perMember, largest: Math.floor(room / perMember) };
}

/** The sizes of an Add's commit and Welcome in a group of `count`. */
async function addSizes(count: number) {
  const { admin } = await group(count);
  const [person] = await people(1);
  const newcomer = await Newcomer.create(person!, "newcomer");
  const pending = await admin.prepareCommit({
    add: [await admin.checkKeyPackage(newcomer.keyPackage)],
  });
  return {
    members: count,
    welcomeBytes: pending.welcome!.length,
    commitBytes: pending.commit.length,
  };
}

/**
 * The largest room an admin can still add a member to (the Welcome, which carries the whole
 * ratchet tree, must fit one relay message), measured on groups of 10 and 40: a few seconds.
 */
export async function largestAdmissibleRoom(): Promise<number> {
  return largestFrom(await addSizes(10), await addSizes(40)).largest;
}

/**
 * Runs the MLS cost benchmark, printing each figure as it is measured.
 *
 * @returns the section for bench/RESULTS.md
 */
export async function benchRoomMls(options: RoomMlsOptions = {}): Promise<Section> {
  const size = options.members ?? 100;
  const baseSize = options.baselineMembers ?? 10;
  const repeats = options.repeats ?? 5;
  const section: Section = {
    title: `Room MLS costs (${size} members)`,
    notes: [
      `lib/group's RoomGroup and Newcomer in one process, suite X-Wing (PROTOCOL.md 13.1), Ed25519 identities; a group of ${size} members against one of ${baseSize} (the baseline), each made by one commit.`,
      `Commit: an admin adds one newcomer (prepare and confirm: the path and the Welcome); apply: another member processes that commit; join: the newcomer joins from the Welcome (every leaf's credential checked); remove: the admin removes it again. Median of ${repeats}. Encrypt and read: ${MESSAGES} application messages of 100 bytes of text, per message.`,
      `Largest room: the Welcome grows by the ratchet tree's leaves; an Add's commit and Welcome must fit one relay message of ${MAX_RELAY_MESSAGE_BYTES} bytes (13.8).`,
    ],
    rows: [],
  };
  printHeading(section);
  const add = (row: Row) => {
    section.rows.push(row);
    printRow(row);
  };
  const base = await measure(baseSize, repeats);
  const big = await measure(size, repeats);
  const baseName = `${baseSize} members`;
  const pair = (name: string, unit: string, pick: (f: Figures) => number, note?: string) => {
    add({ name: `${name}, ${baseName}`, value: pick(base), unit, note: "baseline" });
    add({
      name: `${name}, ${size} members`,
      value: pick(big),
      unit,
      baseline: baseName,
      ratio: pick(big) / pick(base),
      ...(note ? { note } : {}),
    });
  };
  pair("commit adding one member", "ms", (f) => f.commitMs);
  pair("apply another member's Add", "ms", (f) => f.applyMs);
  pair("join from a Welcome", "ms", (f) => f.joinMs);
  pair("commit removing one member", "ms", (f) => f.removeMs);
  pair("apply another member's Remove", "ms", (f) => f.applyRemoveMs);
  pair("encrypt an application message", "ms", (f) => f.encryptMs);
  pair("read an application message", "ms", (f) => f.decryptMs);
  add({ name: "KeyPackage", value: big.keyPackageBytes / 1024, unit: "KiB" });
  pair("commit adding one member", "KiB", (f) => f.commitBytes / 1024);
  pair("Welcome for one newcomer", "KiB", (f) => f.welcomeBytes / 1024);
  pair("commit removing one member", "KiB", (f) => f.removeBytes / 1024);
  add({ name: "application message, 100 bytes of text", value: big.messageBytes, unit: "bytes" });
  const { perMember, largest } = largestFrom(base, big);
  add({
    name: "Welcome growth per member",
    value: perMember,
    unit: "bytes",
    note: `from ${baseSize} to ${size} members`,
  });
  add({
    name: "largest room an admin can add a member to",
    value: largest,
    unit: "members",
    note: `its Add's commit and Welcome reach ${MAX_RELAY_MESSAGE_BYTES} bytes, one relay message`,
  });
  printInfo(`a room of more than ${largest} members can admit nobody: its Welcome outgrows 1 MiB`);
  return section;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      members: { type: "string" },
      "baseline-members": { type: "string" },
      repeats: { type: "string" },
    },
  });
  const number = (text: string | undefined) => text === undefined ? undefined : Number(text);
  await benchRoomMls({
    ...(values.members ? { members: number(values.members)! } : {}),
    ...(values["baseline-members"] ? { baselineMembers: number(values["baseline-members"])! } : {}),
    ...(values.repeats ? { repeats: number(values.repeats)! } : {}),
  });
}
