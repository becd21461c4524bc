/**
 * Stand-in members for measuring the relay alone at sizes the real room cannot reach in a bench
 * run: connections that do everything a member does on the wire (real handshake and SessionHello,
 * a KeyPackage, the admin's commits with a Welcome, Group messages) but send opaque bytes behind
 * well-formed MLS headers instead of running MLS. The relay reads only those headers
 * (lib/room/mls_header.ts), so it does for them exactly the work it does for real members: a
 * record opened per message in, one sealed and written per member out, the same queues.
 *
 * The messages have the real ones' sizes: the Welcome as large as a real Welcome for the room
 * (bench/room_mls.ts measures its growth per member), up to the 1 MiB a relay message holds; a
 * commit carries a KeyPackage per newcomer; a Group message the size of a real one.
 *
 * The parent side is {@linkcode StandInMembers}; each process of them runs this script.
 *
 * @module
 */

import { concat, sha256, u16, u64, u8 } from "../lib/core/bytes.ts";
import {
  decodeFromRelay,
  encodeToRelay,
  MAX_RELAY_MESSAGE_BYTES,
  RELAY_MESSAGE,
} from "../lib/chat/relay_messages.ts";
import { generateIdentity } from "../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../lib/protocol/record.ts";
import { MLS_CONTENT_TYPE, MLS_VERSION_10, WIRE_FORMAT } from "../lib/room/mls_header.ts";
import { runInitiator } from "../lib/transport/connection.ts";
import type { SecureConnection } from "../lib/transport/secure_connection.ts";
import { exchangeSessionHello } from "../lib/transport/session_hello.ts";
import { ChildRpc, serveRpc } from "./_rpc.ts";

/** Bytes of a real X-Wing KeyPackage (two X-Wing keys, an Ed25519 key, credential, signature). */
export const KEY_PACKAGE_BYTES = 2_700;
/** A group id; the relay only compares it. */
const GROUP_ID = new Uint8Array(16).fill(0x42);
/** How long stand-ins may take to be admitted, all of them. */
const JOIN_TIMEOUT_MS = 300_000;
/** Members of one process that dial at once. */
const DIAL_AT_ONCE = 25;

/** How the stand-ins size their MLS messages, from bench/room_mls.ts's measurements. */
export interface StandInSizes {
  /** Welcome bytes that do not grow with the room, and per member of the room. */
  welcomeFixed: number;
  welcomePerMember: number;
  /** Bytes of a Group message (a PrivateMessage of a short text). */
  groupMessage: number;
}

interface ProcessOptions {
  port: number;
  count: number;
  firstIndex: number;
  /** Newcomers the admin (index 0) lists in one commit at most. */
  batch: number;
  sizes: StandInSizes;
}

/** RFC 9420 6.3 PrivateMessage: a clear header, then `ciphertextBytes` of random-looking bytes. */
function privateMessage(contentType: number, epoch: bigint, ciphertextBytes: number): Uint8Array {
  const ciphertext = crypto.getRandomValues(new Uint8Array(Math.min(ciphertextBytes, 65536)));
  const body = ciphertextBytes <= 65536
    ? ciphertext
    : concat(new Uint8Array(ciphertextBytes - 65536), ciphertext);
  return concat(
    u16(MLS_VERSION_10),
    u16(WIRE_FORMAT.private_message),
    u8(GROUP_ID.length),
    GROUP_ID,
    u64(epoch),
    u8(contentType),
    u8(0), // authenticated_data
    u8(16),
    new Uint8Array(16), // encrypted_sender_data
    varint(body.length),
    body,
  );
}

/** RFC 9420 2.1.2: a vector length in its shortest form. */
function varint(value: number): Uint8Array {
  if (value < 0x40) return u8(value);
  if (value < 0x4000) return u16(0x4000 | value);
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, 0x80000000 | value);
  return bytes;
}

/** An MLSMessage that is not a PrivateMessage: only its wire format is read. */
function opaque(wireFormat: number, bytes: number): Uint8Array {
  return concat(u16(MLS_VERSION_10), u16(wireFormat), new Uint8Array(Math.max(1, bytes - 4)));
}

/** One stand-in member's connection, read until it ends. */
class StandIn {
  readonly connection: SecureConnection;
  readonly author: Uint8Array;
  welcomed = false;
  received = 0;
  /** The admin's: authors that knocked and are not admitted yet, and commit answers. */
  knocks: Uint8Array[] = [];
  onKnock: () => void = () => {};
  onAnswer: (accepted: boolean) => void = () => {};

