import { deepStrictEqual as eql, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  DerReader,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodeSequence,
} from "../../lib/keys/der.ts";
import { SecurechatError } from "../../lib/core/errors.ts";
import {
  decryptPrivateKeyInfo,
  encryptPrivateKeyInfo,
  MAX_PBKDF2_ITERATIONS,
  OID,
  parsePrivateKeyInfo,
  PBKDF2_ITERATIONS,
} from "../../lib/keys/pkcs8.ts";
import { HAS_OPENSSL, NEEDS_OPENSSL, openssl, PKCS8_PBES2_ARGS } from "../_helpers/openssl.ts";

/** A fresh Ed25519 PrivateKeyInfo from WebCrypto. */
async function ed25519Pkcs8(): Promise<Uint8Array> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, ["sign"]) as CryptoKeyPair;
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
}

function isCode(code: string) {
  return (error: unknown) => error instanceof SecurechatError && error.code === code;
}

Deno.test("`encryptPrivateKeyInfo()` writes PBES2, PBKDF2-HMAC-SHA256 x600000, 16-byte salt, AES-256-CBC", async () => {
  const info = await ed25519Pkcs8();
  const sealed = await encryptPrivateKeyInfo(info, "correct horse");
  // Walk RFC 8018 appendix A by hand, independently of decryptPrivateKeyInfo().
  const outer = new DerReader(sealed, "test").sequence("EncryptedPrivateKeyInfo");
  const scheme = outer.sequence("encryptionAlgorithm");
  strictEqual(scheme.oid("pbes2"), OID.pbes2);
  const params = scheme.sequence("PBES2-params");
  const kdf = params.sequence("keyDerivationFunc");
  strictEqual(kdf.oid("pbkdf2"), OID.pbkdf2);
  const pbkdf2 = kdf.sequence("PBKDF2-params");
  strictEqual(pbkdf2.octetString("salt").length, 16);
  strictEqual(pbkdf2.smallInteger("iterations", 1e9), PBKDF2_ITERATIONS);
  strictEqual(PBKDF2_ITERATIONS, 600_000);
  strictEqual(pbkdf2.sequence("prf").oid("prf"), OID.hmacWithSha256);
  const cipher = params.sequence("encryptionScheme");
  strictEqual(cipher.oid("cipher"), OID.aes256Cbc);
  strictEqual(cipher.octetString("iv").length, 16);
  strictEqual(outer.octetString("encryptedData").length, 64); // 48 bytes + a padding block
  eql(await decryptPrivateKeyInfo(sealed, "correct horse"), info);
});

Deno.test("`encryptPrivateKeyInfo()` uses a fresh salt and IV each time", async () => {
  const info = await ed25519Pkcs8();
  const a = await encryptPrivateKeyInfo(info, "pw", { iterations: 1000 });
  const b = await encryptPrivateKeyInfo(info, "pw", { iterations: 1000 });
  ok(a.length === b.length && a.some((byte, i) => byte !== b[i]));
});

Deno.test("`decryptPrivateKeyInfo()` says bad_passphrase for a wrong passphrase", async () => {
  const sealed = await encryptPrivateKeyInfo(await ed25519Pkcs8(), "right", { iterations: 1000 });
  // Many wrong passphrases, so that some hit valid CBC padding on garbage (about 1 in 256).
  for (let i = 0; i < 300; i++) {
    await rejects(decryptPrivateKeyInfo(sealed, `wrong ${i}`), (error: unknown) => {
      ok(isCode("bad_passphrase")(error), String(error));
      strictEqual((error as Error).message, "wrong passphrase or corrupted file");
      return true;
    });
  }
});

Deno.test("`decryptPrivateKeyInfo()` says bad_passphrase for a flipped ciphertext bit", async () => {
  const sealed = await encryptPrivateKeyInfo(await ed25519Pkcs8(), "pw", { iterations: 1000 });
  sealed[sealed.length - 1]! ^= 0x01;
  await rejects(decryptPrivateKeyInfo(sealed, "pw"), isCode("bad_passphrase"));
});

/** An EncryptedPrivateKeyInfo with the given PBKDF2-params and cipher, for rejection tests. */
function craft(options: {
  scheme?: string;
  iterations?: number;
  prf?: Uint8Array[];
  cipher?: string;
  iv?: number;
}): Uint8Array {
  const pbkdf2 = encodeSequence(
    encodeOctetString(new Uint8Array(16)),
    encodeInteger(options.iterations ?? 1000),
    ...(options.prf ?? [encodeSequence(encodeOid(OID.hmacWithSha256), encodeNull())]),
  );
  return encodeSequence(
    encodeSequence(
      encodeOid(options.scheme ?? OID.pbes2),
      encodeSequence(
        encodeSequence(encodeOid(OID.pbkdf2), pbkdf2),
        encodeSequence(
          encodeOid(options.cipher ?? OID.aes256Cbc),
          encodeOctetString(new Uint8Array(options.iv ?? 16)),
        ),
      ),
    ),
    encodeOctetString(new Uint8Array(32)),
  );
}

