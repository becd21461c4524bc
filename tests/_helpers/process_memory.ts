/**
 * Searches the memory of a running process for byte patterns, through `/proc/PID/maps` and
 * `/proc/PID/mem` (Linux), so a test can show that a secret never existed in a process (the relay
 * of an end-to-end encrypted room) and, as a control, that it does exist in another.
 *
 * Deno grants `/proc/PID/*` only with `--allow-all`, which the test suite does not run with, so
 * `searchProcessMemory()` runs this module as a subprocess (`deno run --allow-all`, allowed by the
 * suite's `--allow-run`) that reads the target and answers with JSON. The kernel lets it read the
 * target when it may ptrace it: the same user with Yama's `ptrace_scope` 0, or root.
 *
 * What it does not do: stop the target (it keeps running; pages may change while read), or read
 * regions the kernel refuses (`[vvar]`, guard pages): those are counted, not fatal. A target that
 * cannot be opened at all is an error, never an empty result.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/** What a search found. */
export interface MemorySearch {
  /** Bytes read from the target's readable regions. */
  bytesRead: number;
  /** Readable regions, and those of them the kernel refused to read. */
  regions: number;
  unreadableRegions: number;
  /** For each pattern found, the address of its first occurrence (hex); absent when not found. */
  found: Record<string, string>;
}

/** Bytes read from the target at a time. */
const CHUNK = 4 * 1024 * 1024;

/**
 * Searches the memory of process `pid` for each of `patterns`.
 *
 * @param pid the process (a child of the caller, or any process the caller may ptrace)
 * @param patterns byte patterns by name, each at least 8 bytes (shorter ones match by chance)
 * @returns what was read and where each pattern was first found
 * @throws {Error} when the process's memory cannot be read at all, naming why
 */
export async function searchProcessMemory(
  pid: number,
  patterns: Record<string, Uint8Array>,
): Promise<MemorySearch> {
  if (Deno.build.os !== "linux") {
    throw new Error(`reading a process's memory needs Linux's /proc, not ${Deno.build.os}`);
  }
  for (const [name, bytes] of Object.entries(patterns)) {
    if (bytes.length < 8) throw new RangeError(`pattern "${name}" is shorter than 8 bytes`);
    if (bytes.every((byte) => byte === 0)) throw new RangeError(`pattern "${name}" is all zeros`);
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", new URL(import.meta.url).pathname, String(pid)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const hex = Object.fromEntries(
    Object.entries(patterns).map(([name, bytes]) => [name, Buffer.from(bytes).toString("hex")]),
  );
  await writer.write(new TextEncoder().encode(JSON.stringify(hex)));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `cannot read the memory of process ${pid}: ${decoder.decode(output.stderr).trim()}`,
    );
  }
  return JSON.parse(decoder.decode(output.stdout)) as MemorySearch;
}

/** The readable regions of `/proc/PID/maps`: [start, end) addresses. */
function readableRegions(maps: string): [number, number][] {
  const regions: [number, number][] = [];
  for (const line of maps.split("\n")) {
    const [range, perms, , , , path] = line.trim().split(/\s+/);
    if (!range || !perms?.startsWith("r")) continue;
    // Not memory of the process: the kernel's vDSO data and the legacy vsyscall page.
    if (path === "[vvar]" || path === "[vvar_vclock]" || path === "[vsyscall]") continue;
    const [start, end] = range.split("-").map((part) => parseInt(part, 16)) as [number, number];
    regions.push([start, end]);
  }
  return regions;
}

/** The subprocess: reads patterns (JSON, hex) from stdin, answers a MemorySearch on stdout. */
async function main(pid: number): Promise<void> {
  const hex = JSON.parse(await new Response(Deno.stdin.readable).text()) as Record<string, string>;
  const patterns = Object.entries(hex).map(([name, value]) => ({
    name,
    bytes: Buffer.from(value, "hex"),
  }));
  const longest = Math.max(...patterns.map(({ bytes }) => bytes.length));
  const regions = readableRegions(await Deno.readTextFile(`/proc/${pid}/maps`));
  const result: MemorySearch = {
    bytesRead: 0,
    regions: regions.length,
    unreadableRegions: 0,
    found: {},
  };
  using mem = await Deno.open(`/proc/${pid}/mem`, { read: true });
  const buffer = Buffer.alloc(CHUNK + longest);
  const zeros = Buffer.alloc(CHUNK);
  for (const [start, end] of regions) {
    // Each chunk starts with the last `longest - 1` bytes of the one before, so a pattern that
    // straddles two chunks is still seen.
    let carried = 0;
    try {
      for (let at = start; at < end;) {
        const want = Math.min(CHUNK, end - at);
        await mem.seek(at, Deno.SeekMode.Start);
        const view = buffer.subarray(carried, carried + want);
        let got = 0;
        while (got < want) {
          const n = await mem.read(view.subarray(got));
          if (n === null || n === 0) break;
          got += n;
        }
        if (got === 0) break;
        result.bytesRead += got;
        const filled = buffer.subarray(0, carried + got);
        // Most of a V8 process's readable memory is reserved pages never written, which read as
        // zeros: of such a chunk only the start, where a pattern could straddle from the chunk
        // before, is searched (no pattern is all zeros).
        const fresh = filled.subarray(carried);
        const searched = fresh.equals(zeros.subarray(0, fresh.length))
          ? filled.subarray(0, Math.min(filled.length, 2 * longest))
          : filled;
        for (const { name, bytes } of patterns) {
          if (result.found[name] !== undefined) continue;
          const index = searched.indexOf(bytes);
          if (index >= 0) result.found[name] = (at - carried + index).toString(16);
        }
        carried = Math.min(longest - 1, filled.length);
        buffer.copy(buffer, 0, filled.length - carried, filled.length);
        at += got;
      }
    } catch {
      result.unreadableRegions++;
    }
  }
  await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(result)));
}

if (import.meta.main) {
  const pid = Number(Deno.args[0]);
  try {
    if (!Number.isInteger(pid) || pid <= 0) throw new Error("usage: process_memory.ts PID");
    await main(pid);
  } catch (error) {
    // One line for the caller's error message, e.g. "Permission denied (os error 13)".
    const why = error instanceof Error ? error.message : String(error);
    await Deno.stderr.write(new TextEncoder().encode(`${why}\n`));
    Deno.exit(1);
  }
}
