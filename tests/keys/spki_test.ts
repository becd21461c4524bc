/**
 * `importPublicIdentity()` on keys as they arrive from the network, and the `parseSpki()` rules
 * behind it (lib/keys/spki.ts): what is accepted, its canonical form, and that every rejection is a
 * ProtocolError "unsupported_key", never another exception.
 */

import { deepStrictEqual as eql, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { fromBase64, utf8 } from "../../lib/core/bytes.ts";
import {
  encodeBitString,
  encodeExplicit,
  encodeInteger,
  encodeNull,
  encodeOid,
  encodeSequence,
} from "../../lib/keys/der.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import { generateIdentity, type Identity, importPublicIdentity } from "../../lib/keys/identity.ts";
import { parseSpki } from "../../lib/keys/spki.ts";

// RSA 2048 keeps this file fast; the 3072 default is covered by identity_test.ts.
const keys = (async () => ({
  "rsa-pss": await generateIdentity({ type: "rsa-pss", bits: 2048, comment: "" }),
  "ed25519": await generateIdentity({ type: "ed25519", comment: "" }),
}))();

function isUnsupportedKey(error: unknown): boolean {
  ok(error instanceof ProtocolError, `not a ProtocolError: ${error}`);
  strictEqual(error.code, "unsupported_key");
  strictEqual(error.exitCode, 5);
  return true;
}

/** SPKI with an RSA modulus and exponent, under `algorithm` (default rsaEncryption, NULL). */
function rsaSpki(modulus: Uint8Array, exponent: number, algorithm?: Uint8Array): Uint8Array {
  return encodeSequence(
    algorithm ?? encodeSequence(encodeOid("1.2.840.113549.1.1.1"), encodeNull()),
    encodeBitString(encodeSequence(encodeInteger(modulus), encodeInteger(exponent))),
  );
}

async function rsaModulus(identity: Identity): Promise<Uint8Array> {
  const jwk = await crypto.subtle.exportKey("jwk", identity.publicKey);
  return fromBase64(jwk.n!.replace(/-/g, "+").replace(/_/g, "/"));
}

Deno.test("`importPublicIdentity()` accepts both key types and id-RSASSA-PSS with our parameters", async () => {
  const { "rsa-pss": rsa, ed25519 } = await keys;
  strictEqual(
    (await importPublicIdentity(ed25519.identity.spki)).fingerprint,
    ed25519.identity.fingerprint,
  );
  strictEqual((await importPublicIdentity(rsa.identity.spki)).bits, 2048);
  const modulus = await rsaModulus(rsa.identity);
  const sha256 = encodeSequence(encodeOid("2.16.840.1.101.3.4.2.1"), encodeNull());
  const pssParams = encodeSequence(
    encodeExplicit(0, sha256),
    encodeExplicit(1, encodeSequence(encodeOid("1.2.840.113549.1.1.8"), sha256)),
    encodeExplicit(2, encodeInteger(32)),
  );
  for (
    const algorithm of [
      encodeSequence(encodeOid("1.2.840.113549.1.1.10")),
      encodeSequence(encodeOid("1.2.840.113549.1.1.10"), pssParams),
    ]
  ) {
    const imported = await importPublicIdentity(rsaSpki(modulus, 65537, algorithm));
    strictEqual(imported.fingerprint, rsa.identity.fingerprint);
    eql(imported.spki, rsa.identity.spki);
  }
});

Deno.test("`importPublicIdentity()` rejects garbage, weak RSA, EC and malformed keys with ProtocolError", async () => {
  const { "rsa-pss": rsa, ed25519 } = await keys;
  const modulus = await rsaModulus(rsa.identity);
  const weak = await crypto.subtle.generateKey(
    {
      name: "RSA-PSS",
      modulusLength: 1024,
      publicExponent: Uint8Array.of(1, 0, 1),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const ec = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const edKey = ed25519.identity.spki.subarray(12);
  const sha1Pss = encodeSequence(
    encodeOid("1.2.840.113549.1.1.10"),
    encodeSequence(encodeExplicit(2, encodeInteger(32))),
  );
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array()],
    ["text", utf8("hello, I am a key")],
    ["random bytes", crypto.getRandomValues(new Uint8Array(300))],
    ["RSA 1024", new Uint8Array(await crypto.subtle.exportKey("spki", weak.publicKey))],
    ["EC P-256", new Uint8Array(await crypto.subtle.exportKey("spki", ec.publicKey))],
    ["RSA exponent 3", rsaSpki(modulus, 3)],
    ["RSA even modulus", rsaSpki(Uint8Array.of(...modulus.subarray(0, -1), 2), 65537)],
    [
      "RSA without NULL",
      rsaSpki(modulus, 65537, encodeSequence(encodeOid("1.2.840.113549.1.1.1"))),
    ],
    ["RSA-PSS restricted to SHA-1", rsaSpki(modulus, 65537, sha1Pss)],
    [
      "Ed25519 of 31 bytes",
      encodeSequence(encodeSequence(encodeOid("1.3.101.112")), encodeBitString(edKey.subarray(1))),
    ],
    [
      "Ed25519 with parameters",
      encodeSequence(
        encodeSequence(encodeOid("1.3.101.112"), encodeNull()),
        encodeBitString(edKey),
      ),
    ],
    ["trailing byte", Uint8Array.of(...ed25519.identity.spki, 0)],
  ];
  for (const spki of [rsa.identity.spki, ed25519.identity.spki]) {
    for (let length = 0; length < spki.length; length++) {
      cases.push([`truncated to ${length}`, spki.slice(0, length)]);
    }
  }
  for (const [name, spki] of cases) {
    await rejects(importPublicIdentity(spki), isUnsupportedKey, name);
  }
});

Deno.test("`importPublicIdentity()` throws nothing but ProtocolError on mutated keys (seeded)", async () => {
  const { "rsa-pss": rsa, ed25519 } = await keys;
  let seed = 0x5ec0e;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 400; i++) {
    const spki = (i % 2 ? rsa : ed25519).identity.spki.slice();
    const position = Math.floor(next() * (i % 2 ? 40 : spki.length));
    spki[position] = Math.floor(next() * 256);
    try {
      const imported = await importPublicIdentity(spki);
      ok(imported.fingerprint.startsWith("SHA256:"));
    } catch (error) {
      ok(error instanceof ProtocolError, `seed step ${i}, byte ${position}: ${error}`);
    }
  }
});

Deno.test("`parseSpki()` keeps canonical keys byte for byte and names the alert", async () => {
  const { "rsa-pss": rsa, ed25519 } = await keys;
  eql(parseSpki(rsa.identity.spki), { type: "rsa-pss", spki: rsa.identity.spki, bits: 2048 });
  eql(parseSpki(ed25519.identity.spki), {
    type: "ed25519",
    spki: ed25519.identity.spki,
    bits: undefined,
  });
  throws(() => parseSpki(fromBase64("MAA=")), SyntaxError);
  const ec = encodeSequence(
    encodeSequence(encodeOid("1.2.840.10045.2.1"), encodeOid("1.2.840.10045.3.1.7")),
    encodeBitString(new Uint8Array(65)),
  );
  throws(() => parseSpki(ec), (error: unknown) => {
    isUnsupportedKey(error);
    strictEqual((error as ProtocolError).alert, "illegal_parameter");
    strictEqual(
      (error as Error).message,
      'unsupported key: key type "EC": only RSA and Ed25519 are accepted',
    );
    return true;
  });
});
