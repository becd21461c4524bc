/**
 * Room fan-out benchmark (issue 16): end-to-end rooms (PROTOCOL.md 13: MLS groups behind an
 * untrusted relay). A relay process (`_room_relay_process.ts`: the room's Relay behind real
 * handshakes, timing its own part of each fan-out) and members in processes of their own
 * (`_room_member_process.ts`, real joinRoom and MLS with X-Wing), all on 127.0.0.1.
 *
 * It reports the relay's side apart from the members': relay-side fan-out latency is from the
 * moment the relay has read a Group message to the moment the last member's copy is written to
 * its socket; member-side cost is the members' CPU per message they read (MLS decryption and
 * authentication); end-to-end latency is from just before the sender sends to the moment the last
 * member's Participant shows the message. Also the relay's CPU per fan-out, the messages per
 * second a busy room sustains, and the relay's resident memory per member, idle and busy.
 *
 * End-to-end rooms: a baseline of 10 members and 100 members (and, with `--real-members N`, a
 * larger one). Filling a real room costs its members time that grows with the square of its size
 * (every member processes every commit of a tree that grows): 100 members joined in 26-28 s,
 * 200 had not after 3.5 minutes on two cores; and a room can only grow while its admin's commit
 * and Welcome fit one relay message (13.8), about 650 members with X-Wing. So the relay's figures for 1,000 members (the targets)
 * come from a room of stand-in members (bench/_room_synthetic.ts): real handshakes, Welcomes and
 * Group messages of the real sizes behind real MLS headers, the only part of them the relay
 * reads, so it does for them what it does for real members. They join in under a minute.
 *
 * `deno run -A bench/room_fanout.ts --members 300` for a quick run; `--help` for the options.
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
import { type Fanout, processCpuMs, processRssKiB, type Relay, startRelay } from "./_room_relay.ts";
import { type AdmissionSizes, admissionSizes, largestRoom } from "./room_mls.ts";
import { StandInMembers } from "./_room_synthetic.ts";
import { ChildRpc } from "./_rpc.ts";

/** Options of {@linkcode benchRoomFanout}. */
export interface RoomFanoutOptions {
  /** Members of the relay-alone room, stand-ins (default 1,000). */
  members?: number;
  /** Members of the large end-to-end room (default: none beyond the middle one). */
  realMembers?: number;
  /** Members of the middle room (default 100). */
  middleMembers?: number;
  /** Timed single-message rounds per room (default 50). */
  rounds?: number;
  /** Members of the baseline room (default 10). */
  baselineMembers?: number;
  /** Messages sent at once in the throughput phase, about (default 100). */
  messages?: number;
  /** Processes the members are spread over; 0 keeps them in this process (default 4). */
  processes?: number;
  /** Members that dial at the same time while the room fills, admitted before the next dial (default 25). */
  batch?: number;
}

/** Rounds sent before the timed ones, so JIT warm-up is not measured. */
const WARMUP_ROUNDS = 5;
/** The relay allows 20 Group messages a second with bursts of 100 (13.8): keep well under. */
const SENDER_SPACING_MS = 250;
/**
 * Timed rounds start this long after the previous one arrived everywhere, so each message meets
 * an idle room: TCP's delayed acknowledgements have been sent, and Nagle's algorithm cannot hold
 * the next small record back waiting for one.
 */
const ROUND_GAP_MS = 200;
const MAX_BURST = 15;
const JOIN_TIMEOUT_MS = 3_600_000;
const ROUND_TIMEOUT_MS = 300_000;

interface Timings {
  /** Relay-side: read to last copy written, and to first copy written. */
  relayLastMs: number[];
  relayFirstMs: number[];
  /** End-to-end: send to the last member showing it, and to the median member. */
  lastMs: number[];
  medianMs: number[];
  /** CPU per round: relay, and all member processes. */
  relayCpuMs: number;
  membersCpuMs: number;
  /** Bytes of the last Group message the relay read (relay message and all). */
  groupMessageBytes: number;
}

