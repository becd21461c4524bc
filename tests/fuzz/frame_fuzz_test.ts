/**
 * Fuzzing the framing and the record layer (PROTOCOL.md sections 3.2 and 8): `FrameReader` over
 * every length boundary of every cap and over random and mutated streams cut into random read
 * chunks, checked against a reference parser; `RecordLayer.open()` over random and mutated
 * ciphertext frames. Never a crash, never an error that is not ours, never a buffer larger than the
 * cap allows, never data from a frame that was not sealed as it arrived.
 */

import { deepStrictEqual, fail, ok, strictEqual } from "node:assert/strict";
import { concat, u32 } from "../../lib/core/bytes.ts";
import { AuthenticationError, ConnectionError, ProtocolError } from "../../lib/core/errors.ts";
import type { ByteSource } from "../../lib/core/io.ts";
import {
  FRAME_HEADER_LENGTH,
  FRAME_TYPE,
  FrameReader,
  MAGIC,
  MAX_HELLO_LENGTH,
} from "../../lib/protocol/frame.ts";
import {
  MAX_RECORD_PLAINTEXT,
  MAX_RECORD_PLAINTEXT_LIMIT,
  maxCiphertextLength,
  type RecordEvent,
  RecordLayer,
} from "../../lib/protocol/record.ts";
import { Prng } from "../_helpers/prng.ts";
import { fuzzCount, fuzzSeed, hex, iterate, mutateMany, summary } from "./_fuzz.ts";

/** frame.ts reads in steps of at least 64 KiB and starts with a 128 KiB buffer. */
const READ_STEP = 64 * 1024;

/** A loose bound on what FrameReader may offer a source (the exact one is tested below). */
function bufferBound(cap: number): number {
  return 2 * (cap + FRAME_HEADER_LENGTH + READ_STEP);
}

/** What the brief and section 3.2 ask for: the cap plus a constant. */
function capPlusConstant(cap: number): number {
  return cap + FRAME_HEADER_LENGTH + 2 * READ_STEP;
}

const HELLO_CAP = MAX_HELLO_LENGTH;
const CHAT_RECORD_CAP = maxCiphertextLength(MAX_RECORD_PLAINTEXT);
const PIPE_RECORD_CAP = maxCiphertextLength(MAX_RECORD_PLAINTEXT_LIMIT);

/** The cap functions a reader meets: during the handshake, and after it in chat and pipe mode. */
const STATES: { name: string; capOf: (type: number) => number | undefined; maxCap: number }[] = [
  {
    name: "handshake",
    capOf: (type) =>
      type === FRAME_TYPE.clientHello || type === FRAME_TYPE.serverHello
        ? HELLO_CAP
        : type === FRAME_TYPE.plainAlert
        ? 1
        : type === FRAME_TYPE.record
        ? CHAT_RECORD_CAP
        : undefined,
    maxCap: CHAT_RECORD_CAP,
  },
  {
    name: "chat",
    capOf: (type) => type === FRAME_TYPE.record ? CHAT_RECORD_CAP : undefined,
    maxCap: CHAT_RECORD_CAP,
  },
  {
    name: "pipe",
    capOf: (type) => type === FRAME_TYPE.record ? PIPE_RECORD_CAP : undefined,
    maxCap: PIPE_RECORD_CAP,
  },
];

/**
 * An in-memory source that hands out its bytes in chunks chosen by `chunk()` (0 allowed: the reader
 * must ask again) and records the largest buffer it was offered. With `strict`, a read past the end
 * fails with a plain Error, which the fuzz loop would report as "not our error".
 */
class FuzzSource implements ByteSource {
  #data: Uint8Array;
  #offset = 0;
  #chunk: () => number;
  #strict: boolean;
  #zeros = 0;
  largestOffer = 0;
  reads = 0;

