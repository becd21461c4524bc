import {
  deepStrictEqual as eql,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import {
  deriveApplicationSecrets,
  deriveHandshakeSecrets,
  expandLabel,
  finishedMac,
  formatVerificationCode,
  HANDSHAKE_SALT,
  hkdfExpand,
  hkdfExtract,
  LABEL_CLIENT_APPLICATION,
  LABEL_CLIENT_HANDSHAKE,
  LABEL_DERIVED,
  LABEL_FINISHED,
  LABEL_IV,
  LABEL_KEY,
  LABEL_KEY_UPDATE,
  LABEL_PREFIX,
  LABEL_SERVER_APPLICATION,
  LABEL_SERVER_HANDSHAKE,
  LABEL_VERIFICATION_CODE,
  nextTrafficSecret,
  trafficKeys,
  Transcript,
} from "../../lib/crypto/key_schedule.ts";
import { loadWycheproof } from "../_helpers/wycheproof.ts";

// --- independent references, built on WebCrypto only (nothing from lib/) ---

const encoder = new TextEncoder();

function buf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(bytes);
}

async function sha256Ref(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf(data)));
}

async function hmacRef(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    buf(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    [
      "sign",
    ],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, buf(data)));
}

/** HKDF-Extract then HKDF-Expand in one call, as WebCrypto's HKDF does it. */
async function hkdfRef(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", buf(ikm), "HKDF", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: buf(salt), info: buf(info) },
      key,
      length * 8,
    ),
  );
}

