/**
 * Key agreement suites: `x25519-mlkem768` (hybrid, default), `x25519` and `ffdhe3072`.
 *
 * Each suite turns injected randomness into an ephemeral key pair, answers a peer's share, and
 * rejects degenerate public values. It knows nothing of messages or keys beyond the shared secret.
 *
 * Mirrors: docs/PROTOCOL.md section 4.
 *
 * Runtime quirks (Deno 2.9 WebCrypto):
 * - X25519 private keys are imported from raw scalars through a fixed PKCS#8 prefix (RFC 8410), so
 *   injected randomness reproduces the test vector; WebCrypto clamps the scalar itself.
 * - Importing an all-zero or low-order X25519 public key succeeds; deriving with it throws a plain
 *   `Error`. We map that and an all-zero output to `illegal_parameter` (RFC 7748 section 6.1).
 * - ML-KEM-768 keys come from a 64-byte seed (`raw-seed`, FIPS 203 `d || z`). `encapsulateBits`
 *   takes no randomness, so a test vector injects a recorded encapsulation on the responder side.
 *   WebCrypto imports encapsulation keys that fail the FIPS 203 modulus check; we check it first.
 * - ffdhe3072 uses `node:crypto` (OpenSSL's constant-time modular exponentiation) for the secret
 *   exponent; the public subgroup check uses BigInt, which is fine for public values only. It
 *   takes ~50 ms, so the responder runs its side in a worker (lib/crypto/ffdhe_offload.ts).
 *
 * @module
 */

import { loadNodeCrypto } from "../core/node_crypto.ts";
import { ffdheAnswerOffThread } from "./ffdhe_offload.ts";
import { concat, fromHex, isAllZero, own, toHex, wipe } from "../core/bytes.ts";
import { ProtocolError } from "../core/errors.ts";

/** Suite names as the spec spells them, with their wire ids (section 4). */
export const SUITE_IDS = {
  "x25519-mlkem768": 0x01,
  "x25519": 0x02,
  "ffdhe3072": 0x03,
} as const;

/** A key agreement suite name. */
export type SuiteName = keyof typeof SUITE_IDS;

/** All suite names, in the responder's default preference order. */
export const ALL_SUITES: readonly SuiteName[] = ["x25519-mlkem768", "x25519", "ffdhe3072"];

/** Lengths of the initiator's and the responder's shares, per suite (section 4). */
export const SHARE_LENGTHS: Record<SuiteName, { initiator: number; responder: number }> = {
  "x25519-mlkem768": { initiator: 1184 + 32, responder: 1088 + 32 },
  "x25519": { initiator: 32, responder: 32 },
  "ffdhe3072": { initiator: 384, responder: 384 },
};

/** Source of random bytes; `crypto.getRandomValues` unless a test vector injects its own. */
export type RandomSource = (length: number) => Uint8Array;

/** The system CSPRNG. */
export const systemRandom: RandomSource = (length) =>
  crypto.getRandomValues(new Uint8Array(length));

/** A recorded ML-KEM encapsulation, injected only to replay a test vector. */
export interface RecordedEncapsulation {
  ciphertext: Uint8Array;
  sharedKey: Uint8Array;
}

/** The initiator's side of one key agreement, waiting for the responder's share. */
export interface InitiatorKex {
  readonly suite: SuiteName;
  /** The share to send in the ClientHello. */
  readonly share: Uint8Array;
  /** Computes the shared secret from the responder's share. @throws {ProtocolError} */
  complete(responderShare: Uint8Array): Promise<Uint8Array>;
}

/** Looks up a suite by wire id. */
export function suiteById(id: number): SuiteName | undefined {
  for (const [name, value] of Object.entries(SUITE_IDS)) {
    if (value === id) return name as SuiteName;
  }
  return undefined;
}

