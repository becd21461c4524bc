import { deepStrictEqual as eql, ok, strictEqual, throws } from "node:assert/strict";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  initiatorKex,
  responderKex,
  SHARE_LENGTHS,
  type SuiteName,
  systemRandom,
} from "../../lib/crypto/kex.ts";
import {
  type ClientHello,
  decodeClientHello,
  decodeFinished,
  decodeIdentity,
  decodeIdentityVerify,
  decodeServerHello,
  encodeClientHello,
  encodeFinished,
  encodeIdentity,
  encodeIdentityVerify,
  encodeServerHello,
  MAX_NAME_LENGTH,
  MESSAGE_TYPE,
  type ServerHello,
  SUPPORTED_VERSIONS,
} from "../../lib/protocol/messages.ts";
import type { RecordSuiteName } from "../../lib/crypto/record_suites.ts";

const encoder = new TextEncoder();

// --- hand-written encoders (section 5), independent of lib/protocol/messages.ts ---

const RECORD_ID: Record<RecordSuiteName, number> = {
  "aes-256-gcm": 0x01,
  "chacha20-poly1305": 0x02,
};

const ID: Record<SuiteName, number> = {
  "x25519-mlkem768": 0x01,
  "x25519": 0x02,
  "ffdhe3072": 0x03,
};

function be16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

interface RawShare {
  id: number;
  share: Uint8Array;
}

/** Section 5.1, field by field; counts can be overridden to build malformed bodies. */
function clientHelloBytes(o: {
  versions?: number[];
  versionsCount?: number;
  random?: Uint8Array;
  max?: number;
  shares: RawShare[];
  sharesCount?: number;
  recordSuites?: number[];
  recordSuitesCount?: number;
}): Uint8Array {
  const versions = o.versions ?? [1];
  const recordSuites = o.recordSuites ?? [0x02, 0x01];
  return Uint8Array.from([
    o.versionsCount ?? versions.length,
    ...versions,
    ...(o.random ?? new Uint8Array(32).fill(0xaa)),
    ...be32(o.max ?? 16384),
    o.sharesCount ?? o.shares.length,
    ...o.shares.flatMap((s) => [s.id, ...be16(s.share.length), ...s.share]),
    o.recordSuitesCount ?? recordSuites.length,
    ...recordSuites,
  ]);
}

/** Section 5.2, field by field. */
function serverHelloBytes(o: {
  version?: number;
  random?: Uint8Array;
  max?: number;
  id: number;
  share: Uint8Array;
  recordSuite?: number;
}): Uint8Array {
  return Uint8Array.from([
    o.version ?? 1,
    ...(o.random ?? new Uint8Array(32).fill(0xbb)),
    ...be32(o.max ?? 16384),
    o.id,
    ...be16(o.share.length),
    ...o.share,
    o.recordSuite ?? 0x02,
  ]);
}

/** Section 5.3 Identity, with raw name bytes. */
function identityBytes(spki: Uint8Array, name: Uint8Array, type: number = 0x0b): Uint8Array {
  return Uint8Array.from([type, ...be16(spki.length), ...spki, name.length, ...name]);
}

function filled(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 7 + seed) & 0xff);
}

function initiatorShare(suite: SuiteName, seed = 1): Uint8Array {
  return filled(SHARE_LENGTHS[suite].initiator, seed);
}

function responderShare(suite: SuiteName, seed = 2): Uint8Array {
  return filled(SHARE_LENGTHS[suite].responder, seed);
}

const SPKI = filled(44, 3);

function isProtocolError(code: string | undefined, what: string) {
  return (error: unknown) => {
    ok(error instanceof ProtocolError, `${what}: expected a ProtocolError, got ${error}`);
    if (code !== undefined) {
      strictEqual(error.code, code, what);
      strictEqual(error.alert, code, what);
    }
    return true;
  };
}

// --- round trips and layout ---

