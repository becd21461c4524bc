/**
 * Fixtures for the MLS group tests: rooms of real members with real keys, commits delivered to
 * everyone as the relay would, and "raw" members driven with ts-mls directly, to play a rogue
 * member that sends what our code never would.
 *
 * @module
 */

import { acceptAll } from "ts-mls";
import { generateIdentity, type Identity } from "../../lib/keys/identity.ts";
import {
  type Admission,
  type CommitChange,
  type GroupEvent,
  Newcomer,
  type PendingCommit,
  RoomGroup,
} from "../../lib/group/group.ts";
import { makeKeyPackage } from "../../lib/group/key_package.ts";
import {
  clientConfig,
  type ClientState,
  decodeMessage,
  emptyPskIndex,
  encodeMlsMessage,
  joinGroup,
  type KeyPackage,
  MLS_VERSION,
  type PrivateKeyPackage,
  processMessage,
  SUITE_ID,
  suiteImpl,
} from "../../lib/group/mls.ts";
import { CredentialBook } from "../../lib/group/group_members.ts";

const pool: Identity[] = [];

/** `count` Ed25519 identities, made once and shared. */
export async function identities(count: number): Promise<Identity[]> {
  while (pool.length < count) {
    const made = await generateIdentity({ type: "ed25519", comment: `member${pool.length}` });
    pool.push(made.identity);
  }
  return pool.slice(0, count);
}

/** A room of `names.length` members: the first creates it and adds the others in one commit. */
export async function room<const Names extends readonly string[]>(
  ...names: Names
): Promise<{ -readonly [K in keyof Names]: RoomGroup }> {
  const people = await identities(names.length);
  const creator = await RoomGroup.create(people[0]!, names[0]!);
  type Members = { -readonly [K in keyof Names]: RoomGroup };
  if (names.length === 1) return [creator] as unknown as Members;
  const newcomers = await Promise.all(
    names.slice(1).map((name, i) => Newcomer.create(people[i + 1]!, name)),
  );
  const admissions: Admission[] = [];
  for (const newcomer of newcomers) {
    admissions.push(await creator.checkKeyPackage(newcomer.keyPackage));
  }
  const pending = await creator.prepareCommit({ add: admissions });
  await creator.confirmCommit(pending);
  const joined = [];
  for (const newcomer of newcomers) joined.push((await newcomer.join(pending.welcome!)).group);
  return [creator, ...joined] as unknown as Members;
}

/**
 * Commits `change` as `committer`, confirms it (the relay's Accepted) and has every one of
 * `others` process it.
 */
export async function commitAll(
  committer: RoomGroup,
  others: RoomGroup[],
  change: CommitChange = {},
): Promise<{ pending: PendingCommit; events: GroupEvent[] }> {
  const pending = await committer.prepareCommit(change);
  const events: GroupEvent[] = [await committer.confirmCommit(pending)];
  for (const other of others) events.push(await other.process(pending.commit));
  return { pending, events };
}

/** A member driven with ts-mls directly: its state is ours to misuse. */
export interface RawMember {
  state: ClientState;
  identity: Identity;
}

/** A KeyPackage made for a raw member: its two halves, and the MLSMessage that carries it. */
export interface RawKeyPackage {
  publicPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
  /** The public half as an MLSMessage (mls_key_package), as a member sends it. */
  message: Uint8Array;
}

/** A KeyPackage of `identity` under `name`, as our members make them. */
export async function rawKeyPackage(identity: Identity, name: string): Promise<RawKeyPackage> {
  const { publicPackage, privatePackage } = await makeKeyPackage(identity, name, await suiteImpl());
  const message = encodeMlsMessage({
    version: MLS_VERSION,
    wireformat: "mls_key_package",
    keyPackage: publicPackage,
  });
  return { publicPackage, privatePackage, message };
}

/**
 * Joins with ts-mls directly from `welcome` (an MLSMessage) made for `keyPackage`, checking
 * credentials as our members do.
 *
 * @throws {TypeError} when `welcome` is not a Welcome
 */
export async function rawJoin(
  welcome: Uint8Array,
  keyPackage: RawKeyPackage,
): Promise<ClientState> {
  const decoded = decodeMessage(welcome);
  if (decoded?.wireformat !== "mls_welcome") throw new TypeError("not a Welcome");
  return await joinGroup(
    decoded.welcome,
    keyPackage.publicPackage,
    keyPackage.privatePackage,
    emptyPskIndex,
    await suiteImpl(),
    undefined,
    undefined,
    clientConfig(new CredentialBook(SUITE_ID).validate),
  );
}

/**
 * Adds a raw member to a room: `admin` admits it (a normal commit every member of `others` and
 * every raw member of `raws` processes), and it joins with ts-mls directly ({@linkcode rawJoin}).
 */
export async function addRawMember(
  admin: RoomGroup,
  others: RoomGroup[],
  identity: Identity,
  name: string,
  raws: RawMember[] = [],
): Promise<RawMember> {
  const keyPackage = await rawKeyPackage(identity, name);
  const admission = await admin.checkKeyPackage(keyPackage.message);
  const { pending } = await commitAll(admin, others, { add: [admission] });
  for (const raw of raws) await rawProcess(raw, pending.commit);
  return { state: await rawJoin(pending.welcome!, keyPackage), identity };
}

/** Has a raw member process a message, accepting everything, and keeps its new state. */
export async function rawProcess(member: RawMember, bytes: Uint8Array): Promise<void> {
  const message = decodeMessage(bytes);
  if (message?.wireformat !== "mls_private_message") throw new TypeError("not a PrivateMessage");
  const result = await processMessage(
    message,
    member.state,
    emptyPskIndex,
    acceptAll,
    await suiteImpl(),
  );
  member.state = result.newState;
}
