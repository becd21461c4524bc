import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { fromBase64, own } from "../../lib/core/bytes.ts";
import {
  fingerprintOf,
  generateIdentity,
  signTranscript,
  verifyTranscript,
} from "../../lib/keys/identity.ts";
import { writeIdentity } from "../../lib/keys/identity_file.ts";
import { withTempDir } from "../_helpers/files.ts";
import { MESSAGE, testKeys } from "../_helpers/identity_keys.ts";
import { HAS_OPENSSL, NEEDS_OPENSSL, openssl, opensslFingerprint } from "../_helpers/openssl.ts";

const ED25519_RFC8410_SPKI = fromBase64(
  "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=",
);

Deno.test("`generateIdentity()` makes RSA-PSS 3072 and Ed25519 keys that sign and verify", async () => {
  const all = await testKeys;
  strictEqual(all["rsa-pss"].identity.bits, 3072);
  strictEqual(all.ed25519.identity.bits, undefined);
  for (const { identity } of Object.values(all)) {
    const signature = await signTranscript(identity, MESSAGE);
    ok(await verifyTranscript(identity, MESSAGE, signature), identity.type);
    strictEqual(identity.privateKey.extractable, false);
    const exported = new Uint8Array(await crypto.subtle.exportKey("spki", identity.publicKey));
    eql(identity.spki, exported);
  }
});

Deno.test("`generateIdentity()` refuses bad sizes, bits for Ed25519 and bad comments", async () => {
  await rejects(generateIdentity({ type: "rsa-pss", bits: 1024, comment: "" }), RangeError);
  await rejects(generateIdentity({ type: "rsa-pss", bits: 16384, comment: "" }), RangeError);
  await rejects(generateIdentity({ type: "ed25519", bits: 3072, comment: "" }), RangeError);
  await rejects(generateIdentity({ type: "ed25519", comment: "a\u001b[2Jb" }), RangeError);
  await rejects(generateIdentity({ type: "ed25519", comment: "x".repeat(65) }), RangeError);
});

Deno.test("`signTranscript()` signs RSA-PSS with SHA-256 and salt 32, and Ed25519 deterministically", async () => {
  const { "rsa-pss": rsa, ed25519 } = await testKeys;
  const signature = await signTranscript(rsa.identity, MESSAGE);
  strictEqual(signature.length, 384);
  const verify = (saltLength: number) =>
    crypto.subtle.verify(
      { name: "RSA-PSS", saltLength },
      rsa.identity.publicKey,
      own(signature),
      own(MESSAGE),
    );
  ok(await verify(32));
  ok(!(await verify(20)));
  eql(
    await signTranscript(ed25519.identity, MESSAGE),
    await signTranscript(ed25519.identity, MESSAGE),
  );
});

Deno.test("`verifyTranscript()` returns false, never throws, on altered messages and signatures", async () => {
  const all = await testKeys;
  for (const { identity } of Object.values(all)) {
    const signature = await signTranscript(identity, MESSAGE);
    const altered = MESSAGE.slice();
    altered[0]! ^= 1;
    const flipped = signature.slice();
    flipped[5]! ^= 0x80;
    const other = identity.type === "ed25519" ? all["rsa-pss"].identity : all.ed25519.identity;
    const cases: [string, Uint8Array, Uint8Array, typeof identity][] = [
      ["altered message", altered, signature, identity],
      ["flipped signature bit", MESSAGE, flipped, identity],
      ["empty signature", MESSAGE, new Uint8Array(), identity],
      ["truncated signature", MESSAGE, signature.subarray(1), identity],
      ["extended signature", MESSAGE, Uint8Array.of(...signature, 0), identity],
      ["zero signature", MESSAGE, new Uint8Array(signature.length), identity],
      ["huge signature", MESSAGE, new Uint8Array(70_000), identity],
      ["other key type", MESSAGE, signature, other],
    ];
    for (const [name, message, bytes, peer] of cases) {
      strictEqual(await verifyTranscript(peer, message, bytes), false, `${identity.type}: ${name}`);
    }
  }
});

Deno.test("`fingerprintOf()` matches OpenSSH's format", async () => {
  // Expected value from: base64 -d | openssl dgst -sha256 -binary | base64, padding removed.
  strictEqual(
    await fingerprintOf(ED25519_RFC8410_SPKI),
    "SHA256:oekVYFTgT6yJmunydRMs3Ael28TqLCrTof/G4NJTaB8",
  );
  const { identity } = (await testKeys)["rsa-pss"];
  ok(/^SHA256:[A-Za-z0-9+/]{43}$/.test(identity.fingerprint));
  strictEqual(identity.fingerprint, await fingerprintOf(identity.spki));
});

Deno.test({
  name: "`fingerprintOf()` equals SHA-256 of the DER that openssl derives from id.pub" +
    NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  fn: () =>
    withTempDir(async (dir) => {
      for (const { identity, pkcs8 } of Object.values(await testKeys)) {
        await writeIdentity(`${dir}/${identity.type}`, pkcs8, identity, { force: false });
        strictEqual(await opensslFingerprint(`${dir}/${identity.type}.pub`), identity.fingerprint);
      }
    }),
});

Deno.test({
  name: "openssl verifies the signatures of `signTranscript()`" + NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  fn: () =>
    withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/message`, MESSAGE);
      for (const { identity, pkcs8 } of Object.values(await testKeys)) {
        const path = `${dir}/${identity.type}`;
        await writeIdentity(path, pkcs8, identity, { force: false });
        await Deno.writeFile(`${dir}/signature`, await signTranscript(identity, MESSAGE));
        const common = ["-pubin", "-inkey", `${path}.pub`, "-sigfile", `${dir}/signature`];
        const args = identity.type === "ed25519"
          ? ["pkeyutl", "-verify", ...common, "-rawin", "-in", `${dir}/message`]
          : [
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
            "-verify",
            `${path}.pub`,
            "-signature",
            `${dir}/signature`,
            `${dir}/message`,
          ];
        await openssl(args);
      }
    }),
});
