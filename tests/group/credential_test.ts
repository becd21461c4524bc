import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { concat, sha256, u16, u8, utf8 } from "../../lib/core/bytes.ts";
import { ProtocolError } from "../../lib/core/errors.ts";
import { generateIdentity } from "../../lib/keys/identity.ts";
import { makeCredential, MAX_NAME_LENGTH, verifyCredential } from "../../lib/group/credential.ts";
import { isCode } from "../_helpers/assert_error.ts";
import { testKeys } from "../_helpers/identity_keys.ts";

const SUITE = 83;
const signatureKey = crypto.getRandomValues(new Uint8Array(32));
const { identity: ed25519 } = await generateIdentity({ type: "ed25519", comment: "carol" });

/** The fields of a credential, to rebuild it with one of them changed. */
function fields(bytes: Uint8Array) {
  const nameLength = bytes[1]!;
  const name = bytes.slice(2, 2 + nameLength);
  let at = 2 + nameLength;
  const spkiLength = (bytes[at]! << 8) | bytes[at + 1]!;
  const spki = bytes.slice(at + 2, at + 2 + spkiLength);
  at += 2 + spkiLength;
  const signatureLength = (bytes[at]! << 8) | bytes[at + 1]!;
  const signature = bytes.slice(at + 2, at + 2 + signatureLength);
  return { name, spki, signature };
}

function build(parts: { name: Uint8Array; spki: Uint8Array; signature: Uint8Array }): Uint8Array {
  return concat(
    u8(1),
    u8(parts.name.length),
    parts.name,
    u16(parts.spki.length),
    parts.spki,
    u16(parts.signature.length),
    parts.signature,
  );
}

Deno.test("`verifyCredential()` accepts what `makeCredential()` made, for Ed25519 and RSA-PSS keys", async () => {
  const { "rsa-pss": rsa } = await testKeys;
  for (const identity of [ed25519, rsa.identity]) {
    const bytes = await makeCredential(identity, "Zoë ✓", signatureKey, SUITE);
    const verified = await verifyCredential(bytes, signatureKey, SUITE);
    strictEqual(verified.name, "Zoë ✓");
    strictEqual(verified.fingerprint, identity.fingerprint);
    eql(verified.author, await sha256(identity.spki));
    eql(verified.identity.spki, identity.spki);
  }
});

Deno.test("`verifyCredential()` refuses a credential with any field changed", async () => {
  const { "rsa-pss": rsa } = await testKeys;
  const bytes = await makeCredential(ed25519, "carol", signatureKey, SUITE);
  const good = fields(bytes);
  const otherKey = signatureKey.slice();
  otherKey[0]! ^= 1;
  const cases: [string, Uint8Array, Uint8Array, number][] = [
    ["name", build({ ...good, name: utf8("carl") }), signatureKey, SUITE],
    ["spki of another key", build({ ...good, spki: rsa.identity.spki }), signatureKey, SUITE],
    [
      "signature",
      build({ ...good, signature: good.signature.map((b, i) => i ? b : b ^ 1) }),
      signatureKey,
      SUITE,
    ],
    ["signature key", bytes, otherKey, SUITE],
    ["suite", bytes, signatureKey, 1],
    ["trailing byte", concat(bytes, u8(0)), signatureKey, SUITE],
    ["version", concat(u8(2), bytes.subarray(1)), signatureKey, SUITE],
    ["empty name", build({ ...good, name: new Uint8Array() }), signatureKey, SUITE],
    ["name not UTF-8", build({ ...good, name: Uint8Array.of(0x63, 0xff) }), signatureKey, SUITE],
    ["name of 65 bytes", build({ ...good, name: utf8("x".repeat(65)) }), signatureKey, SUITE],
    ["spki not a key", build({ ...good, spki: utf8("not a key") }), signatureKey, SUITE],
  ];
  for (const [what, credential, key, suite] of cases) {
    await rejects(verifyCredential(credential, key, suite), (error: unknown) => {
      ok(error instanceof ProtocolError, `${what}: ${error}`);
      ok(["bad_credential", "unsupported_key"].includes(error.code), `${what}: ${error.code}`);
      return true;
    });
  }
});

Deno.test("`verifyCredential()` refuses every truncation with a ProtocolError, never anything else", async () => {
  const bytes = await makeCredential(ed25519, "carol", signatureKey, SUITE);
  for (let length = 0; length < bytes.length; length++) {
    await rejects(verifyCredential(bytes.subarray(0, length), signatureKey, SUITE), ProtocolError);
  }
});

Deno.test("`makeCredential()` takes names of 1 to 64 bytes and refuses others", async () => {
  const longest = "é".repeat(MAX_NAME_LENGTH / 2);
  const bytes = await makeCredential(ed25519, longest, signatureKey, SUITE);
  strictEqual((await verifyCredential(bytes, signatureKey, SUITE)).name, longest);
  await rejects(makeCredential(ed25519, "", signatureKey, SUITE), RangeError);
  await rejects(makeCredential(ed25519, longest + "x", signatureKey, SUITE), RangeError);
});

Deno.test("`verifyCredential()` names a bad signature as a possible forgery", async () => {
  const bytes = await makeCredential(ed25519, "carol", signatureKey, SUITE);
  await rejects(
    verifyCredential(bytes, signatureKey, 84),
    isCode(ProtocolError, "bad_credential"),
  );
  await rejects(verifyCredential(bytes, signatureKey, 84), /forged or tampered with/);
});
