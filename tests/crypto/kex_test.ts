import {
  deepStrictEqual as eql,
  notDeepStrictEqual,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import {
  ALL_SUITES,
  ffdhePublicIsValid,
  initiatorKex,
  mlkemEncapsulationKeyIsValid,
  parseSuiteList,
  type RandomSource,
  responderKex,
  SHARE_LENGTHS,
  SUITE_IDS,
  suiteById,
  type SuiteName,
  systemRandom,
} from "../../lib/crypto/kex.ts";
import { loadWycheproof } from "../_helpers/wycheproof.ts";

/** Section 4: the length of the shared secret per suite. */
const SECRET_LENGTHS: Record<SuiteName, number> = {
  "x25519-mlkem768": 64,
  "x25519": 32,
  "ffdhe3072": 384,
};

/**
 * Deterministic randomness (xorshift32). Every call returns a fresh array: lib/ wipes what it gets.
 */
function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0 || 1;
  return (length) => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      out[i] = state & 0xff;
    }
    return out;
  };
}

/** Randomness that hands out exactly `bytes` (a copy each time), e.g. a vector's private key. */
function fixedRandom(bytes: Uint8Array): RandomSource {
  return (length) => {
    strictEqual(length, bytes.length, "unexpected randomness request");
    return bytes.slice();
  };
}

function isIllegalParameter(what: string) {
  return (error: unknown) => {
    ok(error instanceof ProtocolError, `${what}: expected a ProtocolError, got ${error}`);
    strictEqual(error.code, "illegal_parameter", what);
    strictEqual(error.alert, "illegal_parameter", what);
    return true;
  };
}

async function completedPair(suite: SuiteName, random: RandomSource = systemRandom) {
  const initiator = await initiatorKex(suite, random);
  const responder = await responderKex(suite, initiator.share, random);
  return { initiator, responder, initiatorSecret: await initiator.complete(responder.share) };
}

// --- every suite ---

for (const suite of ALL_SUITES) {
  Deno.test(`initiatorKex() and responderKex() agree on a ${SECRET_LENGTHS[suite]}-byte secret for ${suite}`, async () => {
    const { initiator, responder, initiatorSecret } = await completedPair(suite);
    strictEqual(initiator.suite, suite);
    strictEqual(initiator.share.length, SHARE_LENGTHS[suite].initiator);
    strictEqual(responder.share.length, SHARE_LENGTHS[suite].responder);
    strictEqual(responder.sharedSecret.length, SECRET_LENGTHS[suite]);
    eql(initiatorSecret, responder.sharedSecret);
    ok(initiatorSecret.some((byte) => byte !== 0));
  });

  Deno.test(`initiatorKex() and responderKex() make fresh ephemerals on every run for ${suite}`, async () => {
    const one = await completedPair(suite);
    const two = await completedPair(suite);
    notDeepStrictEqual(one.initiator.share, two.initiator.share);
    notDeepStrictEqual(one.responder.share, two.responder.share);
    notDeepStrictEqual(one.initiatorSecret, two.initiatorSecret);
  });

  Deno.test(`initiatorKex() reproduces its share from injected randomness for ${suite}`, async () => {
    const a = await initiatorKex(suite, seededRandom(0xc0ffee));
    const b = await initiatorKex(suite, seededRandom(0xc0ffee));
    const c = await initiatorKex(suite, seededRandom(0xdecaf));
    eql(a.share, b.share);
    notDeepStrictEqual(a.share, c.share);
    // Both copies hold the same private key: they derive the same secret from one responder share.
    const responder = await responderKex(suite, a.share, systemRandom);
    eql(await a.complete(responder.share), await b.complete(responder.share));
  });

  Deno.test(`responderKex() rejects an initiator share of the wrong length for ${suite}`, async () => {
    const length = SHARE_LENGTHS[suite].initiator;
    for (const wrong of [0, 1, length - 1, length + 1]) {
      await rejects(
        responderKex(suite, new Uint8Array(wrong).fill(9), systemRandom),
        isIllegalParameter(`${suite} length ${wrong}`),
      );
    }
  });

  Deno.test(`InitiatorKex.complete() rejects a responder share of the wrong length for ${suite}`, async () => {
    const initiator = await initiatorKex(suite, systemRandom);
    const length = SHARE_LENGTHS[suite].responder;
    for (const wrong of [0, 1, length - 1, length + 1]) {
      await rejects(
        // Wrapped: ffdhe3072's complete() throws synchronously (see the BUG test below).
        async () => await initiator.complete(new Uint8Array(wrong).fill(9)),
        isIllegalParameter(`${suite} length ${wrong}`),
      );
    }
  });
}

