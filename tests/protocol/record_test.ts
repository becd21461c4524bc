import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import {
  ALERT,
  AuthenticationError,
  PeerAlertError,
  ProtocolError,
} from "../../lib/core/errors.ts";
import { FRAME_HEADER_LENGTH } from "../../lib/protocol/frame.ts";
import {
  CONTENT_TYPE,
  KEY_UPDATE_SLACK,
  MAX_RECORD_PLAINTEXT,
  MAX_RECORD_PLAINTEXT_LIMIT,
  maxCiphertextLength,
  type RecordEvent,
  RecordLayer,
  TAG_LENGTH,
} from "../../lib/protocol/record.ts";
import { RecordProtection } from "../../lib/protocol/record_protection.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { pattern, secret, splitFrame } from "../_helpers/records.ts";

const encoder = new TextEncoder();

/** The two ends of a session, `a` (initiator) and `b` (responder). */
async function layers(
  options: { aMax?: number; bMax?: number; keyUpdateRecords?: number } = {},
) {
  const c = await secret("c ap traffic");
  const s = await secret("s ap traffic");
  const aMax = options.aMax ?? MAX_RECORD_PLAINTEXT;
  const bMax = options.bMax ?? MAX_RECORD_PLAINTEXT;
  const extra = options.keyUpdateRecords === undefined
    ? {}
    : { keyUpdateRecords: options.keyUpdateRecords };
  const a = await RecordLayer.create({
    sendSecret: c,
    receiveSecret: s,
    suite: "chacha20-poly1305",
    ownMaxPlaintext: aMax,
    peerMaxPlaintext: bMax,
    ...extra,
  });
  const b = await RecordLayer.create({
    sendSecret: s,
    receiveSecret: c,
    suite: "chacha20-poly1305",
    ownMaxPlaintext: bMax,
    peerMaxPlaintext: aMax,
    ...extra,
  });
  return { a, b, c, s };
}

async function openAll(layer: RecordLayer, frames: Uint8Array[]): Promise<RecordEvent[]> {
  const events: RecordEvent[] = [];
  for (const frame of frames) events.push(await layer.open(...splitFrame(frame)));
  return events;
}

Deno.test("RecordLayer.sealData() chunks data at the peer's max_record_plaintext", async () => {
  const { a, b } = await layers({ aMax: MAX_RECORD_PLAINTEXT_LIMIT, bMax: MAX_RECORD_PLAINTEXT });
  strictEqual(a.maxSendPlaintext, MAX_RECORD_PLAINTEXT);
  strictEqual(b.maxSendPlaintext, MAX_RECORD_PLAINTEXT_LIMIT);
  const cases = [
    { length: 0, records: [0] },
    { length: 1, records: [1] },
    { length: MAX_RECORD_PLAINTEXT, records: [MAX_RECORD_PLAINTEXT] },
    { length: MAX_RECORD_PLAINTEXT + 1, records: [MAX_RECORD_PLAINTEXT, 1] },
    { length: 40_000, records: [16_384, 16_384, 7_232] },
  ];
  for (const { length, records } of cases) {
    const data = pattern(length, length);
    const frames = await a.sealData(data);
    eql(frames.map((f) => f.length - FRAME_HEADER_LENGTH - 1 - TAG_LENGTH), records, `${length}`);
    ok(
      frames.every((f) => f.length - FRAME_HEADER_LENGTH <= maxCiphertextLength(b.ownMaxPlaintext)),
    );
    const events = await openAll(b, frames);
    ok(events.every((e) => e.kind === "data"));
    const received = events.flatMap((e) => e.kind === "data" ? [...e.data] : []);
    eql(Uint8Array.from(received), data, `${length}`);
  }
});

Deno.test("RecordLayer.sealData() uses a smaller record size when asked, never a larger one", async () => {
  const { a, b } = await layers();
  const small = await a.sealData(pattern(2500), 1000);
  eql(small.map((f) => f.length - FRAME_HEADER_LENGTH - 1 - TAG_LENGTH), [1000, 1000, 500]);
  const clamped = await a.sealData(pattern(MAX_RECORD_PLAINTEXT + 10), 10 * MAX_RECORD_PLAINTEXT);
  eql(clamped.map((f) => f.length - FRAME_HEADER_LENGTH - 1 - TAG_LENGTH), [
    MAX_RECORD_PLAINTEXT,
    10,
  ]);
  strictEqual((await openAll(b, [...small, ...clamped])).length, 5);
});

