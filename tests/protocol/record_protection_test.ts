import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { AuthenticationError, ProtocolError } from "../../lib/core/errors.ts";
import { FRAME_HEADER_LENGTH, FRAME_TYPE } from "../../lib/protocol/frame.ts";
import { trafficKeys } from "../../lib/crypto/key_schedule.ts";
import { CONTENT_TYPE, MAX_RECORD_PLAINTEXT, TAG_LENGTH } from "../../lib/protocol/record.ts";
import { RecordProtection } from "../../lib/protocol/record_protection.ts";
import type { RecordSuiteName } from "../../lib/crypto/record_suites.ts";
import { synchronousChaCha20Poly1305Loaded } from "../../lib/crypto/chacha20_poly1305.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { pattern, secret, splitFrame } from "../_helpers/records.ts";

const encoder = new TextEncoder();

/** Sender and receiver protections of one direction under the same secret. */
async function direction(name = "direction", suite: RecordSuiteName = "chacha20-poly1305") {
  const s = await secret(name);
  return {
    secret: s,
    sender: await RecordProtection.create(s, suite),
    receiver: await RecordProtection.create(s, suite),
  };
}

/** WebCrypto's name and key format of each record suite (section 4.5). */
const WEBCRYPTO = {
  "aes-256-gcm": { name: "AES-GCM", format: "raw" },
  "chacha20-poly1305": { name: "ChaCha20-Poly1305", format: "raw-secret" },
} as const;

/** Independent WebCrypto AEAD call: `nonce` is given, not derived by lib/. */
async function webCrypto(
  suite: RecordSuiteName,
  operation: "encrypt" | "decrypt",
  key: Uint8Array,
  nonce: Uint8Array,
  header: Uint8Array,
  input: Uint8Array,
): Promise<Uint8Array> {
  const { name, format } = WEBCRYPTO[suite];
  const cryptoKey = await crypto.subtle.importKey(
    format as "raw",
    Uint8Array.from(key),
    name,
    false,
    [operation],
  );
  const parameters = { name, iv: Uint8Array.from(nonce), additionalData: Uint8Array.from(header) };
  return new Uint8Array(
    await crypto.subtle[operation](parameters, cryptoKey, Uint8Array.from(input)),
  );
}

function webCryptoOpen(
  suite: RecordSuiteName,
  key: Uint8Array,
  nonce: Uint8Array,
  frame: Uint8Array,
): Promise<Uint8Array> {
  const [header, body] = splitFrame(frame);
  return webCrypto(suite, "decrypt", key, nonce, header, body);
}

const SUITES: RecordSuiteName[] = ["chacha20-poly1305", "aes-256-gcm"];

/** nonce = iv XOR (zeros(4) || u64(sequence)), section 8.1, computed here by hand. */
function nonceOf(iv: Uint8Array, sequence: bigint): Uint8Array {
  const padded = new Uint8Array(12);
  new DataView(padded.buffer).setBigUint64(4, sequence);
  return iv.map((byte, i) => byte ^ padded[i]!);
}

Deno.test("RecordProtection.seal() and open() round-trip every content type and size", async () => {
  const { sender, receiver } = await direction();
  const cases = [
    { type: CONTENT_TYPE.applicationData, content: encoder.encode("hello") },
    { type: CONTENT_TYPE.applicationData, content: new Uint8Array(0) },
    { type: CONTENT_TYPE.handshake, content: pattern(1000) },
    { type: CONTENT_TYPE.alert, content: Uint8Array.of(0) },
    { type: CONTENT_TYPE.keyUpdate, content: Uint8Array.of(1) },
    { type: CONTENT_TYPE.applicationData, content: pattern(MAX_RECORD_PLAINTEXT) },
  ];
  for (const [i, { type, content }] of cases.entries()) {
    const frame = await sender.seal(type, content);
    strictEqual(frame[0], FRAME_TYPE.record);
    const length = new DataView(frame.buffer, frame.byteOffset).getUint32(1);
    strictEqual(length, 1 + content.length + TAG_LENGTH);
    strictEqual(frame.length, FRAME_HEADER_LENGTH + length);
    const opened = await receiver.open(...splitFrame(frame));
    strictEqual(opened.type, type, `record ${i}`);
    eql(opened.content, content, `record ${i}`);
  }
  strictEqual(sender.sequence, BigInt(cases.length));
  strictEqual(receiver.sequence, BigInt(cases.length));
});

