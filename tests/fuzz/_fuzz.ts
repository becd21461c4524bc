/**
 * Shared fuzz machinery: the seed and iteration count from the environment, mutators that always
 * change their input, failure messages that name the seed and iteration, and the one summary line
 * each fuzz file prints.
 *
 * - `SECURECHAT_FUZZ_SEED`: a decimal or `0x` hex u32, or `random` (a fresh seed, printed). Default:
 *   a fixed seed, so `deno task test` runs the same sample every time.
 * - `SECURECHAT_FUZZ_ITERATIONS`: the long run's count (`deno task fuzz` sets 100000). It is the
 *   number of fuzzed messages sent to the live listener; the other files scale it by the ratio
 *   their summary line states, because their iterations cost more (a room join) or less (a frame
 *   parse). Unset: each file runs its small fixed sample.
 *
 * Iteration `i` draws from `Prng.forIteration(seed, i)`, so its input depends on the seed and `i`
 * only: a failure message gives both, and the same seed replays it.
 *
 * @module
 */
// deno-lint-ignore-file no-console

import { Prng } from "../_helpers/prng.ts";

/** The seed used when SECURECHAT_FUZZ_SEED is unset. */
export const DEFAULT_SEED = 0x5ec0_0005;

let chosenSeed: number | undefined;

/** The run's seed (SECURECHAT_FUZZ_SEED, else DEFAULT_SEED). */
export function fuzzSeed(): number {
  if (chosenSeed !== undefined) return chosenSeed;
  const raw = Deno.env.get("SECURECHAT_FUZZ_SEED")?.trim();
  if (raw === undefined || raw === "") chosenSeed = DEFAULT_SEED;
  else if (raw === "random") chosenSeed = crypto.getRandomValues(new Uint32Array(1))[0]!;
  else {
    const value = Number(raw.replaceAll("_", ""));
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(`SECURECHAT_FUZZ_SEED must be a u32 or "random", not "${raw}"`);
    }
    chosenSeed = value;
  }
  return chosenSeed;
}

/** The seed as the failure messages and summary lines print it. */
export function seedText(seed = fuzzSeed()): string {
  return `0x${seed.toString(16).padStart(8, "0")}`;
}

/** SECURECHAT_FUZZ_ITERATIONS, or undefined for the short sample. */
export function longRun(): number | undefined {
  const raw = Deno.env.get("SECURECHAT_FUZZ_ITERATIONS")?.trim();
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw.replaceAll("_", ""));
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`SECURECHAT_FUZZ_ITERATIONS must be a positive integer, not "${raw}"`);
  }
  return value;
}

/** `sample` in the short run; SECURECHAT_FUZZ_ITERATIONS times `ratio` (at least 1) in a long one. */
export function fuzzCount(sample: number, ratio = 1): number {
  const long = longRun();
  return long === undefined ? sample : Math.max(1, Math.round(long * ratio));
}

/** Up to `max` bytes as hex, for failure messages. */
export function hex(bytes: Uint8Array, max = 48): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0")).join("");
  return bytes.length > max
    ? `${shown}... (${bytes.length} bytes)`
    : `${shown} (${bytes.length} bytes)`;
}

/** The error a failed iteration is reported with: seed, iteration, input, then the cause. */
export function iterationFailure(
  name: string,
  iteration: number,
  detail: string,
  cause: unknown,
): Error {
  const why = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  return new Error(
    `fuzz ${name}: seed ${seedText()} iteration ${iteration}: ${detail}: ${why}` +
      ` (replay with SECURECHAT_FUZZ_SEED=${seedText()})`,
    { cause },
  );
}

/**
 * Runs `count` iterations, each with its own generator; any throw is rethrown naming the seed,
 * the iteration and what `describe` says about its input.
 */
