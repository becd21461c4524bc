/**
 * Fuzzing every decoder of peer data (PROTOCOL.md sections 5, 13 and 14): the hellos and the
 * encrypted handshake messages, room messages, transfer messages and the manifest parser. Valid
 * encodings are written field by field from the spec (and checked against the encoders), then
 * mutated: bit flips, truncations, insertions, splices and length fields at 0, 1, cap-1, cap, cap+1
 * and the field's maximum. Every mutant decodes or fails with our ProtocolError, never anything
 * else; what decodes re-encodes to exactly its input (the encodings are canonical), and a mutated
 * signed message that still decodes never verifies.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { utf8 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import type { decodeClientHello } from "../../lib/protocol/messages.ts";
import {
  encodeManifest,
  type ManifestEntry,
  ManifestParser,
} from "../../lib/transfer/transfer_messages.ts";
import type { Prng } from "../_helpers/prng.ts";
import { fuzzCount, hex, iterate, type LengthField, mutateMany, summary } from "./_fuzz.ts";
import {
  boundaryTable,
  clientHello,
  type Codec,
  Layout,
  samples,
  transfer,
} from "./_decoder_samples.ts";

const outcomes = new Map<string, { valid: number; refused: number }>();
function count(name: string, valid: boolean) {
  const entry = outcomes.get(name) ?? { valid: 0, refused: 0 };
  if (valid) entry.valid++;
  else entry.refused++;
  outcomes.set(name, entry);
}

/**
 * Decodes `bytes` with `codec`: a value, or our ProtocolError with one of the codec's codes.
 * Anything else thrown is a crash and propagates. A value re-encodes to `bytes`.
 */
function decodeOrRefuse(codec: Codec, bytes: Uint8Array): { value: unknown } | undefined {
  let value: unknown;
  try {
    value = codec.decode(bytes);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    ok(codec.codes.includes(error.code), `${codec.name}: unexpected code ${error.code}`);
    ok(/^peer sent a malformed /.test(error.message), error.message);
    count(codec.name, false);
    return undefined;
  }
  const again = codec.encode(value);
  if (codec.normalizes?.(value, bytes)) {
    // A ClientHello whose every share was of an unknown suite keeps none: valid to decode (the
    // responder answers handshake_failure), but its canonical form has shares_count 0.
    const empty = codec === clientHello &&
      (value as ReturnType<typeof decodeClientHello>).shares.length === 0;
    if (empty) ok(!decodeOrRefuse(codec, again), "a ClientHello re-encoded with no shares");
    else deepStrictEqual(codec.decode(again), value, `${codec.name}: normalized value is stable`);
  } else {
    deepStrictEqual(again, bytes, `${codec.name}: the decoded value re-encodes to its input`);
  }
  count(codec.name, true);
  return { value };
}

Deno.test("every valid sample decodes and its encoder writes exactly the spec's layout", async () => {
  for (const sample of samples) {
    const decoded = decodeOrRefuse(sample.codec, sample.bytes);
    ok(decoded, `${sample.codec.name} sample refused: ${hex(sample.bytes)}`);
    if (sample.codec.verifies && (sample.bytes[0] === 0x10 || sample.bytes[0] === 0x30)) {
      ok(await sample.codec.verifies(decoded.value), `${sample.codec.name}: genuine signature`);
    }
  }
});

Deno.test("decoders at every length and range boundary: exactly the documented verdict", () => {
  for (const { what, codec, bytes, valid } of boundaryTable()) {
    const decoded = decodeOrRefuse(codec, bytes);
    strictEqual(decoded !== undefined, valid, `${what}: expected ${valid ? "valid" : "refused"}`);
  }
});

/** Truncating a valid encoding at any length short of its end is always refused. */
Deno.test("every strict prefix of every valid sample is refused", () => {
  for (const sample of samples) {
    for (let length = 0; length < sample.bytes.length; length++) {
      // Manifest and Data slices end with "the rest": a shorter slice is still a message.
      if (sample.codec === transfer && [0x33, 0x35].includes(sample.bytes[0]!)) {
        if (length > 1 + 32 + 16 + (sample.bytes[0] === 0x33 ? 4 : 12)) continue;
      }
      const decoded = decodeOrRefuse(sample.codec, sample.bytes.subarray(0, length));
      ok(decoded === undefined, `${sample.codec.name} cut to ${length} bytes was accepted`);
    }
  }
});

