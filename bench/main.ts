// deno-lint-ignore-file no-console
/**
 * `deno task bench`: runs every benchmark, prints each figure as a ratio against a baseline
 * measured in the same run, and writes the figures of the run, with the machine and the date, to
 * bench/RESULTS.md. Tests never assert timings.
 *
 * ```sh
 * deno task bench                                   # everything: 1 GiB x 3 runs, about 10 minutes
 * deno task bench --install-peers                   # first apt-get install ssh, sshd, socat, time
 * deno task bench --only pipe,ready --size 256MiB   # a quick look at two sections
 * deno task bench --only mls,room                   # the room's parts: MLS costs, fan-out
 * deno task bench --only relay --size 256MiB        # a pipe through a rendezvous relay vs direct
 * deno task bench --only cluster                    # relays on NATS vs one relay, about 1.5 min
 * deno task bench --only cluster --cluster-members 60 --cluster-messages 900 --size 1GiB
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type BenchOptions,
  type Machine,
  printInfo,
  renderResults,
  type Section,
} from "./_report.ts";
import { formatSize, MiB, parseSize, run } from "./_measure.ts";
import { preparePeers } from "./peers.ts";
import { benchPipeThroughput } from "./pipe_throughput.ts";
import { benchTimeToReady, TIME_TO_READY_COUNT } from "./time_to_ready.ts";
import { benchHandshakes, SECONDS } from "./handshakes.ts";
import { benchRecordSize } from "./record_size.ts";
import { benchRoomFanout } from "./room_fanout.ts";
import { benchRoomMls } from "./room_mls.ts";
import { benchRelayThroughput } from "./relay_throughput.ts";
import { benchCluster } from "./cluster.ts";
import { benchSendThroughput, SEND_SIZE } from "./send_throughput.ts";

/** The sections, in the order they run. */
export const SECTIONS = [
  "record",
  "pipe",
  "send",
  "relay",
  "ready",
  "handshakes",
  "mls",
  "room",
  "cluster",
] as const;

type SectionName = typeof SECTIONS[number];

const USAGE = `Usage: deno task bench [options]

Runs the benchmarks and prints each figure as a ratio against a baseline measured in the same run;
a full run writes bench/RESULTS.md.

Options:
  --only LIST         sections to run, comma-separated: ${SECTIONS.join(",")} (default: all)
  --size SIZE         bytes per pipe or relay throughput run, e.g. 1GiB, 256MiB (default 1GiB)
  --runs N            pipe or relay throughput runs per figure, the median is kept (default 3)
  --ready-count N     dialers timed for time to ready (default ${TIME_TO_READY_COUNT})
  --seconds N         seconds per handshakes-per-second figure (default ${SECONDS})
  --room-members N    stand-in members the room relay serves for the large-room figures
                      (default 1000); real MLS rooms of 10 and 100 members run beside them
  --cluster-members N   members of the cluster's throughput room (default 30)
  --cluster-messages N  messages sent at once in it (default 450)
  --cluster-rounds N    timed latency rounds of the cluster section (default 50); its bytes
                        through NATS and a splice are --size when given (default 256MiB)
  --install-peers     apt-get install the missing comparison programs first (ssh, sshd, socat, time)
  --results FILE      write the results there (default: bench/RESULTS.md, on a full run only)
  -h, --help          this text
`;

const RESULTS = decodeURIComponent(new URL("./RESULTS.md", import.meta.url).pathname);

function positiveInteger(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`--${flag} needs a whole number`);
  return value;
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg gives them ("" where there is none). */
async function loadAverage(): Promise<string> {
  try {
    const result = await run(["cat", "/proc/loadavg"]);
    return result.code === 0 ? result.stdout.split(" ").slice(0, 3).join(" ") : "";
  } catch {
    return "";
  }
}