Deno.test("encodeClientHello() lays out the fields of section 5.1 and decodeClientHello() inverts it", async () => {
  const mlkem = await initiatorKex("x25519-mlkem768", systemRandom);
  const x25519 = await initiatorKex("x25519", systemRandom);
  const ffdhe = await initiatorKex("ffdhe3072", systemRandom);
  const random = crypto.getRandomValues(new Uint8Array(32));
  const hellos: ClientHello[] = [
    // The default offer, with real shares.
    {
      versions: [...SUPPORTED_VERSIONS],
      random,
      maxRecordPlaintext: 16384,
      shares: [{ suite: "x25519-mlkem768", share: mlkem.share }, {
        suite: "x25519",
        share: x25519.share,
      }],
      recordSuites: ["chacha20-poly1305", "aes-256-gcm"],
    },
    {
      versions: [16, 15, 3, 2, 1],
      random,
      maxRecordPlaintext: 2 ** 20,
      shares: [
        { suite: "ffdhe3072", share: ffdhe.share },
        { suite: "x25519", share: x25519.share },
        { suite: "x25519-mlkem768", share: mlkem.share },
      ],
      recordSuites: ["aes-256-gcm", "chacha20-poly1305"],
    },
    {
      versions: Array.from({ length: 16 }, (_, i) => 16 - i),
      random: new Uint8Array(32),
      maxRecordPlaintext: 100_000,
      shares: [{ suite: "x25519", share: x25519.share }],
      recordSuites: ["aes-256-gcm"],
    },
  ];
  for (const hello of hellos) {
    const body = encodeClientHello(hello);
    eql(
      body,
      clientHelloBytes({
        versions: hello.versions,
        random: hello.random,
        max: hello.maxRecordPlaintext,
        shares: hello.shares.map((s) => ({ id: ID[s.suite], share: s.share })),
        recordSuites: hello.recordSuites.map((suite) => RECORD_ID[suite]),
      }),
    );
    eql(decodeClientHello(body), hello);
  }
});

Deno.test("encodeServerHello() lays out the fields of section 5.2 and decodeServerHello() inverts it", async () => {
  const x25519 = await initiatorKex("x25519", systemRandom);
  const real = await responderKex("x25519", x25519.share, systemRandom);
  const hellos: ServerHello[] = [
    {
      version: 1,
      random: filled(32, 9),
      maxRecordPlaintext: 16384,
      suite: "x25519",
      share: real.share,
      recordSuite: "chacha20-poly1305",
    },
    {
      version: 1,
      random: filled(32, 8),
      maxRecordPlaintext: 2 ** 20,
      suite: "x25519-mlkem768",
      share: responderShare("x25519-mlkem768"),
      recordSuite: "aes-256-gcm",
    },
    {
      version: 7,
      random: filled(32, 7),
      maxRecordPlaintext: 65536,
      suite: "ffdhe3072",
      share: responderShare("ffdhe3072"),
      recordSuite: "chacha20-poly1305",
    },
  ];
  for (const hello of hellos) {
    const body = encodeServerHello(hello);
    eql(
      body,
      serverHelloBytes({
        version: hello.version,
        random: hello.random,
        max: hello.maxRecordPlaintext,
        id: ID[hello.suite],
        share: hello.share,
        recordSuite: RECORD_ID[hello.recordSuite],
      }),
    );
    eql(decodeServerHello(body), hello);
  }
});

Deno.test("encodeIdentity() lays out msg_type, spki and name, and decodeIdentity() inverts it", () => {
  const names = [
    "",
    "alice",
    "a".repeat(MAX_NAME_LENGTH),
    "Zoë's laptop 🔐",
    "é".repeat(32),
    "名前",
  ];
  for (const spki of [new Uint8Array(0), SPKI, filled(1300, 4)]) {
    for (const name of names) {
      const message = encodeIdentity({ spki, name });
      eql(message, identityBytes(spki, encoder.encode(name)));
      eql(decodeIdentity(message), { spki, name }, name);
    }
  }
});

Deno.test("encodeIdentityVerify() and decodeIdentityVerify() round-trip signatures of any length", () => {
  for (const length of [0, 1, 64, 256, 512, 1024, 0xffff]) {
    const signature = filled(length, length);
    const message = encodeIdentityVerify(signature);
    eql(message, Uint8Array.from([0x0f, ...be16(length), ...signature]));
    eql(decodeIdentityVerify(message), signature, `${length}`);
  }
});

