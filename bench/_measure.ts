/**
 * Measuring helpers shared by the benchmarks: medians, shell quoting, programs found on PATH,
 * processes timed by `/usr/bin/time` (wall clock, user and system CPU, max RSS), and the argv that
 * runs securechat exactly as the tests and users do (`deno run` with the compile task's flags).
 *
 * @module
 */

import { cliCommand } from "../tests/_helpers/cli.ts";
import { LineWatcher, makePeer, type TestPeer } from "../tests/_helpers/peers.ts";

/** One MiB. */
export const MiB = 1024 * 1024;

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Quotes `word` for a POSIX shell. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Quotes and joins an argv for a POSIX shell. */
export function shellJoin(argv: string[]): string {
  return argv.map(shellQuote).join(" ");
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The full path of `program` on PATH (and the sbin folders), or undefined. */
export async function which(program: string): Promise<string | undefined> {
  const folders = (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const folder of folders) {
    if (folder === "") continue;
    const path = `${folder}/${program}`;
    try {
      const info = await Deno.stat(path);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return path;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

/** The argv of `securechat ARGS` as users run it from source: `deno run <compile flags> main.ts`. */
export function securechatArgv(args: string[]): string[] {
  const { cmd, args: rest } = cliCommand(args);
  return [cmd, ...rest];
}

/** The argv that runs a bench helper program (`bench/NAME`) with the same `deno run` startup. */
export function benchProgramArgv(name: string, args: string[]): string[] {
  const path = decodeURIComponent(new URL(`./${name}`, import.meta.url).pathname);
  return [Deno.execPath(), "run", "--quiet", "--no-prompt", "--allow-net=127.0.0.1", path, ...args];
}

/** Runs a command to completion and returns its exit code and output. */
export async function run(
  argv: string[],
  options: { env?: Record<string, string>; stdin?: Uint8Array } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env === undefined ? {} : { env: options.env }),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(options.stdin).catch(() => {});
    await writer.close().catch(() => {});
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** What `/usr/bin/time` reports about one process and the children it waited for. */
export interface Usage {
  /** Wall clock seconds. */
  elapsed: number;
  user: number;
  system: number;
  /** Max resident set size in KiB. */
  maxRssKiB: number;
}

/** Where `/usr/bin/time` lives, when GNU time is installed. */
export const TIME_PROGRAM = "/usr/bin/time";

/** True when GNU time is installed (it reports CPU and max RSS of a process). */
export async function hasTimeProgram(): Promise<boolean> {
  try {
    return (await Deno.stat(TIME_PROGRAM)).isFile;
  } catch {
    return false;
  }
}

/**
 * The argv prefix that makes GNU time write the usage of the command after it to `file`
 * (nothing when time is not installed: the usage is then unknown).
 */
export function timePrefix(file: string, enabled: boolean): string[] {
  return enabled ? [TIME_PROGRAM, "-f", "%e %U %S %M", "-o", file] : [];
}

/** Reads what {@linkcode timePrefix} wrote, or undefined. */
export async function readUsage(file: string): Promise<Usage | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return undefined;
  }
  // GNU time puts "Command exited with non-zero status N" first when the command failed.
  const last = text.trim().split("\n").pop() ?? "";
  const fields = last.trim().split(/\s+/).map(Number);
  if (fields.length !== 4 || fields.some((field) => !Number.isFinite(field))) return undefined;
  const [elapsed, user, system, maxRssKiB] = fields as [number, number, number, number];
  return { elapsed, user, system, maxRssKiB };
}

/** Adds usages of processes that ran side by side (CPU adds up; RSS is the larger). */
export function addUsage(...usages: (Usage | undefined)[]): Usage | undefined {
  if (usages.some((usage) => usage === undefined)) return undefined;
  return (usages as Usage[]).reduce((sum, usage) => ({
    elapsed: Math.max(sum.elapsed, usage.elapsed),
    user: sum.user + usage.user,
    system: sum.system + usage.system,
    maxRssKiB: Math.max(sum.maxRssKiB, usage.maxRssKiB),
  }));
}

/** A child's stderr lines, the first 200 kept (a relay may log thousands), to wait for one. */
export class Lines extends LineWatcher {
  constructor(stream: ReadableStream<Uint8Array>) {
    super(stream, { keep: 200 });
  }
}

/** Waits for a child to exit, killing it (SIGKILL) after `timeoutMs`. */
export async function exitWithin(
  child: Deno.ChildProcess,
  timeoutMs: number,
): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      resolve();
    }, timeoutMs);
  });
  await Promise.race([child.status, killed]);
  clearTimeout(timer);
  return await child.status;
}

/** Sends SIGTERM, then SIGKILL if the child has not exited after `graceMs`. */
export async function stop(child: Deno.ChildProcess, graceMs = 2000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await exitWithin(child, graceMs);
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for programs that cannot print theirs). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() - start > timeoutMs) {
        throw new Error(`nothing listens on 127.0.0.1:${port}`, { cause: error });
      }
      await sleep(20);
    }
  }
}

/** Formats a byte count as the bench's options spell it: `1GiB`, `256MiB`, `0B`. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [["GiB", 1024 ** 3], ["MiB", MiB], ["KiB", 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * Parses `1GiB`, `256MiB`, `64M`, `1G`, `4096` (bytes).
 *
 * @throws {RangeError} on anything else
 */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG]?)(i?B)?$/i.exec(text.trim());
  if (!match) throw new RangeError(`cannot parse size "${text}": use e.g. 1GiB, 256MiB, 4096`);
  const scale = { "": 1, K: 1024, M: MiB, G: 1024 ** 3 }[match[2]!.toUpperCase()]!;
  return Math.round(Number(match[1]) * scale);
}

/** Two identities made with `securechat keygen` (the default RSA-PSS 3072, no passphrase). */
export interface BenchIdentities {
  /** The dialer's. */
  alice: TestPeer;
  /** The listener's; dialers pin it with `--expect`. */
  bob: TestPeer;
}

const identities = new Map<string, Promise<BenchIdentities>>();

/** The run's two identities in `tempDir/identities`, made once per run. */
export function benchIdentities(tempDir: string): Promise<BenchIdentities> {
  let made = identities.get(tempDir);
  if (made === undefined) {
    made = (async () => {
      const root = `${tempDir}/identities`;
      await Deno.mkdir(root, { recursive: true });
      const [alice, bob] = await Promise.all([
        makePeer(root, "alice", "rsa-pss"),
        makePeer(root, "bob", "rsa-pss"),
      ]);
      return { alice, bob };
    })();
    identities.set(tempDir, made);
  }
  return made;
}

/**
 * CPU seconds of process `pid` from /proc/PID/stat: its own (utime, stime) and that of the
 * children it has reaped (cutime, cstime). Read through `cat`, because Deno lets only
 * `--allow-all` read another process's /proc files. Undefined where there is no /proc.
 */
export async function processTimes(
  pid: number,
): Promise<{ user: number; system: number; childUser: number; childSystem: number } | undefined> {
  let stat: string;
  try {
    const result = await run(["cat", `/proc/${pid}/stat`]);
    if (result.code !== 0) return undefined;
    stat = result.stdout;
  } catch {
    return undefined;
  }
  // The fields after the command name in parentheses (which may hold spaces); fields[0] is
  // stat(5)'s field 3, so utime, stime, cutime, cstime (fields 14 to 17) are fields[11..14].
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const ticks = 100; // USER_HZ is 100 on every Linux ABI in use
  return {
    user: fields[11]! / ticks,
    system: fields[12]! / ticks,
    childUser: fields[13]! / ticks,
    childSystem: fields[14]! / ticks,
  };
}