Deno.test("`decryptPrivateKeyInfo()` refuses other schemes with unsupported_key_encryption", async () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["PBES1", craft({ scheme: "1.2.840.113549.1.5.3" }), /PBES1 with MD5 and DES/],
    ["default PRF (HMAC-SHA1)", craft({ prf: [] }), /HMAC-SHA1/],
    [
      "HMAC-SHA512",
      craft({ prf: [encodeSequence(encodeOid("1.2.840.113549.2.11"), encodeNull())] }),
      /HMAC-SHA512/,
    ],
    ["AES-128-CBC", craft({ cipher: "2.16.840.1.101.3.4.1.2" }), /AES-128-CBC/],
  ];
  for (const [name, der, message] of cases) {
    await rejects(decryptPrivateKeyInfo(der, "pw"), (error: unknown) => {
      ok(isCode("unsupported_key_encryption")(error), `${name}: ${error}`);
      ok(message.test((error as Error).message), (error as Error).message);
      ok((error as SecurechatError).hints[0]!.includes("openssl pkcs8 -topk8"));
      return true;
    });
  }
});

Deno.test("`decryptPrivateKeyInfo()` refuses a crafted iteration count above the cap at once", async () => {
  const started = performance.now();
  await rejects(
    decryptPrivateKeyInfo(craft({ iterations: MAX_PBKDF2_ITERATIONS + 1 }), "pw"),
    SyntaxError,
  );
  ok(performance.now() - started < 1000);
  await rejects(decryptPrivateKeyInfo(craft({ iterations: 2 ** 40 }), "pw"), SyntaxError);
  await rejects(decryptPrivateKeyInfo(craft({ iterations: 0 }), "pw"), SyntaxError);
});

Deno.test("`decryptPrivateKeyInfo()` rejects malformed structures with SyntaxError", async () => {
  const valid = craft({});
  for (let length = 0; length < valid.length; length += 7) {
    await rejects(decryptPrivateKeyInfo(valid.subarray(0, length), "pw"), SyntaxError);
  }
  await rejects(decryptPrivateKeyInfo(craft({ iv: 8 }), "pw"), /IV/);
  await rejects(
    decryptPrivateKeyInfo(Uint8Array.of(...valid, 0), "pw"),
    /unexpected data after/,
  );
});

Deno.test("`parsePrivateKeyInfo()` accepts v1 and RFC 5958 v2 with a public key", async () => {
  const info = await ed25519Pkcs8();
  const parsed = parsePrivateKeyInfo(info);
  strictEqual(parsed.version, 0);
  strictEqual(parsed.algorithm, "1.3.101.112");
  strictEqual(parsed.parameters, undefined);
  const v2 = encodeSequence(
    encodeInteger(1),
    encodeSequence(encodeOid("1.3.101.112")),
    encodeOctetString(parsed.privateKey),
    Uint8Array.of(0x81, 33, 0, ...new Uint8Array(32)),
  );
  strictEqual(parsePrivateKeyInfo(v2).version, 1);
  throws(() => parsePrivateKeyInfo(Uint8Array.of(...info, 0)), SyntaxError);
});

Deno.test({
  name:
    "`decryptPrivateKeyInfo()` reads `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`" +
    NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  async fn() {
    for (const algorithm of ["ed25519", "RSA"]) {
      const pem = await openssl(["genpkey", "-algorithm", algorithm]);
      const plain = await openssl(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"], pem);
      const sealed = await openssl(
        [
          ...PKCS8_PBES2_ARGS,
          "-passout",
          "pass:s3cret",
          "-outform",
          "DER",
        ],
        pem,
      );
      eql(await decryptPrivateKeyInfo(sealed, "s3cret"), plain, algorithm);
      await rejects(decryptPrivateKeyInfo(sealed, "s3cre"), isCode("bad_passphrase"));
    }
  },
});

Deno.test({
  name: "`decryptPrivateKeyInfo()` refuses openssl's PBES1, PKCS#12 and scrypt forms" +
    NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  async fn() {
    const pem = await openssl(["genpkey", "-algorithm", "ed25519"]);
    const variants = [
      ["-v1", "PBE-SHA1-3DES"],
      ["-v1", "PBE-MD5-DES"],
      ["-scrypt"],
      ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1"],
      ["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA256"],
    ];
    let tried = 0;
    for (const flags of variants) {
      let sealed: Uint8Array;
      try {
        sealed = await openssl(
          ["pkcs8", "-topk8", ...flags, "-passout", "pass:pw", "-outform", "DER"],
          pem,
        );
      } catch {
        continue; // this openssl build lacks the legacy algorithm
      }
      tried++;
      await rejects(
        decryptPrivateKeyInfo(sealed, "pw"),
        isCode("unsupported_key_encryption"),
        flags.join(" "),
      );
    }
    ok(tried >= 3, `only ${tried} variants could be made`);
  },
});

Deno.test({
  name: "openssl decrypts what `encryptPrivateKeyInfo()` writes" + NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  async fn() {
    const info = await ed25519Pkcs8();
    const sealed = await encryptPrivateKeyInfo(info, "pässwörd");
    const out = await openssl(
      ["pkey", "-inform", "DER", "-passin", "pass:pässwörd", "-outform", "DER"],
      sealed,
    );
    eql(out, info);
  },
});