let mutants = 0;
let verified = 0;

Deno.test("mutated encodings decode to a canonical value or fail with ProtocolError", async () => {
  const total = fuzzCount(4000, 1);
  const donors = samples.map((s) => s.bytes);
  await iterate("decoder", total, async (prng, _i, note) => {
    const sample = prng.pick(samples);
    const { bytes, how } = mutateMany(prng, sample.bytes, { fields: sample.fields, donors });
    note(`${sample.codec.name} from ${hex(sample.bytes, 24)}: ${how}: ${hex(bytes)}`);
    // A mutant may also be fed to the wrong decoder: each must hold on its own.
    const codec = prng.chance(0.9) ? sample.codec : prng.pick(samples).codec;
    const decoded = decodeOrRefuse(codec, bytes);
    mutants++;
    if (decoded && codec.verifies) {
      // Canonical encodings: a changed byte is a changed value, so a signature must fail.
      verified++;
      strictEqual(await codec.verifies(decoded.value), false, "a mutated signed message verified");
    }
  });
});

/** Slices `bytes` at random points (0-length slices included). */
function slices(prng: Prng, bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = prng.chance(0.1) ? 0 : prng.between(1, Math.max(1, prng.length(bytes.length - at)));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function manifestSample(
  prng: Prng,
): { entries: ManifestEntry[]; bytes: Uint8Array; fields: LengthField[] } {
  const entries: ManifestEntry[] = Array.from({ length: prng.between(1, 6) }, (_, k) => ({
    path: prng.pick([`file${k}.txt`, `dir/sub/é${k}`, "x".repeat(prng.between(1, 300)) + k]),
    size: prng.pick([0, 1, prng.int(2 ** 32), 2 ** 53 - 1]),
    sha256: prng.bytes(32),
  }));
  const layout = new Layout();
  for (const e of entries) layout.sized(2, utf8(e.path), 4096).int(8, e.size).bytes(e.sha256);
  const { bytes, fields } = layout.done();
  deepStrictEqual(bytes, encodeManifest(entries));
  return { entries, bytes, fields };
}

let manifests = 0;

Deno.test("ManifestParser over mutated manifests in random slices: entries re-encode, or ProtocolError", async () => {
  const total = fuzzCount(800, 0.1);
  const sha256 = async (b: Uint8Array) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>));
  await iterate("manifest", total, async (prng, _i, note) => {
    const sample = manifestSample(prng);
    const mutated = prng.chance(0.8);
    const { bytes, how } = mutated
      ? mutateMany(prng, sample.bytes, { fields: sample.fields })
      : { bytes: sample.bytes, how: "valid" };
    const expected = prng.chance(0.8) ? sample.entries.length : prng.between(0, 8);
    note(`${expected} entries, ${how}: ${hex(bytes)}`);
    const parser = await ManifestParser.create(expected);
    let pushed = 0;
    let refused = false;
    for (const slice of slices(prng, bytes)) {
      try {
        parser.push(slice);
        pushed += slice.length;
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        strictEqual(error.code, "bad_transfer_message");
        refused = true;
        break;
      }
    }
    const consumed = encodeManifest(parser.entries);
    // Every entry it produced is exactly the bytes it came from, in order.
    deepStrictEqual(consumed, bytes.subarray(0, consumed.length));
    if (!refused) {
      deepStrictEqual(parser.digest(), await sha256(bytes.subarray(0, pushed)));
      if (parser.complete) deepStrictEqual(consumed, bytes);
    }
    if (!mutated && expected === sample.entries.length) {
      ok(parser.complete && !refused, "a valid manifest was refused");
      deepStrictEqual(parser.entries, sample.entries);
    }
    manifests++;
  });
  const byCodec = [...outcomes].map(([name, o]) => `${name} ${o.valid}/${o.refused}`).join("; ");
  summary("decoder", mutants + manifests, {
    "mutants": mutants,
    "manifests": manifests,
    "mutated signed messages that decoded (none verified)": verified,
    "valid/refused by decoder": byCodec,
  });
});