Deno.test("responderKex() reproduces its share from injected randomness for x25519 and ffdhe3072", async () => {
  for (const suite of ["x25519", "ffdhe3072"] as const) {
    const initiator = await initiatorKex(suite, systemRandom);
    const a = await responderKex(suite, initiator.share, seededRandom(7));
    const b = await responderKex(suite, initiator.share, seededRandom(7));
    eql(a, b, suite);
  }
});

Deno.test("SHARE_LENGTHS and SUITE_IDS match PROTOCOL.md section 4", () => {
  eql(SHARE_LENGTHS, {
    "x25519-mlkem768": { initiator: 1216, responder: 1120 },
    "x25519": { initiator: 32, responder: 32 },
    "ffdhe3072": { initiator: 384, responder: 384 },
  });
  eql({ ...SUITE_IDS }, { "x25519-mlkem768": 0x01, "x25519": 0x02, "ffdhe3072": 0x03 });
  eql([...ALL_SUITES], ["x25519-mlkem768", "x25519", "ffdhe3072"]);
  for (const suite of ALL_SUITES) strictEqual(suiteById(SUITE_IDS[suite]), suite);
  for (const id of [0x00, 0x04, 0xff]) strictEqual(suiteById(id), undefined);
});

// --- x25519-mlkem768 combiner (section 4.1) ---

interface MlKemSubtle {
  importKey(
    format: "raw-public",
    data: Uint8Array<ArrayBuffer>,
    algorithm: { name: string },
    extractable: boolean,
    usages: string[],
  ): Promise<CryptoKey>;
  encapsulateBits(
    algorithm: { name: string },
    key: CryptoKey,
  ): Promise<{ ciphertext: ArrayBuffer; sharedKey: ArrayBuffer }>;
}

/** An ML-KEM-768 encapsulation made here with WebCrypto, independent of lib/crypto/kex.ts. */
async function encapsulate(ek: Uint8Array) {
  const subtle = crypto.subtle as unknown as MlKemSubtle;
  const key = await subtle.importKey(
    "raw-public",
    Uint8Array.from(ek),
    { name: "ML-KEM-768" },
    true,
    [
      "encapsulateBits",
    ],
  );
  const result = await subtle.encapsulateBits({ name: "ML-KEM-768" }, key);
  return {
    ciphertext: new Uint8Array(result.ciphertext),
    sharedKey: new Uint8Array(result.sharedKey),
  };
}

Deno.test("responderKex() combines x25519-mlkem768 as K_mlkem || K_x25519", async () => {
  // initiatorKex() draws the 64-byte ML-KEM seed, then the 32-byte X25519 scalar.
  const initiatorRandom = seededRandom(11);
  initiatorRandom(64);
  const scalar = initiatorRandom(32);
  const initiator = await initiatorKex("x25519-mlkem768", seededRandom(11));
  const ek = initiator.share.subarray(0, 1184);
  const encapsulation = await encapsulate(ek);
  const responderScalar = seededRandom(12)(32);
  const responder = await responderKex(
    "x25519-mlkem768",
    initiator.share,
    fixedRandom(responderScalar),
    { encapsulation },
  );
  eql(responder.share.subarray(0, 1088), encapsulation.ciphertext);
  eql(responder.sharedSecret.subarray(0, 32), encapsulation.sharedKey);
  // The X25519 half equals plain x25519 with the same two scalars.
  const xInitiator = await initiatorKex("x25519", fixedRandom(scalar));
  eql(xInitiator.share, initiator.share.subarray(1184));
  const xResponder = await responderKex("x25519", xInitiator.share, fixedRandom(responderScalar));
  eql(responder.share.subarray(1088), xResponder.share);
  eql(responder.sharedSecret.subarray(32), xResponder.sharedSecret);
  // Real decapsulation on the initiator's side recovers the same K_mlkem.
  eql(await initiator.complete(responder.share), responder.sharedSecret);
});

