/**
 * Relay throughput: a pipe session through a rendezvous relay (PROTOCOL.md 15) against the same
 * session over a direct connection, same machine, same run, same I/O shape. Each end is its own
 * process (bench/_rendezvous_peer.ts: the real end-to-end handshake, then `runPipe()` from a
 * source of zeros to a counting sink, as `dial --pipe` and `listen --pipe > /dev/null` do); the
 * relay is the library's RendezvousRelay in its own process
 * (tests/_helpers/rendezvous_relay_process.ts). Only the path differs: a direct TCP connection,
 * or two connections to the relay joined by its splice.
 *
 * Figures: the pipe's throughput (from the start of `runPipe()` to the receipts, measured by the
 * dialer) and the wall clock (dialer process start to both exits), each the median of `runs`,
 * direct and relayed runs alternating; time to meet (registration to paired: from the listener
 * dialing the relay to both spliced sockets, in this process) against a direct connect and
 * handshake; the relay's CPU per MiB spliced (from /proc) against the two ends' CPU per MiB.
 *
 * The relay's per-address byte budget (64 MiB/s by default, 15.6) would hold both ends on
 * 127.0.0.1 to 64 MiB/s: it is raised to 2^40 bytes a second for this benchmark.
 *
 * @module
 */

import type { Identity } from "../lib/keys/identity.ts";
import { generateIdentity } from "../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../lib/protocol/record.ts";
import { connectToRelay, meetAt, registerAt } from "../lib/rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../lib/rendezvous/tokens.ts";
import { runInitiator, runResponder } from "../lib/transport/connection.ts";
import {
  type RelayProcess,
  startRelayProcess,
} from "../tests/_helpers/rendezvous_relay_process.ts";
import {
  type BenchOptions,
  printHeading,
  printInfo,
  printRow,
  printTargets,
  type Row,
  type Section,
  type Target,
} from "./_report.ts";
import {
  benchProgramArgv,
  exitWithin,
  formatSize,
  Lines,
  median,
  MiB,
  processTimes,
} from "./_measure.ts";
import type { PeerResult } from "./_rendezvous_peer.ts";

/** Bytes a second per address for the bench's relay: never the bottleneck. */
export const BENCH_RELAY_BYTES_PER_SECOND = 2 ** 40;

/** Meetings timed for time to meet, and direct handshakes for its baseline. */
const MEETINGS = 30;

const TIMEOUT_MS = 600_000;

/** One timed transfer. */
interface Trial {
  /** The dialer's pipe, from `runPipe()` to the receipts. */
  pipeSeconds: number;
  /** From starting the dialer process until both ends exited. */
  wallSeconds: number;
  /** CPU seconds of both ends, whole processes. */
  endsCpu: number;
  /** CPU seconds the relay process spent during the trial (relayed trials only). */
  relayCpu: number | undefined;
}

/** A running end: its process, its JSON lines on stdout, its stderr for errors. */
class End {
  readonly child: Deno.ChildProcess;
  readonly #lines: AsyncGenerator<string>;
  readonly #stderr: Lines;

  constructor(args: string[]) {
    const argv = benchProgramArgv("_rendezvous_peer.ts", args);
    this.child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#lines = jsonLines(this.child.stdout);
    this.#stderr = new Lines(this.child.stderr);
  }

  async next<T>(): Promise<T> {
    const { value, done } = await this.#lines.next();
    if (done) {
      await this.#stderr.done;
      throw new Error(`a bench end exited early: ${this.#stderr.lines.slice(-3).join(" / ")}`);
    }
    return JSON.parse(value) as T;
  }

  async exited(): Promise<void> {
    const status = await exitWithin(this.child, TIMEOUT_MS);
    if (!status.success) {
      await this.#stderr.done;
      throw new Error(
        `a bench end failed (exit ${status.code}): ${this.#stderr.lines.slice(-3).join(" / ")}`,
      );
    }
  }
}

async function* jsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.startsWith("{")) yield line;
    }
  }
}

async function relayCpuSeconds(relay: RelayProcess): Promise<number | undefined> {
  const times = await processTimes(relay.pid);
  return times === undefined ? undefined : times.user + times.system;
}

