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

/** What an Add costs in bytes: the group's share, each member's, and each newcomer's. */
export interface AdmissionSizes {
  /** Commit and Welcome bytes that do not grow with the group or the newcomers. */
  fixed: number;
  /** Welcome bytes per member of the group after the commit (its ratchet tree leaf). */
  perMember: number;
  /** Commit and Welcome bytes per newcomer of the same commit beyond the first. */
  perNewcomer: number;
}

/**
 * The largest group an admin can add `newcomers` members to in one commit: the commit and its
 * Welcome travel in one relay message (type, two u32 lengths, a u16 count and 32 bytes per
 * recipient) of at most MAX_RELAY_MESSAGE_BYTES (13.8), and the Welcome carries the whole tree.
 */
export function largestRoom(sizes: AdmissionSizes, newcomers = 1): number {
  const room = MAX_RELAY_MESSAGE_BYTES - 1 - 4 - 4 - 2 - 32 * newcomers - sizes.fixed -
    sizes.perNewcomer * (newcomers - 1);
  return Math.floor(room / sizes.perMember);
}

/** The sizes of the commit and Welcome adding `newcomers` to a group of `count`. */
async function addSizes(count: number, newcomers = 1) {
  const { admin } = await group(count);
  const admissions = [];
  for (const person of await people(newcomers)) {
    const newcomer = await Newcomer.create(person, "newcomer");
    admissions.push(await admin.checkKeyPackage(newcomer.keyPackage));
  }
  const pending = await admin.prepareCommit({ add: admissions });
  return { members: count + newcomers, bytes: pending.welcome!.length + pending.commit.length };
}

/**
 * Measures {@linkcode AdmissionSizes} on groups of 10 and 40, adding one newcomer and three: a
 * few seconds.
 */
export async function admissionSizes(): Promise<AdmissionSizes> {
  const small = await addSizes(10);
  const large = await addSizes(40);
  const three = await addSizes(38, 3);
  const perMember = (large.bytes - small.bytes) / (large.members - small.members);
  return {
    fixed: large.bytes - perMember * large.members,
    perMember,
    perNewcomer: (three.bytes - large.bytes) / 2,
  };
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
      `Largest room: the Welcome grows by the ratchet tree's leaves; an Add's commit and Welcome must fit one relay message of ${MAX_RELAY_MESSAGE_BYTES} bytes (13.8). The growth per member and per newcomer is measured on groups of 10 and 40.`,
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
  const sizes = await admissionSizes();
  const perMember = sizes.perMember;
  const largest = largestRoom(sizes);
  add({
    name: "Welcome growth per member",
    value: perMember,
    unit: "bytes",
    note: "its ratchet tree leaf: X-Wing and Ed25519 keys, credential, signature",
  });
  add({
    name: "commit and Welcome growth per newcomer of the same commit",
    value: sizes.perNewcomer,
    unit: "bytes",
    note: "its KeyPackage in the Add and its encrypted group secrets",
  });
  add({
    name: "largest room an admin can add a member to",
    value: largest,
    unit: "members",
    note: `its Add's commit and Welcome reach ${MAX_RELAY_MESSAGE_BYTES} bytes, one relay message`,
  });
  add({
    name: "largest room an admin can add 25 newcomers to at once",
    value: largestRoom(sizes, 25),
    unit: "members",
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
