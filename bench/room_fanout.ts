/**
 * Room fan-out benchmark (issue 6): a real `securechat listen --relay-only` process with 1,000
 * members dialled from this process; one member's message to all, timed until the last member
 * has it; the messages per second the relay sustains with many senders at once; and the relay's
 * resident memory per member, idle and busy.
 *
 * Every figure of the large room is a ratio against the same measurement of a small room
 * (10 members) in the same run, so the ratio is the cost of scale; the issue's targets (p99 under
 * 50 ms, under 200 KiB per idle member, at 1,000 members) are judged on the large room.
 *
 * A member "has" a message when its Participant emits it: decrypted by the record layer, and its
 * author's signature and counter checked against the member's roster (PROTOCOL.md 13.2). The
 * members run in this process (spread over Workers), so their checks share the machine's cores
 * with the relay: the latency is the relay's fan-out plus the members' checks, as on one host.
 *
 * `deno run -A bench/room_fanout.ts --members 200` for a quick run; `--help` for the options.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  printHeading,
  printInfo,
  printRow,
  printTargets,
  type Row,
  type Section,
  type Target,
} from "./_report.ts";
import { Members, sleep, wallNow } from "./_room_members.ts";
import { processCpuMs, type Relay, startRelay } from "./_room_relay.ts";

/** Options of {@linkcode benchRoomFanout}. */
export interface RoomFanoutOptions {
  /** Members of the large room (default 1,000). */
  members?: number;
  /** Timed single-message rounds per room (default 50). */
  rounds?: number;
  /** Members of the baseline room (default 10). */
  baselineMembers?: number;
  /** Messages sent at once in the throughput phase, about (default 100). */
  messages?: number;
  /** Workers the members are spread over; 0 keeps them in the main thread (default 2). */
  workers?: number;
  /** Members that dial at the same time while the room fills (default 50). */
  batch?: number;
  /** A folder for the relays' home folders (`BenchOptions.tempDir`; default: the system's). */
  tempDir?: string;
}

/** Rounds sent before the timed ones, so JIT warm-up is not measured. */
const WARMUP_ROUNDS = 5;
/** The relay's limit is 5 messages a second with bursts of 20 (PROTOCOL.md 13.4): keep under. */
const SENDER_SPACING_MS = 250;
/**
 * Timed rounds start this long after the previous one arrived everywhere, so each message meets
 * an idle room: TCP's delayed acknowledgements (40 to 200 ms on Linux) have been sent, and Nagle's
 * algorithm cannot hold the next small record back waiting for one.
 */
const ROUND_GAP_MS = 200;
/**
 * Rounds back to back (the next sent as soon as the previous arrived everywhere) show whether
 * Nagle's algorithm delays messages; measured in the baseline room, within the relay's burst.
 */
const CLOSE_ROUNDS = 30;
const MAX_BURST = 15;
const JOIN_TIMEOUT_MS = 1_200_000;
const ROUND_TIMEOUT_MS = 120_000;

interface RoomFigures {
  members: number;
  joinSeconds: number;
  rssEmptyKiB: number;
  /** One second after the last member joined, while the join traffic's garbage is still held. */
  rssJoinedKiB: number;
  rssIdleKiB: number;
  rssBusyPeakKiB: number;
  /** Per round: ms until the last member had it, and until half of them had it. */
  lastMs: number[];
  medianMs: number[];
  /** The same, with rounds back to back (empty when not measured). */
  closeLastMs: number[];
  /** CPU ms per timed round: relay, and this process (the members). */
  relayCpuPerRoundMs: number;
  membersCpuPerRoundMs: number;
  throughput: {
    messages: number;
    senders: number;
    seconds: number;
    deliveries: number;
    relayCpuMs: number;
    membersCpuMs: number;
  };
}

/** Nearest-rank percentile of `values` (`p` in 0..100). */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/**
 * The relay's RSS once it has been idle long enough for V8's memory reducer to return the heap
 * grown by the join traffic (about 10 s after the last activity here): sampled every 2 s until
 * two samples in a row agree within 1%, at most 60 s.
 */