Deno.test("encodeFinished() and decodeFinished() round-trip 32 bytes of verify_data", () => {
  const verifyData = filled(32, 5);
  const message = encodeFinished(verifyData);
  eql(message, Uint8Array.from([0x14, ...verifyData]));
  eql(decodeFinished(message), verifyData);
});

Deno.test("MESSAGE_TYPE matches PROTOCOL.md section 5.3", () => {
  eql({ ...MESSAGE_TYPE }, { identity: 0x0b, identityVerify: 0x0f, finished: 0x14 });
  strictEqual(MAX_NAME_LENGTH, 64);
});

// --- every decoder: trailing bytes and truncation ---

const VALID: { name: string; bytes: Uint8Array; decode: (bytes: Uint8Array) => unknown }[] = [
  {
    name: "ClientHello",
    bytes: clientHelloBytes({
      versions: [2, 1],
      shares: [
        { id: 0x01, share: initiatorShare("x25519-mlkem768") },
        { id: 0x02, share: initiatorShare("x25519") },
      ],
    }),
    decode: decodeClientHello,
  },
  {
    name: "ServerHello",
    bytes: serverHelloBytes({ id: 0x02, share: responderShare("x25519") }),
    decode: decodeServerHello,
  },
  { name: "Identity", bytes: identityBytes(SPKI, encoder.encode("bob")), decode: decodeIdentity },
  {
    name: "IdentityVerify",
    bytes: Uint8Array.from([0x0f, ...be16(64), ...filled(64, 6)]),
    decode: decodeIdentityVerify,
  },
  { name: "Finished", bytes: Uint8Array.from([0x14, ...filled(32, 7)]), decode: decodeFinished },
];

Deno.test("decode*() accept the unaltered test messages", () => {
  for (const { name, bytes, decode } of VALID) ok(decode(bytes) !== undefined, name);
});

Deno.test("decode*() reject trailing bytes with decode_error", () => {
  for (const { name, bytes, decode } of VALID) {
    for (const extra of [[0], [0xff], [1, 2, 3]]) {
      throws(
        () => decode(Uint8Array.from([...bytes, ...extra])),
        isProtocolError("decode_error", `${name} + ${extra.length}`),
      );
    }
  }
});

Deno.test("decode*() reject every truncation of a valid encoding", () => {
  for (const { name, bytes, decode } of VALID) {
    for (let length = 0; length < bytes.length; length++) {
      throws(
        () => decode(bytes.subarray(0, length)),
        isProtocolError(undefined, `${name}[0..${length}]`),
      );
    }
  }
});

// --- ClientHello fields ---

const X25519_SHARE: RawShare = { id: 0x02, share: initiatorShare("x25519") };

Deno.test("decodeClientHello() accepts versions_count 1 to 16 and rejects 0 and 17", () => {
  for (const count of [1, 2, 16]) {
    const versions = Array.from({ length: count }, (_, i) => count - i);
    eql(
      decodeClientHello(clientHelloBytes({ versions, shares: [X25519_SHARE] })).versions,
      versions,
    );
  }
  for (const count of [0, 17, 255]) {
    const versions = Array.from({ length: count }, () => 1);
    throws(
      () => decodeClientHello(clientHelloBytes({ versions, shares: [X25519_SHARE] })),
      isProtocolError("decode_error", `versions_count ${count}`),
    );
  }
});

Deno.test("decodeClientHello() rejects shares_count 0 and counts past the limit", () => {
  throws(
    () => decodeClientHello(clientHelloBytes({ shares: [] })),
    isProtocolError("decode_error", "shares_count 0"),
  );
  // A count of 0 followed by a share is not read as one share.
  throws(
    () => decodeClientHello(clientHelloBytes({ shares: [X25519_SHARE], sharesCount: 0 })),
    isProtocolError("decode_error", "shares_count 0 with a share"),
  );
  const unknown = Array.from({ length: 9 }, (_, i) => ({ id: 0x70 + i, share: new Uint8Array(0) }));
  throws(
    () => decodeClientHello(clientHelloBytes({ shares: [X25519_SHARE, ...unknown.slice(0, 8)] })),
    isProtocolError("decode_error", "shares_count 9"),
  );
  throws(
    () => decodeClientHello(clientHelloBytes({ shares: [X25519_SHARE], sharesCount: 255 })),
    isProtocolError("decode_error", "shares_count 255"),
  );
});