  constructor(data: Uint8Array, chunk: () => number, strict = false) {
    this.#data = data;
    this.#chunk = chunk;
    this.#strict = strict;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.reads++;
    this.largestOffer = Math.max(this.largestOffer, buffer.length);
    if (this.#offset >= this.#data.length) {
      if (this.#strict) return Promise.reject(new Error("read past the end of the input"));
      return Promise.resolve(null);
    }
    let n = Math.min(this.#chunk(), buffer.length, this.#data.length - this.#offset);
    // A source may return 0 now and then, never forever.
    if (n === 0 && ++this.#zeros > 3) n = 1;
    if (n > 0) this.#zeros = 0;
    buffer.set(this.#data.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    return Promise.resolve(n);
  }
}

function chunker(prng: Prng, streamLength: number): () => number {
  // Reads of a few bytes over a megabyte prove nothing that reads of a few kilobytes do not.
  const style = streamLength > 65536 ? prng.between(2, 4) : prng.int(5);
  const fixed = prng.pick([1, 2, 3, 5, 7, 12, 13, 4096, 65535, 65536, 1 << 20]);
  return () => {
    switch (style) {
      case 0:
        return fixed;
      case 1:
        return prng.int(8);
      case 2:
        return prng.between(1, 70_000);
      case 3:
        return prng.length(1 << 21);
      default:
        return Number.MAX_SAFE_INTEGER;
    }
  };
}

type Outcome =
  | { kind: "frame"; type: number; body: Uint8Array }
  | { kind: "end" }
  | { kind: "error"; code: string };

/** Section 3.2 written as plainly as possible: what a reader must produce for `stream`. */
function referenceParse(
  stream: Uint8Array,
  withMagic: boolean,
  capOf: (type: number) => number | undefined,
): { magic: Uint8Array | "end" | "truncated" | undefined; outcomes: Outcome[] } {
  let at = 0;
  let magic: Uint8Array | "end" | "truncated" | undefined;
  const outcomes: Outcome[] = [];
  if (withMagic) {
    if (stream.length === 0) return { magic: "end", outcomes };
    if (stream.length < MAGIC.length) return { magic: "truncated", outcomes };
    magic = stream.slice(0, MAGIC.length);
    at = MAGIC.length;
  }
  while (true) {
    if (at === stream.length) return { magic, outcomes: [...outcomes, { kind: "end" }] };
    if (stream.length - at < FRAME_HEADER_LENGTH) {
      return { magic, outcomes: [...outcomes, { kind: "error", code: "truncated_frame" }] };
    }
    const type = stream[at]!;
    const length = new DataView(stream.buffer, stream.byteOffset + at + 1, 4).getUint32(0);
    const cap = capOf(type);
    if (cap === undefined) {
      return { magic, outcomes: [...outcomes, { kind: "error", code: "unexpected_message" }] };
    }
    if (length > cap) {
      return { magic, outcomes: [...outcomes, { kind: "error", code: "record_overflow" }] };
    }
    if (stream.length - at - FRAME_HEADER_LENGTH < length) {
      return { magic, outcomes: [...outcomes, { kind: "error", code: "truncated_frame" }] };
    }
    const start = at + FRAME_HEADER_LENGTH;
    outcomes.push({ kind: "frame", type, body: stream.slice(start, start + length) });
    at = start + length;
  }
}

/** Runs a FrameReader to its end and describes what it produced, like referenceParse. */
async function readAll(
  source: FuzzSource,
  withMagic: boolean,
  capOf: (type: number) => number | undefined,
): Promise<{ magic: Uint8Array | "end" | "truncated" | undefined; outcomes: Outcome[] }> {
  const reader = new FrameReader(source);
  let magic: Uint8Array | "end" | "truncated" | undefined;
  const outcomes: Outcome[] = [];
  try {
    if (withMagic) {
      const got = await reader.readExactly(MAGIC.length);
      if (got === null) return { magic: "end", outcomes };
      magic = got;
    }
    while (true) {
      const frame = await reader.readFrame(capOf);
      if (frame === null) return { magic, outcomes: [...outcomes, { kind: "end" }] };
      deepStrictEqual(frame.header, concat(Uint8Array.of(frame.type), u32(frame.body.length)));
      outcomes.push({ kind: "frame", type: frame.type, body: frame.body });
    }
  } catch (error) {
    // Only our two classes may come out of a reader; anything else is a crash.
    if (!(error instanceof ProtocolError) && !(error instanceof ConnectionError)) throw error;
    if (withMagic && magic === undefined) {
      strictEqual(error.code, "truncated_frame");
      return { magic: "truncated", outcomes };
    }
    return { magic, outcomes: [...outcomes, { kind: "error", code: error.code }] };
  }
}

const stats = { iterations: 0, frames: 0, errors: 0, maxBuffer: 0, maxBufferCap: 0, records: 0 };

function noteBuffer(source: FuzzSource, cap: number) {
  ok(
    source.largestOffer <= bufferBound(cap),
    `a read was offered ${source.largestOffer} bytes with a cap of ${cap}`,
  );
  if (source.largestOffer > stats.maxBuffer) {
    stats.maxBuffer = source.largestOffer;
    stats.maxBufferCap = cap;
  }
}

/** Section 3.2 boundary lengths of a cap: 0, 1, cap-1, cap, cap+1 and 2^32-1. */
function boundaries(cap: number): number[] {
  return [...new Set([0, 1, cap - 1, cap, cap + 1, 2 ** 32 - 1])].filter((n) => n >= 0).sort((
    a,
    b,
  ) => a - b);
}

const TYPED_CAPS: { type: number; cap: number; state: number }[] = [
  { type: FRAME_TYPE.clientHello, cap: HELLO_CAP, state: 0 },
  { type: FRAME_TYPE.serverHello, cap: HELLO_CAP, state: 0 },
  { type: FRAME_TYPE.plainAlert, cap: 1, state: 0 },
  { type: FRAME_TYPE.record, cap: CHAT_RECORD_CAP, state: 1 },
  { type: FRAME_TYPE.record, cap: PIPE_RECORD_CAP, state: 2 },
];

for (const { type, cap, state } of TYPED_CAPS) {
  const capOf = STATES[state]!.capOf;
  Deno.test(
    `FrameReader.readFrame() boundary table: type 0x${
      type.toString(16)
    } cap ${cap} at 0, 1, cap-1, cap, cap+1, 2^32-1 across chunk sizes`,
    async () => {
      const fill = new Uint8Array(cap + 1).fill(0xa5);
      for (const length of boundaries(cap)) {
        for (const chunk of [1, 5, 4096, 65536, Number.MAX_SAFE_INTEGER]) {
          // One-byte reads of a megabyte body prove nothing the 4 KiB reads do not.
          if (chunk === 1 && length > 20_000 && length <= cap) continue;
          const header = concat(Uint8Array.of(type), u32(length));
          const label = `length ${length}, chunk ${chunk}`;
          if (length > cap) {
            // Strict: the reader must refuse after the header, without asking for the body.
            const source = new FuzzSource(header, () => chunk, true);
            const error = await new FrameReader(source).readFrame(capOf).then(
              () => fail(`${label}: accepted`),
              (e: unknown) => e,
            );
            ok(error instanceof ProtocolError, `${label}: ${error}`);
            strictEqual(error.code, "record_overflow", label);
            noteBuffer(source, cap);
            continue;
          }
          const body = fill.subarray(0, length);
          const whole = new FuzzSource(concat(header, body), () => chunk);
          const frame = await new FrameReader(whole).readFrame(capOf);
          strictEqual(frame?.type, type, label);
          deepStrictEqual(frame.body, body.slice(), label);
          noteBuffer(whole, cap);
          if (length > 0) {
            const cut = new FuzzSource(concat(header, body.subarray(0, length - 1)), () => chunk);
            const error = await new FrameReader(cut).readFrame(capOf).then(
              () => fail(`${label}: a body one byte short was accepted`),
              (e: unknown) => e,
            );
            ok(error instanceof ConnectionError, `${label}: ${error}`);
            strictEqual(error.code, "truncated_frame", label);
            noteBuffer(cut, cap);
          }
        }
      }
    },
  );
}

Deno.test("FrameReader.readFrame() refuses every type a state does not allow with unexpected_message", async () => {
  for (const { name, capOf } of STATES) {
    for (let type = 0; type < 256; type++) {
      if (capOf(type) !== undefined) continue;
      const source = new FuzzSource(concat(Uint8Array.of(type), u32(0)), () => 1, true);
      const error = await new FrameReader(source).readFrame(capOf).then(
        () => fail(`${name}: type ${type} accepted`),
        (e: unknown) => e,
      );
      ok(error instanceof ProtocolError, `${name} type ${type}: ${error}`);
      strictEqual(error.code, "unexpected_message");
    }
  }
});

/** Random bytes; long bodies repeat a random kilobyte (their content matters less than length). */
function body(prng: Prng, length: number): Uint8Array {
  if (length <= 4096) return prng.bytes(length);
  const out = new Uint8Array(length);
  const pattern = prng.bytes(1024);
  for (let i = 0; i < length; i += 1024) out.set(pattern.subarray(0, length - i), i);
  return out;
}

function randomFrame(prng: Prng, capOf: (type: number) => number | undefined): Uint8Array {
  const allowed = ([...Object.values(FRAME_TYPE)] as number[]).filter((t) =>
    capOf(t) !== undefined
  );
  const type = prng.chance(0.9) ? prng.pick(allowed) : prng.int(256);
  const cap = capOf(type) ?? 64;
  // Mostly small bodies, sometimes right at the cap.
  const length = prng.chance(0.05) ? prng.pick([cap - 1, cap, cap + 1]) : prng.length(
    Math.min(cap, 2048),
  );
  const bodyLength = Math.max(0, Math.min(length, cap + 1));
  return concat(Uint8Array.of(type), u32(Math.max(0, length)), body(prng, bodyLength));
}

Deno.test("FrameReader agrees with a reference parser on random and mutated streams in random chunks", async () => {
  const count = fuzzCount(3000, 0.1);
  await iterate("frame", count, async (prng, _i, note) => {
    const state = prng.pick(STATES);
    const withMagic = prng.chance(0.3);
    const frames = Array.from({ length: prng.int(7) }, () => randomFrame(prng, state.capOf));
    let stream = concat(...(withMagic ? [MAGIC] : []), ...frames);
    let how = "valid";
    if (prng.chance(0.7)) {
      const mutation = mutateMany(prng, stream, {
        fields: frames.map((_, k) => ({
          offset: (withMagic ? MAGIC.length : 0) +
            frames.slice(0, k).reduce((sum, f) => sum + f.length, 0) + 1,
          width: 4 as const,
          cap: state.maxCap,
        })),
        donors: frames,
      });
      stream = mutation.bytes;
      how = mutation.how;
    }
    note(`${state.name} state, ${withMagic ? "magic + " : ""}${hex(stream)}, ${how}`);
    const source = new FuzzSource(stream, chunker(prng, stream.length));
    const got = await readAll(source, withMagic, state.capOf);
    const want = referenceParse(stream, withMagic, state.capOf);
    deepStrictEqual(got, want);
    noteBuffer(source, state.maxCap);
    stats.iterations++;
    stats.frames += want.outcomes.filter((o) => o.kind === "frame").length;
    stats.errors += want.outcomes.filter((o) => o.kind === "error").length;
  });
});

Deno.test("FrameReader never lets a header claiming up to 2^32-1 bytes allocate past the cap", async () => {
  const count = fuzzCount(500, 0.01);
  await iterate("frame-claims", count, async (prng, _i, note) => {
    const state = prng.pick(STATES);
    const type = prng.chance(0.8) ? FRAME_TYPE.record : prng.int(256);
    const claimed = prng.chance(0.5) ? 2 ** 32 - 1 - prng.int(1 << 16) : prng.int(2 ** 32);
    // A claim, then a trickle of body: the reader must refuse or wait, never allocate the claim.
    const stream = concat(Uint8Array.of(type), u32(claimed), prng.bytes(prng.int(256)));
    note(`${state.name}: type ${type} claims ${claimed}`);
    const source = new FuzzSource(stream, chunker(prng, stream.length));
    const got = await readAll(source, false, state.capOf);
    deepStrictEqual(got, referenceParse(stream, false, state.capOf));
    noteBuffer(source, state.maxCap);
    stats.iterations++;
  });
});

// Regression: FrameReader once doubled its buffer, allocating twice the cap for an announced frame.
Deno.test({
  name: "FrameReader offers a source at most the cap plus a constant (pipe-mode record cap)",
  fn: async () => {
    const header = concat(Uint8Array.of(FRAME_TYPE.record), u32(PIPE_RECORD_CAP));
    const source = new FuzzSource(concat(header, new Uint8Array(PIPE_RECORD_CAP)), () => 65536);
    await new FrameReader(source).readFrame(STATES[2]!.capOf);
    ok(
      source.largestOffer <= capPlusConstant(PIPE_RECORD_CAP),
      `offered ${source.largestOffer} bytes for a cap of ${PIPE_RECORD_CAP}`,
    );
  },
});

async function recordPair(prng: Prng) {
  const a = prng.bytes(32);
  const b = prng.bytes(32);
  const options = {
    peerMaxPlaintext: MAX_RECORD_PLAINTEXT,
    ownMaxPlaintext: MAX_RECORD_PLAINTEXT,
    keyUpdateRecords: 40,
    suite: "chacha20-poly1305" as const,
  };
  return {
    sender: await RecordLayer.create({ sendSecret: a, receiveSecret: b, ...options }),
    receiver: await RecordLayer.create({ sendSecret: b, receiveSecret: a, ...options }),
  };
}

/** Opens a frame that must be refused: AuthenticationError or ProtocolError, never an event. */
async function mustRefuse(receiver: RecordLayer, frame: Uint8Array, what: string): Promise<string> {
  const header = frame.subarray(0, Math.min(FRAME_HEADER_LENGTH, frame.length));
  const body = frame.subarray(header.length);
  let event: RecordEvent;
  try {
    event = await receiver.open(header, body);
  } catch (error) {
    if (error instanceof AuthenticationError || error instanceof ProtocolError) return error.code;
    throw error;
  }
  return fail(`${what} was opened: ${JSON.stringify(event)}`);
}

Deno.test("RecordLayer.open() refuses every random or mutated ciphertext frame and stays in step", async () => {
  const count = fuzzCount(250, 0.01);
  const setup = new Prng(fuzzSeed() ^ 0x7ec0);
  const { sender, receiver } = await recordPair(setup);
  const history: Uint8Array[] = [];
  const codes = new Map<string, number>();
  await iterate("record", count, async (prng, i, note) => {
    // A genuine next record: data, a key update, or a keepalive.
    const kind = prng.pick(["data", "data", "data", "keyUpdate", "keepalive"]);
    const frames = kind === "data"
      ? await sender.sealData(
        prng.bytes(prng.chance(0.05) ? MAX_RECORD_PLAINTEXT : prng.length(600)),
      )
      : kind === "keyUpdate"
      ? [await sender.sealKeyUpdate(false)]
      : [await sender.sealKeepalive(true)];
    for (const genuine of frames) {
      for (let k = 0; k < prng.between(1, 3); k++) {
        const pick = prng.int(10);
        let forged: Uint8Array;
        let how: string;
        if (pick < 6) {
          ({ bytes: forged, how } = mutateMany(prng, genuine, {
            fields: [{ offset: 1, width: 4, cap: CHAT_RECORD_CAP }],
            donors: history,
          }));
        } else if (pick < 8 && history.length > 0) {
          forged = prng.pick(history);
          how = "an earlier record again";
        } else {
          const length = prng.length(CHAT_RECORD_CAP);
          forged = concat(Uint8Array.of(FRAME_TYPE.record), u32(length), prng.bytes(length));
          how = "random ciphertext";
        }
        note(`${kind} record ${i}: ${how}: ${hex(forged)}`);
        const code = await mustRefuse(receiver, forged, how);
        codes.set(code, (codes.get(code) ?? 0) + 1);
        stats.records++;
      }
      // The refusals moved nothing: the genuine record still opens, in step.
      note(`${kind} record ${i}: the genuine record after the refusals`);
      const event = await receiver.open(genuine.subarray(0, 5), genuine.subarray(5));
      ok(["data", "keyUpdate", "keepalive"].includes(event.kind), JSON.stringify(event));
      history.push(genuine);
      if (history.length > 24) history.shift();
    }
  });
  ok((codes.get("bad_record_mac") ?? 0) > 0, JSON.stringify([...codes]));
  summary("frame", stats.iterations + count, {
    "frames parsed": stats.frames,
    "reader errors": stats.errors,
    "forged records refused": stats.records,
    "max buffer": `${stats.maxBuffer} bytes (cap ${stats.maxBufferCap}; bound 2*(cap+64KiB+5))`,
    "refusal codes": [...codes].map(([code, n]) => `${code}=${n}`).join(" "),
  });
});