async function settledRss(relay: Relay): Promise<number> {
  let last = await relay.rssKiB();
  let stable = 0;
  for (let waited = 0; waited < 60_000 && stable < 2; waited += 2000) {
    await sleep(2000);
    const now = await relay.rssKiB();
    stable = Math.abs(now - last) <= last * 0.01 ? stable + 1 : 0;
    last = now;
  }
  return last;
}

/** Samples the relay's RSS every 100 ms and keeps the peak. */
function rssSampler(relay: Relay): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await relay.rssKiB());
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/**
 * Sends `rounds` single messages from rotating senders, one at a time, `gapMs` after the previous
 * one arrived everywhere (0: at once); returns the timings of each.
 */
async function latencyRounds(
  members: Members,
  rounds: number,
  label: string,
  gapMs: number,
): Promise<{ lastMs: number[]; medianMs: number[] }> {
  // Back-to-back rounds stay within the burst (the caller's count); spaced ones within the rate.
  const spacingMs = gapMs === 0 ? 0 : SENDER_SPACING_MS;
  const lastSent = new Map<number, number>();
  const lastMs: number[] = [];
  const medianMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const sender = round % members.size;
    const wait = (lastSent.get(sender) ?? -Infinity) + spacingMs - Date.now();
    if (wait > 0) await sleep(wait);
    lastSent.set(sender, Date.now());
    const text = `${label}-${round}`;
    const arriving = members.arrivals(text, sender, ROUND_TIMEOUT_MS);
    const t0 = await members.send(sender, text);
    const times = (await arriving).map((time) => time - t0);
    lastMs.push(Math.max(...times));
    medianMs.push(percentile(times, 50));
    await sleep(gapMs);
  }
  return { lastMs, medianMs };
}

/**
 * Throughput: `senders` distinct members each send `burst` messages, all at once, and the clock
 * runs until every other member has every message.
 */
async function throughputPhase(
  members: Members,
  relay: Relay,
  wanted: number,
): Promise<RoomFigures["throughput"]> {
  const burst = Math.max(1, Math.min(MAX_BURST, Math.ceil(wanted / members.size)));
  const senders = Math.min(members.size, Math.ceil(wanted / burst));
  const texts = Array.from(
    { length: senders },
    (_, s) => Array.from({ length: burst }, (_, i) => `burst-${s}-${i}`),
  );
  // Every sender's token bucket is full again after this pause (5 tokens a second).
  await sleep(1000);
  const arriving = texts.flatMap((list, sender) =>
    list.map((text) => members.arrivals(text, sender, JOIN_TIMEOUT_MS))
  );
  const [relayCpu0, ownCpu0] = await Promise.all([relay.cpuMs(), processCpuMs(Deno.pid)]);
  const t0 = wallNow();
  await Promise.all(texts.map(async (list, sender) => {
    for (const text of list) await members.send(sender, text);
  }));
  const arrivals = await Promise.all(arriving);
  const end = Math.max(...arrivals.map((times) => Math.max(...times)));
  const [relayCpu1, ownCpu1] = await Promise.all([relay.cpuMs(), processCpuMs(Deno.pid)]);
  const messages = senders * burst;
  return {
    messages,
    senders,
    seconds: (end - t0) / 1000,
    deliveries: messages * (members.size - 1),
    relayCpuMs: relayCpu1 - relayCpu0,
    membersCpuMs: ownCpu1 - ownCpu0,
  };
}

