/**
 * Pipe throughput: `securechat listen --pipe > /dev/null` and `head -c SIZE /dev/zero |
 * securechat dial --pipe`, as users run them (`deno run` with the compile task's flags), against
 * the same bytes moved by a raw TCP Deno program of the same shape (bench/_raw_tcp.ts), by `ssh -c
 * aes256-gcm@openssh.com` into a private sshd, and by socat (OPENSSL, OPENSSL with 128 KiB
 * buffers, plain TCP) when they are installed.
 *
 * Each figure is the median of `runs`; the runs of all programs alternate so that load from
 * elsewhere spreads over all of them. Wall clock runs from starting the dialer (the listener is
 * already waiting) until both ended; steady state takes a 0-byte run's time (process start,
 * connection setup, teardown) out. CPU is user+system of both ends from GNU time, per MiB moved.
 *
 * @module
 */

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
  addUsage,
  benchIdentities,
  benchProgramArgv,
  exitWithin,
  formatSize,
  freePort,
  Lines,
  median,
  MiB,
  readUsage,
  securechatArgv,
  shellJoin,
  sleep,
  timePrefix,
  type Usage,
} from "./_measure.ts";
import { makeCertificate, missingPeer, type Peers, reapedCpu, startSshServer } from "./peers.ts";

/** One timed transfer. */
interface Trial {
  seconds: number;
  dial: Usage | undefined;
  listen: Usage | undefined;
}

/** How to run one program: a listener per transfer (or a standing server) and a dialer. */
interface Contender {
  name: string;
  /** Starts the receiving end; resolves with the port once it is ready. */
  listen?(usageFile: string): { child: Deno.ChildProcess; port: Promise<number> };
  /** The dialer's argv, reading the bytes from stdin. */
  dial(port: number): string[];
  env?: Record<string, string>;
  /** A standing server whose reaped children's CPU is the receiving end's (sshd). */
  serverPid?: number;
}

const TIMEOUT_MS = 600_000;

function spawnListener(
  argv: string[],
  ready: RegExp,
  env: Record<string, string> = {},
): { child: Deno.ChildProcess; port: Promise<number> } {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  const lines = new Lines(child.stderr);
  const port = lines.waitFor(ready).then((line) => Number(ready.exec(line)![1]));
  return { child, port };
}

async function settledCpu(pid: number): Promise<{ user: number; system: number }> {
  // sshd reaps the session's process a moment after the client exits.
  let last = await reapedCpu(pid);
  for (let i = 0; i < 10; i++) {
    await sleep(30);
    const now = await reapedCpu(pid);
    if (now.user === last.user && now.system === last.system && i >= 2) return now;
    last = now;
  }
  return last;
}

