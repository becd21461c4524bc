/**
 * File transfer throughput: `securechat listen --receive DIR` and `dial --send FILE`, as users run
 * them, against the pipe (`listen --pipe > OUT`, `dial --pipe < FILE`) moving the same file in the
 * same run; and the same transfer through a 50 ms round trip (bench/_delay_proxy.ts, 25 ms each
 * way, no bandwidth limit) against `scp -c aes256-gcm@openssh.com` of the same file through the
 * same kind of proxy into the private sshd of bench/peers.ts, and the pipe through it.
 *
 * Each figure is the median of `runs`, the programs' runs interleaved. Wall clock runs from
 * starting the dialer (listener and proxy already waiting) until both ends exited, so the sender's
 * hashing of the file before its Offer counts, as users wait for it.
 *
 * Start-up rows: the pipe and the send of 1 KiB on loopback, whose wall clock is what each costs
 * besides its bytes; "send, wall clock less its start-up" then compares the two data phases, so
 * that a report can tell the bytes' cost from the fixed one (the room, its MLS setup, the Offer)
 * that the 0.8x target also pays.
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
  Lines,
  median,
  MiB,
  readUsage,
  securechatArgv,
  shellJoin,
  stop,
  timePrefix,
  type Usage,
} from "./_measure.ts";
import { missingPeer, type Peers, startSshServer } from "./peers.ts";

/** The default bytes per transfer, the issue's figure: the section then takes about 1.5 minutes. */
export const SEND_SIZE = 128 * MiB;

/** One way of the proxy's round trip. */
const DELAY_MS = 25;
const TIMEOUT_MS = 300_000;

/** One program run per trial: a receiving end started first (none for scp) and a dialer. */
interface Contender {
  name: string;
  /** Through the delay proxy. */
  delayed: boolean;
  /** The receiving end's argv and environment, its output file, the line that gives its port. */
  listen?: { argv: string[]; env: Record<string, string>; stdout?: string };
  /** The dialer's shell command line, given the port to dial. */
  dial(port: number): string;
  env?: Record<string, string>;
  /** The file the bytes end up in, checked for its size after each trial. */
  output: string;
  /** Bytes it moves when not the section's size: the start-up rows move FLOOR_BYTES. */
  size?: number;
}

/**
 * The start-up rows: pipe and send of this many bytes on loopback, whose wall clock is what a
 * transfer costs besides its bytes (start-up, handshake, for send the room and the Offer). With
 * it the send's data phase can be told from the fixed cost the 0.8x target also pays.
 */
const FLOOR_BYTES = 1024;

interface Trial {
  seconds: number;
  usage: Usage | undefined;
}

const PORT_LINE = /listening on [^ ]*:(\d+)/;

