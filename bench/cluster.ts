/**
 * Relay cluster benchmark (issue 15, PROTOCOL.md 16): rooms shared by relays over a NATS cluster
 * with JetStream, against the single relay of section 15, same machine, same run. Real
 * nats-server processes (bench/_cluster_nats.ts, routes direct), relay processes running what
 * `securechat relay --nats` runs (bench/_cluster_relay_process.ts, which counts the records it
 * writes), and members in processes of their own that enter rooms by the Room request of 15.5
 * (bench/_cluster_members.ts, real MLS).
 *
 * Figures: a room's aggregate deliveries a second with 1, 2 and 3 relays, counted where the relays
 * write them and where the members show them; the extra latency of a hop across relays against a
 * delivery on the same relay, and against a single relay; the relays' CPU per delivery, clustered
 * and not; bytes through NATS against bytes through a splice (why 16.5 redirects instead of
 * forwarding); and a projection of what 10 machines would carry, from those figures.
 *
 * `deno run -A bench/cluster.ts [--members 30] [--messages 450] [--rounds 50] [--processes 2]
 * [--size 256MiB] [--nats-nodes 3]`, or `deno task bench --only cluster`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { natsThroughput, spliceThroughput } from "./_cluster_bytes.ts";
import { startBenchNats } from "./_cluster_nats.ts";
import { type BenchRelay, BenchRoom, relayKey, startBenchRelay } from "./_cluster_room.ts";
import { formatSize, MiB, parseSize } from "./_measure.ts";
import { printHeading, printInfo, printRow, type Row, type Section } from "./_report.ts";
import { sleep } from "./_room_members.ts";
import { type Projection, projection } from "./_cluster_projection.ts";

/** Options of {@linkcode benchCluster}. */
export interface ClusterOptions {
  /** Timed latency rounds (default 50), after 5 warm-up rounds. */
  rounds?: number;
  /** Members of the throughput room (default 30). */
  members?: number;
  /** Messages sent at once in the throughput room (default 450). */
  messages?: number;
  /** Member processes of the throughput room (default 2). */
  processes?: number;
  /** Bytes moved through NATS and through a splice (default 256 MiB). */
  bytes?: number;
  /** NATS nodes (default 3; 1 for a single node, replicas 1). */
  natsNodes?: number;
}

const WARMUP_ROUNDS = 5;
/** Timed rounds start this long after the previous one arrived everywhere: an idle room. */
const ROUND_GAP_MS = 150;
/** The relay allows 20 Group messages a second per member, bursts of 100 (13.8). */
const MAX_PER_SENDER = 15;
const TIMEOUT_MS = 600_000;

/** Nearest-rank percentile (`p` in 0..100). */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

interface LatencySamples {
  /** End-to-end, per receiver: send to its Participant showing the message. */
  endToEnd: number[];
  /** Relay-side, per round: the sender's relay read it to that relay's last copy written. */
  relay: number[];
}

/** One timed message: who had it when, and what each relay noted. */
async function latencyRound(
  room: BenchRoom,
  relays: BenchRelay[],
  sender: number,
  text: string,
): Promise<{ same: LatencySamples; cross: LatencySamples }> {
  await Promise.all(relays.map((relay) => relay.track(true)));
  const arriving = room.arrivals(text, sender, TIMEOUT_MS);
  const sentAt = await room.send(sender, text);
  const arrivals = await arriving;
  const timings = await Promise.all(relays.map((relay) => relay.timings()));
  await Promise.all(relays.map((relay) => relay.track(false)));
  const home = room.relayOf[sender]!;
  const result = {
    same: { endToEnd: [] as number[], relay: [] as number[] },
    cross: { endToEnd: [] as number[], relay: [] as number[] },
  };
  for (const { member, time } of arrivals) {
    (room.relayOf[member] === home ? result.same : result.cross).endToEnd.push(time - sentAt);
  }
  const only = (index: number) => {
    const entries = Object.values(timings[index]!);
    if (entries.length !== 1) {
      throw new Error(`relay ${index} noted ${entries.length} Group messages in one round`);
    }
    return entries[0]!;
  };
  const inAt = only(home).inAt;
  if (inAt === undefined) throw new Error("the sender's relay did not note the message in");
  for (let index = 0; index < relays.length; index++) {
    const out = only(index).lastOutAt;
    if (out === undefined) continue;
    (index === home ? result.same : result.cross).relay.push(out - inAt);
  }
  return result;
}