async function runTrial(
  contender: Contender,
  bytes: number,
  dir: string,
  timing: boolean,
): Promise<Trial> {
  const listenFile = `${dir}/listen.time`;
  const dialFile = `${dir}/dial.time`;
  await Deno.remove(listenFile).catch(() => {});
  await Deno.remove(dialFile).catch(() => {});
  const listener = contender.listen?.(timing ? listenFile : "");
  let port = 0;
  if (listener) {
    try {
      port = await listener.port;
    } catch (error) {
      listener.child.kill("SIGKILL");
      await listener.child.status;
      throw error;
    }
  }
  const serverBefore = contender.serverPid === undefined
    ? undefined
    : await reapedCpu(contender.serverPid);
  const dialArgv = [...timePrefix(dialFile, timing), ...contender.dial(port)];
  const start = performance.now();
  const dialer = new Deno.Command("bash", {
    args: ["-c", `head -c ${bytes} /dev/zero | ${shellJoin(dialArgv)}`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1", ...contender.env },
  }).spawn();
  const dialerErrors = new Lines(dialer.stderr);
  const [dialStatus, listenStatus] = await Promise.all([
    exitWithin(dialer, TIMEOUT_MS),
    listener ? exitWithin(listener.child, TIMEOUT_MS) : undefined,
  ]);
  const seconds = (performance.now() - start) / 1000;
  await dialerErrors.done;
  if (!dialStatus.success || (listenStatus && !listenStatus.success)) {
    const detail = dialerErrors.lines.filter((line) => !line.startsWith("Command exited")).pop();
    throw new Error(
      `${contender.name} failed (dialer exit ${dialStatus.code}, listener exit ${
        listenStatus?.code ?? "-"
      })${detail ? `: ${detail}` : ""}`,
    );
  }
  let listen = timing && listener ? await readUsage(listenFile) : undefined;
  if (timing && serverBefore !== undefined) {
    const after = await settledCpu(contender.serverPid!);
    listen = {
      elapsed: seconds,
      user: after.user - serverBefore.user,
      system: after.system - serverBefore.system,
      maxRssKiB: 0,
    };
  }
  return { seconds, dial: timing ? await readUsage(dialFile) : undefined, listen };
}

/** Medians of one program's trials at one size. */
interface Figures {
  seconds: number;
  usage: Usage | undefined;
  dial: Usage | undefined;
  listen: Usage | undefined;
}

function medianUsage(usages: (Usage | undefined)[]): Usage | undefined {
  if (usages.length === 0 || usages.some((usage) => usage === undefined)) return undefined;
  const all = usages as Usage[];
  return {
    elapsed: median(all.map((usage) => usage.elapsed)),
    user: median(all.map((usage) => usage.user)),
    system: median(all.map((usage) => usage.system)),
    maxRssKiB: median(all.map((usage) => usage.maxRssKiB)),
  };
}

function figures(trials: Trial[]): Figures {
  return {
    seconds: median(trials.map((trial) => trial.seconds)),
    usage: medianUsage(trials.map((trial) => addUsage(trial.dial, trial.listen))),
    dial: medianUsage(trials.map((trial) => trial.dial)),
    listen: medianUsage(trials.map((trial) => trial.listen)),
  };
}

/** CPU ms per MiB of both ends, minus the 0-byte run; undefined without GNU time. */
function cpuPerMiB(full: Figures, empty: Figures, bytes: number): number | undefined {
  if (!full.usage || !empty.usage) return undefined;
  const { usage: a } = full;
  const { usage: b } = empty;
  return (a.user + a.system - b.user - b.system) / (bytes / MiB) * 1000;
}

function cpuNote(full: Figures, empty: Figures, bytes: number): string | undefined {
  if (!full.usage || !empty.usage || !full.dial || !full.listen || !empty.dial || !empty.listen) {
    return undefined;
  }
  const mib = bytes / MiB;
  const perMiB = (a: Usage, b: Usage) => (a.user + a.system - b.user - b.system) / mib * 1000;
  const total = perMiB(full.usage, empty.usage);
  const user = (full.usage.user - empty.usage.user) / mib * 1000;
  const rss = full.listen.maxRssKiB > 0
    ? `, max RSS dial ${(full.dial.maxRssKiB / 1024).toFixed(0)} / listen ${
      (full.listen.maxRssKiB / 1024).toFixed(0)
    } MiB`
    : `, max RSS dial ${(full.dial.maxRssKiB / 1024).toFixed(0)} MiB`;
  return `CPU ${total.toFixed(2)} ms/MiB (dial ${perMiB(full.dial, empty.dial).toFixed(2)} + ` +
    `listen ${perMiB(full.listen, empty.listen).toFixed(2)}; user ${user.toFixed(2)})${rss}`;
}

async function contenders(
  peers: Peers,
  options: BenchOptions,
  cleanups: (() => Promise<void>)[],
): Promise<Contender[]> {
  const { alice, bob } = await benchIdentities(options.tempDir);
  const portLine = /listening on [^ ]*:(\d+)/;
  const list: Contender[] = [
    {
      name: "securechat",
      listen: (file) =>
        spawnListener(
          [
            ...timePrefix(file, file !== ""),
            ...securechatArgv(["listen", "--port", "0", "--pipe"]),
          ],
          portLine,
          bob.env,
        ),
      dial: (port) =>
        securechatArgv(["dial", `127.0.0.1:${port}`, "--pipe", "--expect", bob.fingerprint]),
      env: alice.env,
    },
    {
      // The other record suite (PROTOCOL.md 4.5): what the default choice buys.
      name: AES,
      listen: (file) =>
        spawnListener(
          [
            ...timePrefix(file, file !== ""),
            ...securechatArgv(["listen", "--port", "0", "--pipe"]),
          ],
          portLine,
          bob.env,
        ),
      dial: (port) =>
        securechatArgv([
          "dial",
          `127.0.0.1:${port}`,
          "--pipe",
          "--expect",
          bob.fingerprint,
          "--record-suites",
          "aes-256-gcm",
        ]),
      env: alice.env,
    },
    {
      name: "raw TCP (Deno)",
      listen: (file) =>
        spawnListener(
          [...timePrefix(file, file !== ""), ...benchProgramArgv("_raw_tcp.ts", ["listen", "0"])],
          portLine,
        ),
      dial: (port) => benchProgramArgv("_raw_tcp.ts", ["dial", `127.0.0.1:${port}`]),
    },
  ];
  if (peers.sshd && peers.ssh) {
    try {
      const server = await startSshServer(peers, `${options.tempDir}/sshd`);
      cleanups.push(() => server.close());
      list.push({
        name: "ssh aes256-gcm",
        dial: () => [...server.client, "cat > /dev/null"],
        serverPid: server.pid,
      });
    } catch (error) {
      printInfo(`ssh: left out: ${(error as Error).message}`);
    }
  } else {
    printInfo(missingPeer(peers.sshd ? "ssh" : "sshd"));
  }
  if (peers.socat && peers.openssl) {
    const { pem } = await makeCertificate(peers, `${options.tempDir}/socat`, "bob");
    const socat = peers.socat;
    const socatListener = (address: string, args: string[] = []) => (file: string) => {
      const port = freePort();
      return spawnListener(
        [
          ...timePrefix(file, file !== ""),
          socat,
          "-d",
          "-d",
          ...args,
          "-u",
          address.replace("PORT", String(port)),
          "STDOUT",
        ],
        /listening on .*:(\d+)/,
      );
    };
    const tls = `OPENSSL-LISTEN:PORT,bind=127.0.0.1,reuseaddr,cert=${pem},verify=0`;
    list.push(
      {
        name: "socat OPENSSL",
        listen: socatListener(tls),
        dial: (port) => [socat, "-u", "STDIN", `OPENSSL:127.0.0.1:${port},verify=0`],
      },
      {
        name: "socat OPENSSL -b 131072",
        listen: socatListener(tls, ["-b", "131072"]),
        dial: (
          port,
        ) => [socat, "-b", "131072", "-u", "STDIN", `OPENSSL:127.0.0.1:${port},verify=0`],
      },
      {
        name: "socat TCP",
        listen: socatListener("TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr"),
        dial: (port) => [socat, "-u", "STDIN", `TCP:127.0.0.1:${port}`],
      },
    );
  } else {
    printInfo(missingPeer(peers.socat ? "openssl" : "socat"));
  }
  return list;
}

const NOTES = (size: number, runs: number) => [
  `${
    formatSize(size)
  } from /dev/zero through each program on 127.0.0.1 to /dev/null; median of ${runs} runs, the programs' runs interleaved.`,
  "Wall clock: from starting the dialer (listener already waiting) until both ends exited; steady state: the same minus a 0-byte run (start, handshake, teardown).",
  "securechat runs as `deno run <compile flags> main.ts listen --pipe` / `dial --pipe --expect FP` with RSA-PSS 3072 identities; raw TCP (Deno) is bench/_raw_tcp.ts, the same read/write shape without crypto.",
  "CPU: user+system seconds of both ends (GNU time; for ssh the server side is sshd's reaped session, `cat` included) per MiB, minus the 0-byte run; MB = 10^6 bytes.",
];

/**
 * Runs the pipe throughput benchmark.
 *
 * @param peers the comparison programs found (see peers.ts)
 * @param options size, runs and temporary folder
 * @returns the section: wall clock and steady state of each program, with ratios and targets
 */
export async function benchPipeThroughput(peers: Peers, options: BenchOptions): Promise<Section> {
  const section: Section = {
    title: "Pipe throughput",
    notes: NOTES(options.size, options.runs),
    rows: [],
  };
  printHeading(section);
  const timing = peers.time !== undefined;
  if (!timing) printInfo(`${missingPeer("time")}: CPU and memory are left out`);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const list = await contenders(peers, options, cleanups);
    const dir = `${options.tempDir}/pipe`;
    await Deno.mkdir(dir, { recursive: true });
    const trials = new Map<string, { full: Trial[]; empty: Trial[]; error?: string }>();
    for (const contender of list) trials.set(contender.name, { full: [], empty: [] });
    // Warm-up: caches deno's module graph and the page cache of every program.
    for (const contender of list) {
      try {
        await runTrial(contender, MiB, dir, false);
      } catch (error) {
        trials.get(contender.name)!.error = (error as Error).message;
        printInfo((error as Error).message);
      }
    }
    for (let run = 0; run < options.runs; run++) {
      for (const [bytes, kind] of [[0, "empty"], [options.size, "full"]] as const) {
        for (const contender of list) {
          const record = trials.get(contender.name)!;
          if (record.error !== undefined) continue;
          try {
            record[kind].push(await runTrial(contender, bytes, dir, timing));
          } catch (error) {
            record.error = (error as Error).message;
            printInfo(record.error);
          }
        }
      }
      printInfo(`run ${run + 1} of ${options.runs} done`);
    }
    const results = new Map<string, Result>();
    for (const contender of list) {
      const record = trials.get(contender.name)!;
      if (record.error !== undefined || record.full.length === 0) continue;
      const full = figures(record.full);
      const empty = figures(record.empty);
      const note = cpuNote(full, empty, options.size);
      const cpu = cpuPerMiB(full, empty, options.size);
      results.set(contender.name, {
        wall: options.size / 1e6 / full.seconds,
        steady: options.size / 1e6 / Math.max(1e-9, full.seconds - empty.seconds),
        ...(note === undefined ? {} : { note }),
        ...(cpu === undefined ? {} : { cpu }),
      });
    }
    section.rows.push(...rowsOf(list, trials, results));
    for (const row of section.rows) printRow(row);
    section.targets = targetsOf(results);
    printTargets(section.targets);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
  return section;
}

const RAW = "raw TCP (Deno)";
const AES = "securechat --record-suites aes-256-gcm";
const SSH = "ssh aes256-gcm";

/** One program's figures: MB/s wall clock and steady state, CPU ms per MiB of both ends. */
interface Result {
  wall: number;
  steady: number;
  note?: string;
  cpu?: number;
}

function rowsOf(
  list: Contender[],
  trials: Map<string, { error?: string }>,
  results: Map<string, Result>,
): Row[] {
  const rows: Row[] = [];
  const raw = results.get(RAW);
  for (const contender of list) {
    const result = results.get(contender.name);
    if (result === undefined) {
      rows.push({
        name: contender.name,
        value: null,
        unit: "MB/s",
        note: trials.get(contender.name)?.error ?? "not measured",
      });
      continue;
    }
    for (const kind of ["wall", "steady"] as const) {
      const label = kind === "wall" ? "wall clock" : "steady state";
      const row: Row = { name: `${contender.name}, ${label}`, value: result[kind], unit: "MB/s" };
      if (raw !== undefined && contender.name !== RAW) {
        row.ratio = result[kind] / raw[kind];
        row.baseline = `${RAW}, ${label}`;
      }
      if (kind === "wall" && result.note !== undefined) row.note = result.note;
      rows.push(row);
    }
  }
  const ours = results.get("securechat");
  if (ours !== undefined) {
    for (const name of [AES, SSH, "socat OPENSSL", "socat OPENSSL -b 131072"]) {
      const theirs = results.get(name);
      if (theirs === undefined) continue;
      for (const kind of ["wall", "steady"] as const) {
        const label = kind === "wall" ? "wall clock" : "steady state";
        rows.push({
          name: `securechat, ${label}`,
          value: ours[kind],
          unit: "MB/s",
          ratio: ours[kind] / theirs[kind],
          baseline: `${name}, ${label}`,
        });
      }
    }
  }
  return rows;
}

function targetsOf(results: Map<string, Result>): Target[] {
  const ours = results.get("securechat");
  const ssh = results.get(SSH);
  const raw = results.get(RAW);
  const judge = (ratio: number | undefined, at: number) => ratio === undefined ? null : ratio >= at;
  const sshRatio = ours && ssh ? ours.wall / ssh.wall : undefined;
  const rawRatio = ours && raw ? ours.wall / raw.wall : undefined;
  return [
    {
      text: "pipe throughput at least equal to ssh aes256-gcm (wall clock)",
      met: judge(sshRatio, 1),
      detail: sshRatio === undefined
        ? "ssh not measured"
        : `${sshRatio.toFixed(2)}x: ${ours!.wall.toFixed(0)} vs ${
          ssh!.wall.toFixed(0)
        } MB/s; steady state ${(ours!.steady / ssh!.steady).toFixed(2)}x`,
    },
    {
      text: "pipe throughput at least 0.85 of raw TCP through Deno (wall clock)",
      met: judge(rawRatio, 0.85),
      detail: rawRatio === undefined
        ? "not measured"
        : `${rawRatio.toFixed(2)}x: ${ours!.wall.toFixed(0)} vs ${
          raw!.wall.toFixed(0)
        } MB/s; steady state ${(ours!.steady / raw!.steady).toFixed(2)}x`,
    },
    {
      text: "pipe CPU per MiB, both ends, at most 5 ms",
      met: ours?.cpu === undefined ? null : ours.cpu <= 5,
      detail: ours?.cpu === undefined
        ? "not measured (GNU time missing)"
        : `${ours.cpu.toFixed(2)} ms/MiB${
          raw?.cpu === undefined ? "" : `; raw TCP through Deno ${raw.cpu.toFixed(2)}`
        }${ssh?.cpu === undefined ? "" : `; ssh ${ssh.cpu.toFixed(2)}`}`,
    },
  ];
}