/** Parses a comma-separated suite list (a command-line value). @throws {RangeError} */
export function parseSuiteList(text: string): SuiteName[] {
  const names = text.split(",").map((name) => name.trim()).filter((name) => name !== "");
  if (names.length === 0) throw new RangeError("the suite list is empty");
  const out: SuiteName[] = [];
  for (const name of names) {
    if (!Object.hasOwn(SUITE_IDS, name)) {
      throw new RangeError(`unknown suite "${name}" (known: ${ALL_SUITES.join(", ")})`);
    }
    if (!out.includes(name as SuiteName)) out.push(name as SuiteName);
  }
  return out;
}

function degenerate(what: string): ProtocolError {
  return new ProtocolError("illegal_parameter", `peer sent a degenerate key share: ${what}`, {
    alert: "illegal_parameter",
    hints: ["this is not a bug in your setup: the peer is broken or someone is tampering"],
  });
}

// --- X25519 (RFC 7748) ---

// RFC 8410 PKCS#8 wrapping of a raw X25519 private scalar.
const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");

interface X25519Pair {
  privateKey: CryptoKey;
  publicKey: Uint8Array;
}

async function x25519FromScalar(scalar: Uint8Array): Promise<X25519Pair> {
  const pkcs8 = concat(X25519_PKCS8_PREFIX, scalar);
  const privateKey = await crypto.subtle.importKey("pkcs8", own(pkcs8), { name: "X25519" }, false, [
    "deriveBits",
  ]);
  wipe(pkcs8);
  // deno-lint-ignore no-explicit-any
  const subtle = crypto.subtle as any;
  const publicKey: CryptoKey = await subtle.getPublicKey(privateKey, []);
  return {
    privateKey,
    publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", publicKey)),
  };
}

async function x25519Shared(privateKey: CryptoKey, peerPublic: Uint8Array): Promise<Uint8Array> {
  if (peerPublic.length !== 32) throw degenerate("X25519 public key is not 32 bytes");
  let shared: Uint8Array;
  try {
    const peer = await crypto.subtle.importKey(
      "raw",
      own(peerPublic),
      { name: "X25519" },
      false,
      [],
    );
    shared = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256),
    );
  } catch {
    throw degenerate("X25519 public key of low order");
  }
  if (isAllZero(shared)) throw degenerate("X25519 shared secret is all zeros");
  return shared;
}

// --- ML-KEM-768 (FIPS 203) ---

const MLKEM = { name: "ML-KEM-768" } as const;
const MLKEM_EK_LENGTH = 1184;
const MLKEM_CT_LENGTH = 1088;
const MLKEM_SEED_LENGTH = 64;
const MLKEM_Q = 3329;

/**
 * FIPS 203 section 7.2 "modulus check": every 12-bit coefficient of the encoded vector must be
 * below q, i.e. ByteEncode12(ByteDecode12(ek)) == ek.
 */
export function mlkemEncapsulationKeyIsValid(ek: Uint8Array): boolean {
  if (ek.length !== MLKEM_EK_LENGTH) return false;
  let bad = 0;
  for (let i = 0; i < 1152; i += 3) {
    const b0 = ek[i]!;
    const b1 = ek[i + 1]!;
    const b2 = ek[i + 2]!;
    const first = b0 | ((b1 & 0x0f) << 8);
    const second = (b1 >> 4) | (b2 << 4);
    bad |= (first >= MLKEM_Q ? 1 : 0) | (second >= MLKEM_Q ? 1 : 0);
  }
  return bad === 0;
}

async function mlkemFromSeed(seed: Uint8Array): Promise<{ privateKey: CryptoKey; ek: Uint8Array }> {
  // FIPS 203 section 6.1 KeyGen_internal(d, z): 32 bytes each. Ours, never the peer's, so a
  // wrong length is a bug (RangeError), not WebCrypto's DataError.
  if (seed.length !== MLKEM_SEED_LENGTH) {
    throw new RangeError(`ML-KEM-768 seed must be ${MLKEM_SEED_LENGTH} bytes, got ${seed.length}`);
  }
  // deno-lint-ignore no-explicit-any
  const subtle = crypto.subtle as any;
  const privateKey: CryptoKey = await subtle.importKey("raw-seed", own(seed), MLKEM, false, [
    "decapsulateBits",
  ]);
  const publicKey: CryptoKey = await subtle.getPublicKey(privateKey, ["encapsulateBits"]);
  return {
    privateKey,
    ek: new Uint8Array(await subtle.exportKey("raw-public", publicKey)),
  };
}