Deno.test("RecordLayer.sealData() updates the key every keyUpdateRecords records", async () => {
  const { a, b } = await layers({ keyUpdateRecords: 4 });
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 20; i++) frames.push(...await a.sealData(encoder.encode(`message ${i}`)));
  const events = await openAll(b, frames);
  const kinds = events.map((e) =>
    e.kind === "keyUpdate" ? `K${e.updateRequested ? 1 : 0}` : e.kind
  );
  // d d d d K d d d d K ...: four data records per key, then a key_update under the old key.
  eql(kinds, [
    ...["data", "data", "data", "data", "K0"],
    ...["data", "data", "data", "data", "K0"],
    ...["data", "data", "data", "data", "K0"],
    ...["data", "data", "data", "data", "K0"],
    ...["data", "data", "data", "data"],
  ]);
  const texts = events.flatMap((e) => e.kind === "data" ? [new TextDecoder().decode(e.data)] : []);
  eql(texts, Array.from({ length: 20 }, (_, i) => `message ${i}`));
  eql(a.sendCounters.records, 4n);
  // Key updates really changed the key: the sender's first and sixth records use different keys
  // under the same sequence number 0, so their ciphertexts of equal plaintexts differ.
  const { a: a2 } = await layers({ keyUpdateRecords: 1 });
  const [r0] = await a2.sealData(encoder.encode("same"));
  const [update, r1] = await a2.sealData(encoder.encode("same"));
  ok(update !== undefined && r1 !== undefined);
  ok(r0!.some((byte, i) => byte !== r1[i]));
});

Deno.test("RecordLayer seals started together keep call order, across key updates and reused buffers", async () => {
  const { a, b } = await layers({ keyUpdateRecords: 3 });
  const buffer = new Uint8Array(300);
  const sealing: Promise<Uint8Array[]>[] = [];
  for (let i = 0; i < 40; i++) {
    buffer.fill(i); // the caller reuses its buffer at once: each seal must have taken its copy
    sealing.push(a.sealData(buffer, 100)); // three records per call, so keys switch mid-call
    if (i % 7 === 0) sealing.push(a.sealKeyUpdate(false).then((frame) => [frame]));
    if (i % 5 === 0) sealing.push(a.sealKeepalive(true).then((frame) => [frame]));
  }
  sealing.push(a.sealCloseNotify().then((frame) => [frame]));
  const frames = (await Promise.all(sealing)).flat();
  const events = await openAll(b, frames);
  const data = events.flatMap((e) => e.kind === "data" ? [e.data] : []);
  eql(data.length, 120);
  data.forEach((chunk, index) => eql(chunk, new Uint8Array(100).fill(Math.floor(index / 3))));
  ok(events.filter((e) => e.kind === "keyUpdate").length >= 40);
  eql(events.at(-1), { kind: "close" });
});

Deno.test("RecordLayer.sealKeyUpdate(true) sets the receiver's keyUpdatePending, answered before its next data", async () => {
  const { a, b } = await layers();
  strictEqual(b.keyUpdatePending, false);
  const update = await a.sealKeyUpdate(true);
  eql(await b.open(...splitFrame(update)), { kind: "keyUpdate", updateRequested: true });
  strictEqual(b.keyUpdatePending, true);
  // b's next data goes out after a key_update(0) of its own, and a follows both.
  const reply = await b.sealData(encoder.encode("reply"));
  strictEqual(reply.length, 2);
  strictEqual(b.keyUpdatePending, false);
  const events = await openAll(a, reply);
  eql(events[0], { kind: "keyUpdate", updateRequested: false });
  eql(events[1], { kind: "data", data: encoder.encode("reply") });
  strictEqual(a.keyUpdatePending, false);
  // a's own data after its update still reaches b under the new key.
  eql(await openAll(b, await a.sealData(encoder.encode("after"))), [
    { kind: "data", data: encoder.encode("after") },
  ]);
});

