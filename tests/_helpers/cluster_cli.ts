/**
 * End-to-end fixtures for relays on a NATS cluster (docs/PROTOCOL.md 16): a real 3-node JetStream
 * cluster (tests/_helpers/nats_servers.ts), `securechat relay --nats` processes that share one
 * identity key (the operator's), and room members as `dial R1,R2,R3 --room NAME --json`
 * processes (tests/_helpers/chat.ts parses their events). Also the checks a cluster test makes of
 * what members show: every line once, and the same order on every member.
 *
 * Disposing the fixture stops every process it started (SIGKILL by its handle), then the NATS
 * servers, and removes the identities and stores.
 *
 * What it does not do: speak NATS or the room protocol itself (the processes do).
 *
 * @module
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { ChatProcess } from "./chat.ts";
import { type NatsServers, startNatsServers } from "./nats_servers.ts";
import { type RelayProcess, ViaRelayFixture } from "./relay_cli.ts";

/** A waiting that covers a resume or a NATS failover on a loaded machine (never asserted on). */
export const CLUSTER_WAIT_MS = 45_000;

/** NATS servers, relays on them, and every process started, for one test. */
export class ClusterFixture implements AsyncDisposable {
  readonly via: ViaRelayFixture;
  readonly nats: NatsServers;
  readonly relays: RelayProcess[] = [];

  private constructor(via: ViaRelayFixture, nats: NatsServers) {
    this.via = via;
    this.nats = nats;
  }

  /** A NATS cluster of `nodes` servers and identities for `names` (and the operator). */
  static async create(names: string[], nodes = 3): Promise<ClusterFixture> {
    const nats = await startNatsServers(nodes);
    try {
      return new ClusterFixture(await ViaRelayFixture.create(names), nats);
    } catch (error) {
      await nats.stop();
      throw error;
    }
  }

  /**
   * Starts `count` relays on the cluster, each given every NATS URL (`first` rotates them, so
   * relay i starts its list at node i; the client may still pick another), and waits until each
   * says it is in the cluster. With `together`, all at once on a cluster that has just started
   * (they race to make the stream); otherwise the first makes the stream, then the others start.
   * With `ownNodeOnly`, relay i is given node i's URL alone (a test then knows where it is).
   */
  async startRelays(
    count: number,
    options: { together?: boolean; ownNodeOnly?: boolean } = {},
  ): Promise<RelayProcess[]> {
    const start = (i: number) => {
      const urls = options.ownNodeOnly
        ? [this.nats.urls[i]!]
        : [...this.nats.urls.slice(i), ...this.nats.urls.slice(0, i)];
      return this.via.startRelay({
        args: ["--nats", urls.join(","), "--nats-replicas", String(this.nats.urls.length)],
      });
    };
    const indices = Array.from({ length: count }, (_, i) => i);
    const started = options.together
      ? await Promise.all(indices.map(start))
      : [await start(0), ...await Promise.all(indices.slice(1).map(start))];
    for (const relay of started) await relay.stderr.waitFor(/in the NATS cluster/);
    this.relays.push(...started);
    return started;
  }

  /** The fingerprint of `name`. */
  fp(name: string): string {
    return this.via.fingerprint(name);
  }

  /**
   * `dial R_first,...(every relay, from relay `first` on) --room ROOM --json` as `name`, pinned to
   * the operator's key; `args` are more flags (`--admit FILE`).
   */
  member(name: string, room: string, first: number, args: string[] = []): ChatProcess {
    const addresses = this.relays.map((relay) => relay.address);
    const list = [...addresses.slice(first), ...addresses.slice(0, first)];
    return this.via.chat(name, ["dial", list.join(","), "--room", room, ...this.via.pin, ...args]);
  }

  /**
   * How many clients named "securechat relay" each node has now (from its `/connz`; 0 for a node
   * that does not answer).
   */
  async relayClientsByNode(): Promise<number[]> {
    return await Promise.all(this.nats.nodes.map(async (node) => {
      try {
        const response = await fetch(`${node.monitorUrl}/connz`);
        const connz = await response.json() as { connections?: { name?: string }[] };
        return (connz.connections ?? []).filter((c) => c.name === "securechat relay").length;
      } catch {
        return 0;
      }
    }));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.via[Symbol.asyncDispose]();
    } finally {
      await this.nats.stop();
    }
  }
}

/** The texts of the `message` events `process` showed, in order (its own lines included). */
export function shownLines(process: ChatProcess): string[] {
  return process.out.events
    .filter((event): event is ChatEvent & { type: "message" } => event.type === "message")
    .map((event) => event.text);
}

/** Waits until `process` has shown every line of `lines` (its own included). */
export async function untilLines(
  process: ChatProcess,
  lines: string[],
  timeoutMs = CLUSTER_WAIT_MS,
): Promise<void> {
  const wanted = new Set(lines);
  await process.out.until(
    (events) => {
      const seen = new Set<string>();
      for (const event of events) if (event.type === "message") seen.add(event.text);
      return [...wanted].every((line) => seen.has(line));
    },
    `${process.label} shows all ${lines.length} lines`,
    timeoutMs,
  );
}

/**
 * Asserts that every member showed each line of `lines` exactly once (and no other message), and
 * that any two members showed the lines neither of them wrote in the same order: a member shows
 * its own lines as it types them, and every other line in the room log's order.
 *
 * @param authorOf the member (index into `members`) that wrote a line
 */
export function assertOneOrder(
  members: ChatProcess[],
  lines: string[],
  authorOf: (line: string) => number,
): void {
  const wanted = [...lines].sort();
  for (const member of members) {
    deepStrictEqual([...shownLines(member)].sort(), wanted, `${member.label} shows each line once`);
  }
  for (let a = 0; a < members.length; a++) {
    for (let b = a + 1; b < members.length; b++) {
      const others = (line: string) => authorOf(line) !== a && authorOf(line) !== b;
      const seenByA = shownLines(members[a]!).filter(others);
      const seenByB = shownLines(members[b]!).filter(others);
      deepStrictEqual(
        seenByA,
        seenByB,
        `${members[a]!.label} and ${members[b]!.label} show the lines in one order`,
      );
    }
  }
}

/** Asserts that `process` never showed `fingerprint` leave the room. */
export function assertNoLeave(process: ChatProcess, fingerprint: string): void {
  const leaves = process.out.events.filter((event) =>
    event.type === "leave" && event.member.fingerprint === fingerprint
  );
  strictEqual(leaves.length, 0, `${process.label} shows ${fingerprint} leave`);
}