async function mlkemEncapsulate(ek: Uint8Array): Promise<RecordedEncapsulation> {
  if (!mlkemEncapsulationKeyIsValid(ek)) {
    throw degenerate("ML-KEM-768 encapsulation key fails the FIPS 203 modulus check");
  }
  // deno-lint-ignore no-explicit-any
  const subtle = crypto.subtle as any;
  try {
    const key: CryptoKey = await subtle.importKey("raw-public", own(ek), MLKEM, false, [
      "encapsulateBits",
    ]);
    const result = await subtle.encapsulateBits(MLKEM, key);
    return {
      ciphertext: new Uint8Array(result.ciphertext),
      sharedKey: new Uint8Array(result.sharedKey),
    };
  } catch {
    throw degenerate("ML-KEM-768 encapsulation key rejected");
  }
}

async function mlkemDecapsulate(privateKey: CryptoKey, ct: Uint8Array): Promise<Uint8Array> {
  if (ct.length !== MLKEM_CT_LENGTH) throw degenerate("ML-KEM-768 ciphertext is not 1088 bytes");
  // deno-lint-ignore no-explicit-any
  const subtle = crypto.subtle as any;
  try {
    return new Uint8Array(await subtle.decapsulateBits(MLKEM, privateKey, own(ct)));
  } catch {
    throw degenerate("ML-KEM-768 ciphertext rejected");
  }
}

/**
 * Pays the one-time cost of a process's first ML-KEM-768 encapsulation ahead of time: about
 * 30 ms in Deno 2.9.6 (later ones take 0.2 ms), which a listener would otherwise add to its first
 * dialer's handshake. A listener calls it once while it waits (lib/cli/listen.ts) when it accepts
 * `x25519-mlkem768`; the key and secret are throwaway. Never rejects.
 */
export async function warmUpResponderKex(suites: readonly SuiteName[]): Promise<void> {
  if (!suites.includes("x25519-mlkem768")) return;
  try {
    const seed = systemRandom(MLKEM_SEED_LENGTH);
    const { ek } = await mlkemFromSeed(seed);
    wipe(seed);
    wipe((await mlkemEncapsulate(ek)).sharedKey);
  } catch {
    // Only a head start: the first handshake does the same work and reports any failure.
  }
}

/**
 * ML-KEM-768 key generation from a seed and decapsulation, through the very functions the
 * `x25519-mlkem768` initiator uses (FIPS 203 ML-KEM.KeyGen_internal and ML-KEM.Decaps). Exported
 * so that public vectors (Wycheproof `mlkem_768_test.json`) reach that code path.
 *
 * @param seed 64 bytes, FIPS 203 `d || z`
 * @param ciphertext the peer's ciphertext, 1088 bytes
 * @returns the encapsulation key and the shared key K (the implicit-rejection key when the
 *   ciphertext was not made for this key, as FIPS 203 prescribes)
 * @throws {RangeError} when the seed is not 64 bytes (a local input, not peer data)
 * @throws {ProtocolError} `illegal_parameter` when the ciphertext is not 1088 bytes
 */
export async function mlkemDecapsulateFromSeed(
  seed: Uint8Array,
  ciphertext: Uint8Array,
): Promise<{ encapsulationKey: Uint8Array; sharedKey: Uint8Array }> {
  const { privateKey, ek } = await mlkemFromSeed(seed);
  return { encapsulationKey: ek, sharedKey: await mlkemDecapsulate(privateKey, ciphertext) };
}

// --- ffdhe3072 (RFC 7919 appendix A.2) ---