/** What a burst in a room measured. */
interface Burst {
  relays: number;
  clustered: boolean;
  messages: number;
  deliveries: number;
  relayDeliveries: number;
  /** First send to the last record written by a relay, and to the last member showing it. */
  relaySeconds: number;
  memberSeconds: number;
  relayCpuMs: number;
  natsCpuMs: number;
  membersCpuMs: number;
}

/** A room of `options.members` spread over `relays` (member i on relay i mod n), one burst. */
async function measureBurst(
  relays: BenchRelay[],
  clustered: boolean,
  natsCpuMs: () => Promise<number>,
  settings: { members: number; messages: number; processes: number; fingerprint: string },
): Promise<Burst> {
  const room = await BenchRoom.join(relays, {
    count: settings.members,
    processes: settings.processes,
    batch: 8,
    fingerprint: settings.fingerprint,
    place: (member) => member % relays.length,
  });
  try {
    // A warm-up message everywhere, then an idle moment.
    await room.burst([0], 1, TIMEOUT_MS);
    await sleep(500);
    const perSender = Math.max(
      1,
      Math.min(MAX_PER_SENDER, Math.ceil(settings.messages / room.size)),
    );
    const senders = Array.from(
      { length: Math.min(room.size, Math.ceil(settings.messages / perSender)) },
      (_, i) => i,
    );
    await Promise.all(relays.map((relay) => relay.deliveries()));
    const cpu = () =>
      Promise.all([
        Promise.all(relays.map((relay) => relay.cpuMs())).then((t) => t.reduce((a, b) => a + b)),
        natsCpuMs(),
        room.cpuMs(),
      ]);
    const [relay0, nats0, members0] = await cpu();
    const burst = await room.burst(senders, perSender, TIMEOUT_MS);
    const written = await Promise.all(relays.map((relay) => relay.deliveries()));
    const [relay1, nats1, members1] = await cpu();
    return {
      relays: relays.length,
      clustered,
      messages: burst.messages,
      deliveries: burst.deliveries,
      relayDeliveries: written.reduce((sum, d) => sum + d.count, 0),
      relaySeconds: (Math.max(...written.map((d) => d.lastAt)) - burst.startedAt) / 1000,
      memberSeconds: (burst.lastAt - burst.startedAt) / 1000,
      relayCpuMs: relay1 - relay0,
      natsCpuMs: nats1 - nats0,
      membersCpuMs: members1 - members0,
    };
  } finally {
    await room.close();
  }
}

function label(burst: Burst): string {
  if (!burst.clustered) return "single relay (no NATS)";
  return `${burst.relays} relay${burst.relays === 1 ? "" : "s"} clustered`;
}

/**
 * Runs the cluster benchmark, printing each figure as it is measured.
 *
 * @returns the section for bench/RESULTS.md
 */