Deno.test("RecordLayer.sealKeyUpdate(false) switches keys without asking the peer", async () => {
  const { a, b } = await layers();
  eql(await b.open(...splitFrame(await a.sealKeyUpdate(false))), {
    kind: "keyUpdate",
    updateRequested: false,
  });
  strictEqual(b.keyUpdatePending, false);
  eql(await openAll(b, await a.sealData(pattern(5))), [{ kind: "data", data: pattern(5) }]);
});

Deno.test("RecordLayer.open() returns close for close_notify and rejects any later record", async () => {
  const { a, b, c } = await layers();
  const data = await a.sealData(encoder.encode("last words"));
  const close = await a.sealCloseNotify();
  strictEqual(a.sentClose, true);
  await openAll(b, data);
  eql(await b.open(...splitFrame(close)), { kind: "close" });
  strictEqual(b.receivedClose, true);
  // An authentic record after close_notify: made under a's key with the sequence number it
  // would have had (a itself refuses to send it).
  const forger = await RecordProtection.create(c, "chacha20-poly1305");
  await forger.seal(CONTENT_TYPE.applicationData, encoder.encode("last words"));
  await forger.seal(CONTENT_TYPE.alert, Uint8Array.of(0));
  const late = await forger.seal(CONTENT_TYPE.applicationData, encoder.encode("more"));
  await rejects(
    b.open(...splitFrame(late)),
    isCode(ProtocolError, "record_after_close", "unexpected_message"),
  );
  // The half-closed side can still send.
  eql(await openAll(a, await b.sealData(encoder.encode("still here"))), [
    { kind: "data", data: encoder.encode("still here") },
  ]);
});

Deno.test("RecordLayer.sealReceipt() follows close_notify once, and nothing follows the receipt", async () => {
  const { a, b, c } = await layers();
  await rejects(a.sealReceipt(1), RangeError, "no receipt before our close_notify");
  await openAll(b, await a.sealData(encoder.encode("24 bytes of pipe content")));
  eql(await b.open(...splitFrame(await a.sealCloseNotify())), { kind: "close" });
  const receipt = await a.sealReceipt(2 ** 40 + 5);
  strictEqual(receipt.length, 5 + 1 + 8 + TAG_LENGTH);
  eql(await b.open(...splitFrame(receipt)), { kind: "receipt", bytesReceived: 2n ** 40n + 5n });
  await rejects(a.sealReceipt(1), RangeError, "one receipt only");
  // An authentic second receipt, made under a's key with the next sequence number.
  const forger = await RecordProtection.create(c, "chacha20-poly1305");
  for (let i = 0; i < 3; i++) await forger.seal(CONTENT_TYPE.alert, Uint8Array.of(0));
  const second = await forger.seal(CONTENT_TYPE.receipt, new Uint8Array(8));
  await rejects(
    b.open(...splitFrame(second)),
    isCode(ProtocolError, "record_after_close", "unexpected_message"),
  );
});

Deno.test("RecordLayer.open() after close_notify refuses anything but a receipt", async () => {
  // Same length as a receipt, another type: opened, then refused.
  const { a, b, c } = await layers();
  eql(await b.open(...splitFrame(await a.sealCloseNotify())), { kind: "close" });
  const forger = await RecordProtection.create(c, "chacha20-poly1305");
  await forger.seal(CONTENT_TYPE.alert, Uint8Array.of(0));
  const data = await forger.seal(CONTENT_TYPE.applicationData, new Uint8Array(8));
  await rejects(
    b.open(...splitFrame(data)),
    isCode(ProtocolError, "record_after_close", "unexpected_message"),
  );
  // A fatal alert seals no receipt after it.
  const { a: failed } = await layers();
  await failed.sealAlert(ALERT.internal_error);
  await rejects(failed.sealReceipt(0), RangeError);
});

