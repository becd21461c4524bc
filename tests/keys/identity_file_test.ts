import { deepStrictEqual as eql, ok, rejects, strictEqual } from "node:assert/strict";
import { DerReader } from "../../lib/keys/der.ts";
import { SecurechatError } from "../../lib/core/errors.ts";
import { signTranscript, verifyTranscript } from "../../lib/keys/identity.ts";
import {
  loadIdentity,
  loadPublicIdentityFile,
  writeIdentity,
} from "../../lib/keys/identity_file.ts";
import { withTempDir } from "../_helpers/files.ts";
import { MESSAGE, testKeys } from "../_helpers/identity_keys.ts";
import {
  HAS_OPENSSL,
  NEEDS_OPENSSL,
  openssl,
  opensslFingerprint,
  PKCS8_PBES2_ARGS,
} from "../_helpers/openssl.ts";

const POSIX = Deno.build.os !== "windows";

function hasCode(code: string, message?: string) {
  return (error: unknown) => {
    ok(error instanceof SecurechatError, String(error));
    strictEqual(error.code, code, error.message);
    if (message !== undefined) strictEqual(error.message, message);
    return true;
  };
}

const noPassphrase = () => Promise.reject(new Error("the passphrase must not be asked for"));

Deno.test("`writeIdentity()` and `loadIdentity()` round-trip plain and encrypted keys", async () => {
  await withTempDir(async (dir) => {
    for (const { identity, pkcs8 } of Object.values(await testKeys)) {
      const plain = `${dir}/${identity.type}-plain`;
      const sealed = `${dir}/${identity.type}-sealed`;
      await writeIdentity(plain, pkcs8, identity, { force: false });
      await writeIdentity(sealed, pkcs8, identity, { force: false, passphrase: "hunter2" });
      ok((await Deno.readTextFile(sealed)).includes("BEGIN ENCRYPTED PRIVATE KEY"));
      let asked = 0;
      const passphrase = () => (asked++, Promise.resolve("hunter2"));
      const fromPlain = await loadIdentity(plain, { passphrase });
      strictEqual(asked, 0, "a plain key must not ask for a passphrase");
      const fromSealed = await loadIdentity(sealed, { passphrase });
      strictEqual(asked, 1);
      for (const loaded of [fromPlain, fromSealed]) {
        strictEqual(loaded.fingerprint, identity.fingerprint);
        strictEqual(loaded.comment, identity.comment);
        strictEqual(loaded.type, identity.type);
        strictEqual(loaded.bits, identity.bits);
        ok(await verifyTranscript(identity, MESSAGE, await signTranscript(loaded, MESSAGE)));
      }
    }
  });
});

Deno.test({
  name: "`writeIdentity()` writes modes 0600 and 0644 and creates the folder with 0700",
  ignore: !POSIX,
  fn: () =>
    withTempDir(async (dir) => {
      const { identity, pkcs8 } = (await testKeys).ed25519;
      const path = `${dir}/new/home/id`;
      await writeIdentity(path, pkcs8, identity, { force: false });
      strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600);
      strictEqual((await Deno.stat(`${path}.pub`)).mode! & 0o777, 0o644);
      strictEqual((await Deno.stat(`${dir}/new/home`)).mode! & 0o777, 0o700);
      const pub = await Deno.readTextFile(`${path}.pub`);
      ok(pub.startsWith("Comment: bob\n-----BEGIN PUBLIC KEY-----\n"), pub);
    }),
});