for (const suite of SUITES) {
  Deno.test(`RecordProtection.seal() (${suite}) uses nonce = iv XOR sequence number and the header as AAD`, async () => {
    const { secret: s, sender } = await direction("nonce", suite);
    const { key, iv } = await trafficKeys(s);
    const frames = new Map<bigint, Uint8Array>();
    for (let sequence = 0n; sequence <= 256n; sequence++) {
      const frame = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode(`#${sequence}`));
      if ([0n, 1n, 2n, 255n, 256n].includes(sequence)) frames.set(sequence, frame);
    }
    for (const [sequence, frame] of frames) {
      const plaintext = await webCryptoOpen(suite, key, nonceOf(iv, sequence), frame);
      eql(
        plaintext,
        Uint8Array.from([CONTENT_TYPE.applicationData, ...encoder.encode(`#${sequence}`)]),
      );
      // Any other sequence number's nonce fails.
      await rejects(webCryptoOpen(suite, key, nonceOf(iv, sequence + 1n), frame), `#${sequence}`);
    }
    // The sequence number is not on the wire: the frame is header || ciphertext || tag only.
    strictEqual(frames.get(0n)!.length, FRAME_HEADER_LENGTH + 1 + 2 + TAG_LENGTH);
  });
}

Deno.test("RecordProtection.open() rejects a single flipped bit anywhere with bad_record_mac", async () => {
  const { secret: s, sender } = await direction("bit flips");
  const frame = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode("hi!"));
  strictEqual(frame.length, 25);
  for (let position = 0; position < frame.length; position++) {
    for (let bit = 0; bit < 8; bit++) {
      const altered = frame.slice();
      altered[position]! ^= 1 << bit;
      const receiver = await RecordProtection.create(s, "chacha20-poly1305");
      await rejects(
        receiver.open(...splitFrame(altered)),
        isCode(AuthenticationError, "bad_record_mac", "bad_record_mac"),
        `byte ${position} bit ${bit}`,
      );
      strictEqual(receiver.sequence, 0n, "a failed record does not advance the sequence");
    }
  }
});

Deno.test("RecordProtection.open() reports a replayed record as record_replayed", async () => {
  const { sender, receiver } = await direction();
  const first = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode("one"));
  const second = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode("two"));
  await receiver.open(...splitFrame(first));
  await rejects(
    receiver.open(...splitFrame(first)),
    isCode(AuthenticationError, "record_replayed", "bad_record_mac"),
  );
  await receiver.open(...splitFrame(second));
  await rejects(
    receiver.open(...splitFrame(second)),
    isCode(AuthenticationError, "record_replayed", "bad_record_mac"),
  );
});

Deno.test("RecordProtection.open() reports a dropped record as record_dropped", async () => {
  const { sender, receiver } = await direction();
  const frames = [];
  for (let i = 0; i < 4; i++) {
    frames.push(await sender.seal(CONTENT_TYPE.applicationData, pattern(i)));
  }
  await receiver.open(...splitFrame(frames[0]!));
  await rejects(
    receiver.open(...splitFrame(frames[2]!)),
    isCode(AuthenticationError, "record_dropped", "bad_record_mac"),
  );
  // Two missing records are told apart from one.
  const other = await direction("two dropped");
  const more = [];
  for (let i = 0; i < 4; i++) {
    more.push(await other.sender.seal(CONTENT_TYPE.applicationData, pattern(i)));
  }
  await rejects(other.receiver.open(...splitFrame(more[2]!)), (error) => {
    ok(error instanceof AuthenticationError);
    strictEqual(error.code, "record_dropped");
    ok(error.message.includes("#0 to #1"), error.message);
    return true;
  });
});

Deno.test("RecordProtection.open() rejects two swapped records", async () => {
  const { sender, receiver } = await direction();
  const first = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode("first"));
  const second = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode("second"));
  await rejects(receiver.open(...splitFrame(second)), (error) => {
    ok(error instanceof AuthenticationError);
    ok(["record_dropped", "record_replayed", "record_reordered"].includes(error.code), error.code);
    strictEqual(error.alert, "bad_record_mac");
    return true;
  });
  // The swapped pair never opens as "second, first" even after the failure.
  await receiver.open(...splitFrame(first));
  await rejects(receiver.open(...splitFrame(first)), AuthenticationError);
});