const FFDHE3072_PRIME_HEX = "ffffffffffffffffadf85458a2bb4a9aafdc5620273d3cf1d8b9c583ce2d3695" +
  "a9e13641146433fbcc939dce249b3ef97d2fe363630c75d8f681b202aec4617a" +
  "d3df1ed5d5fd65612433f51f5f066ed0856365553ded1af3b557135e7f57c935" +
  "984f0c70e0e68b77e2a689daf3efe8721df158a136ade73530acca4f483a797a" +
  "bc0ab182b324fb61d108a94bb2c8e3fbb96adab760d7f4681d4f42a3de394df4" +
  "ae56ede76372bb190b07a7c8ee0a6d709e02fce1cdf7e2ecc03404cd28342f61" +
  "9172fe9ce98583ff8e4f1232eef28183c3fe3b1b4c6fad733bb5fcbc2ec22005" +
  "c58ef1837d1683b2c6f34a26c1b2effa886b4238611fcfdcde355b3b6519035b" +
  "bc34f4def99c023861b46fc9d6e6c9077ad91d2691f7f7ee598cb0fac186d91c" +
  "aefe130985139270b4130c93bc437944f4fd4452e2d74dd364f2e21e71f54bff" +
  "5cae82ab9c9df69ee86d2bc522363a0dabc521979b0deada1dbf9a42d5c4484e" +
  "0abcd06bfa53ddef3c1b20ee3fd59d7c25e41d2b66c62e37ffffffffffffffff";
const FFDHE_P = BigInt("0x" + FFDHE3072_PRIME_HEX);
const FFDHE_Q = (FFDHE_P - 1n) / 2n;
const FFDHE_LENGTH = 384;
const FFDHE_PRIVATE_LENGTH = 48;

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

function leftPad(bytes: Uint8Array, length: number): Uint8Array {
  if (bytes.length === length) return bytes;
  const out = new Uint8Array(length);
  out.set(bytes, length - bytes.length);
  return out;
}

/** RFC 7919 section 5.1 public value check: 1 < y < p-1 and y^q = 1 (mod p). */
export function ffdhePublicIsValid(value: Uint8Array): boolean {
  if (value.length !== FFDHE_LENGTH) return false;
  const y = BigInt("0x" + toHex(value));
  if (y <= 1n || y >= FFDHE_P - 1n) return false;
  return modPow(y, FFDHE_Q, FFDHE_P) === 1n;
}

async function ffdheFromPrivate(privateBytes: Uint8Array) {
  const { createDiffieHellman } = await loadNodeCrypto();
  const dh = createDiffieHellman(fromHex(FFDHE3072_PRIME_HEX), Uint8Array.of(2));
  dh.setPrivateKey(privateBytes);
  const publicKey = leftPad(new Uint8Array(dh.generateKeys()), FFDHE_LENGTH);
  /** The shared secret, or what makes the peer's value degenerate. */
  const sharedOrFault = (peer: Uint8Array): Uint8Array | string => {
    if (!ffdhePublicIsValid(peer)) return "ffdhe3072 public value out of the group";
    const secret = leftPad(new Uint8Array(dh.computeSecret(peer)), FFDHE_LENGTH);
    if (secret[FFDHE_LENGTH - 1] === 1 && isAllZero(secret.subarray(0, FFDHE_LENGTH - 1))) {
      return "ffdhe3072 shared secret is 1";
    }
    return secret;
  };
  return {
    publicKey,
    sharedOrFault,
    shared(peer: Uint8Array): Uint8Array {
      const result = sharedOrFault(peer);
      if (typeof result === "string") throw degenerate(result);
      return result;
    },
  };
}

/**
 * The ffdhe3072 responder's work (section 4.3): our share from `secret`, and the shared secret
 * once the initiator's value passed the RFC 7919 check. Returns the fault instead of throwing so
 * that lib/crypto/ffdhe_worker.ts, which runs it off the listener's event loop, can send it back.
 */
export async function ffdheAnswer(
  secret: Uint8Array,
  initiatorShare: Uint8Array,
): Promise<{ share: Uint8Array; sharedSecret: Uint8Array } | { fault: string }> {
  const dh = await ffdheFromPrivate(secret);
  const result = dh.sharedOrFault(initiatorShare);
  return typeof result === "string"
    ? { fault: result }
    : { share: dh.publicKey, sharedSecret: result };
}

// --- the suites ---

