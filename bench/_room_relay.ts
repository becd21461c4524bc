/**
 * The relay of the room fan-out benchmark: a real `securechat listen --relay-only` process,
 * started as the end-to-end tests start main.ts, with its resident memory and CPU time.
 *
 * @module
 */

import { generateIdentity } from "../lib/keys/identity.ts";
import { writeIdentity } from "../lib/keys/identity_file.ts";
import { cliCommand } from "../tests/_helpers/cli.ts";

async function output(cmd: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output()
    .catch(() => undefined);
  return new TextDecoder().decode(result?.stdout ?? new Uint8Array()).trim();
}

/**
 * A file of `/proc/PID/`. Deno reads /proc only with --allow-all; without it (`deno task bench`)
 * `cat` reads it (--allow-run), at the cost of a process each time.
 */
async function procFile(pid: number, name: string): Promise<string> {
  const path = `/proc/${pid}/${name}`;
  return await Deno.readTextFile(path).catch(() => output("cat", [path]));
}

/** Resident memory of process `pid` in KiB (VmRSS, as `ps -o rss=`; NaN when unknown). */
export async function processRssKiB(pid: number): Promise<number> {
  const status = await procFile(pid, "status");
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (rss !== undefined) return Number(rss);
  return Number(await output("ps", ["-o", "rss=", "-p", String(pid)]) || NaN);
}

/**
 * User + system CPU time of process `pid` (all its threads) in milliseconds: fields 14 and 15 of
 * `/proc/PID/stat`, in clock ticks of 1/100 s (USER_HZ). Linux only: NaN elsewhere.
 */
export async function processCpuMs(pid: number): Promise<number> {
  const text = await procFile(pid, "stat");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A running relay process. */
export interface Relay {
  port: number;
  pid: number;
  /** Resident memory in KiB. */
  rssKiB(): Promise<number>;
  /** User + system CPU time in milliseconds so far (Linux /proc; NaN elsewhere). */
  cpuMs(): Promise<number>;
  /** The last lines the relay wrote to stderr (for error messages). */
  tail(): string;
  /** SIGTERM (the relay closes the room), SIGKILL if it lingers; removes its home folder. */
  stop(): Promise<void>;
}

/**
 * Starts `main.ts listen --relay-only --port 0` as the end-to-end tests do (the shipped
 * permission flags, tests/_helpers/cli.ts), with an Ed25519 identity in a temporary
 * SECURECHAT_HOME, keepalives off, and room for `maxMembers`.
 *
 * @param maxMembers `--max-members` (and `--max-pending-handshakes`, `--max-pending-per-address`:
 *   every member dials from 127.0.0.1)
 * @param tempDir where the relay's home folder goes (default: the system's temporary folder)
 * @returns the relay once it printed "listening on"
 */
export async function startRelay(maxMembers: number, tempDir?: string): Promise<Relay> {
  const home = await Deno.makeTempDir({
    prefix: "securechat-bench-relay-",
    ...(tempDir === undefined ? {} : { dir: tempDir }),
  });
  const { identity, pkcs8 } = await generateIdentity({ type: "ed25519", comment: "relay" });
  await writeIdentity(`${home}/id`, pkcs8, identity, { force: false });
  const command = cliCommand([
    "listen",
    "--relay-only",
    "--port",
    "0",
    "--max-members",
    String(maxMembers),
    "--max-pending-handshakes",
    String(maxMembers),
    "--max-pending-per-address",
    String(maxMembers),
    "--handshake-timeout",
    "300",
    "--keepalive",
    "0",
  ]);
  const child = new Deno.Command(command.cmd, {
    args: command.args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { SECURECHAT_HOME: home, NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  let resolvePort: (port: number) => void = () => {};
  const portKnown = new Promise<number>((resolve) => resolvePort = resolve);
  const draining = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of child.stderr) {
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        lines.push(line);
        if (lines.length > 50) lines.shift();
        const port = /listening on [^ ]+:(\d+) as /.exec(line)?.[1];
        if (port !== undefined) resolvePort(Number(port));
      }
    }
  })();
  const pid = child.pid;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 20_000)),
      ]);
      clearTimeout(timer);
      if (!exited) child.kill("SIGKILL");
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // TypeError: it has already exited
    }
    await Promise.all([child.status, draining]);
    await Deno.remove(home, { recursive: true });
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let port: number;
  try {
    port = await Promise.race([
      portKnown,
      child.status.then((status) => {
        throw new Error(`relay exited with ${status.code}:\n${lines.join("\n")}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`relay did not start:\n${lines.join("\n")}`)),
          30_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    pid,
    rssKiB: () => processRssKiB(pid),
    cpuMs: () => processCpuMs(pid),
    tail: () => lines.join("\n"),
    stop,
  };
}
