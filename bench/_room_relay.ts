/**
 * The relay of the room fan-out benchmark: `_room_relay_process.ts` in a process of its own (the
 * room's Relay behind real handshakes, its fan-outs timed from inside), with its resident memory
 * and CPU time read from /proc.
 *
 * @module
 */

import type { Fanout } from "./_room_relay_process.ts";
import { ChildRpc } from "./_rpc.ts";

export type { Fanout };

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
  /**
   * The Group messages fanned out since the last call, with the relay's own timings; with
   * `copies`, only those that have written that many copies (the others are kept).
   */
  fanouts(copies?: number): Promise<Fanout[]>;
  /** Its V8 heap in use and external (ArrayBuffer) memory, in KiB. */
  memoryKiB(): Promise<{ heapUsed: number; external: number }>;
  /**
   * The relay process's own floor: milliseconds for `count` concurrent plain writes of `bytes`
   * bytes to as many sockets (of a `_room_sink.ts` process at `port`), one figure per round.
   */
  writeFloor(port: number, count: number, bytes: number, rounds: number): Promise<number[]>;
  /** Any call of _room_relay_process.ts (for investigations). */
  raw(request: Record<string, unknown>): Promise<unknown>;
  /** The last lines the relay wrote to stderr (for error messages). */
  tail(): string;
  /** Closes the room and ends the process. */
  stop(): Promise<void>;
}

/**
 * Starts the timed relay for up to `maxMembers` connections.
 *
 * @returns the relay once it listens
 */
export async function startRelay(maxMembers: number): Promise<Relay> {
  const rpc = ChildRpc.spawn("_room_relay_process.ts", [String(maxMembers)]);
  let port: number;
  try {
    port = await rpc.call({ call: "port" }) as number;
  } catch (error) {
    await rpc.close();
    throw error;
  }
  let stopped = false;
  return {
    port,
    pid: rpc.pid,
    rssKiB: () => processRssKiB(rpc.pid),
    cpuMs: () => processCpuMs(rpc.pid),
    fanouts: async (copies?: number) =>
      await rpc.call(
        copies === undefined ? { call: "fanouts" } : { call: "fanouts", copies },
      ) as Fanout[],
    memoryKiB: async () => {
      const memory = await rpc.call({ call: "memory" }) as { heapUsed: number; external: number };
      return { heapUsed: memory.heapUsed / 1024, external: memory.external / 1024 };
    },
    tail: () => rpc.tail(),
    writeFloor: async (sinkPort, count, bytes, rounds) =>
      await rpc.call({ call: "writeFloor", port: sinkPort, count, bytes, rounds }) as number[],
    raw: (request: Record<string, unknown>) => rpc.call(request),
    async stop() {
      if (stopped) return;
      stopped = true;
      await rpc.call({ call: "close" }).catch(() => {});
      await rpc.close();
    },
  };
}