/** One transfer of `bytes` from the dialer to the listener, direct or through `relay`. */
async function runTrial(bytes: number, relay: RelayProcess | undefined): Promise<Trial> {
  const listener = new End(
    relay === undefined
      ? ["listen", "direct"]
      : ["listen", "via", String(relay.port), relay.fingerprint],
  );
  const ready = await listener.next<{ port: number; fingerprint: string }>();
  const cpuBefore = relay === undefined ? undefined : await relayCpuSeconds(relay);
  const started = performance.now();
  const dialer = new End(
    relay === undefined
      ? ["dial", "direct", String(ready.port), ready.fingerprint, String(bytes)]
      : ["dial", "via", String(relay.port), relay.fingerprint, ready.fingerprint, String(bytes)],
  );
  const [dialed, listened] = await Promise.all([
    dialer.next<PeerResult>(),
    listener.next<PeerResult>(),
  ]);
  await Promise.all([dialer.exited(), listener.exited()]);
  const wallSeconds = (performance.now() - started) / 1000;
  if (dialed.sent !== bytes || listened.received !== bytes) {
    throw new Error(`the listener received ${listened.received} of ${bytes} bytes`);
  }
  const cpuAfter = relay === undefined ? undefined : await relayCpuSeconds(relay);
  return {
    pipeSeconds: dialed.pipeSeconds,
    wallSeconds,
    endsCpu: dialed.cpuSeconds + listened.cpuSeconds,
    relayCpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore,
  };
}

/** Median milliseconds from dialing the relay to register until both sockets are spliced. */
async function timeToMeet(relay: RelayProcess, listener: Identity): Promise<number> {
  const connect = () =>
    connectToRelay({
      host: "127.0.0.1",
      port: relay.port,
      checkRelay: (peer) =>
        peer.identity.fingerprint === relay.fingerprint
          ? Promise.resolve()
          : Promise.reject(new Error("not the bench's relay")),
    });
  const token = await rendezvousToken(listener.fingerprint);
  const times: number[] = [];
  for (let i = 0; i < MEETINGS; i++) {
    const started = performance.now();
    const registration = await registerAt(await connect(), token);
    const dialerSocket = await meetAt(await connect(), token);
    const listenerSocket = await registration.paired;
    times.push(performance.now() - started);
    dialerSocket.close();
    listenerSocket.close();
  }
  return median(times);
}

/** Median milliseconds of a direct TCP connect and end-to-end handshake, in this process. */
async function directHandshake(listener: Identity, dialer: Identity): Promise<number> {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const options = {
    suites: ["x25519-mlkem768", "x25519"] as const,
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
  };
  const times: number[] = [];
  for (let i = 0; i < MEETINGS; i++) {
    const started = performance.now();
    const [responder, initiator] = await Promise.all([
      server.accept().then((conn) =>
        runResponder(conn, { identity: listener, ...options, authorize: () => Promise.resolve() })
      ),
      Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }).then((conn) =>
        runInitiator(conn, { identity: dialer, ...options, checkPeer: () => Promise.resolve() })
      ),
    ]);
    times.push(performance.now() - started);
    responder.close();
    initiator.close();
  }
  return median(times);
}

const NOTES = (size: number, runs: number) => [
  `${
    formatSize(size)
  } of zeros from a dialer to a listener on 127.0.0.1, each end its own process (bench/_rendezvous_peer.ts: the end-to-end handshake, then runPipe() as \`dial --pipe\` / \`listen --pipe > /dev/null\`), over a direct connection or through a RendezvousRelay in its own process; median of ${runs} runs, direct and relayed runs alternating.`,
  "Pipe phase: from the start of runPipe() to the exchanged receipts, timed by the dialer; wall clock: from starting the dialer process (the listener already waiting, at the relay or on its port) until both exited.",
  `The relay's per-address byte budget (PROTOCOL.md 15.6, 64 MiB/s by default) is raised to 2^40 bytes/s for this benchmark: both ends share 127.0.0.1, so the default would cap the relayed pipe at 64 MiB/s.`,
  `Time to meet: from the listener dialing the relay (handshake, Register, Waiting) through the dialer's handshake and Meet to both sockets spliced, in the bench process, median of ${MEETINGS}; baseline: a direct TCP connect and end-to-end handshake, same suites.`,
  "Relay CPU: user+system seconds of the relay process (/proc) during a relayed run per MiB spliced; baseline: both ends' CPU per MiB (whole processes, start-up included). MB = 10^6 bytes.",
];