interface RoomFigures {
  members: number;
  joinSeconds: number;
  rssEmptyKiB: number;
  rssIdleKiB: number;
  /** V8 heap in use and external memory, empty and idle. */
  heapEmptyKiB: number;
  heapIdleKiB: number;
  externalEmptyKiB: number;
  externalIdleKiB: number;
  rssBusyPeakKiB: number;
  /** The member processes' resident memory with the room joined. */
  membersRssKiB: number;
  timings: Timings;
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
 * The relay's RSS once it has been idle long enough for V8 to return the heap grown by the join
 * traffic: sampled every 2 s until two samples in a row agree within 1%, at most 60 s.
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

/** Resident memory of every member process, in KiB. */
async function membersRssKiB(members: Members): Promise<number> {
  const pids = [...new Set(members.pools.map((pool) => pool.pid))];
  const sizes = await Promise.all(pids.map((pid) => processRssKiB(pid)));
  return sizes.reduce((sum, kib) => sum + kib, 0);
}

/** CPU milliseconds of every member process so far. */
async function membersCpuMs(members: Members): Promise<number> {
  const pids = [...new Set(members.pools.map((pool) => pool.pid))];
  const times = await Promise.all(pids.map((pid) => processCpuMs(pid)));
  return times.reduce((sum, ms) => sum + ms, 0);
}

/**
 * Sends `rounds` single messages from rotating senders, one at a time, each `ROUND_GAP_MS` after
 * the previous one arrived everywhere; returns the timings of each, relay-side and end-to-end.
 */
async function latencyRounds(
  members: Members,
  relay: Relay,
  rounds: number,
  label: string,
): Promise<Timings> {
  const lastSent = new Map<number, number>();
  const timings: Timings = {
    relayLastMs: [],
    relayFirstMs: [],
    lastMs: [],
    medianMs: [],
    relayCpuMs: 0,
    membersCpuMs: 0,
    groupMessageBytes: 0,
  };
  await relay.fanouts(); // forget the joins' traffic
  const [relayCpu0, membersCpu0] = await Promise.all([relay.cpuMs(), membersCpuMs(members)]);
  for (let round = 0; round < rounds; round++) {
    const sender = round % members.size;
    const wait = (lastSent.get(sender) ?? -Infinity) + SENDER_SPACING_MS - Date.now();
    if (wait > 0) await sleep(wait);
    lastSent.set(sender, Date.now());
    const text = `${label}-${round}`;
    const arriving = members.arrivals(text, sender, ROUND_TIMEOUT_MS);
    const t0 = await members.send(sender, text);
    const times = (await arriving).map((time) => time - t0);
    timings.lastMs.push(Math.max(...times));
    timings.medianMs.push(percentile(times, 50));
    const fanouts = await relay.fanouts();
    if (fanouts.length !== 1 || fanouts[0]!.copies !== members.size - 1) {
      throw new Error(`round ${round}: the relay fanned out ${JSON.stringify(fanouts)}`);
    }
    timings.relayLastMs.push(fanouts[0]!.lastOutAt - fanouts[0]!.inAt);
    timings.relayFirstMs.push(fanouts[0]!.firstOutAt - fanouts[0]!.inAt);
    timings.groupMessageBytes = fanouts[0]!.bytes;
    await sleep(ROUND_GAP_MS);
  }
  const [relayCpu1, membersCpu1] = await Promise.all([relay.cpuMs(), membersCpuMs(members)]);
  timings.relayCpuMs = (relayCpu1 - relayCpu0) / rounds;
  timings.membersCpuMs = (membersCpu1 - membersCpu0) / rounds;
  return timings;
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
  await sleep(1000);
  const arriving = texts.flatMap((list, sender) =>
    list.map((text) => members.arrivals(text, sender, JOIN_TIMEOUT_MS))
  );
  const [relayCpu0, membersCpu0] = await Promise.all([relay.cpuMs(), membersCpuMs(members)]);
  const t0 = wallNow();
  await Promise.all(texts.map(async (list, sender) => {
    for (const text of list) await members.send(sender, text);
  }));
  const arrivals = await Promise.all(arriving);
  const end = Math.max(...arrivals.map((times) => Math.max(...times)));
  const [relayCpu1, membersCpu1] = await Promise.all([relay.cpuMs(), membersCpuMs(members)]);
  await relay.fanouts();
  const messages = senders * burst;
  return {
    messages,
    senders,
    seconds: (end - t0) / 1000,
    deliveries: messages * (members.size - 1),
    relayCpuMs: relayCpu1 - relayCpu0,
    membersCpuMs: membersCpu1 - membersCpu0,
  };
}

/**
 * The largest room whose members fit in 40% of the memory available now, from what `room`'s
 * members took: each holds the group's state (the ratchet tree, secrets of recent epochs), which
 * grows with the room, so their memory is taken to grow as members squared.
 */
async function affordableRoom(room: RoomFigures): Promise<number> {
  const meminfo = await new Deno.Command("cat", { args: ["/proc/meminfo"], stdout: "piped" })
    .output().then((out) => new TextDecoder().decode(out.stdout)).catch(() => "");
  const availableKiB = Number(/^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? NaN);
  if (!Number.isFinite(availableKiB)) return Infinity;
  const perMemberKiB = room.membersRssKiB / room.members;
  return Math.floor(Math.sqrt((0.4 * availableKiB * room.members) / perMemberKiB));
}

/** Runs every phase on one room of `count` members. */
async function measureRoom(
  count: number,
  options: { rounds: number; messages: number; processes: number; batch: number },
): Promise<RoomFigures> {
  const relay = await startRelay(count + 10);
  let members: Members | undefined;
  try {
    await sleep(500);
    const rssEmptyKiB = await relay.rssKiB();
    const empty = await relay.memoryKiB();
    const started = performance.now();
    members = await Members.join(relay.port, count, {
      processes: options.processes,
      batch: options.batch,
      timeoutMs: JOIN_TIMEOUT_MS,
    }).catch((error) => {
      throw new Error(`${count} members could not join: ${error.message}\nrelay:\n${relay.tail()}`);
    });
    const joinSeconds = (performance.now() - started) / 1000;
    printInfo(
      `${count} members joined in ${joinSeconds.toFixed(1)} s (relay CPU ${
        ((await relay.cpuMs()) / 1000).toFixed(1)
      } s, members ${((await membersCpuMs(members)) / 1000).toFixed(1)} s)`,
    );
    const rssIdleKiB = await settledRss(relay);
    const idle = await relay.memoryKiB();
    const membersRss = await membersRssKiB(members);
    await latencyRounds(members, relay, WARMUP_ROUNDS, "warmup");
    const timings = await latencyRounds(members, relay, options.rounds, "round");
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
      rssIdleKiB,
      heapEmptyKiB: empty.heapUsed,
      heapIdleKiB: idle.heapUsed,
      externalEmptyKiB: empty.external,
      externalIdleKiB: idle.external,
      rssBusyPeakKiB,
      membersRssKiB: membersRss,
      timings,
      throughput,
    };
  } finally {
    await relay.stop();
    await members?.close();
  }
}

