/**
 * Fuzzing every decoder of peer data (PROTOCOL.md sections 5, 13 and 14): the hellos and the
 * encrypted handshake messages; the relay messages of both directions (13.4) and the clear MLS
 * header the relay reads (RFC 9420 section 6); room content and the plaintext of a Sealed (13.5);
 * the credential as the Authentication Service checks it (13.2); transfer messages, Data slices
 * and their seal (14); and the manifest parser. Valid encodings are written field by field from
 * the spec (and checked against the encoders), then mutated: bit flips, truncations, insertions,
 * splices and length fields at 0, 1, cap-1, cap, cap+1 and the field's maximum. Every mutant
 * decodes or is refused with our ProtocolError (an AuthenticationError for a seal), never
 * anything else; what decodes re-encodes to exactly its input (the encodings are canonical), so a
 * mutated credential or sealed slice that still verified would fail here.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { utf8 } from "../../lib/core/bytes.ts";
import { AuthenticationError, ProtocolError } from "../../lib/core/errors.ts";
import type { decodeClientHello } from "../../lib/protocol/messages.ts";
import {
  encodeManifest,
  type ManifestEntry,
  ManifestParser,
} from "../../lib/transfer/transfer_messages.ts";
import type { Prng } from "../_helpers/prng.ts";
import { fuzzCount, hex, iterate, type LengthField, mutateMany, summary } from "./_fuzz.ts";
import { clientHello, type Codec, Layout } from "./_decoder_codecs.ts";
import { samples } from "./_decoder_samples.ts";
import { boundaryTable } from "./_decoder_boundaries.ts";

const outcomes = new Map<string, { valid: number; refused: number }>();
function count(name: string, valid: boolean) {
  const entry = outcomes.get(name) ?? { valid: 0, refused: 0 };
  if (valid) entry.valid++;
  else entry.refused++;
  outcomes.set(name, entry);
}

/** True when `error` is how `codec` may refuse input; anything else is a crash. */
function isRefusal(codec: Codec, error: unknown): error is ProtocolError | AuthenticationError {
  return error instanceof ProtocolError ||
    (codec.refusal.authentication === true && error instanceof AuthenticationError);
}

/**
 * Decodes `bytes` with `codec`: a value, or a refusal with one of the codec's codes and message
 * shape. Anything else thrown is a crash and propagates. A value re-encodes to `bytes`.
 */
async function decodeOrRefuse(
  codec: Codec,
  bytes: Uint8Array,
): Promise<{ value: unknown } | undefined> {
  let value: unknown;
  try {
    value = await codec.decode(bytes);
  } catch (error) {
    if (!isRefusal(codec, error)) throw error;
    ok(codec.refusal.codes.includes(error.code), `${codec.name}: unexpected code ${error.code}`);
    ok(codec.refusal.message.test(error.message), `${codec.name}: ${error.message}`);
    ok(!error.message.includes("\n"), `${codec.name}: a refusal of more than one line`);
    count(codec.name, false);
    return undefined;
  }
  if (codec.dropped?.(value)) {
    count(codec.name, false);
    return undefined;
  }
  if (codec.encode === undefined) {
    await codec.check!(value, bytes);
  } else if (codec.normalizes?.(value, bytes)) {
    // A ClientHello whose every share (or record suite) was of an unknown id keeps none: valid to
    // decode (the responder answers handshake_failure), but its canonical form has a count of 0.
    const again = await codec.encode(value);
    const hello = value as ReturnType<typeof decodeClientHello>;
    const empty = codec === clientHello &&
      (hello.shares.length === 0 || hello.recordSuites.length === 0);
    if (empty) ok(!await decodeOrRefuse(codec, again), "a ClientHello re-encoded with no shares");
    else {deepStrictEqual(
        await codec.decode(again),
        value,
        `${codec.name}: normalized value is stable`,
      );}
  } else {
    deepStrictEqual(
      await codec.encode(value),
      bytes,
      `${codec.name}: the decoded value re-encodes to its input`,
    );
  }
  count(codec.name, true);
  return { value };
}

Deno.test("every valid sample decodes and its encoder writes exactly the spec's layout", async () => {
  for (const sample of samples) {
    const decoded = await decodeOrRefuse(sample.codec, sample.bytes);
    ok(decoded, `${sample.codec.name} sample refused: ${hex(sample.bytes)}`);
  }
});

Deno.test("decoders at every length and range boundary: exactly the documented verdict", async () => {
  for (const { what, codec, bytes, valid } of await boundaryTable()) {
    const decoded = await decodeOrRefuse(codec, bytes);
    strictEqual(decoded !== undefined, valid, `${what}: expected ${valid ? "valid" : "refused"}`);
  }
});

/**
 * Truncating a valid encoding is refused, short of a message whose last field is "the rest" (a
 * Direct's bytes, a Manifest slice, an MLS message inside a relay message): a prefix keeping a
 * byte of that field may be a message too, and must decode or be refused like any input.
 */
Deno.test("every strict prefix of every valid sample is refused, or decodes where it may", async () => {
  for (const sample of samples) {
    for (let length = 0; length < sample.bytes.length; length++) {
      const decoded = await decodeOrRefuse(sample.codec, sample.bytes.subarray(0, length));
      if (sample.openFrom !== undefined && length >= sample.openFrom) continue;
      ok(decoded === undefined, `${sample.codec.name} cut to ${length} bytes was accepted`);
    }
  }
});

let mutants = 0;

Deno.test("mutated encodings decode to a canonical value or are refused as the codec says", async () => {
  const total = fuzzCount(4000, 1);
  const donors = samples.map((s) => s.bytes);
  await iterate("decoder", total, async (prng, _i, note) => {
    const sample = prng.pick(samples);
    const { bytes, how } = mutateMany(prng, sample.bytes, { fields: sample.fields, donors });
    note(`${sample.codec.name} from ${hex(sample.bytes, 24)}: ${how}: ${hex(bytes)}`);
    // A mutant may also be fed to the wrong decoder: each must hold on its own.
    const codec = prng.chance(0.9) ? sample.codec : prng.pick(samples).codec;
    await decodeOrRefuse(codec, bytes);
    mutants++;
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
    "valid/refused by decoder": byCodec,
  });
});