/**
 * Runs the relay throughput benchmark.
 *
 * @param options size, runs and temporary folder
 * @returns the section: relayed against direct throughput, time to meet, the relay's CPU
 */
export async function benchRelayThroughput(options: BenchOptions): Promise<Section> {
  const section: Section = {
    title: "Relay throughput",
    notes: NOTES(options.size, options.runs),
    rows: [],
  };
  printHeading(section);
  const relay = await startRelayProcess({
    limits: { bytesPerSecondPerAddress: BENCH_RELAY_BYTES_PER_SECOND },
  });
  try {
    // Warm-up: caches deno's module graph for both ends and the relay's first handshakes.
    await runTrial(MiB, undefined);
    await runTrial(MiB, relay);
    const direct: Trial[] = [];
    const relayed: Trial[] = [];
    for (let run = 0; run < options.runs; run++) {
      direct.push(await runTrial(options.size, undefined));
      relayed.push(await runTrial(options.size, relay));
      printInfo(`run ${run + 1} of ${options.runs} done`);
    }
    const mb = options.size / 1e6;
    const mib = options.size / MiB;
    const directPipe = mb / median(direct.map((t) => t.pipeSeconds));
    const relayedPipe = mb / median(relayed.map((t) => t.pipeSeconds));
    const directWall = mb / median(direct.map((t) => t.wallSeconds));
    const relayedWall = mb / median(relayed.map((t) => t.wallSeconds));
    const rows: Row[] = [
      { name: "direct, pipe phase", value: directPipe, unit: "MB/s" },
      {
        name: "through the relay, pipe phase",
        value: relayedPipe,
        unit: "MB/s",
        ratio: relayedPipe / directPipe,
        baseline: "direct, pipe phase",
      },
      { name: "direct, wall clock", value: directWall, unit: "MB/s" },
      {
        name: "through the relay, wall clock",
        value: relayedWall,
        unit: "MB/s",
        ratio: relayedWall / directWall,
        baseline: "direct, wall clock",
      },
    ];
    const [listener, dialer] = await Promise.all([
      generateIdentity({ type: "ed25519", comment: "listener" }),
      generateIdentity({ type: "ed25519", comment: "dialer" }),
    ]);
    const handshake = await directHandshake(listener.identity, dialer.identity);
    const meet = await timeToMeet(relay, listener.identity);
    rows.push(
      { name: "direct connect and handshake", value: handshake, unit: "ms" },
      {
        name: "time to meet (registration to paired)",
        value: meet,
        unit: "ms",
        ratio: meet / handshake,
        baseline: "direct connect and handshake",
      },
    );
    const relayCpu = relayed.map((t) => t.relayCpu);
    const endsPerMiB = median(relayed.map((t) => t.endsCpu)) / mib * 1000;
    if (relayCpu.every((cpu) => cpu !== undefined)) {
      const perMiB = median(relayCpu as number[]) / mib * 1000;
      rows.push(
        { name: "both ends' CPU per MiB, relayed", value: endsPerMiB, unit: "ms/MiB" },
        {
          name: "relay CPU per MiB spliced",
          value: perMiB,
          unit: "ms/MiB",
          ratio: perMiB / endsPerMiB,
          baseline: "both ends' CPU per MiB, relayed",
        },
      );
    } else {
      rows.push({
        name: "relay CPU per MiB spliced",
        value: null,
        unit: "ms/MiB",
        note: "no /proc on this system",
      });
    }
    section.rows.push(...rows);
    for (const row of rows) printRow(row);
    const ratio = relayedPipe / directPipe;
    const target: Target = {
      text: "a pipe through the relay at least 0.8 of a direct connection (pipe phase)",
      met: ratio >= 0.8,
      detail: `${ratio.toFixed(2)}x: ${relayedPipe.toFixed(0)} vs ${directPipe.toFixed(0)} MB/s; ` +
        `wall clock ${(relayedWall / directWall).toFixed(2)}x`,
    };
    section.targets = [target];
    printTargets(section.targets);
  } finally {
    await relay.stop();
  }
  return section;
}