/** What the relay alone did for a room of stand-in members. */
interface RelayAloneFigures {
  members: number;
  groupMessageBytes: number;
  joinSeconds: number;
  rssEmptyKiB: number;
  rssIdleKiB: number;
  heapEmptyKiB: number;
  heapIdleKiB: number;
  externalEmptyKiB: number;
  externalIdleKiB: number;
  relayLastMs: number[];
  relayFirstMs: number[];
  relayCpuMs: number;
  /** Milliseconds for as many plain concurrent writes of a copy's size, per round. */
  floorMs: number[];
}

/**
 * The relay alone at `count` members: stand-ins (bench/_room_synthetic.ts) join through real
 * handshakes and the admin's commits with Welcomes of the real size, then send Group messages of
 * `groupMessageBytes`, one at a time; the relay's own timings are kept.
 */
async function measureRelayAlone(
  count: number,
  sizes: AdmissionSizes,
  groupMessageBytes: number,
  options: { rounds: number; processes: number; batch: number },
): Promise<RelayAloneFigures> {
  const relay = await startRelay(count + 10);
  let members: StandInMembers | undefined;
  try {
    await sleep(500);
    const rssEmptyKiB = await relay.rssKiB();
    const empty = await relay.memoryKiB();
    const started = performance.now();
    members = await StandInMembers.join(relay.port, count, {
      processes: Math.max(1, options.processes),
      batch: options.batch,
      sizes: {
        welcomeFixed: sizes.fixed,
        welcomePerMember: sizes.perMember,
        groupMessage: groupMessageBytes,
      },
    });
    const joinSeconds = (performance.now() - started) / 1000;
    printInfo(
      `${count} stand-in members joined in ${joinSeconds.toFixed(1)} s (relay CPU ${
        ((await relay.cpuMs()) / 1000).toFixed(1)
      } s)`,
    );
    const rssIdleKiB = await settledRss(relay);
    const idle = await relay.memoryKiB();
    const relayLastMs: number[] = [];
    const relayFirstMs: number[] = [];
    await relay.fanouts();
    let relayCpu0 = 0;
    for (let round = -WARMUP_ROUNDS; round < options.rounds; round++) {
      if (round === 0) relayCpu0 = await relay.cpuMs();
      // Senders rotate over the processes and the room, within the relay's rate limit.
      await members.send(((round + WARMUP_ROUNDS) * 37) % count, groupMessageBytes);
      const deadline = Date.now() + ROUND_TIMEOUT_MS;
      let done: Fanout[] = [];
      while (done.length === 0) {
        if (Date.now() > deadline) throw new Error(`round ${round}: the relay did not fan out`);
        await sleep(5);
        done = await relay.fanouts(count - 1);
      }
      if (done.length !== 1 || done[0]!.copies !== count - 1) {
        throw new Error(`round ${round}: the relay fanned out ${JSON.stringify(done)}`);
      }
      if (round >= 0) {
        relayLastMs.push(done[0]!.lastOutAt - done[0]!.inAt);
        relayFirstMs.push(done[0]!.firstOutAt - done[0]!.inAt);
      }
      await sleep(ROUND_GAP_MS);
    }
    const relayCpuMs = ((await relay.cpuMs()) - relayCpu0) / options.rounds;
    // The floor: as many plain writes of one copy's record (type and sender added, record header,
    // content type and tag) from the relay process to as many sockets, no record layer.
    const sink = ChildRpc.spawn("_room_sink.ts");
    let floorMs: number[];
    try {
      const sinkPort = await sink.call({ call: "port" }) as number;
      floorMs = await relay.writeFloor(sinkPort, count - 1, groupMessageBytes + 32 + 22, 20);
    } finally {
      await sink.close();
    }
    return {
      members: count,
      groupMessageBytes,
      joinSeconds,
      rssEmptyKiB,
      rssIdleKiB,
      heapEmptyKiB: empty.heapUsed,
      heapIdleKiB: idle.heapUsed,
      externalEmptyKiB: empty.external,
      externalIdleKiB: idle.external,
      relayLastMs,
      relayFirstMs,
      relayCpuMs,
      floorMs,
    };
  } finally {
    await relay.stop();
    await members?.close();
  }
}

