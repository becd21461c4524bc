/**
 * The fuzz connections of listener_fuzz_test.ts, one function per kind: raw bytes, a stalled
 * hello, a mutated ClientHello, a real handshake with an altered client flight, and a complete
 * handshake followed by altered records. Each counts the fuzzed messages it sent and checks what
 * the listener answered where section 3.1 says what that must be.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concat, u32 } from "../../lib/core/bytes.ts";
import { runInitiator } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { FRAME_TYPE, FrameReader, MAGIC, NOT_SECURECHAT_REPLY } from "../../lib/protocol/frame.ts";
import { writeAll } from "../../lib/core/io.ts";
import { InitiatorHandshake } from "../../lib/protocol/handshake_initiator.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { SHARE_LENGTHS, type SuiteName } from "../../lib/crypto/kex.ts";
import {
  MAX_RECORD_PLAINTEXT,
  MAX_RECORD_PLAINTEXT_LIMIT,
  maxCiphertextLength,
} from "../../lib/protocol/record.ts";
import type { Prng } from "../_helpers/prng.ts";
import { hex, type LengthField, mutateMany } from "./_fuzz.ts";

const PIPE_RECORD_CAP = maxCiphertextLength(MAX_RECORD_PLAINTEXT_LIMIT);
const HANDSHAKE_RECORD_CAP = maxCiphertextLength(MAX_RECORD_PLAINTEXT);
/** Longest a fuzz connection may wait for the listener to close it (queueing for the pipe included). */
const CLOSE_WITHIN_MS = 20_000;

export type Kind = "raw" | "stall" | "hello" | "flight" | "session" | "sessionHello";

export interface Stats {
  messages: number;
  connections: Record<Kind, number>;
  slowestCloseMs: number;
  stallCloseMs: number[];
  refusedWrites: number;
}

/** Connects without Nagle's algorithm: small fuzz writes must not wait for delayed ACKs. */
async function dial(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

/** Reads until the listener closes (or resets) the connection; returns what it said. */
export async function drain(
  conn: Deno.Conn,
  limitMs = CLOSE_WITHIN_MS,
  tolerateOpen = false,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), limitMs)
  );
  try {
    while (true) {
      const n = await Promise.race([conn.read(buffer), timeout]).catch(() => null);
      if (n === "timeout") {
        if (tolerateOpen) break;
        throw new Error(`the listener kept a fuzz connection open over ${limitMs} ms`);
      }
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
  }
  return concat(...chunks);
}

/** Writes, tolerating a listener that already closed (it may refuse before reading everything). */
async function send(conn: Deno.Conn, data: Uint8Array, stats: Stats): Promise<boolean> {
  try {
    await writeAll(conn, data);
    return true;
  } catch {
    stats.refusedWrites++;
    return false;
  }
}

function isMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Section 3.1: a peer that does not start with the magic is told so in plain text; anything else
 * the responder sends starts with its magic and is well-formed frames.
 */
function checkAnswer(sent: Uint8Array, answer: Uint8Array): void {
  if (answer.length === 0) return;
  if (sent.length >= MAGIC.length && !isMagic(sent)) {
    deepStrictEqual(answer, NOT_SECURECHAT_REPLY, "a non-securechat peer is told so in plain text");
    return;
  }
  ok(isMagic(answer), `the answer starts with the magic: ${hex(answer)}`);
  let at = MAGIC.length;
  while (at < answer.length) {
    ok(answer.length - at >= 5, `a cut frame header in the answer: ${hex(answer)}`);
    const type = answer[at]!;
    const length = new DataView(answer.buffer, answer.byteOffset + at + 1, 4).getUint32(0);
    ok(
      [FRAME_TYPE.serverHello, FRAME_TYPE.plainAlert, FRAME_TYPE.record].includes(type as 2),
      `frame type ${type} in the answer`,
    );
    if (type === FRAME_TYPE.plainAlert) strictEqual(length, 1);
    at += 5 + length;
    ok(at <= answer.length, `a cut frame in the answer: ${hex(answer)}`);
  }
}