export async function iterate(
  name: string,
  count: number,
  body: (prng: Prng, iteration: number, note: (detail: string) => void) => void | Promise<void>,
): Promise<void> {
  const seed = fuzzSeed();
  for (let i = 0; i < count; i++) {
    let detail = "";
    try {
      await body(Prng.forIteration(seed, i), i, (text) => detail = text);
    } catch (error) {
      throw iterationFailure(name, i, detail, error);
    }
  }
}

/** Prints the file's summary line, e.g. "fuzz frame: 2000 iterations, seed 0x..., 0 crashes". */
export function summary(name: string, iterations: number, extra: Record<string, string | number>) {
  const parts = [`${iterations} iterations`, `seed ${seedText()}`, "0 crashes"];
  for (const [key, value] of Object.entries(extra)) parts.push(`${key} ${value}`);
  console.log(`fuzz ${name}: ${parts.join(", ")}`);
}

/** A length field inside an encoding, for boundary mutations. */
export interface LengthField {
  offset: number;
  width: 1 | 2 | 4 | 8;
  /** The largest value the decoder should accept, when it has one below the field's maximum. */
  cap?: number;
}

/** A mutated copy of an input, with a note saying how it was made. */
export interface Mutation {
  bytes: Uint8Array;
  how: string;
}

const INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 2 ** 31];