/**
 * Runs the room fan-out benchmark: a baseline room, a room of 100 and the large room, printing
 * each figure as it is measured.
 *
 * @returns the section for bench/RESULTS.md
 */
export async function benchRoomFanout(options: RoomFanoutOptions = {}): Promise<Section> {
  const requested = options.members ?? 1000;
  const realLarge = options.realMembers;
  const baseSize = options.baselineMembers ?? 10;
  const middle = options.middleMembers ?? 100;
  const settings = {
    rounds: options.rounds ?? 50,
    messages: options.messages ?? 100,
    processes: options.processes ?? 4,
    batch: options.batch ?? 25,
  };
  const admission = await admissionSizes();
  const largest = largestRoom(admission);
  // The admin adds a batch of newcomers per commit, each with its KeyPackage and group secrets;
  // a few members of margin for the estimate.
  const admissible = largestRoom(admission, settings.batch) - 5;
  const section: Section = {
    title: "Room fan-out (end-to-end rooms)",
    notes: [
      `A relay process (bench/_room_relay_process.ts: the room's Relay behind real handshakes, as \`listen --relay-only\` runs it) and members in ${
        settings.processes === 0 ? "the benchmark process" : `${settings.processes} processes`
      } of their own (joinRoom: real MLS, X-Wing; handshake suite x25519, Ed25519 identities), on 127.0.0.1; baseline room: ${baseSize} members. The first member makes the group and admits the others as they knock, ${settings.batch} at a time (each batch admitted before the next dials).`,
      `Relay-side latency: from the relay having read a Group message (record decrypted) to the last member's copy written to its socket (record sealed, write done), timed inside the relay process; it excludes the members. End-to-end: from just before the sender's send to the last other member's Participant showing the message (MLS decrypted and authenticated it). ${settings.rounds} timed rounds after ${WARMUP_ROUNDS} warm-up rounds, senders rotating, each ${ROUND_GAP_MS} ms after the previous one arrived everywhere; p99 is nearest-rank.`,
      "Member-side cost: the member processes' CPU per message one member reads (their CPU over the rounds / rounds / recipients). Relay CPU per fan-out: the relay process's CPU over the rounds / rounds.",
      "Throughput: many members send at once (within the relay's 20/s, burst 100); messages/s counts messages until every other member has all of them.",
      `Relay RSS per member: (RSS with the members joined and idle - RSS of the empty relay) / members; idle once stable over 4 s; busy: the peak sampled every 100 ms during the throughput phase. Member RSS: all member processes' RSS / members.`,
      `Relay alone (the targets): ${requested} stand-in members in ${
        Math.max(1, settings.processes)
      } processes (bench/_room_synthetic.ts: real handshakes and SessionHello, KeyPackages, the admin's commits with Welcomes of the real size for the room up to the 1 MiB a relay message holds, Group messages of the size the largest end-to-end room sent), which the relay cannot tell from real members: it reads only MLS headers. Same relay process and timings; ${settings.rounds} rounds after ${WARMUP_ROUNDS} warm-up rounds, each ${ROUND_GAP_MS} ms after the previous one was written to everyone.`,
    ],
    rows: [],
  };
  printHeading(section);
  const add = (row: Row) => {
    section.rows.push(row);
    printRow(row);
  };
  const started = performance.now();
  const base = await measureRoom(baseSize, settings);
  const rooms: RoomFigures[] = [];
  if (middle > baseSize) rooms.push(await measureRoom(middle, settings));
  if (realLarge !== undefined && realLarge > (rooms.at(-1)?.members ?? baseSize)) {
    const affordable = rooms.length > 0 ? await affordableRoom(rooms[0]!) : Infinity;
    const size = Math.min(realLarge, admissible, affordable);
    const cut = [
      ...(admissible < realLarge
        ? [
          `a room of more than ${largest} members cannot admit anyone (its Welcome, which carries the ratchet tree, outgrows one relay message of 1 MiB: bench/room_mls.ts), and one admitting ${settings.batch} at once no more than ${
            admissible + 5
          }`,
        ]
        : []),
      ...(affordable < realLarge
        ? [
          `every member holds the group's state, which grows with the room: at ${
            rooms[0]!.members
          } members the member processes took ${
            (rooms[0]!.membersRssKiB / 1024 / rooms[0]!.members).toFixed(1)
          } MiB per member, so ${affordable} members are what 40% of this machine's available memory holds`,
        ]
        : []),
    ];
    const note = cut.length === 0
      ? `The large end-to-end room has ${size} members.`
      : `${realLarge} end-to-end members were asked for, but ${
        cut.join("; and ")
      }: the large room has ${size}.`;
    section.notes.push(note);
    printInfo(note);
    if (size > (rooms.at(-1)?.members ?? baseSize)) rooms.push(await measureRoom(size, settings));
  }
  const groupMessageBytes = (rooms.at(-1) ?? base).timings.groupMessageBytes;
  const alone = await measureRelayAlone(requested, admission, groupMessageBytes, settings);
  const baseName = `${baseSize}-member room`;
  const ratio = (value: number, baseline: number) =>
    Number.isFinite(value / baseline) ? { ratio: value / baseline } : {};
  const figure = (
    name: string,
    unit: string,
    pick: (room: RoomFigures) => number,
    note?: (room: RoomFigures) => string,
  ) => {
    add({ name: `${name}, ${baseName}`, value: pick(base), unit, note: "baseline" });
    for (const room of rooms) {
      add({
        name: `${name}, ${room.members} members`,
        value: pick(room),
        unit,
        baseline: baseName,
        ...ratio(pick(room), pick(base)),
        ...(note ? { note: note(room) } : {}),
      });
    }
  };
  const t = (room: RoomFigures) => room.timings;
  figure(
    "relay-side fan-out p50 (read to last copy written)",
    "ms",
    (r) => percentile(t(r).relayLastMs, 50),
  );
  figure(
    "relay-side fan-out p99 (read to last copy written)",
    "ms",
    (r) => percentile(t(r).relayLastMs, 99),
    (r) => `first copy written after ${percentile(t(r).relayFirstMs, 50).toFixed(2)} ms (p50)`,
  );
  figure("relay CPU per fan-out", "ms", (r) => t(r).relayCpuMs);
  figure(
    "member-side CPU per message read",
    "ms",
    (r) => t(r).membersCpuMs / (r.members - 1),
    (r) => `all members: ${t(r).membersCpuMs.toFixed(0)} ms of CPU per message`,
  );
  figure("end-to-end latency p50 (last member shows it)", "ms", (r) => percentile(t(r).lastMs, 50));
  figure(
    "end-to-end latency p99 (last member shows it)",
    "ms",
    (r) => percentile(t(r).lastMs, 99),
    (r) => `median member: p50 ${percentile(t(r).medianMs, 50).toFixed(1)} ms`,
  );
  figure(
    "throughput",
    "messages/s",
    (r) => r.throughput.messages / r.throughput.seconds,
    (r) =>
      `${r.throughput.senders} senders x ${r.throughput.messages / r.throughput.senders}; ${
        (r.throughput.deliveries / r.throughput.seconds).toFixed(0)
      } deliveries/s; relay CPU ${
        (r.throughput.relayCpuMs / r.throughput.messages).toFixed(1)
      } ms/message`,
  );
  add({
    name: "relay RSS, empty room",
    value: base.rssEmptyKiB / 1024,
    unit: "MiB",
    note: "baseline of the per-member figures",
  });
  const perMember = (room: RoomFigures, rss: number) => (rss - room.rssEmptyKiB) / room.members;
  figure(
    "relay RSS per idle member",
    "KiB",
    (r) => perMember(r, r.rssIdleKiB),
    (r) => `${(r.rssIdleKiB / 1024).toFixed(0)} MiB in all`,
  );
  figure(
    "relay V8 heap per idle member",
    "KiB",
    (r) => (r.heapIdleKiB - r.heapEmptyKiB) / r.members,
    (r) =>
      `external (buffers) ${
        ((r.externalIdleKiB - r.externalEmptyKiB) / r.members).toFixed(0)
      } KiB per member`,
  );
  figure(
    "relay RSS per busy member (peak)",
    "KiB",
    (r) => perMember(r, r.rssBusyPeakKiB),
    (r) => `${(r.rssBusyPeakKiB / 1024).toFixed(0)} MiB peak`,
  );
  figure(
    "member RSS per member",
    "MiB",
    (r) => r.membersRssKiB / 1024 / r.members,
    (r) => `${(r.membersRssKiB / 1024 / 1024).toFixed(1)} GiB in all: each holds the group's state`,
  );
  figure("time for the members to join", "s", (r) => r.joinSeconds);

  const aloneName = `relay alone, ${alone.members} stand-in members`;
  const aloneRow = (name: string, value: number, unit: string, note?: string) =>
    add({ name: `${name}, ${aloneName}`, value, unit, ...(note ? { note } : {}) });
  const aloneP99 = percentile(alone.relayLastMs, 99);
  const aloneIdle = (alone.rssIdleKiB - alone.rssEmptyKiB) / alone.members;
  aloneRow("relay-side fan-out p50", percentile(alone.relayLastMs, 50), "ms");
  aloneRow(
    "relay-side fan-out p99",
    aloneP99,
    "ms",
    `first copy written after ${
      percentile(alone.relayFirstMs, 50).toFixed(2)
    } ms (p50); Group messages of ${alone.groupMessageBytes} bytes`,
  );
  aloneRow("relay CPU per fan-out", alone.relayCpuMs, "ms");
  const floorP50 = percentile(alone.floorMs, 50);
  add({
    name: `floor: ${alone.members - 1} plain writes of one copy's size from the relay process`,
    value: floorP50,
    unit: "ms",
    note: `p50 of 20 (p99 ${
      percentile(alone.floorMs, 99).toFixed(1)
    } ms): Deno's own write calls to as many sockets, no record layer; the relay's p50 is ${
      (percentile(alone.relayLastMs, 50) / floorP50).toFixed(1)
    }x this`,
  });
  aloneRow(
    "relay RSS per idle member",
    aloneIdle,
    "KiB",
    `${(alone.rssIdleKiB / 1024).toFixed(0)} MiB in all; V8 heap ${
      ((alone.heapIdleKiB - alone.heapEmptyKiB) / alone.members).toFixed(0)
    } KiB and external (buffers) ${
      ((alone.externalIdleKiB - alone.externalEmptyKiB) / alone.members).toFixed(0)
    } KiB per member`,
  );
  aloneRow("time for the stand-ins to join", alone.joinSeconds, "s");
  const welcomeAt = (members: number) => admission.fixed + admission.perMember * members;
  add({
    name: "Welcome for a newcomer to a room of 1,000",
    value: welcomeAt(1000) / 1024,
    unit: "KiB",
    note: `${(welcomeAt(100) / 1024).toFixed(0)} KiB at 100 members, ${
      (welcomeAt(500) / 1024).toFixed(0)
    } at 500; a relay message holds 1,024 KiB: the largest room that admits one newcomer is ${largest} members (bench/room_mls.ts)`,
  });

  const judged = alone.members >= 1000;
  const at = `with ${alone.members} stand-in members`;
  const targets: Target[] = [
    {
      text: "end-to-end room, 1,000 members: relay-side fan-out p99 under 20 ms",
      met: judged ? aloneP99 < 20 : null,
      detail: `p99 ${aloneP99.toFixed(1)} ms ${at}`,
    },
    {
      text: "end-to-end room, 1,000 members: relay RSS per idle member under 64 KiB",
      met: judged ? aloneIdle < 64 : null,
      detail: `${aloneIdle.toFixed(0)} KiB ${at}`,
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
      "real-members": { type: "string" },
      "middle-members": { type: "string" },
      rounds: { type: "string" },
      "baseline-members": { type: "string" },
      messages: { type: "string" },
      processes: { type: "string" },
      batch: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    printInfo(
      "deno run -A bench/room_fanout.ts [--members 1000] [--real-members N] [--middle-members 100] [--rounds 50] " +
        "[--baseline-members 10] [--messages 100] [--processes 4] [--batch 25]",
    );
    Deno.exit(0);
  }
  const options: RoomFanoutOptions = {};
  for (
    const [key, text] of [
      ["members", values.members],
      ["realMembers", values["real-members"]],
      ["middleMembers", values["middle-members"]],
      ["rounds", values.rounds],
      ["baselineMembers", values["baseline-members"]],
      ["messages", values.messages],
      ["processes", values.processes],
      ["batch", values.batch],
    ] as const
  ) {
    if (text === undefined) continue;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`--${key}: not a count: ${text}`);
    }
    options[key] = value;
  }
  await benchRoomFanout(options);
}