Deno.test("RecordLayer keepalives may follow close_notify and the receipt, both ways; nothing else", async () => {
  const { a, b, c } = await layers();
  eql(await b.open(...splitFrame(await a.sealCloseNotify())), { kind: "close" });
  // a pings after its close_notify; b (not closed) answers; a reads the pong.
  const ping = await a.sealKeepalive(true);
  strictEqual(ping.length, 5 + 1 + 1 + TAG_LENGTH);
  eql(await b.open(...splitFrame(ping)), { kind: "keepalive", ping: true });
  eql(await a.open(...splitFrame(await b.sealKeepalive(false))), {
    kind: "keepalive",
    ping: false,
  });
  // Then b closes too: keepalives still pass in both directions, around the receipts.
  eql(await a.open(...splitFrame(await b.sealCloseNotify())), { kind: "close" });
  eql(await b.open(...splitFrame(await a.sealKeepalive(false))), {
    kind: "keepalive",
    ping: false,
  });
  eql(await a.open(...splitFrame(await b.sealKeepalive(true))), { kind: "keepalive", ping: true });
  eql(await b.open(...splitFrame(await a.sealReceipt(0))), { kind: "receipt", bytesReceived: 0n });
  eql(await b.open(...splitFrame(await a.sealKeepalive(true))), { kind: "keepalive", ping: true });
  eql(await a.open(...splitFrame(await b.sealReceipt(0))), { kind: "receipt", bytesReceived: 0n });
  eql(await a.open(...splitFrame(await b.sealKeepalive(false))), {
    kind: "keepalive",
    ping: false,
  });
  // a sent close_notify, a ping, a pong, its receipt and a ping: an authentic record of the
  // keepalive's length but another type, with the next sequence number, is refused.
  const forger = await RecordProtection.create(c, "chacha20-poly1305");
  for (let i = 0; i < 5; i++) await forger.seal(CONTENT_TYPE.keepalive, Uint8Array.of(0));
  const data = await forger.seal(CONTENT_TYPE.applicationData, Uint8Array.of(7));
  await rejects(
    b.open(...splitFrame(data)),
    isCode(ProtocolError, "record_after_close", "unexpected_message"),
  );
  // Nothing follows a fatal alert, not even a keepalive; data never follows close_notify.
  const { a: failed } = await layers();
  await failed.sealAlert(ALERT.internal_error);
  await rejects(failed.sealKeepalive(true), RangeError);
  await rejects(a.sealData(Uint8Array.of(1)), RangeError);
});

Deno.test("RecordLayer.open() after close_notify refuses a malformed keepalive", async () => {
  const { a, b, c } = await layers();
  eql(await b.open(...splitFrame(await a.sealCloseNotify())), { kind: "close" });
  const forger = await RecordProtection.create(c, "chacha20-poly1305");
  await forger.seal(CONTENT_TYPE.alert, Uint8Array.of(0));
  const bad = await forger.seal(CONTENT_TYPE.keepalive, Uint8Array.of(2));
  await rejects(b.open(...splitFrame(bad)), isCode(ProtocolError, "decode_error", "decode_error"));
});

Deno.test("RecordLayer.open() turns a fatal alert into PeerAlertError", async () => {
  for (
    const name of ["handshake_failure", "bad_record_mac", "access_denied", "user_canceled"] as const
  ) {
    const { a, b } = await layers();
    const frame = await a.sealAlert(ALERT[name]);
    strictEqual(a.sentClose, true);
    await rejects(b.open(...splitFrame(frame)), (error) => {
      ok(error instanceof PeerAlertError, `${name}: ${error}`);
      strictEqual(error.received, name);
      strictEqual(error.code, `peer_alert_${name}`);
      return true;
    });
  }
});

Deno.test("RecordLayer.open() rejects an unknown or misplaced content type with unexpected_message", async () => {
  for (const type of [0x00, CONTENT_TYPE.handshake, 0x1a, 0xff]) {
    const { b, c } = await layers();
    const sender = await RecordProtection.create(c, "chacha20-poly1305");
    const frame = await sender.seal(type, pattern(3));
    await rejects(
      b.open(...splitFrame(frame)),
      isCode(ProtocolError, "unexpected_message", "unexpected_message"),
      `type 0x${type.toString(16)}`,
    );
  }
});

