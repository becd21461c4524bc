import { deepStrictEqual as eql, ok, strictEqual } from "node:assert/strict";
import { getCiphersuiteFromName } from "ts-mls";
import { concat, own, u8 } from "../../lib/core/bytes.ts";
import { generateIdentity } from "../../lib/keys/identity.ts";
import { makeKeyPackage } from "../../lib/group/key_package.ts";
import {
  decodeMessage,
  encodeMlsMessage,
  librarySuiteId,
  MLS_VERSION,
  SUITE_ID,
  SUITE_NAME,
  suiteImpl,
} from "../../lib/group/mls.ts";
import { Prng } from "../_helpers/prng.ts";

Deno.test("the suite is X-Wing, AES-256-GCM, SHA-512 and Ed25519, numbered 83 by the library", async () => {
  strictEqual(SUITE_NAME, "MLS_256_XWING_AES256GCM_SHA512_Ed25519");
  strictEqual(SUITE_ID, 83);
  // An upgrade of ts-mls that renumbers the suite must fail here, not in a room.
  strictEqual(librarySuiteId(), SUITE_ID);
  eql(getCiphersuiteFromName(SUITE_NAME).hpke, {
    kem: "X-Wing",
    kdf: "HKDF-SHA512",
    aead: "AES256GCM",
  });
  const cs = await suiteImpl();

  // KEM: X-Wing public keys are 1216 bytes (ML-KEM-768's 1184 + X25519's 32).
  const pair = await cs.hpke.generateKeyPair();
  strictEqual((await cs.hpke.exportPublicKey(pair.publicKey)).length, 1216);

  // AEAD: what the suite seals, WebCrypto's AES-256-GCM opens.
  strictEqual(cs.hpke.keyLength, 32);
  const key = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const aad = Uint8Array.of(1, 2, 3);
  const sealed = await cs.hpke.encryptAead(key, nonce, aad, Uint8Array.of(42));
  const aes = await crypto.subtle.importKey("raw", own(key), "AES-GCM", false, ["decrypt"]);
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: own(nonce), additionalData: own(aad) },
    aes,
    own(sealed),
  );
  eql(new Uint8Array(opened), Uint8Array.of(42));

  // Hash: SHA-512.
  const data = Uint8Array.of(0x61, 0x62, 0x63);
  eql(
    await cs.hash.digest(data),
    new Uint8Array(await crypto.subtle.digest("SHA-512", data)),
  );

  // Signature: Ed25519, 32-byte public keys, verified by WebCrypto.
  const { publicKey, signKey } = await cs.signature.keygen();
  strictEqual(publicKey.length, 32);
  const signature = await cs.signature.sign(signKey, data);
  const ed = await crypto.subtle.importKey("raw", own(publicKey), "Ed25519", false, ["verify"]);
  ok(await crypto.subtle.verify("Ed25519", ed, own(signature), data));
});

Deno.test("a KeyPackage of ours names the suite on the wire as 0x0053", async () => {
  const cs = await suiteImpl();
  const { identity } = await generateIdentity({ type: "ed25519", comment: "a" });
  const { publicPackage } = await makeKeyPackage(identity, "a", cs);
  const bytes = encodeMlsMessage({
    version: MLS_VERSION,
    wireformat: "mls_key_package",
    keyPackage: publicPackage,
  });
  // MLSMessage: version u16 (1 = mls10), wire_format u16 (5 = key package), then the
  // KeyPackage: version u16, cipher_suite u16.
  eql([...bytes.subarray(0, 8)], [0, 1, 0, 5, 0, 1, 0, 0x53]);
  strictEqual(publicPackage.initKey.length, 1216);
});

Deno.test("`decodeMessage()` returns undefined for garbage, cut and padded messages, never throws", async () => {
  const cs = await suiteImpl();
  const { identity } = await generateIdentity({ type: "ed25519", comment: "a" });
  const { publicPackage } = await makeKeyPackage(identity, "a", cs);
  const good = encodeMlsMessage({
    version: MLS_VERSION,
    wireformat: "mls_key_package",
    keyPackage: publicPackage,
  });
  strictEqual(decodeMessage(good)?.wireformat, "mls_key_package");
  strictEqual(decodeMessage(concat(good, u8(0))), undefined);
  strictEqual(decodeMessage(new Uint8Array()), undefined);
  for (let length = 0; length < good.length; length += 7) {
    strictEqual(decodeMessage(good.subarray(0, length)), undefined, `cut at ${length}`);
  }
  let decoded = 0;
  for (let i = 0; i < 600; i++) {
    const prng = Prng.forIteration(0x6d6c73, i);
    let bytes: Uint8Array;
    if (i % 3 === 0) {
      bytes = good.slice();
      const at = prng.int(bytes.length);
      bytes[at]! ^= 1 << prng.int(8);
    } else if (i % 3 === 1) {
      bytes = concat(good.subarray(0, 4), prng.bytes(prng.int(64)));
    } else {
      bytes = prng.bytes(prng.int(64));
    }
    if (decodeMessage(bytes) !== undefined) decoded++;
  }
  // Flipping a bit of a key or signature still decodes; random bytes almost never do.
  ok(decoded < 600);
});
