import { deepStrictEqual as eql, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { concat, u32 } from "../../lib/core/bytes.ts";
import { ConnectionError, ProtocolError, type SecurechatError } from "../../lib/core/errors.ts";
import { type ByteSink, type ByteSource, writeAll } from "../../lib/core/io.ts";
import {
  encodeFrame,
  FRAME_HEADER_LENGTH,
  FRAME_TYPE,
  frameHeader,
  FrameReader,
  MAGIC,
  MAX_HELLO_LENGTH,
} from "../../lib/protocol/frame.ts";
import { MAX_RECORD_PLAINTEXT, maxCiphertextLength } from "../../lib/protocol/record.ts";

/**
 * An in-memory ByteSource that returns at most `chunk` bytes per read. When its data is used up it
 * either ends the stream (`null`) or, with `throwWhenDrained`, fails the read: that proves the reader
 * decided before asking for more. It records every read and the largest buffer it was offered.
 */
class ChunkedSource implements ByteSource {
  readonly #data: Uint8Array;
  readonly #chunk: number;
  readonly #throwWhenDrained: boolean;
  #offset = 0;
  reads = 0;
  largestOffer = 0;

  constructor(data: Uint8Array, chunk = Infinity, options: { throwWhenDrained?: boolean } = {}) {
    this.#data = data;
    this.#chunk = chunk;
    this.#throwWhenDrained = options.throwWhenDrained ?? false;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.reads++;
    this.largestOffer = Math.max(this.largestOffer, buffer.length);
    if (this.#offset >= this.#data.length) {
      if (this.#throwWhenDrained) {
        return Promise.reject(new Error("the reader asked for bytes past the frame header"));
      }
      return Promise.resolve(null);
    }
    const n = Math.min(this.#chunk, buffer.length, this.#data.length - this.#offset);
    buffer.set(this.#data.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    return Promise.resolve(n);
  }
}

/** A ByteSink that accepts at most `chunk` bytes per write and records each write. */
class ChunkedSink implements ByteSink {
  readonly #chunk: number;
  readonly writes: Uint8Array[] = [];

  constructor(chunk: number) {
    this.#chunk = chunk;
  }

  write(data: Uint8Array): Promise<number> {
    const n = Math.min(this.#chunk, data.length);
    this.writes.push(data.slice(0, n));
    return Promise.resolve(n);
  }

  get received(): Uint8Array {
    return concat(...this.writes);
  }
}

/** Deterministic filler so a misplaced byte shows up as a content mismatch. */
function pattern(length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function isError(errorClass: abstract new (...args: never[]) => SecurechatError, code: string) {
  return (error: unknown) => {
    ok(error instanceof errorClass, `expected a ${errorClass.name}, got ${error}`);
    strictEqual(error.code, code);
    return true;
  };
}

/** Caps of the record frame type only: everything else is "not allowed now". */
function recordOnly(cap: number) {
  return (type: number) => type === FRAME_TYPE.record ? cap : undefined;
}

const CHUNK_SIZES = [
  { name: "1 byte at a time", size: 1 },
  { name: "7 bytes at a time", size: 7 },
  { name: "whole", size: Infinity },
] as const;

Deno.test("encodeFrame() prefixes the body with its type and big-endian u32 length", () => {
  eql(encodeFrame(FRAME_TYPE.plainAlert, Uint8Array.of(40)), Uint8Array.of(0x15, 0, 0, 0, 1, 40));
  eql(encodeFrame(FRAME_TYPE.clientHello, new Uint8Array(0)), Uint8Array.of(0x01, 0, 0, 0, 0));
  const body = pattern(0x1234);
  const frame = encodeFrame(FRAME_TYPE.record, body);
  eql(frame.subarray(0, FRAME_HEADER_LENGTH), Uint8Array.of(0x17, 0, 0, 0x12, 0x34));
  eql(frame.subarray(FRAME_HEADER_LENGTH), body);
  eql(frameHeader(FRAME_TYPE.record, 0x01020304), Uint8Array.of(0x17, 1, 2, 3, 4));
});

Deno.test("encodeFrame() rejects a type that does not fit in a u8 with RangeError", () => {
  throws(() => encodeFrame(0x100, new Uint8Array(1)), RangeError);
  throws(() => encodeFrame(-1, new Uint8Array(1)), RangeError);
});

Deno.test("MAGIC is the 12 bytes of section 3.1", () => {
  eql(MAGIC, Uint8Array.of(0x73, 0x65, 0x63, 0x75, 0x72, 0x65, 0x63, 0x68, 0x61, 0x74, 0x0d, 0x0a));
});

Deno.test("FrameReader.readFrame() round-trips frames of every type through encodeFrame()", async () => {
  const frames = [
    encodeFrame(FRAME_TYPE.clientHello, pattern(300, 1)),
    encodeFrame(FRAME_TYPE.serverHello, pattern(MAX_HELLO_LENGTH, 2)),
    encodeFrame(FRAME_TYPE.plainAlert, Uint8Array.of(47)),
    encodeFrame(FRAME_TYPE.record, new Uint8Array(0)),
    encodeFrame(FRAME_TYPE.record, pattern(maxCiphertextLength(MAX_RECORD_PLAINTEXT), 3)),
  ];
  const capOf = (type: number) =>
    ({
      [FRAME_TYPE.clientHello]: MAX_HELLO_LENGTH,
      [FRAME_TYPE.serverHello]: MAX_HELLO_LENGTH,
      [FRAME_TYPE.plainAlert]: 1,
      [FRAME_TYPE.record]: maxCiphertextLength(MAX_RECORD_PLAINTEXT),
    })[type];
  for (const { name, size } of CHUNK_SIZES) {
    const reader = new FrameReader(new ChunkedSource(concat(...frames), size));
    for (const expected of frames) {
      const frame = await reader.readFrame(capOf);
      ok(frame !== null, name);
      strictEqual(frame.type, expected[0], name);
      eql(frame.header, expected.subarray(0, FRAME_HEADER_LENGTH), name);
      eql(frame.body, expected.subarray(FRAME_HEADER_LENGTH), name);
    }
    strictEqual(await reader.readFrame(capOf), null, name);
  }
});

// Boundary table (STYLE "Tests": 0, 1, max-1, max, max+1 crossed with read chunk sizes), for the
// hello cap, the chat record cap and the pipe-mode record cap.
const CAPS = [
  { name: "hello", type: FRAME_TYPE.clientHello, cap: MAX_HELLO_LENGTH },
  { name: "chat record", type: FRAME_TYPE.record, cap: maxCiphertextLength(MAX_RECORD_PLAINTEXT) },
  { name: "pipe record", type: FRAME_TYPE.record, cap: maxCiphertextLength(2 ** 20) },
] as const;

for (const { name: capName, type, cap } of CAPS) {
  const capOf = (t: number) => t === type ? cap : undefined;
  for (const length of [0, 1, cap - 1, cap]) {
    Deno.test(
      `FrameReader.readFrame() reads a ${capName} frame of length ${length} (cap ${cap}) in any chunking`,
      async () => {
        const body = pattern(length, length);
        for (const { name, size } of CHUNK_SIZES) {
          const source = new ChunkedSource(encodeFrame(type, body), size);
          const reader = new FrameReader(source);
          const frame = await reader.readFrame(capOf);
          ok(frame !== null, name);
          strictEqual(frame.type, type, name);
          eql(frame.header, frameHeader(type, length), name);
          strictEqual(frame.body.length, length, name);
          eql(frame.body, body, name);
          strictEqual(reader.buffered, 0, name);
          strictEqual(await reader.readFrame(capOf), null, name);
        }
      },
    );
  }
  for (const length of [cap + 1, 2 ** 32 - 1]) {
    Deno.test(
      `FrameReader.readFrame() rejects a ${capName} frame of length ${length} (cap ${cap}) with record_overflow before reading its body`,
      async () => {
        for (const { name, size } of CHUNK_SIZES) {
          // The source holds only the header and fails any read past it: the cap check must
          // come first, and the buffer offered to the source never grows toward `length`.
          const source = new ChunkedSource(frameHeader(type, length), size, {
            throwWhenDrained: true,
          });
          const reader = new FrameReader(source);
          await rejects(reader.readFrame(capOf), isError(ProtocolError, "record_overflow"), name);
          strictEqual(
            source.reads,
            Math.ceil(FRAME_HEADER_LENGTH / Math.min(size, FRAME_HEADER_LENGTH)),
            name,
          );
          ok(source.largestOffer < 2 ** 18, `${name}: offered ${source.largestOffer} bytes`);
        }
      },
    );
  }
}

Deno.test("FrameReader.readFrame() carries the record_overflow alert", async () => {
  const reader = new FrameReader(new ChunkedSource(frameHeader(FRAME_TYPE.plainAlert, 2)));
  await rejects(reader.readFrame((t) => t === FRAME_TYPE.plainAlert ? 1 : undefined), (error) => {
    ok(error instanceof ProtocolError);
    strictEqual(error.code, "record_overflow");
    strictEqual(error.alert, "record_overflow");
    return true;
  });
});

Deno.test("FrameReader.readFrame() rejects a type that is not allowed with unexpected_message", async () => {
  for (const type of [0x00, FRAME_TYPE.clientHello, 0x16, 0x18, 0xff]) {
    // Only the header exists: an unexpected type must not wait for (or allocate) a body.
    const source = new ChunkedSource(frameHeader(type, 10), Infinity, { throwWhenDrained: true });
    const reader = new FrameReader(source);
    await rejects(reader.readFrame(recordOnly(100)), (error) => {
      ok(error instanceof ProtocolError, `type ${type}`);
      strictEqual(error.code, "unexpected_message");
      strictEqual(error.alert, "unexpected_message");
      return true;
    });
  }
});

Deno.test("FrameReader.readFrame() fails with truncated_frame when the stream ends inside a header", async () => {
  const frame = encodeFrame(FRAME_TYPE.record, pattern(20));
  for (let cut = 1; cut < FRAME_HEADER_LENGTH; cut++) {
    for (const { name, size } of CHUNK_SIZES) {
      const reader = new FrameReader(new ChunkedSource(frame.subarray(0, cut), size));
      await rejects(
        reader.readFrame(recordOnly(100)),
        isError(ConnectionError, "truncated_frame"),
        `cut at ${cut}, ${name}`,
      );
    }
  }
});

Deno.test("FrameReader.readFrame() fails with truncated_frame when the stream ends inside a body", async () => {
  const frame = encodeFrame(FRAME_TYPE.record, pattern(20));
  // Cut right after the header (no body byte at all) and at every point inside the body.
  for (let cut = FRAME_HEADER_LENGTH; cut < frame.length; cut++) {
    for (const { name, size } of CHUNK_SIZES) {
      const reader = new FrameReader(new ChunkedSource(frame.subarray(0, cut), size));
      await rejects(
        reader.readFrame(recordOnly(100)),
        isError(ConnectionError, "truncated_frame"),
        `cut at ${cut}, ${name}`,
      );
    }
  }
});

Deno.test("FrameReader.readFrame() returns null on a clean end of stream between frames", async () => {
  strictEqual(
    await new FrameReader(new ChunkedSource(new Uint8Array(0))).readFrame(recordOnly(9)),
    null,
  );
  const frames = concat(
    encodeFrame(FRAME_TYPE.record, pattern(3)),
    encodeFrame(FRAME_TYPE.record, pattern(4)),
  );
  for (const { name, size } of CHUNK_SIZES) {
    const reader = new FrameReader(new ChunkedSource(frames, size));
    eql((await reader.readFrame(recordOnly(9)))?.body, pattern(3), name);
    eql((await reader.readFrame(recordOnly(9)))?.body, pattern(4), name);
    strictEqual(await reader.readFrame(recordOnly(9)), null, name);
    // The end is sticky: asking again does not hang or throw.
    strictEqual(await reader.readFrame(recordOnly(9)), null, name);
  }
});

Deno.test("FrameReader.readFrame() keeps reading when a source returns 0 bytes", async () => {
  const frame = encodeFrame(FRAME_TYPE.record, pattern(10));
  let offset = 0;
  let calls = 0;
  const source: ByteSource = {
    read(buffer) {
      calls++;
      if (calls % 2 === 1) return Promise.resolve(0);
      if (offset >= frame.length) return Promise.resolve(null);
      buffer[0] = frame[offset++]!;
      return Promise.resolve(1);
    },
  };
  const got = await new FrameReader(source).readFrame(recordOnly(10));
  eql(got?.body, pattern(10));
});

Deno.test("FrameReader.readExactly() returns exactly the bytes asked for and keeps the rest", async () => {
  const data = concat(MAGIC, encodeFrame(FRAME_TYPE.clientHello, pattern(50)));
  for (const { name, size } of CHUNK_SIZES) {
    const reader = new FrameReader(new ChunkedSource(data, size));
    eql(await reader.readExactly(MAGIC.length), MAGIC, name);
    eql(await reader.readExactly(0), new Uint8Array(0), name);
    const frame = await reader.readFrame((t) => t === FRAME_TYPE.clientHello ? 50 : undefined);
    eql(frame?.body, pattern(50), name);
    strictEqual(reader.buffered, 0, name);
  }
  // Whole delivery buffers everything at once; readExactly() takes only its share.
  const reader = new FrameReader(new ChunkedSource(pattern(100)));
  eql(await reader.readExactly(30), pattern(100).subarray(0, 30));
  strictEqual(reader.buffered, 70);
  eql(await reader.readExactly(70), pattern(100).subarray(30));
  strictEqual(reader.buffered, 0);
});

Deno.test("FrameReader.readExactly() returns a copy the reader does not reuse", async () => {
  const reader = new FrameReader(new ChunkedSource(pattern(20)));
  const first = await reader.readExactly(10);
  const snapshot = first?.slice();
  await reader.readExactly(10);
  eql(first, snapshot);
});

Deno.test("FrameReader.readExactly() returns null at a clean end and fails with truncated_frame part-way", async () => {
  for (const { name, size } of CHUNK_SIZES) {
    const empty = new FrameReader(new ChunkedSource(new Uint8Array(0), size));
    strictEqual(await empty.readExactly(12), null, name);
    const partial = new FrameReader(new ChunkedSource(pattern(11), size));
    await rejects(partial.readExactly(12), isError(ConnectionError, "truncated_frame"), name);
    const exact = new FrameReader(new ChunkedSource(pattern(12), size));
    eql(await exact.readExactly(12), pattern(12), name);
    strictEqual(await exact.readExactly(1), null, name);
  }
});

Deno.test("writeAll() delivers everything in order to a sink that takes 3 bytes per call", async () => {
  for (const length of [1, 2, 3, 4, 1000, 65_537]) {
    const data = pattern(length, 7);
    const sink = new ChunkedSink(3);
    await writeAll(sink, data);
    eql(sink.received, data, `length ${length}`);
    strictEqual(sink.writes.length, Math.ceil(length / 3), `length ${length}`);
    ok(sink.writes.every((w) => w.length >= 1 && w.length <= 3));
  }
});

Deno.test("writeAll() makes no write for empty data", async () => {
  const sink = new ChunkedSink(3);
  await writeAll(sink, new Uint8Array(0));
  strictEqual(sink.writes.length, 0);
});

Deno.test("writeAll() passes a frame a FrameReader reads back", async () => {
  const frame = encodeFrame(FRAME_TYPE.record, pattern(1000));
  const sink = new ChunkedSink(3);
  await writeAll(sink, frame);
  const got = await new FrameReader(new ChunkedSource(sink.received, 5)).readFrame(
    recordOnly(1000),
  );
  eql(got?.body, pattern(1000));
  eql(got?.header, concat(Uint8Array.of(FRAME_TYPE.record), u32(1000)));
});

Deno.test("FrameReader goes back to a small buffer after a large frame once small ones follow, without losing a byte", async () => {
  const large = pattern(1 << 20, 1);
  const smalls = Array.from({ length: 6 }, (_, i) => pattern(100 + i * 700, i + 2));
  const frames = [large, ...smalls, large, ...smalls].map((body) =>
    encodeFrame(FRAME_TYPE.record, body)
  );
  for (const chunk of [7, 1000, 65536, Infinity]) {
    const source = new ChunkedSource(concat(...frames), chunk);
    const reader = new FrameReader(source);
    const offers: number[] = [];
    for (const body of [large, ...smalls, large, ...smalls]) {
      const frame = await reader.readFrame(recordOnly(2 << 20));
      eql(frame?.body, body, `chunk ${chunk}`);
      offers.push(source.largestOffer);
    }
    strictEqual(await reader.readFrame(recordOnly(2 << 20)), null);
    if (chunk === 1000) {
      // After the second small frame, reads are offered the small buffer again.
      const probe = new ChunkedSource(concat(...frames.slice(0, 4)), 1000);
      const again = new FrameReader(probe);
      for (let i = 0; i < 3; i++) await again.readFrame(recordOnly(2 << 20));
      const before = probe.largestOffer;
      ok(before > 1 << 20, "the large frame was read into a large buffer");
      const tracker = { largest: 0 };
      const original = probe.read.bind(probe);
      probe.read = (buffer: Uint8Array) => {
        tracker.largest = Math.max(tracker.largest, buffer.length);
        return original(buffer);
      };
      await again.readFrame(recordOnly(2 << 20));
      ok(tracker.largest <= 64 * 1024, `offered ${tracker.largest} bytes after shrinking`);
    }
  }
});