function writeUint(out: Uint8Array, offset: number, width: number, value: number): void {
  let v = BigInt(value) & ((1n << BigInt(8 * width)) - 1n);
  for (let i = width - 1; i >= 0; i--) {
    out[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function readUint(bytes: Uint8Array, offset: number, width: number): number {
  let v = 0;
  for (let i = 0; i < width; i++) v = v * 256 + bytes[offset + i]!;
  return v;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function flipBits(prng: Prng, input: Uint8Array, count: number): Mutation {
  const out = input.slice();
  const bits = new Set<number>();
  while (bits.size < Math.min(count, input.length * 8)) bits.add(prng.int(input.length * 8));
  for (const bit of bits) out[bit >>> 3]! ^= 1 << (bit & 7);
  return { bytes: out, how: `flip bits ${[...bits].join(",")}` };
}

/**
 * One structural or bitwise change to `input`: bit flips, byte overwrites, interesting values,
 * length-field boundaries (0, 1, cap-1, cap, cap+1, the field's maximum), truncation, insertion,
 * deletion, duplication, trailing bytes, splices with a donor, or random bytes. The result always
 * differs from `input`.
 */
export function mutate(
  prng: Prng,
  input: Uint8Array,
  options: { fields?: LengthField[]; donors?: Uint8Array[] } = {},
): Mutation {
  const fields = (options.fields ?? []).filter((f) => f.offset + f.width <= input.length);
  const donors = options.donors ?? [];
  let result: Mutation;
  const kind = input.length === 0 ? prng.pick(["insert", "random"]) : prng.pick([
    "flip",
    "flip",
    "set",
    "interesting",
    "field",
    "field",
    "truncate",
    "insert",
    "delete",
    "duplicate",
    "append",
    "splice",
    "random",
  ]);
  switch (kind) {
    case "flip":
      result = flipBits(prng, input, prng.pick([1, 1, 1, 2, 3, 8]));
      break;
    case "set": {
      const out = input.slice();
      const at = prng.int(input.length);
      out[at] = (out[at]! + 1 + prng.int(255)) & 0xff;
      result = { bytes: out, how: `set byte ${at} to ${out[at]}` };
      break;
    }
    case "interesting": {
      const width = prng.pick([1, 2, 4] as const);
      if (input.length < width) return flipBits(prng, input, 1);
      const out = input.slice();
      const at = prng.int(input.length - width + 1);
      const value = prng.pick(INTERESTING) + prng.between(-1, 1);
      writeUint(out, at, width, Math.max(0, value));
      result = { bytes: out, how: `write u${width * 8} ${value} at ${at}` };
      break;
    }
    case "field": {
      if (fields.length === 0) return mutate(prng, input, { donors });
      const field = prng.pick(fields);
      const max = 2 ** (8 * field.width) - 1;
      const original = readUint(input, field.offset, field.width);
      const cap = field.cap ?? max;
      const candidates = [0, 1, cap - 1, cap, cap + 1, max, original - 1, original + 1]
        .filter((v) => v >= 0 && v <= max && v !== original);
      const value = prng.pick(candidates);
      const out = input.slice();
      writeUint(out, field.offset, field.width, value);
      result = { bytes: out, how: `length field at ${field.offset} ${original} -> ${value}` };
      break;
    }
    case "truncate": {
      const length = prng.int(input.length);
      result = { bytes: input.slice(0, length), how: `truncate to ${length}` };
      break;
    }
    case "insert": {
      const at = prng.int(input.length + 1);
      const extra = prng.bytes(prng.between(1, 16));
      const out = new Uint8Array(input.length + extra.length);
      out.set(input.subarray(0, at));
      out.set(extra, at);
      out.set(input.subarray(at), at + extra.length);
      result = { bytes: out, how: `insert ${extra.length} bytes at ${at}` };
      break;
    }
    case "delete": {
      const at = prng.int(input.length);
      const length = prng.between(1, Math.min(16, input.length - at));
      const out = new Uint8Array(input.length - length);
      out.set(input.subarray(0, at));
      out.set(input.subarray(at + length), at);
      result = { bytes: out, how: `delete ${length} bytes at ${at}` };
      break;
    }
    case "duplicate": {
      const at = prng.int(input.length);
      const length = prng.between(1, Math.min(64, input.length - at));
      const out = new Uint8Array(input.length + length);
      out.set(input.subarray(0, at + length));
      out.set(input.subarray(at), at + length);
      result = { bytes: out, how: `duplicate ${length} bytes at ${at}` };
      break;
    }
    case "append": {
      const extra = prng.bytes(prng.between(1, 8));
      const out = new Uint8Array(input.length + extra.length);
      out.set(input);
      out.set(extra, input.length);
      result = { bytes: out, how: `append ${extra.length} bytes` };
      break;
    }
    case "splice": {
      const donor = donors.length > 0 ? prng.pick(donors) : prng.bytes(prng.length(256));
      const cut = prng.int(input.length + 1);
      const from = prng.int(donor.length + 1);
      const out = new Uint8Array(cut + donor.length - from);
      out.set(input.subarray(0, cut));
      out.set(donor.subarray(from), cut);
      result = { bytes: out, how: `splice at ${cut} with a donor from ${from}` };
      break;
    }
    default: {
      const bytes = prng.bytes(prng.length(Math.max(64, input.length * 2)));
      result = { bytes, how: `random ${bytes.length} bytes` };
    }
  }
  if (equal(result.bytes, input)) {
    const flipped = input.length === 0
      ? { bytes: Uint8Array.of(prng.int(256)), how: "one random byte" }
      : flipBits(prng, input, 1);
    return { bytes: flipped.bytes, how: `${result.how}, then ${flipped.how}` };
  }
  return result;
}

/** Applies 1 to `max` mutations in a row (stacked mutations reach deeper states). */
export function mutateMany(
  prng: Prng,
  input: Uint8Array,
  options: { fields?: LengthField[]; donors?: Uint8Array[]; max?: number } = {},
): Mutation {
  let current = mutate(prng, input, options);
  const rounds = prng.chance(0.7) ? 1 : prng.between(2, options.max ?? 4);
  const hows = [current.how];
  for (let i = 1; i < rounds; i++) {
    current = mutate(prng, current.bytes, { donors: options.donors ?? [] });
    hows.push(current.how);
  }
  if (equal(current.bytes, input)) {
    current = flipBits(prng, input.length ? input : Uint8Array.of(0), 1);
  }
  return { bytes: current.bytes, how: hows.join("; ") };
}