Deno.test("decodeClientHello() rejects a suite offered twice", () => {
  for (const suite of ["x25519-mlkem768", "x25519", "ffdhe3072"] as const) {
    const share = { id: ID[suite], share: initiatorShare(suite) };
    const other = suite === "x25519"
      ? { id: 0x03, share: initiatorShare("ffdhe3072") }
      : X25519_SHARE;
    for (const shares of [[share, share], [share, other, share]]) {
      throws(
        () => decodeClientHello(clientHelloBytes({ shares })),
        isProtocolError("decode_error", `${suite} x ${shares.length}`),
      );
    }
  }
});

Deno.test("decodeClientHello() rejects a known suite's share of the wrong length", () => {
  for (const suite of ["x25519-mlkem768", "x25519", "ffdhe3072"] as const) {
    const length = SHARE_LENGTHS[suite].initiator;
    // The responder's length is wrong here too: the two directions differ for the hybrid suite.
    for (const wrong of new Set([0, 1, length - 1, length + 1, SHARE_LENGTHS[suite].responder])) {
      if (wrong === length) continue;
      throws(
        () =>
          decodeClientHello(
            clientHelloBytes({ shares: [{ id: ID[suite], share: filled(wrong, 1) }] }),
          ),
        isProtocolError("illegal_parameter", `${suite} share of ${wrong} bytes`),
      );
    }
  }
});

Deno.test("decodeClientHello() skips shares of unknown suite ids", () => {
  const hello = decodeClientHello(clientHelloBytes({
    shares: [
      { id: 0x7f, share: filled(5, 1) },
      X25519_SHARE,
      { id: 0x00, share: new Uint8Array(0) },
      { id: 0xff, share: filled(2000, 2) },
      { id: 0x7f, share: filled(3, 1) }, // an unknown id may repeat: it is never used
    ],
  }));
  eql(hello.shares, [{ suite: "x25519", share: X25519_SHARE.share }]);
  // Only unknown suites: decodes to no shares (the handshake then fails with handshake_failure).
  eql(
    decodeClientHello(clientHelloBytes({ shares: [{ id: 0x04, share: filled(32, 3) }] })).shares,
    [],
  );
});

const MAX_CASES: [number, boolean][] = [
  [0, false],
  [16383, false],
  [16384, true],
  [16385, true],
  [2 ** 20 - 1, true],
  [2 ** 20, true],
  [2 ** 20 + 1, false],
  [2 ** 31, false],
  [2 ** 32 - 1, false],
];

Deno.test("decodeClientHello() accepts max_record_plaintext 16384 to 2^20 only", () => {
  for (const [max, valid] of MAX_CASES) {
    const body = clientHelloBytes({ max, shares: [X25519_SHARE] });
    if (valid) strictEqual(decodeClientHello(body).maxRecordPlaintext, max);
    else throws(() => decodeClientHello(body), isProtocolError("illegal_parameter", `${max}`));
  }
});

// --- ServerHello fields ---

Deno.test("decodeServerHello() accepts max_record_plaintext 16384 to 2^20 only", () => {
  for (const [max, valid] of MAX_CASES) {
    const body = serverHelloBytes({ max, id: 0x02, share: responderShare("x25519") });
    if (valid) strictEqual(decodeServerHello(body).maxRecordPlaintext, max);
    else throws(() => decodeServerHello(body), isProtocolError("illegal_parameter", `${max}`));
  }
});

Deno.test("decodeServerHello() rejects an unknown suite and a share of the wrong length", () => {
  for (const id of [0x00, 0x04, 0xff]) {
    throws(
      () => decodeServerHello(serverHelloBytes({ id, share: filled(32, 1) })),
      isProtocolError("illegal_parameter", `suite id ${id}`),
    );
  }
  for (const suite of ["x25519-mlkem768", "x25519", "ffdhe3072"] as const) {
    const length = SHARE_LENGTHS[suite].responder;
    for (const wrong of new Set([0, length - 1, length + 1, SHARE_LENGTHS[suite].initiator])) {
      if (wrong === length) continue;
      throws(
        () => decodeServerHello(serverHelloBytes({ id: ID[suite], share: filled(wrong, 1) })),
        isProtocolError("illegal_parameter", `${suite} share of ${wrong} bytes`),
      );
    }
  }
});