/** HKDF-Expand written out: T(n) = HMAC(PRK, T(n-1) || info || n) (RFC 5869 section 2.3). */
async function expandRef(prk: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array> {
  const out: number[] = [];
  let previous: number[] = [];
  for (let n = 1; out.length < length; n++) {
    previous = [...await hmacRef(prk, Uint8Array.from([...previous, ...info, n]))];
    out.push(...previous);
  }
  return Uint8Array.from(out.slice(0, length));
}

/** The section 7.2 info, byte by byte. */
function labelInfo(length: number, label: string, context: Uint8Array): Uint8Array {
  const full = encoder.encode("securechat1 " + label);
  return Uint8Array.from([
    length >> 8,
    length & 0xff,
    full.length,
    ...full,
    context.length,
    ...context,
  ]);
}

const EMPTY = new Uint8Array(0);

// --- RFC 5869 ---

// RFC 5869 appendix A, test cases 1 to 3 (SHA-256), typed in from the RFC.
const RFC5869 = [
  {
    name: "A.1 basic test case",
    ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    salt: "000102030405060708090a0b0c",
    info: "f0f1f2f3f4f5f6f7f8f9",
    length: 42,
    prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
  },
  {
    name: "A.2 longer inputs and outputs",
    ikm: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
      "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" +
      "404142434445464748494a4b4c4d4e4f",
    salt: "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" +
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" +
      "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
    info: "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf" +
      "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef" +
      "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
    length: 82,
    prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
    okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" +
      "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" +
      "cc30c58179ec3e87c14c01d5c1f3434f1d87",
  },
  {
    name: "A.3 zero-length salt and info",
    ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    salt: "",
    info: "",
    length: 42,
    prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
  },
];

for (const v of RFC5869) {
  Deno.test(`hkdfExtract() and hkdfExpand() match RFC 5869 ${v.name}`, async () => {
    const prk = await hkdfExtract(fromHex(v.salt), fromHex(v.ikm));
    strictEqual(toHex(prk), v.prk);
    strictEqual(toHex(await hkdfExpand(prk, fromHex(v.info), v.length)), v.okm);
  });
}

Deno.test("hkdfExpand() accepts 255 * 32 bytes and rejects more with RangeError", async () => {
  const prk = new Uint8Array(32).fill(1);
  const longest = await hkdfExpand(prk, EMPTY, 255 * 32);
  strictEqual(longest.length, 255 * 32);
  eql(longest, await expandRef(prk, EMPTY, 255 * 32));
  await rejects(hkdfExpand(prk, EMPTY, 255 * 32 + 1), RangeError);
});

Deno.test("hkdfExpand() returns a prefix of the longer output for shorter lengths", async () => {
  const prk = new Uint8Array(32).fill(2);
  const long = await hkdfExpand(prk, Uint8Array.of(9), 100);
  for (const length of [0, 1, 31, 32, 33, 64, 65, 99]) {
    eql(await hkdfExpand(prk, Uint8Array.of(9), length), long.subarray(0, length), `L=${length}`);
  }
});

// --- Wycheproof ---

interface HkdfVector {
  tcId: number;
  comment: string;
  flags: string[];
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: "valid" | "invalid" | "acceptable";
}

const hkdfVectors = await loadWycheproof<HkdfVector>("hkdf_sha256_test.json");

Deno.test({
  name: "hkdfExtract() and hkdfExpand() give the okm of every valid Wycheproof HKDF-SHA-256 vector",
  async fn() {
    const valid = hkdfVectors.filter((v) => v.result === "valid");
    ok(valid.length > 80, `only ${valid.length} valid vectors`);
    for (const v of valid) {
      const prk = await hkdfExtract(fromHex(v.salt), fromHex(v.ikm));
      const okm = await hkdfExpand(prk, fromHex(v.info), v.size);
      strictEqual(toHex(okm), v.okm, `tcId ${v.tcId} ${v.comment} [${v.flags.join(", ")}]`);
    }
  },
});

Deno.test({
  name:
    "hkdfExpand() rejects the output size of every invalid Wycheproof HKDF vector with RangeError",
  async fn() {
    const invalid = hkdfVectors.filter((v) => v.result === "invalid");
    ok(invalid.length > 0);
    for (const v of invalid) {
      ok(v.flags.includes("SizeTooLarge"), `tcId ${v.tcId}: unexpected kind of invalid vector`);
      const prk = await hkdfExtract(fromHex(v.salt), fromHex(v.ikm));
      await rejects(hkdfExpand(prk, fromHex(v.info), v.size), RangeError, `tcId ${v.tcId}`);
    }
  },
});

// --- section 7.2 and 7.3 ---

Deno.test("LABEL_* constants are spelled exactly as in PROTOCOL.md section 7", async () => {
  const spec = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
  const section = spec.slice(spec.indexOf("### 7.2"), spec.indexOf("### 7.4"));
  strictEqual(LABEL_PREFIX, "securechat1 ");
  ok(section.includes(`"${LABEL_PREFIX}"`));
  for (
    const label of [
      HANDSHAKE_SALT,
      LABEL_CLIENT_HANDSHAKE,
      LABEL_SERVER_HANDSHAKE,
      LABEL_DERIVED,
      LABEL_CLIENT_APPLICATION,
      LABEL_SERVER_APPLICATION,
      LABEL_VERIFICATION_CODE,
      LABEL_KEY,
      LABEL_IV,
      LABEL_FINISHED,
      LABEL_KEY_UPDATE,
    ]
  ) {
    ok(section.includes(`"${label}"`), `"${label}" is not in PROTOCOL.md 7.2-7.3`);
  }
});

Deno.test('expandLabel() uses u16(L) || u8(len) || "securechat1 " + label || u8(len) || context as info', async () => {
  // The one info spelled out byte by byte: L = 32, label "key", empty context.
  eql(
    labelInfo(32, "key", EMPTY),
    Uint8Array.of(
      0x00,
      0x20,
      0x0f,
      ...[0x73, 0x65, 0x63, 0x75, 0x72, 0x65, 0x63, 0x68, 0x61, 0x74, 0x31, 0x20], // "securechat1 "
      0x6b,
      0x65,
      0x79, // "key"
      0x00,
    ),
  );
  // A PRK made by WebCrypto HMAC (HKDF-Extract), so WebCrypto's HKDF gives the reference output.
  const salt = encoder.encode("some salt");
  const ikm = new Uint8Array(32).map((_, i) => i * 7);
  const prk = await hmacRef(salt, ikm);
  const contexts = [EMPTY, new Uint8Array(32).fill(0xab), new Uint8Array(255).fill(1)];
  for (const label of ["key", "iv", "c hs traffic", "verification code", ""]) {
    for (const context of contexts) {
      for (const length of [8, 12, 32, 33, 100]) {
        const expected = await hkdfRef(ikm, salt, labelInfo(length, label, context), length);
        eql(
          await expandLabel(prk, label, context, length),
          expected,
          `label "${label}", context ${context.length} bytes, L=${length}`,
        );
      }
    }
  }
});

Deno.test("expandLabel() binds the output length: a shorter output is not a prefix of a longer one", async () => {
  const secret = new Uint8Array(32).fill(3);
  const short = await expandLabel(secret, LABEL_IV, EMPTY, 12);
  const long = await expandLabel(secret, LABEL_IV, EMPTY, 32);
  notDeepStrictEqual(short, long.subarray(0, 12));
});

Deno.test("expandLabel() rejects a context longer than 255 bytes with RangeError", async () => {
  await rejects(expandLabel(new Uint8Array(32), "key", new Uint8Array(256), 32), RangeError);
});

Deno.test("trafficKeys(), nextTrafficSecret() and finishedMac() follow section 7.3", async () => {
  const secret = await sha256Ref(encoder.encode("a traffic secret"));
  const { key, iv } = await trafficKeys(secret);
  eql(key, await expandRef(secret, labelInfo(32, "key", EMPTY), 32));
  eql(iv, await expandRef(secret, labelInfo(12, "iv", EMPTY), 12));
  eql(
    await nextTrafficSecret(secret),
    await expandRef(secret, labelInfo(32, "traffic upd", EMPTY), 32),
  );
  const th = await sha256Ref(encoder.encode("transcript"));
  const finishedKey = await expandRef(secret, labelInfo(32, "finished", EMPTY), 32);
  eql(await finishedMac(secret, th), await hmacRef(finishedKey, th));
});

Deno.test("deriveHandshakeSecrets() follows section 7.3 and is deterministic", async () => {
  const shared = new Uint8Array(64).map((_, i) => 255 - i);
  const thHello = await sha256Ref(encoder.encode("ClientHello || ServerHello"));
  const a = await deriveHandshakeSecrets(shared, thHello);
  const b = await deriveHandshakeSecrets(shared.slice(), thHello.slice());
  eql(a, b);
  const salt = encoder.encode("securechat/1");
  eql(a.handshakeSecret, await hmacRef(salt, shared));
  eql(
    a.clientHandshakeTraffic,
    await hkdfRef(shared, salt, labelInfo(32, "c hs traffic", thHello), 32),
  );
  eql(
    a.serverHandshakeTraffic,
    await hkdfRef(shared, salt, labelInfo(32, "s hs traffic", thHello), 32),
  );
  notDeepStrictEqual(a.clientHandshakeTraffic, a.serverHandshakeTraffic);
});

Deno.test("deriveHandshakeSecrets() changes every secret when the shared secret or TH changes", async () => {
  const shared = new Uint8Array(32).fill(5);
  const th = await sha256Ref(EMPTY);
  const base = await deriveHandshakeSecrets(shared, th);
  const otherShared = shared.slice();
  otherShared[31]! ^= 1;
  const otherTh = th.slice();
  otherTh[0]! ^= 0x80;
  for (
    const other of [
      await deriveHandshakeSecrets(otherShared, th),
      await deriveHandshakeSecrets(shared, otherTh),
    ]
  ) {
    notDeepStrictEqual(other.clientHandshakeTraffic, base.clientHandshakeTraffic);
    notDeepStrictEqual(other.serverHandshakeTraffic, base.serverHandshakeTraffic);
  }
  // The handshake secret depends on the shared secret only; TH enters at the traffic secrets.
  eql((await deriveHandshakeSecrets(shared, otherTh)).handshakeSecret, base.handshakeSecret);
});

Deno.test("deriveApplicationSecrets() follows section 7.3 and is deterministic", async () => {
  const shared = new Uint8Array(32).fill(9);
  const salt = encoder.encode("securechat/1");
  const { handshakeSecret } = await deriveHandshakeSecrets(shared, await sha256Ref(EMPTY));
  const thFinal = await sha256Ref(encoder.encode("the whole transcript"));
  const a = await deriveApplicationSecrets(handshakeSecret, thFinal);
  eql(a, await deriveApplicationSecrets(handshakeSecret.slice(), thFinal.slice()));

  // derived = ExpandLabel(handshake_secret, "derived", H(""), 32); handshake_secret itself was
  // HKDF-Extract("securechat/1", shared), so WebCrypto's one-shot HKDF reproduces it.
  const derived = await hkdfRef(shared, salt, labelInfo(32, "derived", await sha256Ref(EMPTY)), 32);
  const zeros = new Uint8Array(32);
  eql(a.masterSecret, await hmacRef(derived, zeros));
  eql(
    a.clientApplicationTraffic,
    await hkdfRef(zeros, derived, labelInfo(32, "c ap traffic", thFinal), 32),
  );
  eql(
    a.serverApplicationTraffic,
    await hkdfRef(zeros, derived, labelInfo(32, "s ap traffic", thFinal), 32),
  );
  eql(
    a.verificationCode,
    await hkdfRef(zeros, derived, labelInfo(8, "verification code", thFinal), 8),
  );
  strictEqual(a.verificationCode.length, 8);
  notDeepStrictEqual(a.clientApplicationTraffic, a.serverApplicationTraffic);
  notDeepStrictEqual(a.clientApplicationTraffic, a.masterSecret);
});

Deno.test("deriveApplicationSecrets() gives different secrets for a different transcript", async () => {
  const hs = new Uint8Array(32).fill(4);
  const a = await deriveApplicationSecrets(hs, new Uint8Array(32).fill(1));
  const b = await deriveApplicationSecrets(hs, new Uint8Array(32).fill(2));
  eql(a.masterSecret, b.masterSecret);
  notDeepStrictEqual(a.clientApplicationTraffic, b.clientApplicationTraffic);
  notDeepStrictEqual(a.serverApplicationTraffic, b.serverApplicationTraffic);
  notDeepStrictEqual(a.verificationCode, b.verificationCode);
});

Deno.test("deriveHandshakeSecrets() and deriveApplicationSecrets() give six distinct secrets", async () => {
  const hs = await deriveHandshakeSecrets(new Uint8Array(32).fill(8), new Uint8Array(32).fill(6));
  const ap = await deriveApplicationSecrets(hs.handshakeSecret, new Uint8Array(32).fill(6));
  const all = [
    hs.handshakeSecret,
    hs.clientHandshakeTraffic,
    hs.serverHandshakeTraffic,
    ap.masterSecret,
    ap.clientApplicationTraffic,
    ap.serverApplicationTraffic,
  ].map(toHex);
  strictEqual(new Set(all).size, all.length);
});

// --- section 7.4 ---

function u64Ref(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value);
  return out;
}