Deno.test("`writeIdentity()` refuses to replace either file without force", async () => {
  await withTempDir(async (dir) => {
    const { ed25519, "rsa-pss": rsa } = await testKeys;
    const path = `${dir}/id`;
    await writeIdentity(path, ed25519.pkcs8, ed25519.identity, { force: false });
    await rejects(
      writeIdentity(path, rsa.pkcs8, rsa.identity, { force: false }),
      hasCode("identity_exists", `cannot write key "${path}": the file already exists`),
    );
    await Deno.remove(path);
    await rejects(
      writeIdentity(path, rsa.pkcs8, rsa.identity, { force: false }),
      hasCode("identity_exists", `cannot write key "${path}.pub": the file already exists`),
    );
    const before = await loadPublicIdentityFile(`${path}.pub`);
    strictEqual(before.identity.fingerprint, ed25519.identity.fingerprint);
    await writeIdentity(path, rsa.pkcs8, rsa.identity, { force: true });
    strictEqual((await loadIdentity(path, { passphrase: noPassphrase })).type, "rsa-pss");
    strictEqual((await loadPublicIdentityFile(`${path}.pub`)).identity.type, "rsa-pss");
  });
});

Deno.test({
  name: "`loadIdentity()` refuses a group- or world-readable private key, as OpenSSH does",
  ignore: !POSIX,
  fn: () =>
    withTempDir(async (dir) => {
      const { identity, pkcs8 } = (await testKeys).ed25519;
      const path = `${dir}/id`;
      await writeIdentity(path, pkcs8, identity, { force: false });
      for (const mode of [0o644, 0o640, 0o604]) {
        await Deno.chmod(path, mode);
        const shown = mode.toString(8).padStart(4, "0");
        await rejects(loadIdentity(path, { passphrase: noPassphrase }), (error: unknown) => {
          hasCode("key_permissions_too_open", `permissions ${shown} for "${path}" are too open`)(
            error,
          );
          eql((error as SecurechatError).hints, [
            `a private key must be readable by you alone: run chmod 600 ${path}`,
          ]);
          strictEqual((error as SecurechatError).exitCode, 1);
          return true;
        });
      }
      await Deno.chmod(path, 0o400);
      strictEqual((await loadIdentity(path, { passphrase: noPassphrase })).comment, "bob");
    }),
});

Deno.test("`loadIdentity()` reports a missing file as no_identity with a keygen hint", async () => {
  await withTempDir(async (dir) => {
    await rejects(loadIdentity(`${dir}/id`, { passphrase: noPassphrase }), (error: unknown) => {
      hasCode("no_identity", `cannot load private key "${dir}/id": no such file`)(error);
      eql((error as SecurechatError).hints, ['run "securechat keygen" first']);
      return true;
    });
  });
});

Deno.test("`loadIdentity()` says bad_passphrase, naming the file, for a wrong passphrase", async () => {
  await withTempDir(async (dir) => {
    const { identity, pkcs8 } = (await testKeys).ed25519;
    const path = `${dir}/id`;
    await writeIdentity(path, pkcs8, identity, { force: false, passphrase: "right" });
    await rejects(
      loadIdentity(path, { passphrase: () => Promise.resolve("wrong") }),
      hasCode(
        "bad_passphrase",
        `cannot decrypt private key "${path}": wrong passphrase or corrupted file`,
      ),
    );
  });
});

Deno.test("`loadIdentity()` refuses public keys, other PEM labels and broken files", async () => {
  await withTempDir(async (dir) => {
    const { identity, pkcs8 } = (await testKeys).ed25519;
    await writeIdentity(`${dir}/id`, pkcs8, identity, { force: false });
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o600 });
      return `${dir}/${name}`;
    };
    const pkcs1 = await write(
      "pkcs1",
      "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    );
    const cases: [string, string, RegExp][] = [
      ["public key", `${dir}/id.pub`, /it is a public key$/],
      ["PKCS#1", pkcs1, /unsupported PEM block "RSA PRIVATE KEY"$/],
      ["not PEM", await write("text", "hello\n"), /not a PEM file/],
      [
        "bad DER",
        await write("der", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        /malformed private key/,
      ],
      ["a folder", dir, /not a regular file$/],
    ];
    if (POSIX) await Deno.chmod(`${dir}/id.pub`, 0o600);
    for (const [name, path, message] of cases) {
      await rejects(loadIdentity(path, { passphrase: noPassphrase }), (error: unknown) => {
        ok(error instanceof SecurechatError, name);
        ok(message.test(error.message), `${name}: ${error.message}`);
        ok(error.message.startsWith(`cannot load `), error.message);
        return true;
      });
    }
  });
});