  constructor(connection: SecureConnection, author: Uint8Array) {
    this.connection = connection;
    this.author = author;
  }

  async read(): Promise<void> {
    while (true) {
      const data = await this.connection.receive().catch(() => null);
      if (data === null) return;
      this.received++;
      if (data[0] === RELAY_MESSAGE.groupFromRelay) continue; // nothing to do
      const message = decodeFromRelay(data);
      if (message.type === "knock") {
        this.knocks.push(message.sender);
        this.onKnock();
      } else if (message.type === "accepted" || message.type === "refused") {
        this.onAnswer(message.type === "accepted");
      } else if (message.type === "welcome") {
        this.welcomed = true;
      }
    }
  }
}

/** Dials the relay and says SessionHello. */
async function dial(port: number, index: number): Promise<StandIn> {
  const { identity } = await generateIdentity({ type: "ed25519", comment: `s${index}` });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const secure = await runInitiator(conn, {
    identity,
    suites: ["x25519"],
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    timeoutMs: 300_000,
    checkPeer: () => Promise.resolve(),
  });
  await exchangeSessionHello(secure, "chat");
  return new StandIn(secure, await sha256(identity.spki));
}

/** The room's admin: admits whoever knocks, `batch` per commit, one commit per epoch. */
async function admit(admin: StandIn, batch: number, sizes: StandInSizes): Promise<void> {
  let epoch = 0n;
  let members = 1;
  // The first commit (epoch 0) creates nothing new: the relay learns the group from it.
  while (true) {
    while (admin.knocks.length === 0) {
      await new Promise<void>((resolve) => admin.onKnock = resolve);
    }
    const recipients = admin.knocks.splice(0, batch);
    const commit = privateMessage(
      MLS_CONTENT_TYPE.commit,
      epoch,
      2048 + KEY_PACKAGE_BYTES * recipients.length,
    );
    const room = MAX_RELAY_MESSAGE_BYTES - 11 - commit.length - 32 * recipients.length;
    const welcomeBytes = Math.min(
      room,
      Math.round(sizes.welcomeFixed + sizes.welcomePerMember * (members + recipients.length)),
    );
    const answered = new Promise<boolean>((resolve) => admin.onAnswer = resolve);
    await admin.connection.send(encodeToRelay({
      type: "commit",
      commit,
      welcome: opaque(WIRE_FORMAT.welcome, welcomeBytes),
      recipients,
    }));
    if (!await answered) throw new Error(`the relay refused the commit of epoch ${epoch}`);
    epoch++;
    members += recipients.length;
  }
}