/** Runs every phase on one room of `count` members. */
async function measureRoom(
  count: number,
  options: Required<Omit<RoomFanoutOptions, "baselineMembers" | "members" | "tempDir">> & {
    tempDir: string | undefined;
    /** Extra rounds back to back (0: none). */
    closeRounds: number;
  },
): Promise<RoomFigures> {
  const relay = await startRelay(count + 10, options.tempDir);
  let members: Members | undefined;
  try {
    await sleep(500);
    const rssEmptyKiB = await relay.rssKiB();
    const started = performance.now();
    members = await Members.join(relay.port, count, {
      workers: options.workers,
      batch: options.batch,
      suite: "x25519",
      timeoutMs: JOIN_TIMEOUT_MS,
    }).catch((error) => {
      throw new Error(`${count} members could not join: ${error.message}\nrelay:\n${relay.tail()}`);
    });
    const joinSeconds = (performance.now() - started) / 1000;
    const [joinRelayCpu, joinOwnCpu] = await Promise.all([relay.cpuMs(), processCpuMs(Deno.pid)]);
    printInfo(
      `${count} members joined in ${joinSeconds.toFixed(1)} s (CPU so far: relay ${
        (joinRelayCpu / 1000).toFixed(1)
      } s, members ${(joinOwnCpu / 1000).toFixed(1)} s)`,
    );
    await sleep(1000);
    const rssJoinedKiB = await relay.rssKiB();
    const rssIdleKiB = await settledRss(relay);

    await latencyRounds(members, WARMUP_ROUNDS, "warmup", ROUND_GAP_MS);
    const [relayCpu0, ownCpu0] = await Promise.all([relay.cpuMs(), processCpuMs(Deno.pid)]);
    const rounds = await latencyRounds(members, options.rounds, "round", ROUND_GAP_MS);
    const [relayCpu1, ownCpu1] = await Promise.all([relay.cpuMs(), processCpuMs(Deno.pid)]);
    const relayCpuPerRoundMs = (relayCpu1 - relayCpu0) / options.rounds;
    const membersCpuPerRoundMs = (ownCpu1 - ownCpu0) / options.rounds;
    const closeRounds = options.closeRounds > 0
      ? await latencyRounds(members, options.closeRounds, "close", 0)
      : undefined;
    // Sampled only now: reading the RSS while rounds are timed would add to their latency.
    const sampler = rssSampler(relay);
    let rssBusyPeakKiB: number;
    let throughput: RoomFigures["throughput"];
    try {
      throughput = await throughputPhase(members, relay, options.messages);
    } finally {
      rssBusyPeakKiB = await sampler.stop();
    }
    return {
      members: count,
      joinSeconds,
      rssEmptyKiB,
      rssJoinedKiB,
      rssIdleKiB,
      rssBusyPeakKiB,
      ...rounds,
      closeLastMs: closeRounds?.lastMs ?? [],
      relayCpuPerRoundMs,
      membersCpuPerRoundMs,
      throughput,
    };
  } finally {
    await relay.stop();
    await members?.close();
  }
}

/**
 * Runs the room fan-out benchmark: a baseline room, then the large room, printing each figure as
 * it is measured.
 *
 * @param options sizes of the run (defaults: 1,000 members, 50 rounds, 10-member baseline)
 * @returns the section for bench/RESULTS.md
 */