Deno.test("RecordProtection.open() rejects a record from another key with bad_record_mac", async () => {
  const sender = await RecordProtection.create(await secret("one key"), "chacha20-poly1305");
  const receiver = await RecordProtection.create(await secret("another key"), "chacha20-poly1305");
  const frame = await sender.seal(CONTENT_TYPE.applicationData, encoder.encode("x"));
  await rejects(receiver.open(...splitFrame(frame)), isCode(AuthenticationError, "bad_record_mac"));
});

for (const suite of SUITES) {
  Deno.test(`RecordProtection.open() (${suite}) rejects an authentic record with no content type as decode_error`, async () => {
    const s = await secret("empty plaintext");
    const { key, iv } = await trafficKeys(s);
    const header = Uint8Array.of(FRAME_TYPE.record, 0, 0, 0, TAG_LENGTH);
    const body = await webCrypto(suite, "encrypt", key, nonceOf(iv, 0n), header, new Uint8Array(0));
    const receiver = await RecordProtection.create(s, suite);
    await rejects(
      receiver.open(header, body),
      isCode(ProtocolError, "decode_error", "decode_error"),
    );
  });
}

Deno.test("RecordProtection: the two record suites seal the same record differently, and neither opens the other's", async () => {
  const s = await secret("two suites");
  const chacha = await RecordProtection.create(s, "chacha20-poly1305");
  const aes = await RecordProtection.create(s, "aes-256-gcm");
  const a = await chacha.seal(CONTENT_TYPE.applicationData, pattern(100));
  const b = await aes.seal(CONTENT_TYPE.applicationData, pattern(100));
  ok(a.length === b.length && a.some((byte, i) => byte !== b[i]));
  await rejects(
    (await RecordProtection.create(s, "aes-256-gcm")).open(...splitFrame(a)),
    isCode(AuthenticationError, "bad_record_mac"),
  );
  await rejects(
    (await RecordProtection.create(s, "chacha20-poly1305")).open(...splitFrame(b)),
    isCode(AuthenticationError, "bad_record_mac"),
  );
});

Deno.test("RecordProtection: a ChaCha20-Poly1305 direction that switches to node:crypto after SYNCHRONOUS_AFTER_BYTES seals and opens the same bytes", async () => {
  // Two senders under one secret: one switches, one is a fresh key per record (never switches).
  const s = await secret("switch");
  const sender = await RecordProtection.create(s, "chacha20-poly1305");
  const receiver = await RecordProtection.create(s, "chacha20-poly1305");
  const { key, iv } = await trafficKeys(s);
  const content = pattern(256 * 1024);
  for (let sequence = 0n; sequence < 24n; sequence++) {
    const frame = await sender.seal(CONTENT_TYPE.applicationData, content);
    const [header] = splitFrame(frame);
    const expected = await webCrypto(
      "chacha20-poly1305",
      "encrypt",
      key,
      nonceOf(iv, sequence),
      header,
      Uint8Array.from([CONTENT_TYPE.applicationData, ...content]),
    );
    eql(frame.subarray(FRAME_HEADER_LENGTH), expected, `record ${sequence}`);
    eql((await receiver.open(...splitFrame(frame))).content, content, `record ${sequence}`);
    await new Promise((resolve) => setTimeout(resolve, 0)); // lets the switch land
  }
  ok(
    synchronousChaCha20Poly1305Loaded(),
    "6 MiB under one key loaded node:crypto (the switch ran)",
  );
});

Deno.test("RecordProtection.next() moves both ends to the same new key and resets the sequence", async () => {
  const { sender, receiver } = await direction();
  await receiver.open(...splitFrame(await sender.seal(CONTENT_TYPE.applicationData, pattern(3))));
  const nextSender = await sender.next();
  const nextReceiver = await receiver.next();
  strictEqual(nextSender.sequence, 0n);
  const frame = await nextSender.seal(CONTENT_TYPE.applicationData, pattern(4));
  eql((await nextReceiver.open(...splitFrame(frame))).content, pattern(4));
  // A record under the old key is not accepted under the new one.
  const stale =
    await (await RecordProtection.create(await secret("direction"), "chacha20-poly1305")).seal(
      CONTENT_TYPE.applicationData,
      pattern(1),
    );
  await rejects(nextReceiver.open(...splitFrame(stale)), AuthenticationError);
});