/**
 * Starts a key agreement as the initiator: makes the ephemeral key pair(s) and the share.
 *
 * @param suite the suite to make a share for
 * @param random randomness (the system CSPRNG outside test vectors)
 */
export async function initiatorKex(suite: SuiteName, random: RandomSource): Promise<InitiatorKex> {
  switch (suite) {
    case "x25519-mlkem768": {
      const seed = random(64);
      const scalar = random(32);
      const mlkem = await mlkemFromSeed(seed);
      const x = await x25519FromScalar(scalar);
      wipe(seed, scalar);
      return {
        suite,
        share: concat(mlkem.ek, x.publicKey),
        async complete(responderShare) {
          if (responderShare.length !== SHARE_LENGTHS[suite].responder) {
            throw degenerate("hybrid share has the wrong length");
          }
          const kMlkem = await mlkemDecapsulate(
            mlkem.privateKey,
            responderShare.subarray(0, MLKEM_CT_LENGTH),
          );
          const kX = await x25519Shared(x.privateKey, responderShare.subarray(MLKEM_CT_LENGTH));
          const shared = concat(kMlkem, kX);
          wipe(kMlkem, kX);
          return shared;
        },
      };
    }
    case "x25519": {
      const scalar = random(32);
      const x = await x25519FromScalar(scalar);
      wipe(scalar);
      return {
        suite,
        share: x.publicKey,
        complete: (responderShare) => x25519Shared(x.privateKey, responderShare),
      };
    }
    case "ffdhe3072": {
      const secret = random(FFDHE_PRIVATE_LENGTH);
      const dh = await ffdheFromPrivate(secret);
      wipe(secret);
      return {
        suite,
        share: dh.publicKey,
        // async, so a rejected share rejects the promise instead of throwing synchronously
        complete: async (responderShare) => await Promise.resolve(dh.shared(responderShare)),
      };
    }
  }
}

/**
 * Answers the initiator's share as the responder.
 *
 * @param options.encapsulation a recorded ML-KEM encapsulation (test vectors only)
 * @returns the responder's share and the shared secret
 * @throws {ProtocolError} `illegal_parameter` for a degenerate or malformed share
 */
export async function responderKex(
  suite: SuiteName,
  initiatorShare: Uint8Array,
  random: RandomSource,
  options: { encapsulation?: RecordedEncapsulation } = {},
): Promise<{ share: Uint8Array; sharedSecret: Uint8Array }> {
  if (initiatorShare.length !== SHARE_LENGTHS[suite].initiator) {
    throw degenerate(`${suite} share has the wrong length`);
  }
  switch (suite) {
    case "x25519-mlkem768": {
      const ek = initiatorShare.subarray(0, MLKEM_EK_LENGTH);
      const encapsulation = options.encapsulation ?? await mlkemEncapsulate(ek);
      if (options.encapsulation && !mlkemEncapsulationKeyIsValid(ek)) {
        throw degenerate("ML-KEM-768 encapsulation key fails the FIPS 203 modulus check");
      }
      const scalar = random(32);
      const x = await x25519FromScalar(scalar);
      wipe(scalar);
      const kX = await x25519Shared(x.privateKey, initiatorShare.subarray(MLKEM_EK_LENGTH));
      const sharedSecret = concat(encapsulation.sharedKey, kX);
      wipe(kX);
      return { share: concat(encapsulation.ciphertext, x.publicKey), sharedSecret };
    }
    case "x25519": {
      const scalar = random(32);
      const x = await x25519FromScalar(scalar);
      wipe(scalar);
      return { share: x.publicKey, sharedSecret: await x25519Shared(x.privateKey, initiatorShare) };
    }
    case "ffdhe3072": {
      // The check costs a 3071-bit exponentiation (~50 ms): a worker does it, so a listener
      // keeps serving while it runs.
      const secret = random(FFDHE_PRIVATE_LENGTH);
      const answer = await ffdheAnswerOffThread(secret, initiatorShare);
      wipe(secret);
      if ("fault" in answer) throw degenerate(answer.fault);
      return answer;
    }
  }
}