Deno.test("`loadPublicIdentityFile()` reads .pub files and derives the public part of private keys", async () => {
  await withTempDir(async (dir) => {
    for (const { identity, pkcs8 } of Object.values(await testKeys)) {
      const path = `${dir}/${identity.type}`;
      await writeIdentity(path, pkcs8, identity, { force: false, passphrase: "pw" });
      const fromPub = await loadPublicIdentityFile(`${path}.pub`);
      const fromPrivate = await loadPublicIdentityFile(path, {
        passphrase: () => Promise.resolve("pw"),
      });
      for (const { identity: loaded, comment } of [fromPub, fromPrivate]) {
        strictEqual(loaded.fingerprint, identity.fingerprint);
        strictEqual(comment, identity.comment);
        ok(!("privateKey" in loaded));
      }
      await rejects(loadPublicIdentityFile(path), /cannot load key ".*": it is encrypted$/);
    }
  });
});

Deno.test({
  name: "openssl reads the key files that `writeIdentity()` writes" + NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  fn: () =>
    withTempDir(async (dir) => {
      for (const { identity, pkcs8 } of Object.values(await testKeys)) {
        const path = `${dir}/${identity.type}`;
        await writeIdentity(path, pkcs8, identity, { force: false, passphrase: "pass word" });
        await openssl(["pkey", "-in", path, "-passin", "pass:pass word", "-noout"]);
        await openssl(["pkey", "-pubin", "-in", `${path}.pub`, "-noout"]);
        await rejects(openssl(["pkey", "-in", path, "-passin", "pass:other", "-noout"]));
      }
    }),
});

Deno.test({
  name: "`loadIdentity()` reads keys made by openssl, plain, encrypted and RSA-PSS-only" +
    NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  fn: () =>
    withTempDir(async (dir) => {
      const made: [string, string[]][] = [
        ["ed25519", ["-algorithm", "ed25519"]],
        ["rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]],
        ["rsa-pss-oid", ["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"]],
      ];
      for (const [name, args] of made) {
        const path = `${dir}/${name}`;
        await openssl(["genpkey", ...args, "-out", path]);
        await openssl([
          ...PKCS8_PBES2_ARGS,
          "-in",
          path,
          "-passout",
          "pass:pw",
          "-out",
          `${path}.enc`,
        ]);
        await openssl(["pkey", "-in", path, "-pubout", "-out", `${path}.pub`]);
        if (POSIX) await Deno.chmod(`${path}.enc`, 0o600);
        const plain = await loadIdentity(path, { passphrase: noPassphrase });
        const sealed = await loadIdentity(`${path}.enc`, {
          passphrase: () => Promise.resolve("pw"),
        });
        const pub = await loadPublicIdentityFile(`${path}.pub`);
        strictEqual(sealed.fingerprint, plain.fingerprint, name);
        strictEqual(pub.identity.fingerprint, plain.fingerprint, name);
        ok(await verifyTranscript(pub.identity, MESSAGE, await signTranscript(sealed, MESSAGE)));
        if (name === "rsa-pss-oid") {
          // One key, one fingerprint: the id-RSASSA-PSS SPKI is re-encoded as rsaEncryption.
          const algorithm = new DerReader(plain.spki, "t").sequence("s").algorithmIdentifier("a");
          strictEqual(algorithm.oid, "1.2.840.113549.1.1.1");
        } else {
          strictEqual(await opensslFingerprint(`${path}.pub`), plain.fingerprint, name);
        }
      }
    }),
});