async function machine(command: string, loadAtStart: string): Promise<Machine> {
  const text = async (argv: string[]) => {
    try {
      const result = await run(argv);
      return result.code === 0 ? result.stdout : "";
    } catch {
      return "";
    }
  };
  const cpuinfo = await text(["cat", "/proc/cpuinfo"]);
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const commit = (await text(["git", "rev-parse", "--short", "HEAD"])).trim();
  const changed = (await text(["git", "status", "--porcelain", "--untracked-files=no"]))
    .split("\n")
    .map((line) => line.slice(3).trim())
    .filter((path) => path !== "");
  const result: Machine = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    system: (await text(["uname", "-srm"])).trim() || Deno.build.target,
    cpu,
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    command,
    commit: `${commit || "unknown"}${
      changed.length === 0 ? "" : ` with uncommitted changes to ${changed.join(", ")}`
    }`,
  };
  const loadAtEnd = await loadAverage();
  if (loadAtStart !== "" && loadAtEnd !== "") {
    result.load =
      `1/5/15-minute load averages ${loadAtStart} at the start, ${loadAtEnd} at the end ` +
      `(${navigator.hardwareConcurrency} cores; the load at the start is other work)`;
  }
  return result;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      size: { type: "string" },
      runs: { type: "string" },
      "ready-count": { type: "string" },
      seconds: { type: "string" },
      "room-members": { type: "string" },
      "cluster-members": { type: "string" },
      "cluster-messages": { type: "string" },
      "cluster-rounds": { type: "string" },
      "install-peers": { type: "boolean" },
      results: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const only = values.only === undefined
    ? [...SECTIONS]
    : values.only.split(",").map((name) => name.trim()).filter((name) => name !== "");
  for (const name of only) {
    if (!(SECTIONS as readonly string[]).includes(name)) {
      throw new RangeError(`unknown section "${name}": use ${SECTIONS.join(", ")}`);
    }
  }
  const size = values.size === undefined ? 1024 * MiB : parseSize(values.size);
  const runs = positiveInteger(values.runs, "runs", 3);
  const readyCount = positiveInteger(values["ready-count"], "ready-count", TIME_TO_READY_COUNT);
  const seconds = positiveInteger(values.seconds, "seconds", SECONDS);
  const roomMembers = values["room-members"] === undefined
    ? undefined
    : positiveInteger(values["room-members"], "room-members", 1000);
  const full = only.length === SECTIONS.length;
  const resultsFile = values.results ?? (full ? RESULTS : undefined);

  const command = ["deno task bench", ...args].join(" ");
  const started = performance.now();
  const loadAtStart = await loadAverage();
  console.log(`${command}: ${only.join(", ")}; pipe runs ${formatSize(size)} x ${runs}`);
  if (loadAtStart !== "") printInfo(`load averages ${loadAtStart}: other work lowers the figures`);
  const peers = await preparePeers(values["install-peers"] ?? false);
  const tempDir = await Deno.makeTempDir({ prefix: "securechat-bench-" });
  const options: BenchOptions = { size, runs, tempDir };
  const sections: Section[] = [];
  const jobs: Record<SectionName, () => Promise<Section>> = {
    record: () => benchRecordSize(),
    pipe: () => benchPipeThroughput(peers, options),
    send: () => benchSendThroughput(peers, values.size ? options : { ...options, size: SEND_SIZE }),
    relay: () => benchRelayThroughput(options),
    ready: () => benchTimeToReady(peers, options, readyCount),
    handshakes: () => benchHandshakes(peers, options, seconds),
    mls: () => benchRoomMls(),
    room: () => benchRoomFanout(roomMembers === undefined ? {} : { members: roomMembers }),
    cluster: () =>
      benchCluster({
        members: positiveInteger(values["cluster-members"], "cluster-members", 30),
        messages: positiveInteger(values["cluster-messages"], "cluster-messages", 450),
        rounds: positiveInteger(values["cluster-rounds"], "cluster-rounds", 50),
        ...(values.size === undefined ? {} : { bytes: size }),
      }),
  };
  let failed = 0;
  try {
    for (const name of SECTIONS) {
      if (!only.includes(name)) continue;
      try {
        sections.push(await jobs[name]());
      } catch (error) {
        failed++;
        const message = error instanceof Error ? error.message : String(error);
        printInfo(`${name}: failed: ${message}`);
        sections.push({ title: name, notes: [`failed: ${message}`], rows: [] });
      }
    }
  } finally {
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }
  const minutes = (performance.now() - started) / 60_000;
  console.log(`\nbench: done in ${minutes.toFixed(1)} min`);
  if (resultsFile !== undefined) {
    await Deno.writeTextFile(
      resultsFile,
      renderResults(sections, await machine(command, loadAtStart)),
    );
    // Laid out as `deno fmt` lays out Markdown (with the repository's deno.json), so that
    // `deno task check` passes with the file in the tree.
    const config = decodeURIComponent(new URL("../deno.json", import.meta.url).pathname);
    const formatted = await run([
      Deno.execPath(),
      "fmt",
      "--quiet",
      "--config",
      config,
      resultsFile,
    ]);
    if (formatted.code !== 0) printInfo(`deno fmt failed: ${formatted.stderr.trim()}`);
    console.log(`bench: results written to ${resultsFile}`);
  } else {
    console.log("bench: a partial run: bench/RESULTS.md left as it was (--results FILE to write)");
  }
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