function spawn(argv: string[], env: Record<string, string>, stdout?: string) {
  const command = `exec ${shellJoin(argv)}${stdout === undefined ? "" : ` > ${stdout}`}`;
  const child = new Deno.Command("bash", {
    args: ["-c", command],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  return { child, lines: new Lines(child.stderr) };
}

async function portOf(started: ReturnType<typeof spawn>): Promise<number> {
  try {
    return Number(PORT_LINE.exec(await started.lines.waitFor(PORT_LINE))![1]);
  } catch (error) {
    started.child.kill("SIGKILL");
    await started.child.status;
    throw error;
  }
}

async function runTrial(
  contender: Contender,
  sshPort: number,
  bytes: number,
  dir: string,
  timing: boolean,
): Promise<Trial> {
  await Deno.remove(contender.output, { recursive: true }).catch(() => {});
  const received = `${dir}/received`;
  await Deno.remove(received, { recursive: true }).catch(() => {});
  await Deno.mkdir(received);
  const [listenFile, dialFile] = [`${dir}/listen.time`, `${dir}/dial.time`];
  const listener = contender.listen &&
    spawn(
      [...timePrefix(listenFile, timing), ...contender.listen.argv],
      contender.listen.env,
      contender.listen.stdout,
    );
  let proxy: ReturnType<typeof spawn> | undefined;
  try {
    let port = listener ? await portOf(listener) : sshPort;
    if (contender.delayed) {
      proxy = spawn(
        benchProgramArgv("_delay_proxy.ts", [String(port), "--delay", String(DELAY_MS)]),
        {},
      );
      port = await portOf(proxy);
    }
    const timed = timing && listener !== undefined;
    const prefix = timed ? `${shellJoin(timePrefix(dialFile, true))} ` : "";
    const start = performance.now();
    const dialer = new Deno.Command("bash", {
      args: ["-c", prefix + contender.dial(port)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1", ...contender.env },
    }).spawn();
    const errors = new Lines(dialer.stderr);
    const [dialStatus, listenStatus] = await Promise.all([
      exitWithin(dialer, TIMEOUT_MS),
      listener ? exitWithin(listener.child, TIMEOUT_MS) : undefined,
    ]);
    const seconds = (performance.now() - start) / 1000;
    await errors.done;
    if (!dialStatus.success || (listenStatus && !listenStatus.success)) {
      const detail = [...errors.lines, ...(listener?.lines.lines ?? [])]
        .filter((line) => /error/i.test(line)).pop();
      throw new Error(`${contender.name} failed${detail ? `: ${detail}` : ""}`);
    }
    const size = (await Deno.stat(contender.output)).size;
    const expected = contender.size ?? bytes;
    if (size !== expected) {
      throw new Error(`${contender.name}: ${size} of ${expected} bytes arrived`);
    }
    const usage = timed
      ? addUsage(await readUsage(dialFile), await readUsage(listenFile))
      : undefined;
    return { seconds, usage };
  } finally {
    if (proxy) await stop(proxy.child);
  }
}

async function contenders(
  options: BenchOptions,
  file: string,
  floorFile: string,
  dir: string,
): Promise<Contender[]> {
  const { alice, bob } = await benchIdentities(options.tempDir);
  const list: Contender[] = [];
  for (const kind of ["pipe", "send"] as const) {
    const send = kind === "send";
    list.push({
      name: `${kind} of ${formatSize(FLOOR_BYTES)} (start-up)`,
      delayed: false,
      listen: {
        argv: securechatArgv(
          ["listen", "--port", "0", ...(send ? ["--receive", `${dir}/received`] : ["--pipe"])],
        ),
        env: bob.env,
        ...(send ? {} : { stdout: `${dir}/piped-floor.bin` }),
      },
      dial: (port) =>
        shellJoin(securechatArgv([
          "dial",
          `127.0.0.1:${port}`,
          ...(send ? ["--send", floorFile] : ["--pipe"]),
          "--expect",
          bob.fingerprint,
        ])) + (send ? "" : ` < ${floorFile}`),
      env: alice.env,
      output: send ? `${dir}/received/floor.bin` : `${dir}/piped-floor.bin`,
      size: FLOOR_BYTES,
    });
  }
  for (const delayed of [false, true]) {
    const suffix = delayed ? `, ${2 * DELAY_MS} ms round trip` : "";
    list.push(
      {
        name: `pipe${suffix}`,
        delayed,
        listen: {
          argv: securechatArgv(["listen", "--port", "0", "--pipe"]),
          env: bob.env,
          stdout: `${dir}/piped.bin`,
        },
        dial: (port) =>
          `${
            shellJoin(securechatArgv([
              "dial",
              `127.0.0.1:${port}`,
              "--pipe",
              "--expect",
              bob.fingerprint,
            ]))
          } < ${file}`,
        env: alice.env,
        output: `${dir}/piped.bin`,
      },
      {
        name: `send${suffix}`,
        delayed,
        listen: {
          argv: securechatArgv(["listen", "--port", "0", "--receive", `${dir}/received`]),
          env: bob.env,
        },
        dial: (port) =>
          shellJoin(securechatArgv([
            "dial",
            `127.0.0.1:${port}`,
            "--send",
            file,
            "--expect",
            bob.fingerprint,
          ])),
        env: alice.env,
        output: `${dir}/received/file.bin`,
      },
    );
  }
  return list;
}

/** `scp -O` (the sshd has no sftp subsystem) with the pipe bench's ssh options and cipher. */
function scpContender(client: string[], file: string, dir: string): Contender {
  const options = client.slice(1, -3).filter((word) => word !== "-T");
  return {
    name: `scp aes256-gcm, ${2 * DELAY_MS} ms round trip`,
    delayed: true,
    dial: (port) =>
      shellJoin([
        client[0]!.replace(/ssh$/, "scp"),
        "-O",
        ...options,
        "-P",
        String(port),
        file,
        `root@127.0.0.1:${dir}/scp.bin`,
      ]),
    output: `${dir}/scp.bin`,
  };
}

const NOTES = (size: number, runs: number) => [
  `${
    formatSize(size)
  } of random bytes from a file; median of ${runs} runs, the programs' runs interleaved; MB = 10^6 bytes.`,
  "send: `listen --receive DIR` / `dial --send FILE --expect FP` (RSA-PSS 3072 identities, `deno run` with the compile flags); pipe: `listen --pipe > OUT` / `dial --pipe < FILE`.",
  "Wall clock: from starting the dialer (listener and proxy waiting) until both ends exited, so start-up, the handshake and the sender's hashing count.",
  `${
    2 * DELAY_MS
  } ms round trip: through bench/_delay_proxy.ts (each chunk delayed ${DELAY_MS} ms each way, no bandwidth limit); scp -O -c aes256-gcm@openssh.com into the private sshd through the same proxy.`,
  "CPU: user+system seconds of both ends (GNU time) per MiB, start-up included.",
  `start-up: the same programs moving ${
    formatSize(FLOOR_BYTES)
  } on loopback, wall clock: what a transfer costs besides its bytes (for send: the room and the Offer too), which the 0.8x target pays in full.`,
];

/**
 * Runs the file transfer benchmark.
 *
 * @param peers the comparison programs found (see peers.ts)
 * @param options size, runs and temporary folder
 * @returns the section: wall clock of each program, with ratios and the issue's two targets
 */
export async function benchSendThroughput(peers: Peers, options: BenchOptions): Promise<Section> {
  const section: Section = {
    title: "File transfer",
    notes: NOTES(options.size, options.runs),
    rows: [],
  };
  printHeading(section);
  const timing = peers.time !== undefined;
  const dir = `${options.tempDir}/send`;
  await Deno.mkdir(dir, { recursive: true });
  const file = `${dir}/file.bin`;
  {
    using out = await Deno.open(file, { write: true, create: true, truncate: true });
    const chunk = new Uint8Array(MiB);
    for (let done = 0; done < options.size; done += chunk.length) {
      for (let i = 0; i < chunk.length; i += 65536) {
        crypto.getRandomValues(chunk.subarray(i, i + 65536));
      }
      const part = chunk.subarray(0, Math.min(chunk.length, options.size - done));
      for (let written = 0; written < part.length;) {
        written += await out.write(part.subarray(written));
      }
    }
  }
  // Its own folder: send names the received file after it, floor.bin.
  await Deno.mkdir(`${dir}/floor`, { recursive: true });
  const floorFile = `${dir}/floor/floor.bin`;
  await Deno.writeFile(floorFile, crypto.getRandomValues(new Uint8Array(FLOOR_BYTES)));
  const list = await contenders(options, file, floorFile, dir);
  let sshd: Awaited<ReturnType<typeof startSshServer>> | undefined;
  if (peers.sshd && peers.ssh && await Deno.stat("/usr/bin/scp").then(() => true, () => false)) {
    try {
      sshd = await startSshServer(peers, `${dir}/sshd`);
      list.push(scpContender(sshd.client, file, dir));
    } catch (error) {
      printInfo(`scp: left out: ${(error as Error).message}`);
    }
  } else {
    printInfo(missingPeer(peers.sshd ? "ssh" : "sshd"));
  }
  const trials = new Map<string, { done: Trial[]; error?: string }>(
    list.map((contender) => [contender.name, { done: [] }]),
  );
  try {
    for (let run = 0; run < options.runs; run++) {
      for (const contender of list) {
        const record = trials.get(contender.name)!;
        if (record.error !== undefined) continue;
        try {
          record.done.push(await runTrial(contender, sshd?.port ?? 0, options.size, dir, timing));
        } catch (error) {
          record.error = (error as Error).message;
          printInfo(record.error);
        }
      }
      printInfo(`run ${run + 1} of ${options.runs} done`);
    }
  } finally {
    await sshd?.close();
  }
  const rate = new Map<string, number>();
  for (const contender of list) {
    const record = trials.get(contender.name)!;
    if (record.done.length === 0) {
      section.rows.push({
        name: contender.name,
        value: null,
        unit: "MB/s",
        note: record.error ?? "not measured",
      });
      continue;
    }
    const seconds = median(record.done.map((trial) => trial.seconds));
    if (contender.size !== undefined) {
      // A start-up row: its wall clock, the send's against the pipe's.
      rate.set(contender.name, seconds);
      const row: Row = { name: contender.name, value: seconds * 1000, unit: "ms" };
      const pipeFloor = contender.name.replace(/^send/, "pipe");
      if (pipeFloor !== contender.name && rate.has(pipeFloor)) {
        row.ratio = seconds / rate.get(pipeFloor)!;
        row.baseline = pipeFloor;
      }
      section.rows.push(row);
      continue;
    }
    const value = options.size / 1e6 / seconds;
    rate.set(contender.name, value);
    const row: Row = { name: contender.name, value, unit: "MB/s" };
    const baseline = contender.name.startsWith("send")
      ? contender.name.replace(/^send/, "pipe")
      : undefined;
    if (baseline !== undefined && rate.has(baseline)) {
      row.ratio = value / rate.get(baseline)!;
      row.baseline = baseline;
    }
    const usages = record.done.map((trial) => trial.usage);
    if (usages.every((usage) => usage !== undefined)) {
      const cpu = median(usages.map((usage) => usage!.user + usage!.system));
      row.note = `CPU ${(cpu / (options.size / MiB) * 1000).toFixed(2)} ms/MiB, max RSS ${
        (Math.max(...usages.map((usage) => usage!.maxRssKiB)) / 1024).toFixed(0)
      } MiB`;
    }
    section.rows.push(row);
  }
  // The bytes alone: each loopback wall clock less its own start-up row.
  const floor = (kind: string) => rate.get(`${kind} of ${formatSize(FLOOR_BYTES)} (start-up)`);
  const bytesOnly = (kind: "pipe" | "send") => {
    const [mbps, start] = [rate.get(kind), floor(kind)];
    if (mbps === undefined || start === undefined) return undefined;
    const seconds = options.size / 1e6 / mbps - start;
    return seconds > 0 ? options.size / 1e6 / seconds : undefined;
  };
  const [pipeBytes, sendBytes] = [bytesOnly("pipe"), bytesOnly("send")];
  if (pipeBytes !== undefined && sendBytes !== undefined) {
    section.rows.push({
      name: "send, wall clock less its start-up",
      value: sendBytes,
      unit: "MB/s",
      ratio: sendBytes / pipeBytes,
      baseline: "pipe, wall clock less its start-up",
      note: `pipe ${pipeBytes.toFixed(1)} MB/s`,
    });
  }
  const scp = `scp aes256-gcm, ${2 * DELAY_MS} ms round trip`;
  const delayedSend = `send, ${2 * DELAY_MS} ms round trip`;
  if (rate.has(scp) && rate.has(delayedSend)) {
    section.rows.push({
      name: delayedSend,
      value: rate.get(delayedSend)!,
      unit: "MB/s",
      ratio: rate.get(delayedSend)! / rate.get(scp)!,
      baseline: scp,
    });
  }
  for (const row of section.rows) printRow(row);
  section.targets = targetsOf(rate, scp, delayedSend);
  printTargets(section.targets);
  return section;
}

function targetsOf(rate: Map<string, number>, scp: string, delayedSend: string): Target[] {
  const target = (text: string, ours: string, theirs: string, at: number): Target => {
    const [a, b] = [rate.get(ours), rate.get(theirs)];
    if (a === undefined || b === undefined) return { text, met: null, detail: "not measured" };
    return {
      text,
      met: a / b >= at,
      detail: `${(a / b).toFixed(2)}x: ${a.toFixed(1)} vs ${b.toFixed(1)} MB/s`,
    };
  };
  return [
    target("dial --send at least 0.8 of the pipe on loopback (wall clock)", "send", "pipe", 0.8),
    target(
      `dial --send at ${2 * DELAY_MS} ms round trip at least 1.5x scp through the same proxy`,
      delayedSend,
      scp,
      1.5,
    ),
  ];
}