// --- Identity, IdentityVerify, Finished ---

Deno.test("decodeIdentity() rejects names over 64 bytes; encodeIdentity() refuses to make them", () => {
  eql(decodeIdentity(identityBytes(SPKI, new Uint8Array(64).fill(0x61))).name, "a".repeat(64));
  for (const length of [65, 100, 255]) {
    throws(
      () => decodeIdentity(identityBytes(SPKI, new Uint8Array(length).fill(0x61))),
      isProtocolError("decode_error", `name of ${length} bytes`),
    );
  }
  throws(() => encodeIdentity({ spki: SPKI, name: "a".repeat(65) }), RangeError);
  // The limit is in bytes, not characters: 33 two-byte characters are 66 bytes.
  throws(() => encodeIdentity({ spki: SPKI, name: "é".repeat(33) }), RangeError);
});

Deno.test("decodeIdentity() rejects a name that is not UTF-8 with decode_error", () => {
  const bad = [
    [0xff],
    [0x61, 0x80], // lone continuation byte
    [0xc3], // cut-off sequence
    [0xc0, 0xaf], // overlong "/"
    [0xed, 0xa0, 0x80], // UTF-16 surrogate
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  ];
  for (const name of bad) {
    throws(
      () => decodeIdentity(identityBytes(SPKI, Uint8Array.from(name))),
      isProtocolError("decode_error", name.join(",")),
    );
  }
});

Deno.test("decode*() reject a message of the wrong msg_type with decode_error", () => {
  const body = (type: number) => Uint8Array.from([type, ...VALID[2]!.bytes.subarray(1)]);
  for (const type of [0x00, MESSAGE_TYPE.identityVerify, MESSAGE_TYPE.finished, 0x01, 0xff]) {
    throws(
      () => decodeIdentity(body(type)),
      isProtocolError("decode_error", `Identity as ${type}`),
    );
  }
  const verify = VALID[3]!.bytes;
  for (const type of [0x00, MESSAGE_TYPE.identity, MESSAGE_TYPE.finished]) {
    throws(
      () => decodeIdentityVerify(Uint8Array.from([type, ...verify.subarray(1)])),
      isProtocolError("decode_error", `IdentityVerify as ${type}`),
    );
  }
  const finished = VALID[4]!.bytes;
  for (const type of [0x00, MESSAGE_TYPE.identity, MESSAGE_TYPE.identityVerify]) {
    throws(
      () => decodeFinished(Uint8Array.from([type, ...finished.subarray(1)])),
      isProtocolError("decode_error", `Finished as ${type}`),
    );
  }
});

Deno.test("decodeFinished() accepts exactly 32 bytes of verify_data", () => {
  for (const length of [0, 31, 33, 64]) {
    throws(
      () => decodeFinished(Uint8Array.from([0x14, ...filled(length, 1)])),
      isProtocolError("decode_error", `${length}`),
    );
  }
});

Deno.test("decodeIdentity() returns the sanitized name", () => {
  const message = identityBytes(SPKI, encoder.encode("mallory\u001b[2J\u202Egpj.exe"));
  strictEqual(decodeIdentity(message).name, "mallory?[2J?gpj.exe");
});

Deno.test({
  name: "decodeIdentity() keeps a leading U+FEFF in the name (encode and decode are inverses)",
  // Regression: decodeIdentity() once stripped a leading BOM, so two encodings gave one name.
  fn() {
    const name = "\ufeffbob";
    strictEqual(decodeIdentity(encodeIdentity({ spki: SPKI, name })).name, name);
  },
});

// --- seeded mutations (age FuzzMalleability, reproducible like noble's tests) ---

const MUTATION_SEED = 0x5eed2024;

/** xorshift32: small, fixed, reproducible. */
function xorshift32(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/** Overwrites 1-3 random bytes; one time in eight also inserts or deletes a byte. */
function mutate(bytes: Uint8Array, next: () => number): Uint8Array {
  let out = bytes.slice();
  const edits = 1 + next() % 3;
  for (let i = 0; i < edits; i++) out[next() % out.length] = next() & 0xff;
  if (next() % 8 === 0) {
    const at = next() % out.length;
    out = next() % 2 === 0
      ? Uint8Array.from([...out.subarray(0, at), next() & 0xff, ...out.subarray(at)])
      : Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + 1)]);
  }
  return out;
}