export async function benchCluster(options: ClusterOptions = {}): Promise<Section> {
  const rounds = options.rounds ?? 50;
  const members = options.members ?? 30;
  const messages = options.messages ?? 450;
  const processes = options.processes ?? 2;
  const bytes = options.bytes ?? 256 * MiB;
  const natsNodes = options.natsNodes ?? 3;
  const replicas = Math.min(3, natsNodes);
  const cores = navigator.hardwareConcurrency;
  const section: Section = {
    title: "Relay cluster (NATS)",
    notes: [
      `${natsNodes} nats-server node${
        natsNodes === 1 ? "" : "s"
      } with JetStream on 127.0.0.1 (routes direct), the room stream with ${replicas} replica${
        replicas === 1 ? "" : "s"
      }; up to 3 relay processes running what \`securechat relay --nats URL\` runs (bench/_cluster_relay_process.ts), relay i on node i; the single relay is the same process without --nats. Every configuration, the 1-relay one included, is on this same NATS cluster. ${cores} cores run everything.`,
      "Members enter rooms by the Room request (15.5) with their own Ed25519 keys, handshake suite x25519, and join with real MLS; each member dials one relay (member i on relay i mod n), so every room spans every relay.",
      `Latency: a room of 4 members, 2 on each of two clustered relays (against 4 on the single relay); senders alternate between the two relays; ${rounds} timed rounds after ${WARMUP_ROUNDS} warm-up, each ${ROUND_GAP_MS} ms after the previous arrived everywhere. End-to-end: send to a receiver's Participant showing it, one sample per receiver; relay-side: the sender's relay having read the message to a relay's last copy written (clocks of the processes matched by measured offsets). p99 is nearest-rank.`,
      `Throughput: a room of ${members} members in ${processes} member processes; many members send ${messages} messages at once (within 20/s per member); relay-side deliveries are Group records the relays wrote (counted in the relays after each write), from the first send to the last record written; member-side, to the last member showing the last message. CPU from /proc over the burst.`,
      `Bytes: ${
        formatSize(bytes)
      } in 64 KiB chunks between two clients of this process, through a RendezvousRelay's splice (raw bytes after Spliced, byte budget raised) or through NATS core publish/subscribe from a client of node 1 to a client of node ${
        natsNodes > 1 ? 2 : 1
      } (acknowledged every 2 MiB, two windows in flight). No end-to-end encryption on either: it would cost the same on both paths.`,
    ],
    rows: [],
  };
  printHeading(section);
  const add = (row: Row) => {
    section.rows.push(row);
    printRow(row);
  };
  const started = performance.now();
  const folder = await Deno.makeTempDir({ prefix: "securechat-bench-cluster-" });
  const nats = await startBenchNats(natsNodes);
  const relays: BenchRelay[] = [];
  try {
    const key = await relayKey(folder);
    const maxMembers = members + 10;
    const single = await startBenchRelay({ keyFile: key.file, maxMembers });
    relays.push(single);
    const clustered: BenchRelay[] = [];
    for (let i = 0; i < 3; i++) {
      const relay = await startBenchRelay({
        keyFile: key.file,
        nats: [nats.urls[i % nats.urls.length]!],
        replicas,
        maxMembers,
      });
      relays.push(relay);
      clustered.push(relay);
    }
    printInfo(`NATS up, 3 clustered relays and a single one started`);

    // Latency.
    const pair = clustered.slice(0, 2);
    const latencyRooms = {
      single: await BenchRoom.join([single], {
        count: 4,
        processes: 2,
        batch: 4,
        fingerprint: key.fingerprint,
        place: () => 0,
      }),
      clustered: await BenchRoom.join(pair, {
        count: 4,
        processes: 2,
        batch: 4,
        fingerprint: key.fingerprint,
        place: (member) => member % 2,
      }),
    };
    const samples = {
      single: { endToEnd: [] as number[], relay: [] as number[] },
      same: { endToEnd: [] as number[], relay: [] as number[] },
      cross: { endToEnd: [] as number[], relay: [] as number[] },
    };
    try {
      for (let round = 0; round < WARMUP_ROUNDS + rounds; round++) {
        const timed = round >= WARMUP_ROUNDS;
        const sender = round % 2;
        const base = await latencyRound(latencyRooms.single, [single], sender, `s-${round}`);
        await sleep(ROUND_GAP_MS);
        const both = await latencyRound(latencyRooms.clustered, pair, sender, `c-${round}`);
        await sleep(ROUND_GAP_MS);
        if (!timed) continue;
        samples.single.endToEnd.push(...base.same.endToEnd);
        samples.single.relay.push(...base.same.relay);
        for (const kind of ["same", "cross"] as const) {
          samples[kind].endToEnd.push(...both[kind].endToEnd);
          samples[kind].relay.push(...both[kind].relay);
        }
      }
    } finally {
      await latencyRooms.single.close();
      await latencyRooms.clustered.close();
    }
    for (const [what, pick] of [["end-to-end", "endToEnd"], ["relay-side", "relay"]] as const) {
      for (const p of [50, 99]) {
        const base = percentile(samples.single[pick], p);
        const same = percentile(samples.same[pick], p);
        const cross = percentile(samples.cross[pick], p);
        const baseName = `${what} latency p${p}, single relay`;
        add({ name: baseName, value: base, unit: "ms", note: "baseline" });
        add({
          name: `${what} latency p${p}, clustered, same relay`,
          value: same,
          unit: "ms",
          ratio: same / base,
          baseline: baseName,
        });
        add({
          name: `${what} latency p${p}, clustered, across relays`,
          value: cross,
          unit: "ms",
          ratio: cross / base,
          baseline: baseName,
          note: `across minus same relay: ${(cross - same).toFixed(2)} ms (the cross-relay hop)`,
        });
      }
    }

    // Throughput and CPU per delivery.
    const settings = { members, messages, processes, fingerprint: key.fingerprint };
    const bursts: Burst[] = [];
    const natsCpu = () => nats.cpuMs();
    bursts.push(await measureBurst([single], false, natsCpu, settings));
    printInfo(`${label(bursts.at(-1)!)}: burst done`);
    for (let count = 1; count <= 3; count++) {
      bursts.push(await measureBurst(clustered.slice(0, count), true, natsCpu, settings));
      printInfo(`${label(bursts.at(-1)!)}: burst done`);
    }
    const [unclustered, oneClustered] = [bursts[0]!, bursts[1]!];
    const busy = (b: Burst) => {
      const total = b.relayCpuMs + b.natsCpuMs + b.membersCpuMs;
      const share = (ms: number) => `${((100 * ms) / total).toFixed(0)}%`;
      return `${(total / 1000 / b.memberSeconds).toFixed(2)} of ${cores} cores busy: members ${
        share(b.membersCpuMs)
      }, relays ${share(b.relayCpuMs)}, NATS ${share(b.natsCpuMs)}`;
    };
    for (const side of ["relay", "member"] as const) {
      const rate = (b: Burst) =>
        side === "relay" ? b.relayDeliveries / b.relaySeconds : b.deliveries / b.memberSeconds;
      for (const b of bursts) {
        const base = b === unclustered
          ? undefined
          : b === oneClustered
          ? unclustered
          : oneClustered;
        add({
          name: `deliveries/s ${side === "relay" ? "written by relays" : "shown by members"}, ${
            label(b)
          }`,
          value: rate(b),
          unit: "deliveries/s",
          ...(base === undefined ? {} : { ratio: rate(b) / rate(base), baseline: label(base) }),
          note: side === "relay"
            ? `${b.relayDeliveries} records of ${b.messages} messages in ${
              b.relaySeconds.toFixed(2)
            } s${b.relayDeliveries === b.deliveries ? "" : ` (members showed ${b.deliveries})`}`
            : `${b.deliveries} in ${b.memberSeconds.toFixed(2)} s; ${busy(b)}`,
        });
      }
    }
    const shares = (pick: (b: Burst) => number) => {
      const values = bursts.map((b) =>
        (100 * pick(b)) / (b.relayCpuMs + b.natsCpuMs + b.membersCpuMs)
      );
      return `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}%`;
    };
    const coresBusy = bursts.map((b) =>
      (b.relayCpuMs + b.natsCpuMs + b.membersCpuMs) / 1000 / b.memberSeconds
    );
    const limit = `What limits the deliveries/s here: the ${cores} cores were busy (${
      Math.min(...coresBusy).toFixed(2)
    }-${Math.max(...coresBusy).toFixed(2)} cores over the bursts), and the members' MLS took ${
      shares((b) => b.membersCpuMs)
    } of that CPU, the relays ${shares((b) => b.relayCpuMs)}, NATS ${
      shares((b) => b.natsCpuMs)
    }. The member-side figures are the members' limit on this machine; the relay-side ones count records written while the relays shared the cores with the members (and waited for the senders' MLS encryption), so they are a floor, not the relays' capacity: that is 1 / relay CPU per delivery (below), which the projection uses. More relays cannot scale on ${cores} cores; the curve shows what clustering costs, not what it gains.`;
    section.notes.push(limit);
    printInfo(limit);
    const perDelivery = (b: Burst) => b.relayCpuMs / b.relayDeliveries;
    for (const b of bursts) {
      add({
        name: `relay CPU per delivery, ${label(b)}`,
        value: perDelivery(b),
        unit: "ms",
        ...(b === unclustered
          ? {}
          : { ratio: perDelivery(b) / perDelivery(unclustered), baseline: label(unclustered) }),
        note: `${(1000 / perDelivery(b)).toFixed(0)} deliveries per relay CPU second; ${
          (b.relayCpuMs / b.messages).toFixed(2)
        } ms per message, all relays`,
      });
    }
    for (const b of bursts.slice(1)) {
      add({
        name: `NATS CPU per message (all nodes), ${label(b)}`,
        value: b.natsCpuMs / b.messages,
        unit: "ms",
        note: `per delivery ${(b.natsCpuMs / b.relayDeliveries).toFixed(3)} ms; members ${
          (b.membersCpuMs / b.deliveries).toFixed(2)
        } ms per message shown`,
      });
    }

    // Bytes: NATS against the splice.
    const viaNats = await natsThroughput(nats.urls, bytes, natsCpu);
    const spliced = await spliceThroughput(bytes);
    add({
      name: "bytes through a relay's splice",
      value: spliced.bytesPerSecond / 1e6,
      unit: "MB/s",
      note: `relay ${spliced.pathCpuMsPerMiB.toFixed(2)} ms CPU/MiB; clients ${
        spliced.clientsCpuMsPerMiB.toFixed(2)
      } ms/MiB`,
    });
    add({
      name: `bytes through NATS (node 1 to node ${natsNodes > 1 ? 2 : 1})`,
      value: viaNats.bytesPerSecond / 1e6,
      unit: "MB/s",
      ratio: viaNats.bytesPerSecond / spliced.bytesPerSecond,
      baseline: "bytes through a relay's splice",
      note: `NATS ${viaNats.pathCpuMsPerMiB.toFixed(2)} ms CPU/MiB (all nodes); clients ${
        viaNats.clientsCpuMsPerMiB.toFixed(2)
      } ms/MiB`,
    });
    add({
      name: "CPU per MiB between the clients, NATS against the splice",
      value: viaNats.pathCpuMsPerMiB / spliced.pathCpuMsPerMiB,
      unit: "x",
      note: "a forward would add both relays' work to NATS's: redirect (16.5) keeps one splice",
    });

    // Projection.
    const input: Projection = {
      cores,
      relayCpuMsPerMessage: bursts.slice(1).map((b) => ({
        relays: b.relays,
        ms: b.relayCpuMs / b.messages,
      })),
      unclusteredCpuMsPerDelivery: perDelivery(unclustered),
      natsCpuMsPerMessage: bursts.slice(1).map((b) => ({
        relays: b.relays,
        ms: b.natsCpuMs / b.messages,
      })),
      roomMembers: members,
      natsNodes,
      replicas,
    };
    for (const line of projection(input)) {
      section.notes.push(line);
      printInfo(line);
    }
  } finally {
    for (const relay of relays) await relay.stop();
    await nats.stop();
    await Deno.remove(folder, { recursive: true }).catch(() => {});
  }
  printInfo(`cluster ran for ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return section;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      members: { type: "string" },
      messages: { type: "string" },
      rounds: { type: "string" },
      processes: { type: "string" },
      size: { type: "string" },
      "nats-nodes": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    printInfo(
      "deno run -A bench/cluster.ts [--members 30] [--messages 450] [--rounds 50] " +
        "[--processes 2] [--size 256MiB] [--nats-nodes 3]",
    );
    Deno.exit(0);
  }
  const count = (text: string | undefined, flag: string) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`--${flag}: not a count`);
    return value;
  };
  const options: ClusterOptions = {};
  const set = <K extends keyof ClusterOptions>(key: K, value: ClusterOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set("members", count(values.members, "members"));
  set("messages", count(values.messages, "messages"));
  set("rounds", count(values.rounds, "rounds"));
  set("processes", count(values.processes, "processes"));
  set("natsNodes", count(values["nats-nodes"], "nats-nodes"));
  set("bytes", values.size === undefined ? undefined : parseSize(values.size));
  await benchCluster(options);
}