export async function benchRoomFanout(options: RoomFanoutOptions = {}): Promise<Section> {
  const size = options.members ?? 1000;
  const baseSize = options.baselineMembers ?? 10;
  const settings = {
    rounds: options.rounds ?? 50,
    messages: options.messages ?? 100,
    workers: options.workers ?? 2,
    batch: options.batch ?? 50,
    tempDir: options.tempDir,
  };
  if (size < 2 || baseSize < 2) throw new RangeError("a room needs at least 2 members");
  const section: Section = {
    title: `Room fan-out (${size} members)`,
    notes: [
      `A real \`listen --relay-only\` process; ${size} members (baseline room: ${baseSize}) dial it from the benchmark process over loopback (suite x25519, Ed25519 identities), spread over ${
        settings.workers === 0 ? "the main thread" : `${settings.workers} Workers`
      }.`,
      `Latency: one member sends one message; the clock runs from just before its send until the last other member has it, meaning its Participant emitted it after decrypting it and checking the author's signature and counter (PROTOCOL.md 13.2). ${settings.rounds} timed rounds after ${WARMUP_ROUNDS} warm-up rounds, senders rotating, each ${ROUND_GAP_MS} ms after the previous one arrived everywhere (an idle room); p99 is nearest-rank.`,
      "The members' checks run in the benchmark process on the same machine as the relay, so latency and throughput include the recipients' CPU, not only the relay's.",
      `Throughput: many members send at once (each within the relay's 5/s, burst 20 limit); messages/s counts messages until every other member has all of them.`,
      "Relay RSS per member: (RSS with the members joined and idle - RSS of the empty relay) / members; idle: once the RSS is stable over 4 s (V8 returns the heap grown by the joins about 10 s after the last activity); right after joining: 1 s after the last join; busy: the peak sampled every 100 ms during the throughput phase.",
    ],
    rows: [],
  };
  printHeading(section);
  const add = (row: Row) => {
    section.rows.push(row);
    printRow(row);
  };
  const started = performance.now();

  const closeRounds = Math.min(CLOSE_ROUNDS, MAX_BURST * baseSize);
  const base = await measureRoom(baseSize, { ...settings, closeRounds });
  const big = await measureRoom(size, { ...settings, closeRounds: 0 });
  const baseName = `${baseSize}-member room`;
  const ratio = (value: number, baseline: number) =>
    Number.isFinite(value / baseline) ? { ratio: value / baseline } : {};

  const p50 = percentile(big.lastMs, 50);
  const p99 = percentile(big.lastMs, 99);
  const baseP50 = percentile(base.lastMs, 50);
  const baseP99 = percentile(base.lastMs, 99);
  add({ name: `fan-out latency p50, ${baseName}`, value: baseP50, unit: "ms", note: "baseline" });
  add({ name: `fan-out latency p99, ${baseName}`, value: baseP99, unit: "ms", note: "baseline" });
  const closeP50 = percentile(base.closeLastMs, 50);
  add({
    name: `fan-out latency p50, ${baseName}, rounds back to back`,
    value: closeP50,
    unit: "ms",
    baseline: `p50, ${baseName}`,
    ...ratio(closeP50, baseP50),
    note: "well above 1x: small records wait for TCP delayed ACKs (Nagle's algorithm)",
  });
  add({
    name: `fan-out latency p50, ${size} members (last member has it)`,
    value: p50,
    unit: "ms",
    baseline: `p50, ${baseName}`,
    ...ratio(p50, baseP50),
  });
  add({
    name: `fan-out latency p99, ${size} members (last member has it)`,
    value: p99,
    unit: "ms",
    baseline: `p99, ${baseName}`,
    ...ratio(p99, baseP99),
    note: `slowest round ${Math.max(...big.lastMs).toFixed(1)} ms`,
  });
  const median = percentile(big.medianMs, 50);
  add({
    name: `fan-out latency p50, ${size} members (median member has it)`,
    value: median,
    unit: "ms",
    baseline: `same, ${baseName}`,
    ...ratio(median, percentile(base.medianMs, 50)),
  });
  add({
    name: `relay CPU per fan-out message, ${size} members`,
    value: big.relayCpuPerRoundMs,
    unit: "ms",
    baseline: baseName,
    ...ratio(big.relayCpuPerRoundMs, base.relayCpuPerRoundMs),
    note: `members' CPU (this process) ${big.membersCpuPerRoundMs.toFixed(1)} ms per message`,
  });

  const rate = (t: RoomFigures["throughput"]) => t.messages / t.seconds;
  const baseT = base.throughput;
  const bigT = big.throughput;
  add({
    name: `relay throughput, ${baseName}`,
    value: rate(baseT),
    unit: "messages/s",
    note: `baseline; ${baseT.senders} senders x ${baseT.messages / baseT.senders} messages`,
  });
  add({
    name: `relay throughput, ${size} members`,
    value: rate(bigT),
    unit: "messages/s",
    baseline: baseName,
    ...ratio(rate(bigT), rate(baseT)),
    note: `${bigT.senders} senders x ${bigT.messages / bigT.senders} messages in ${
      bigT.seconds.toFixed(1)
    } s; relay CPU ${(bigT.relayCpuMs / bigT.messages).toFixed(1)} ms/message, members' CPU ${
      (bigT.membersCpuMs / bigT.messages).toFixed(1)
    } ms/message`,
  });
  add({
    name: `verified deliveries per second, ${size} members`,
    value: bigT.deliveries / bigT.seconds,
    unit: "deliveries/s",
    baseline: baseName,
    ...ratio(bigT.deliveries / bigT.seconds, baseT.deliveries / baseT.seconds),
  });
  const relayCapacity = bigT.messages / (bigT.relayCpuMs / 1000);
  add({
    name: `relay capacity on one core, ${size} members`,
    value: relayCapacity,
    unit: "messages/s",
    baseline: baseName,
    ...ratio(relayCapacity, baseT.messages / (baseT.relayCpuMs / 1000)),
    note: "messages / relay CPU seconds in the throughput phase",
  });

  const perMember = (room: RoomFigures, rss: number) => (rss - room.rssEmptyKiB) / room.members;
  const idle = perMember(big, big.rssIdleKiB);
  add({
    name: "relay RSS, empty room",
    value: big.rssEmptyKiB / 1024,
    unit: "MiB",
    note: "baseline of the per-member figures",
  });
  add({
    name: `relay RSS per idle member, ${baseName}`,
    value: perMember(base, base.rssIdleKiB),
    unit: "KiB",
    note: "baseline",
  });
  add({
    name: `relay RSS per idle member, ${size} members`,
    value: idle,
    unit: "KiB",
    baseline: baseName,
    ...ratio(idle, perMember(base, base.rssIdleKiB)),
    note: `${(big.rssIdleKiB / 1024).toFixed(0)} MiB in all`,
  });
  const joined = perMember(big, big.rssJoinedKiB);
  add({
    name: `relay RSS per member right after joining, ${size} members`,
    value: joined,
    unit: "KiB",
    baseline: "idle",
    ...ratio(joined, idle),
    note: "before V8 returns the heap grown by the join traffic",
  });
  const busy = perMember(big, big.rssBusyPeakKiB);
  add({
    name: `relay RSS per busy member, ${size} members (peak)`,
    value: busy,
    unit: "KiB",
    baseline: "idle",
    ...ratio(busy, idle),
    note: `${(big.rssBusyPeakKiB / 1024).toFixed(0)} MiB peak`,
  });
  add({
    name: `time for ${size} members to join`,
    value: big.joinSeconds,
    unit: "s",
    baseline: baseName,
    ...ratio(big.joinSeconds, base.joinSeconds),
  });

  const judged = size >= 1000;
  const targets: Target[] = [
    {
      text: "room: 1,000 members, p99 fan-out latency under 50 ms",
      met: judged ? p99 < 50 : null,
      detail: `p99 ${p99.toFixed(1)} ms with ${size} members`,
    },
    {
      text: "room: 1,000 members, under 200 KiB relay RSS per idle member",
      met: judged ? idle < 200 : null,
      detail: `${idle.toFixed(0)} KiB per idle member with ${size} members`,
    },
  ];
  section.targets = targets;
  printTargets(targets);
  printInfo(`room fan-out ran for ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return section;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      members: { type: "string" },
      rounds: { type: "string" },
      "baseline-members": { type: "string" },
      messages: { type: "string" },
      workers: { type: "string" },
      batch: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    printInfo(
      "deno run -A bench/room_fanout.ts [--members 1000] [--rounds 50] [--baseline-members 10] " +
        "[--messages 100] [--workers 2] [--batch 50]",
    );
    Deno.exit(0);
  }
  const number = (text: string | undefined) => text === undefined ? undefined : Number(text);
  const options: RoomFanoutOptions = {};
  for (
    const [key, text] of [
      ["members", values.members],
      ["rounds", values.rounds],
      ["baselineMembers", values["baseline-members"]],
      ["messages", values.messages],
      ["workers", values.workers],
      ["batch", values.batch],
    ] as const
  ) {
    const value = number(text);
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`--${key}: not a count: ${text}`);
    }
    options[key] = value;
  }
  await benchRoomFanout(options);
}