Deno.test("RecordLayer.open() rejects a malformed key_update or alert with decode_error", async () => {
  const bad = [
    { type: CONTENT_TYPE.keyUpdate, content: Uint8Array.of(2) },
    { type: CONTENT_TYPE.keyUpdate, content: new Uint8Array(0) },
    { type: CONTENT_TYPE.keyUpdate, content: Uint8Array.of(0, 0) },
    { type: CONTENT_TYPE.alert, content: new Uint8Array(0) },
    { type: CONTENT_TYPE.alert, content: Uint8Array.of(0, 0) },
  ];
  for (const { type, content } of bad) {
    const { b, c } = await layers();
    const sender = await RecordProtection.create(c, "chacha20-poly1305");
    await rejects(
      b.open(...splitFrame(await sender.seal(type, content))),
      isCode(ProtocolError, "decode_error", "decode_error"),
      `type 0x${type.toString(16)} content ${content.length} bytes`,
    );
  }
});

Deno.test("RecordLayer.open() rejects a peer that keeps one key past keyUpdateRecords + slack", async () => {
  const { b, c } = await layers({ keyUpdateRecords: 1 });
  const sender = await RecordProtection.create(c, "chacha20-poly1305");
  const limit = 1 + KEY_UPDATE_SLACK;
  for (let i = 0; i < limit; i++) {
    await b.open(
      ...splitFrame(await sender.seal(CONTENT_TYPE.applicationData, Uint8Array.of(i & 0xff))),
    );
  }
  await rejects(
    b.open(...splitFrame(await sender.seal(CONTENT_TYPE.applicationData, Uint8Array.of(0)))),
    isCode(ProtocolError, "key_usage_exceeded", "unexpected_message"),
  );
});

Deno.test("RecordLayer.open() rejects tampered, replayed and dropped records", async () => {
  const { a, b } = await layers();
  const frames = [
    ...await a.sealData(encoder.encode("0")),
    ...await a.sealData(encoder.encode("1")),
    ...await a.sealData(encoder.encode("2")),
  ];
  await b.open(...splitFrame(frames[0]!));
  await rejects(b.open(...splitFrame(frames[0]!)), isCode(AuthenticationError, "record_replayed"));
  await rejects(b.open(...splitFrame(frames[2]!)), isCode(AuthenticationError, "record_dropped"));
  const flipped = frames[1]!.slice();
  flipped[FRAME_HEADER_LENGTH]! ^= 1;
  await rejects(b.open(...splitFrame(flipped)), isCode(AuthenticationError, "bad_record_mac"));
});

Deno.test("RecordLayer.sealData(), sealKeyUpdate() and sealCloseNotify() throw RangeError after close_notify", async () => {
  const { a } = await layers();
  await a.sealCloseNotify();
  await rejects(a.sealData(encoder.encode("late")), RangeError);
  await rejects(a.sealKeyUpdate(false), RangeError);
  await rejects(a.sealCloseNotify(), RangeError);
});

Deno.test("RecordLayer.sealData() and sealKeyUpdate() throw RangeError after a fatal alert", async () => {
  const { a } = await layers();
  await a.sealAlert(ALERT.internal_error);
  await rejects(a.sealData(encoder.encode("late")), RangeError);
  await rejects(a.sealKeyUpdate(false), RangeError);
});

Deno.test({
  name: "RecordLayer.sealAlert() throws RangeError after close_notify",
  // Regression: sealAlert() once allowed a record after our close_notify.
  async fn() {
    const { a } = await layers();
    await a.sealCloseNotify();
    await rejects(a.sealAlert(ALERT.internal_error), RangeError);
  },
});

Deno.test("RecordLayer counts plaintext content bytes toward the 2^36 limit, of every content type", async () => {
  // PROTOCOL.md 8.4: not the frame, the content type byte or the tag.
  const { a } = await layers();
  const [frame] = await a.sealData(pattern(1000));
  strictEqual(frame!.length, FRAME_HEADER_LENGTH + 1 + 1000 + TAG_LENGTH);
  strictEqual(a.sendCounters.bytes, 1000);
  await a.sealKeepalive(true);
  strictEqual(a.sendCounters.bytes, 1001);
  // A key update starts the count again for the new key.
  await a.sealKeyUpdate(false);
  eql(a.sendCounters, { records: 0n, bytes: 0 });
});