Deno.test("formatVerificationCode() prints u64 mod 10^12 as three groups of four digits", () => {
  strictEqual(formatVerificationCode(new Uint8Array(8)), "0000 0000 0000");
  strictEqual(formatVerificationCode(u64Ref(421_9973_1205n)), "0421 9973 1205");
  strictEqual(formatVerificationCode(u64Ref(10n ** 12n)), "0000 0000 0000");
  strictEqual(formatVerificationCode(u64Ref(10n ** 12n - 1n)), "9999 9999 9999");
  strictEqual(formatVerificationCode(u64Ref(10n ** 12n + 5n)), "0000 0000 0005");
  // 2^64 - 1 = 18446744073709551615.
  strictEqual(formatVerificationCode(new Uint8Array(8).fill(0xff)), "0737 0955 1615");
  strictEqual(
    formatVerificationCode(fromHex("0102030405060708")),
    "8597 9038 2856", // 0x0102030405060708 = 72623859790382856
  );
});

Deno.test("formatVerificationCode() reads a view at its own offset", () => {
  const backing = new Uint8Array(20).fill(0xee);
  backing.set(new Uint8Array(8).fill(0xff), 5);
  strictEqual(formatVerificationCode(backing.subarray(5, 13)), "0737 0955 1615");
});

Deno.test("formatVerificationCode() rejects anything but 8 bytes with RangeError", () => {
  for (const length of [0, 1, 7, 9, 32]) {
    throws(() => formatVerificationCode(new Uint8Array(length)), RangeError, `length ${length}`);
  }
});

// --- section 7.1 ---

Deno.test("Transcript.hash() is SHA-256 of the concatenation of the added messages", async () => {
  const transcript = new Transcript();
  eql(await transcript.hash(), await sha256Ref(EMPTY));
  const messages = [
    Uint8Array.of(1, 0, 0, 0, 3, 7, 8, 9),
    new Uint8Array(0),
    encoder.encode("Identity"),
    new Uint8Array(5000).fill(0x5a),
  ];
  let all: number[] = [];
  for (const message of messages) {
    transcript.add(message);
    all = [...all, ...message];
    eql(await transcript.hash(), await sha256Ref(Uint8Array.from(all)));
  }
});

Deno.test("Transcript.add() keeps its own copy of each message", async () => {
  const transcript = new Transcript();
  const message = Uint8Array.of(1, 2, 3);
  transcript.add(message);
  message.fill(0);
  eql(await transcript.hash(), await sha256Ref(Uint8Array.of(1, 2, 3)));
});