/**
 * Runs `count` mutations of `valid` through `decode`: each must return or throw ProtocolError. When
 * it returns, re-encoding gives back the exact input unless `reencode` reports a skipped field.
 */
function fuzz<T>(
  valid: Uint8Array,
  decode: (bytes: Uint8Array) => T,
  reencode: (value: T) => Uint8Array,
  seed: number,
) {
  const next = xorshift32(seed);
  let accepted = 0;
  for (let i = 0; i < 2000; i++) {
    const input = mutate(valid, next);
    let value: T;
    try {
      value = decode(input);
    } catch (error) {
      ok(error instanceof ProtocolError, `mutation ${i} (seed 0x${seed.toString(16)}): ${error}`);
      continue;
    }
    accepted++;
    const again = reencode(value);
    // Same length means nothing was skipped (unknown shares are at least 3 bytes): then the
    // decoding must be exact, or two encodings would mean the same message.
    if (again.length === input.length) eql(again, input, `mutation ${i} is malleable`);
  }
  return accepted;
}

Deno.test(`decodeClientHello() returns or throws ProtocolError for 2,000 mutations (xorshift32 seed 0x${MUTATION_SEED.toString(16)})`, () => {
  const valid = clientHelloBytes({ versions: [2, 1], shares: [X25519_SHARE] });
  const accepted = fuzz(valid, decodeClientHello, encodeClientHello, MUTATION_SEED);
  // Most mutations land in random or share bytes, which any value may take.
  ok(accepted > 0 && accepted < 2000, `${accepted} accepted`);
});

Deno.test(`decodeServerHello() and decodeIdentity() return or throw ProtocolError for 2,000 mutations each (xorshift32 seed 0x${MUTATION_SEED.toString(16)})`, () => {
  fuzz(VALID[1]!.bytes, decodeServerHello, encodeServerHello, MUTATION_SEED);
  // Names are sanitized on decode, so only the no-throw property is checked for Identity.
  const next = xorshift32(MUTATION_SEED);
  for (let i = 0; i < 2000; i++) {
    try {
      decodeIdentity(mutate(VALID[2]!.bytes, next));
    } catch (error) {
      ok(error instanceof ProtocolError, `mutation ${i}: ${error}`);
    }
  }
});

Deno.test("decodeClientHello() takes record_suites_count 1 to 8, skips unknown record suite ids and rejects 0, 9 and a suite named twice", () => {
  const shares = [{ id: 0x02, share: initiatorShare("x25519") }];
  eql(
    decodeClientHello(clientHelloBytes({ shares, recordSuites: [0x07, 0x01, 0xff] })).recordSuites,
    ["aes-256-gcm"],
  );
  eql(
    decodeClientHello(clientHelloBytes({ shares, recordSuites: [0x09, 0x0a] })).recordSuites,
    [],
    "none known: left to the responder, which answers handshake_failure",
  );
  eql(
    decodeClientHello(clientHelloBytes({ shares, recordSuites: [3, 4, 5, 6, 7, 8, 2, 1] }))
      .recordSuites,
    ["chacha20-poly1305", "aes-256-gcm"],
  );
  for (const recordSuites of [[], [3, 4, 5, 6, 7, 8, 9, 2, 1]]) {
    throws(
      () => decodeClientHello(clientHelloBytes({ shares, recordSuites })),
      isProtocolError("decode_error", `${recordSuites.length} record suites`),
    );
  }
  throws(
    () => decodeClientHello(clientHelloBytes({ shares, recordSuites: [0x02, 0x01, 0x02] })),
    isProtocolError("decode_error", "chacha20-poly1305 twice"),
  );
});

Deno.test("decodeServerHello() rejects a record suite id it does not know with illegal_parameter", () => {
  for (const recordSuite of [0x00, 0x03, 0xff]) {
    throws(
      () =>
        decodeServerHello(
          serverHelloBytes({ id: 0x02, share: responderShare("x25519"), recordSuite }),
        ),
      isProtocolError("illegal_parameter", `record suite ${recordSuite}`),
    );
  }
});