/** The stand-ins of one process. */
class StandInPool {
  #members: StandIn[] = [];
  #options: ProcessOptions;
  #adminIn: () => void = () => {};
  /** Resolves once this pool's admin (if it has the room's first member) is in the room. */
  readonly adminIn: Promise<void> = new Promise((resolve) => this.#adminIn = resolve);

  constructor(options: ProcessOptions) {
    this.#options = options;
  }

  async join(): Promise<void> {
    const { port, count, firstIndex, batch, sizes } = this.#options;
    let start = 0;
    if (firstIndex === 0) {
      const admin = await dial(port, 0);
      this.#members.push(admin);
      admin.read();
      admin.welcomed = true;
      // stderr reaches the parent's error message (ChildRpc.tail) when the join times out.
      admit(admin, batch, sizes).catch((error) =>
        Deno.stderr.writeSync(new TextEncoder().encode(`admin: ${error}\n`))
      );
      start = 1;
    }
    this.#adminIn();
    for (let i = start; i < count; i += DIAL_AT_ONCE) {
      const dialed = await Promise.all(
        Array.from(
          { length: Math.min(DIAL_AT_ONCE, count - i) },
          (_, k) => dial(port, firstIndex + i + k),
        ),
      );
      for (const member of dialed) {
        this.#members.push(member);
        member.read();
        await member.connection.send(encodeToRelay({
          type: "key_package",
          keyPackage: opaque(WIRE_FORMAT.key_package, KEY_PACKAGE_BYTES),
        }));
      }
    }
    const deadline = Date.now() + JOIN_TIMEOUT_MS;
    while (this.#members.some((member) => !member.welcomed)) {
      if (Date.now() > deadline) {
        const waiting = this.#members.filter((member) => !member.welcomed).length;
        throw new Error(
          `${waiting} stand-ins still wait for a Welcome after ${JOIN_TIMEOUT_MS} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async send(index: number, bytes: number): Promise<void> {
    const member = this.#members[index];
    if (member === undefined) throw new RangeError(`no stand-in ${index} in this process`);
    const message = privateMessage(MLS_CONTENT_TYPE.application, 0n, bytes - 40);
    await member.connection.send(encodeToRelay({ type: "group", message }));
  }

  received(): number {
    return this.#members.reduce((sum, member) => sum + member.received, 0);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#members.map((member) => member.connection.closeWrite().catch(() => {})),
    );
    for (const member of this.#members) member.connection.close();
  }
}

/** Stand-in members spread over processes of their own. */
export class StandInMembers {
  readonly #rpcs: ChildRpc[];
  readonly #sizes: number[];

  private constructor(rpcs: ChildRpc[], sizes: number[]) {
    this.#rpcs = rpcs;
    this.#sizes = sizes;
  }

  /** Members in all. */
  get size(): number {
    return this.#sizes.reduce((sum, size) => sum + size, 0);
  }

  /** The processes' ids. */
  get pids(): number[] {
    return this.#rpcs.map((rpc) => rpc.pid);
  }

  /**
   * Joins `count` stand-ins to the relay at `port` over `processes` processes; resolves once
   * every one has its Welcome.
   */
  static async join(
    port: number,
    count: number,
    options: { processes: number; batch: number; sizes: StandInSizes },
  ): Promise<StandInMembers> {
    const parts = Math.max(1, Math.min(options.processes, count));
    const sizes = Array.from(
      { length: parts },
      (_, part) => Math.floor(count / parts) + (part < count % parts ? 1 : 0),
    );
    const rpcs = sizes.map(() => ChildRpc.spawn("_room_synthetic.ts"));
    const members = new StandInMembers(rpcs, sizes);
    try {
      let firstIndex = 0;
      const joined: Promise<unknown>[] = [];
      for (const [part, size] of sizes.entries()) {
        const options_: ProcessOptions = {
          port,
          count: size,
          firstIndex,
          batch: options.batch,
          sizes: options.sizes,
        };
        joined.push(rpcs[part]!.call({ call: "join", options: options_ }));
        // The admin (first process) is in the room before anyone knocks.
        if (part === 0) await rpcs[0]!.call({ call: "ready" });
        firstIndex += size;
      }
      await Promise.all(joined);
    } catch (error) {
      const tails = rpcs.map((rpc) => rpc.tail()).join("\n");
      await members.close();
      throw new Error(`${error instanceof Error ? error.message : error}\n${tails}`);
    }
    return members;
  }

  /** Member `member` sends a Group message of `bytes` bytes (relay message and all). */
  async send(member: number, bytes: number): Promise<void> {
    let first = 0;
    for (const [part, size] of this.#sizes.entries()) {
      if (member < first + size) {
        await this.#rpcs[part]!.call({ call: "send", index: member - first, bytes });
        return;
      }
      first += size;
    }
    throw new RangeError(`no stand-in ${member}`);
  }

  /** Relay messages the stand-ins have read, in all. */
  async received(): Promise<number> {
    const counts = await Promise.all(this.#rpcs.map((rpc) => rpc.call({ call: "received" })));
    return (counts as number[]).reduce((sum, n) => sum + n, 0);
  }

  /** Ends every connection and process. */
  async close(): Promise<void> {
    await Promise.all(this.#rpcs.map(async (rpc) => {
      await rpc.call({ call: "close" }).catch(() => {});
      await rpc.close();
    }));
  }
}

if (import.meta.main) {
  let pool: StandInPool | undefined;
  let created: () => void = () => {};
  const poolCreated = new Promise<void>((resolve) => created = resolve);
  await serveRpc(async (request) => {
    switch (request.call) {
      case "join": {
        pool = new StandInPool(request.options as ProcessOptions);
        created();
        return await pool.join();
      }
      case "ready":
        // Once the admin is in: the rest of its process joins meanwhile.
        await poolCreated;
        return await pool!.adminIn;
      case "send":
        return await pool!.send(request.index as number, request.bytes as number);
      case "received":
        return pool?.received() ?? 0;
      case "close":
        await pool?.close();
        return null;
      default:
        throw new Error(`unknown call ${String(request.call)}`);
    }
  });
  Deno.exit(0);
}