Deno.test("InitiatorKex.complete() yields a different secret for an altered ML-KEM ciphertext (implicit rejection)", async () => {
  const { initiator, responder } = await completedPair("x25519-mlkem768");
  const altered = responder.share.slice();
  altered[100]! ^= 0x01;
  const secret = await initiator.complete(altered);
  strictEqual(secret.length, 64);
  notDeepStrictEqual(secret.subarray(0, 32), responder.sharedSecret.subarray(0, 32));
  eql(secret.subarray(32), responder.sharedSecret.subarray(32));
});

// --- X25519 degenerate values (section 4.4, RFC 7748 section 6.1) ---

// Public keys on which X25519 outputs all zeros for every private key: the canonical low-order
// points listed by RFC 7748 implementers and Wycheproof (flags LowOrderPublic / ZeroSharedSecret).
const X25519_LOW_ORDER = [
  { name: "0 (order 4)", hex: "0000000000000000000000000000000000000000000000000000000000000000" },
  { name: "1 (order 1)", hex: "0100000000000000000000000000000000000000000000000000000000000000" },
  {
    name: "order 8 (e0eb7a7c...)",
    hex: "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  },
  {
    name: "order 8 (5f9c95bc...)",
    hex: "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  },
  {
    name: "p - 1 (order 2)",
    hex: "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  },
  { name: "p (= 0)", hex: "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f" },
  { name: "p + 1 (= 1)", hex: "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f" },
  // The same with the unused top bit set, which RFC 7748 section 5 says to ignore.
  {
    name: "0 with bit 255 set",
    hex: "0000000000000000000000000000000000000000000000000000000000000080",
  },
  {
    name: "1 with bit 255 set",
    hex: "0100000000000000000000000000000000000000000000000000000000000080",
  },
  {
    name: "p - 1 with bit 255 set",
    hex: "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  },
];

Deno.test("responderKex() rejects low-order X25519 public keys with illegal_parameter", async () => {
  for (const { name, hex } of X25519_LOW_ORDER) {
    await rejects(responderKex("x25519", fromHex(hex), systemRandom), isIllegalParameter(name));
    // The same point as the X25519 half of a hybrid share, with a genuine ML-KEM key.
    const hybrid = await initiatorKex("x25519-mlkem768", systemRandom);
    const share = hybrid.share.slice();
    share.set(fromHex(hex), 1184);
    await rejects(
      responderKex("x25519-mlkem768", share, systemRandom),
      isIllegalParameter(`hybrid ${name}`),
    );
  }
});

Deno.test("InitiatorKex.complete() rejects low-order X25519 public keys with illegal_parameter", async () => {
  const initiator = await initiatorKex("x25519", systemRandom);
  const hybrid = await completedPair("x25519-mlkem768");
  for (const { name, hex } of X25519_LOW_ORDER) {
    await rejects(initiator.complete(fromHex(hex)), isIllegalParameter(name));
    const share = hybrid.responder.share.slice();
    share.set(fromHex(hex), 1088);
    await rejects(hybrid.initiator.complete(share), isIllegalParameter(`hybrid ${name}`));
  }
});

// --- Wycheproof X25519 and ML-KEM vectors ---

interface X25519Vector {
  tcId: number;
  comment: string;
  flags: string[];
  public: string;
  private: string;
  shared: string;
  result: "valid" | "invalid" | "acceptable";
}

interface MlKemEncapsVector {
  tcId: number;
  comment?: string;
  flags: string[];
  ek: string;
  result: "valid" | "invalid" | "acceptable";
}

const x25519Vectors = await loadWycheproof<X25519Vector>("x25519_test.json");
const mlkemEncapsVectors = await loadWycheproof<MlKemEncapsVector>("mlkem_768_encaps_test.json");

Deno.test({
  name:
    "responderKex() and InitiatorKex.complete() match Wycheproof X25519, rejecting zero secrets",
  async fn() {
    let rejected = 0;
    for (const v of x25519Vectors) {
      const what = `tcId ${v.tcId} ${v.comment} [${v.flags.join(", ")}]`;
      const privateKey = fromHex(v.private);
      const peer = fromHex(v.public);
      const initiator = await initiatorKex("x25519", fixedRandom(privateKey));
      if (/^(00)+$/.test(v.shared)) {
        // RFC 7748 section 6.1: an all-zero output means a low-order point; reject it.
        ok(v.flags.includes("ZeroSharedSecret"), what);
        await rejects(
          responderKex("x25519", peer, fixedRandom(privateKey)),
          isIllegalParameter(what),
        );
        await rejects(initiator.complete(peer), isIllegalParameter(what));
        rejected++;
      } else {
        ok(v.result !== "invalid", what);
        const { sharedSecret } = await responderKex("x25519", peer, fixedRandom(privateKey));
        strictEqual(toHex(sharedSecret), v.shared, what);
        strictEqual(toHex(await initiator.complete(peer)), v.shared, what);
      }
    }
    ok(rejected > 0);
  },
});

Deno.test({
  name: "mlkemEncapsulationKeyIsValid() agrees with every Wycheproof ML-KEM-768 encapsulation key",
  async fn() {
    const x25519Public = (await initiatorKex("x25519", systemRandom)).share;
    let modulusFailures = 0;
    for (const v of mlkemEncapsVectors) {
      const what = `tcId ${v.tcId} ${v.comment ?? ""} [${v.flags.join(", ")}]`;
      const ek = fromHex(v.ek);
      strictEqual(mlkemEncapsulationKeyIsValid(ek), v.result === "valid", what);
      if (v.result === "invalid" && ek.length === 1184) {
        // Right length, coefficients out of range: the responder refuses to encapsulate.
        modulusFailures++;
        await rejects(
          responderKex("x25519-mlkem768", Uint8Array.from([...ek, ...x25519Public]), systemRandom),
          isIllegalParameter(what),
        );
      }
    }
    ok(modulusFailures > 0);
  },
});

// --- ML-KEM modulus check (FIPS 203 section 7.2) ---

/** Sets 12-bit coefficient `index` (0..767) of an encoded ML-KEM vector. */
function setCoefficient(ek: Uint8Array, index: number, value: number): Uint8Array {
  const out = ek.slice();
  const at = Math.floor(index / 2) * 3;
  if (index % 2 === 0) {
    out[at] = value & 0xff;
    out[at + 1] = (out[at + 1]! & 0xf0) | (value >> 8);
  } else {
    out[at + 1] = (out[at + 1]! & 0x0f) | ((value & 0x0f) << 4);
    out[at + 2] = value >> 4;
  }
  return out;
}

Deno.test("mlkemEncapsulationKeyIsValid() accepts real keys and checks every coefficient against q = 3329", async () => {
  const { share } = await initiatorKex("x25519-mlkem768", systemRandom);
  const ek = share.slice(0, 1184);
  strictEqual(mlkemEncapsulationKeyIsValid(ek), true);
  for (const index of [0, 1, 2, 3, 511, 766, 767]) {
    strictEqual(mlkemEncapsulationKeyIsValid(setCoefficient(ek, index, 0)), true, `${index} = 0`);
    strictEqual(
      mlkemEncapsulationKeyIsValid(setCoefficient(ek, index, 3328)),
      true,
      `${index} = q-1`,
    );
    strictEqual(
      mlkemEncapsulationKeyIsValid(setCoefficient(ek, index, 3329)),
      false,
      `${index} = q`,
    );
    strictEqual(
      mlkemEncapsulationKeyIsValid(setCoefficient(ek, index, 0xfff)),
      false,
      `${index} = 4095`,
    );
  }
  // The last 32 bytes are the seed rho, not coefficients.
  const rho = ek.slice();
  rho.fill(0xff, 1152);
  strictEqual(mlkemEncapsulationKeyIsValid(rho), true);
  strictEqual(mlkemEncapsulationKeyIsValid(ek.subarray(0, 1183)), false);
  strictEqual(mlkemEncapsulationKeyIsValid(Uint8Array.from([...ek, 0])), false);
});

Deno.test("responderKex() rejects an ML-KEM encapsulation key that fails the modulus check", async () => {
  const { share } = await initiatorKex("x25519-mlkem768", systemRandom);
  for (const index of [0, 767]) {
    const bad = Uint8Array.from([
      ...setCoefficient(share.subarray(0, 1184), index, 0xfff),
      ...share.subarray(1184),
    ]);
    await rejects(
      responderKex("x25519-mlkem768", bad, systemRandom),
      isIllegalParameter(`${index}`),
    );
    // Also when a recorded encapsulation is injected (the test-vector path).
    await rejects(
      responderKex("x25519-mlkem768", bad, systemRandom, {
        encapsulation: { ciphertext: new Uint8Array(1088), sharedKey: new Uint8Array(32) },
      }),
      isIllegalParameter(`${index} with a recorded encapsulation`),
    );
  }
});

// --- ffdhe3072 (section 4.3, RFC 7919) ---

/**
 * The ffdhe3072 prime rebuilt from its RFC 7919 formula,
 * p = 2^3072 - 2^3008 + {[2^2942 * e] + 2625351} * 2^64 - 1, with e summed as 1/k! in BigInt:
 * an independent source for the constant hard-coded in lib/crypto/kex.ts.
 */
function ffdhe3072Prime(): bigint {
  const guard = 64n;
  let sum = 0n;
  let term = 1n << (2942n + guard);
  for (let k = 1n; term > 0n; k++) {
    sum += term;
    term /= k;
  }
  return (1n << 3072n) - (1n << 3008n) + ((sum >> guard) + 2625351n) * (1n << 64n) - 1n;
}

const P = ffdhe3072Prime();
const Q = (P - 1n) / 2n;

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}

function encode384(value: bigint): Uint8Array {
  return fromHex(value.toString(16).padStart(768, "0"));
}

function decode(bytes: Uint8Array): bigint {
  return BigInt("0x" + (toHex(bytes) || "0"));
}

/** The smallest g > 1 outside the order-q subgroup: g^q mod p != 1 (a quadratic non-residue). */
const NON_RESIDUE = (() => {
  for (let g = 2n;; g++) if (modPow(g, Q, P) !== 1n) return g;
})();

Deno.test("ffdhe3072 shares are RFC 7919 group elements of order q", async () => {
  strictEqual(P.toString(16).length, 768);
  strictEqual(P.toString(16).slice(0, 16), "ffffffffffffffff");
  const { initiator, responder, initiatorSecret } = await completedPair("ffdhe3072");
  for (const value of [initiator.share, responder.share, initiatorSecret]) {
    const y = decode(value);
    ok(y > 1n && y < P - 1n);
    strictEqual(modPow(y, Q, P), 1n);
  }
  // g = 2 generates the subgroup: the share of private exponent 1 is 2.
  const one = new Uint8Array(48);
  one[47] = 1;
  eql((await initiatorKex("ffdhe3072", fixedRandom(one))).share, encode384(2n));
});

Deno.test("ffdhePublicIsValid() applies 1 < y < p-1 and y^q = 1 (mod p)", () => {
  ok(NON_RESIDUE < 100n, `first non-residue ${NON_RESIDUE}`);
  const cases: [string, bigint, boolean][] = [
    ["0", 0n, false],
    ["1", 1n, false],
    ["2 (the generator)", 2n, true],
    ["4", 4n, true],
    [`${NON_RESIDUE} (a non-residue)`, NON_RESIDUE, false],
    [`p - ${NON_RESIDUE} (a residue, since -1 is not one)`, P - NON_RESIDUE, true],
    ["p - 2", P - 2n, false],
    ["p - 1 (order 2)", P - 1n, false],
    ["p", P, false],
    ["p + 1", P + 1n, false],
    ["2^3072 - 1", (1n << 3072n) - 1n, false],
  ];
  for (const [name, value, valid] of cases) {
    strictEqual(
      modPow(value, Q, P) === 1n && value > 1n && value < P - 1n,
      valid,
      `model: ${name}`,
    );
    strictEqual(ffdhePublicIsValid(encode384(value)), valid, name);
  }
  strictEqual(ffdhePublicIsValid(new Uint8Array(383).fill(1)), false);
  strictEqual(ffdhePublicIsValid(Uint8Array.from([0, ...encode384(4n)])), false);
});

Deno.test("responderKex() and InitiatorKex.complete() reject degenerate ffdhe3072 values", async () => {
  const initiator = await initiatorKex("ffdhe3072", systemRandom);
  const bad: [string, bigint][] = [
    ["y = 0", 0n],
    ["y = 1", 1n],
    ["y = p - 1", P - 1n],
    ["y = p", P],
    ["y = p + 1", P + 1n],
    [`y = ${NON_RESIDUE}, outside the subgroup`, NON_RESIDUE],
    ["y = 2^3072 - 1", (1n << 3072n) - 1n],
  ];
  for (const [name, value] of bad) {
    await rejects(
      responderKex("ffdhe3072", encode384(value), systemRandom),
      isIllegalParameter(`responder ${name}`),
    );
    // Wrapped: complete() throws synchronously here (see the BUG test below).
    await rejects(
      async () => await initiator.complete(encode384(value)),
      isIllegalParameter(`initiator ${name}`),
    );
  }
});

Deno.test({
  name: "InitiatorKex.complete() reports a degenerate ffdhe3072 value as a rejected promise",
  // Regression: ffdhe3072 complete() once threw synchronously instead of rejecting.
  async fn() {
    const initiator = await initiatorKex("ffdhe3072", systemRandom);
    let promise: Promise<Uint8Array> | undefined;
    try {
      promise = initiator.complete(encode384(1n));
    } catch (error) {
      ok(false, `complete() threw synchronously: ${error}`);
    }
    await rejects(promise!, isIllegalParameter("y = 1"));
  },
});

// --- parseSuiteList ---

Deno.test("parseSuiteList() accepts known names in order, trimmed, without duplicates", () => {
  eql(parseSuiteList("x25519,ffdhe3072"), ["x25519", "ffdhe3072"]);
  eql(parseSuiteList("x25519-mlkem768"), ["x25519-mlkem768"]);
  eql(parseSuiteList(" ffdhe3072 , x25519-mlkem768 ,"), ["ffdhe3072", "x25519-mlkem768"]);
  eql(parseSuiteList("x25519,x25519"), ["x25519"]);
  eql(parseSuiteList(ALL_SUITES.join(",")), [...ALL_SUITES]);
});

Deno.test("parseSuiteList() rejects unknown names and empty lists with RangeError", () => {
  for (
    const text of ["", ",", " , ", "x448", "X25519", "x25519,rsa", "mlkem768", "x25519 mlkem768"]
  ) {
    throws(() => parseSuiteList(text), RangeError, JSON.stringify(text));
  }
});

Deno.test({
  name: "parseSuiteList() rejects Object.prototype member names",
  // Regression: parseSuiteList() once accepted inherited names via `in`.
  fn() {
    for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"]) {
      throws(() => parseSuiteList(name), RangeError, name);
    }
  },
});