/** Length fields of a ClientHello frame (after the magic): frame length, counts, share lengths. */
function helloFields(frame: Uint8Array): LengthField[] {
  const fields: LengthField[] = [{ offset: 1, width: 4, cap: 4096 }];
  const body = 5;
  const versions = frame[body]!;
  fields.push({ offset: body, width: 1, cap: 16 });
  let at = body + 1 + versions + 32;
  fields.push({ offset: at, width: 4, cap: MAX_RECORD_PLAINTEXT_LIMIT });
  at += 4;
  fields.push({ offset: at, width: 1, cap: 8 });
  const shares = frame[at]!;
  at += 1;
  for (let k = 0; k < shares && at + 3 <= frame.length; k++) {
    const length = (frame[at + 1]! << 8) | frame[at + 2]!;
    fields.push({ offset: at + 1, width: 2, cap: length });
    at += 3 + length;
  }
  return fields;
}

/** Splits concatenated frames (as our own machines wrote them). */
function splitFrames(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    out.push(bytes.slice(at, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** How many of `frames` lead `sent` whole and in order: what the listener accepts as genuine. */
function acceptedPrefix(sent: Uint8Array, frames: Uint8Array[]): number {
  let at = 0;
  for (const [i, frame] of frames.entries()) {
    if (at + frame.length > sent.length || frame.some((b, k) => sent[at + k] !== b)) return i;
    at += frame.length;
  }
  return frames.length;
}

/** A Deno.Conn stand-in that can hold back what SecureConnection writes, to send it altered. */
class CapturingConn {
  readonly inner: Deno.Conn;
  capturing = false;
  captured: Uint8Array[] = [];
  constructor(inner: Deno.Conn) {
    this.inner = inner;
  }
  read(buffer: Uint8Array): Promise<number | null> {
    return this.inner.read(buffer);
  }
  write(data: Uint8Array): Promise<number> {
    if (!this.capturing) return this.inner.write(data);
    this.captured.push(...splitFrames(data));
    return Promise.resolve(data.length);
  }
  closeWrite(): Promise<void> {
    return this.capturing ? Promise.resolve() : this.inner.closeWrite();
  }
  close(): void {
    try {
      this.inner.close();
    } catch {
      // Already closed.
    }
  }
}

/** Shared fixtures of one run. */
export interface Run {
  port: number;
  identity: Identity;
  flights: Map<string, Uint8Array>;
  stats: Stats;
}

export const SUITE_SETS: SuiteName[][] = [["x25519-mlkem768", "x25519"], ["x25519"], ["ffdhe3072"]];

export async function rawConnection(
  run: Run,
  prng: Prng,
  note: (s: string) => void,
): Promise<void> {
  const style = prng.int(5);
  let bytes: Uint8Array;
  if (style === 0) bytes = prng.bytes(prng.length(3000));
  else if (style === 1) {
    bytes = new TextEncoder().encode(
      prng.pick([
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "SSH-2.0-OpenSSH_9.6\r\n",
        "securechat\r",
        "\r\n",
      ]),
    );
  } else if (style === 2) {
    // The magic, then random frames of random types.
    const frames = Array.from({ length: prng.between(1, 4) }, () => {
      const length = prng.length(600);
      return concat(Uint8Array.of(prng.int(256)), u32(length), prng.bytes(length));
    });
    bytes = concat(MAGIC, ...frames);
  } else {
    // The magic and a header at a length boundary of its type's cap, with some of the body.
    const type = prng.pick([0x01, 0x02, 0x15, 0x17, prng.int(256)]);
    const cap = type === 0x15 ? 1 : type === 0x17 ? HANDSHAKE_RECORD_CAP : 4096;
    const length = prng.pick([0, 1, cap - 1, cap, cap + 1, 2 ** 32 - 1]);
    bytes = concat(
      MAGIC,
      Uint8Array.of(type),
      u32(length),
      prng.bytes(Math.min(length, prng.length(5000))),
    );
  }
  note(`raw ${hex(bytes)}`);
  await sendOneMessage(run, bytes, "raw");
}

/** Sends one unsolicited message on a fresh connection, ends our side, checks the answer. */
async function sendOneMessage(run: Run, bytes: Uint8Array, kind: "raw" | "hello"): Promise<void> {
  const conn = await dial(run.port);
  try {
    if (await send(conn, bytes, run.stats)) run.stats.messages++;
    await conn.closeWrite().catch(() => {});
    checkAnswer(bytes, await drain(conn));
    run.stats.connections[kind]++;
  } finally {
    conn.close();
  }
}

/** Sends part of a hello and waits: the listener must cut it at its 2 s handshake deadline. */
export async function stallConnection(
  run: Run,
  prng: Prng,
  note: (s: string) => void,
): Promise<void> {
  const conn = await dial(run.port);
  try {
    const flight = run.flights.get("x25519")!;
    const bytes = flight.subarray(0, prng.between(0, flight.length - 1));
    note(`stall after ${bytes.length} bytes of a hello`);
    const started = Date.now();
    if (await send(conn, bytes, run.stats)) run.stats.messages++;
    await drain(conn, 6000);
    const took = Date.now() - started;
    ok(took >= 1500, `cut after ${took} ms, before the 2 s deadline`);
    run.stats.stallCloseMs.push(took);
    run.stats.connections.stall++;
  } finally {
    conn.close();
  }
}

export async function helloConnection(
  run: Run,
  prng: Prng,
  note: (s: string) => void,
): Promise<void> {
  // ffdhe3072 costs the listener ~30 ms a modexp: offer it in a tenth of the hellos.
  const set = prng.chance(0.1) ? SUITE_SETS[2]! : prng.pick(SUITE_SETS.slice(0, 2));
  const flight = run.flights.get(set.join(","))!;
  const frame = flight.subarray(MAGIC.length);
  let mutated: Uint8Array;
  let how: string;
  if (prng.chance(0.15)) {
    // A degenerate share: the structure is right, the key is not (section 4.4).
    const fields = helloFields(frame);
    const shareField = prng.pick(fields.filter((f) => f.width === 2));
    const length = shareField.cap!;
    mutated = frame.slice();
    const fill = prng.pick([0x00, 0xff]);
    mutated.fill(fill, shareField.offset + 2, shareField.offset + 2 + length);
    if (prng.chance(0.5) && length === SHARE_LENGTHS.x25519.initiator) {
      mutated[shareField.offset + 2] = 1;
    }
    how = `share at ${shareField.offset} filled with ${fill}`;
  } else {
    ({ bytes: mutated, how } = mutateMany(prng, frame, {
      fields: helloFields(frame),
      donors: [...run.flights.values()].map((f) => f.subarray(MAGIC.length)),
    }));
  }
  const bytes = prng.chance(0.05)
    ? mutateMany(prng, concat(MAGIC, mutated)).bytes
    : concat(MAGIC, mutated);
  note(`hello for ${set.join(",")}: ${how}: ${hex(bytes)}`);
  await sendOneMessage(run, bytes, "hello");
}

/** A real handshake up to our flight; the flight's records go out altered. */
export async function flightConnection(
  run: Run,
  prng: Prng,
  note: (s: string) => void,
): Promise<void> {
  const conn = await dial(run.port);
  try {
    const machine = new InitiatorHandshake({
      identity: run.identity,
      suites: prng.chance(0.8) ? ["x25519"] : ["x25519-mlkem768"],
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
    });
    await writeAll(conn, await machine.writeClientHello());
    const reader = new FrameReader(conn);
    const magic = await reader.readExactly(MAGIC.length);
    ok(magic && isMagic(magic), "the listener answers with its magic");
    const next = async () => (await reader.readFrame((type) => machine.capOf(type)))!;
    await machine.readServerHello(await next());
    await machine.readServerIdentity(await next());
    await machine.readServerIdentityVerify(await next());
    await machine.readServerFinished(await next());
    const records = splitFrames(await machine.writeClientFlight());
    let out: Uint8Array[];
    let how: string;
    const style = prng.int(5);
    if (style <= 1) {
      const k = prng.int(records.length);
      const m = mutateMany(prng, records[k]!, {
        fields: [{ offset: 1, width: 4, cap: HANDSHAKE_RECORD_CAP }],
      });
      out = records.map((r, i) => i === k ? m.bytes : r);
      how = `record ${k}: ${m.how}`;
    } else if (style === 2) {
      const [a, b] = [prng.int(records.length), prng.int(records.length - 1)];
      const order = records.map((_, i) => i);
      const j = b >= a ? b + 1 : b;
      [order[a], order[j]] = [order[j]!, order[a]!];
      out = order.map((i) => records[i]!);
      how = `records in order ${order.join(",")}`;
    } else if (style === 3) {
      const k = prng.int(records.length);
      out = records.filter((_, i) => i !== k);
      how = `record ${k} dropped`;
    } else {
      const k = prng.int(records.length);
      const length = prng.length(300);
      out = [
        ...records.slice(0, k),
        concat(Uint8Array.of(prng.pick([0x15, 0x17, 0x01])), u32(length), prng.bytes(length)),
      ];
      how = `record ${k} replaced by an invented frame`;
    }
    // Bytes appended after an intact flight complete the handshake: they are then the first
    // record of the session, the path the regression test below is about.
    const sent = concat(...out);
    const intact = concat(...records);
    const completes = sent.length > intact.length && intact.every((b, i) => sent[i] === b);
    note(`client flight: ${how}${completes ? " (the handshake completes)" : ""}`);
    for (const record of out) {
      if (!(await send(conn, record, run.stats))) break;
      run.stats.messages++;
    }
    await conn.closeWrite().catch(() => {});
    await drain(conn, completes ? 300 : CLOSE_WITHIN_MS, completes);
    if (completes) run.stats.connections.sessionHello++;
    else run.stats.connections.flight++;
  } finally {
    try {
      conn.close();
    } catch {
      // The machine's failure path may have closed it.
    }
  }
}

/** Section 8.3: header claims for a record after the handshake, at the pipe cap's boundaries. */
function recordClaim(prng: Prng): Uint8Array {
  const length = prng.pick([
    0,
    1,
    16,
    17,
    PIPE_RECORD_CAP - 1,
    PIPE_RECORD_CAP,
    PIPE_RECORD_CAP + 1,
    2 ** 32 - 1,
  ]);
  return concat(
    Uint8Array.of(FRAME_TYPE.record),
    u32(length),
    prng.bytes(Math.min(length, prng.length(2000))),
  );
}

/**
 * A complete handshake, then record frames that are not the genuine next record: mutated,
 * replayed, reordered, dropped, truncated, reflected, invented. A genuine data record is never
 * sent in order, so no fuzz byte may ever reach the listener's stdout. With `firstRecord`, the
 * fuzzed frame replaces our SessionHello (the session-hello path of lib/transport/pipe.ts).
 */
export async function sessionConnection(
  run: Run,
  prng: Prng,
  note: (s: string) => void,
  firstRecord: boolean,
): Promise<void> {
  const conn = await dial(run.port);
  const capture = new CapturingConn(conn);
  let secure: SecureConnection | undefined;
  try {
    secure = await runInitiator(capture as unknown as Deno.Conn, {
      identity: run.identity,
      suites: ["x25519"],
      maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
      timeoutMs: 10_000,
      checkPeer: () => Promise.resolve(),
    });
    // Seal the genuine records without sending them: the SessionHello, then data (with a marker
    // that must never reach stdout), key updates and a close_notify.
    capture.capturing = true;
    await secure.send(Uint8Array.of(1));
    const genuine: { kind: string; frame: Uint8Array }[] = [];
    const take = (kind: string) =>
      genuine.push(...capture.captured.splice(0).map((frame) => ({ kind, frame })));
    take("hello");
    for (let k = prng.between(1, 3); k > 0; k--) {
      const what = prng.pick(["data", "data", "keyUpdate", "close"]);
      if (what === "data") {
        const size = prng.chance(0.1) ? prng.between(20_000, 300_000) : prng.length(3000);
        const payload = new Uint8Array(size).fill(0x46);
        payload.set(new TextEncoder().encode("FUZZ").subarray(0, size));
        await secure.send(payload);
      } else if (what === "keyUpdate") await secure.updateKeys(prng.chance(0.5));
      else {
        await secure.closeWrite();
        take("close");
        break;
      }
      take(what);
    }
    // Genuine records that may go out in order before the fuzzed one: never data, never close.
    const harmless = (i: number) => ["hello", "keyUpdate"].includes(genuine[i]!.kind);
    let prefix = firstRecord ? 0 : 1;
    while (prefix < genuine.length - 1 && harmless(prefix) && prng.chance(0.3)) prefix++;
    const frames = genuine.map((g) => g.frame);
    const at = Math.min(prefix, frames.length - 1);
    const out: Uint8Array[] = frames.slice(0, prefix);
    let how: string;
    switch (prng.int(8)) {
      case 0:
      case 1: {
        const m = mutateMany(prng, frames[at]!, {
          fields: [{ offset: 1, width: 4, cap: PIPE_RECORD_CAP }],
          donors: frames,
        });
        out.push(m.bytes);
        how = `${genuine[at]!.kind} record ${at}: ${m.how}`;
        break;
      }
      case 2:
        // An earlier record again; at the very start, a later one (the first must not be genuine).
        out.push(at > 0 ? frames[prng.int(at)]! : frames[prng.between(1, frames.length - 1)]!);
        how = at > 0 ? `an earlier record replayed at ${at}` : "a later record first";
        break;
      case 3:
        if (at + 1 < frames.length) {
          out.push(frames[at + 1]!, frames[at]!);
          how = `records ${at + 1} and ${at} swapped`;
        } else {
          out.push(recordClaim(prng));
          how = "a header claim";
        }
        break;
      case 4:
        out.push(frames[at]!.subarray(0, prng.between(1, frames[at]!.length - 1)));
        how = `record ${at} cut short, then end of stream`;
        break;
      case 5: {
        // Reflection: the listener's own records sent back to it.
        const reflected = await reflect(conn);
        out.push(reflected ?? recordClaim(prng));
        how = reflected ? "the listener's own record reflected" : "a header claim";
        break;
      }
      case 6:
        out.push(recordClaim(prng));
        how = "a header claim at the cap's boundaries";
        break;
      default: {
        const length = prng.length(20_000);
        out.push(
          concat(
            Uint8Array.of(prng.pick([0x17, 0x17, 0x15, 0x01, 0x02, prng.int(256)])),
            u32(length),
            prng.bytes(length),
          ),
        );
        how = "an invented frame";
      }
    }
    // A mutation may leave a genuine record whole and in order (bytes appended after it, a splice
    // that keeps it): the listener rightly accepts it. If that is a data or close_notify record,
    // flip a ciphertext bit in it instead, so that no fuzz byte is ever delivered legitimately.
    let accepted = acceptedPrefix(concat(...out), frames);
    const delivered = genuine.slice(0, accepted).findIndex((g) =>
      g.kind === "data" || g.kind === "close"
    );
    if (delivered >= 0) {
      const frame = frames[delivered]!.slice();
      frame[5 + prng.int(frame.length - 5)]! ^= 1 << prng.int(8);
      out.splice(0, out.length, ...frames.slice(0, delivered), frame);
      how += `; that left ${
        genuine[delivered]!.kind
      } record ${delivered} whole, so a bit of it flipped`;
      accepted = delivered;
    }
    // Sometimes more after it: the listener must have stopped reading at the first.
    for (let k = prng.chance(0.3) ? prng.between(1, 3) : 0; k > 0; k--) out.push(recordClaim(prng));
    // No genuine SessionHello first: the session-hello path of the regression test below.
    const helloPath = accepted === 0;
    note(`session${helloPath ? " (no SessionHello first)" : ""}: ${how}; ${out.length} frames`);
    capture.capturing = false;
    for (const [i, frame] of out.entries()) {
      if (!(await send(conn, frame, run.stats))) break;
      if (i >= accepted) run.stats.messages++;
    }
    await conn.closeWrite().catch(() => {});
    // The session-hello path leaves the connection open (the regression test below): do not wait for it.
    await drain(conn, helloPath ? 300 : CLOSE_WITHIN_MS, helloPath);
    if (helloPath) run.stats.connections.sessionHello++;
    else run.stats.connections.session++;
  } finally {
    secure?.close();
    capture.close();
  }
}

/** Reads the listener's first record after the handshake (its SessionHello), if it comes soon. */
async function reflect(conn: Deno.Conn): Promise<Uint8Array | undefined> {
  const header = new Uint8Array(5);
  const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), 200));
  let got = 0;
  while (got < 5) {
    const n = await Promise.race([conn.read(header.subarray(got)), timer]).catch(() => null);
    if (n === null) return undefined;
    got += n;
  }
  const length = new DataView(header.buffer).getUint32(1);
  if (length > 64) return undefined;
  const body = new Uint8Array(length);
  got = 0;
  while (got < length) {
    const n = await Promise.race([conn.read(body.subarray(got)), timer]).catch(() => null);
    if (n === null) return undefined;
    got += n;
  }
  return concat(header, body);
}
