/**
 * Key handling: private key material and passphrases never appear in anything securechat prints,
 * whether things go right or wrong.
 */

import { match, ok, strictEqual } from "node:assert/strict";
import { runCli } from "../_helpers/cli.ts";
import { dialOnce, makePeer, startListener } from "../_helpers/peers.ts";

const PASSPHRASE = "correct horse battery staple 7731";

/** The base64 body lines of a PEM file (what a leak would show). */
function pemBody(pem: string): string[] {
  return pem.split("\n").filter((line) => /^[A-Za-z0-9+/=]{32,}$/.test(line));
}

function assertNoSecrets(output: string, secrets: string[], where: string) {
  ok(!/PRIVATE KEY/.test(output), `${where} printed a private key header`);
  for (const secret of secrets) ok(!output.includes(secret), `${where} printed a secret`);
}

Deno.test("keygen, listen, dial and their errors never print key material or passphrases", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-secrets-" });
  try {
    const env = { SECURECHAT_HOME: `${root}/carol`, SECURECHAT_PASSPHRASE: PASSPHRASE };
    const made = await runCli(["keygen", "--type", "ed25519", "--comment", "carol"], { env });
    strictEqual(made.code, 0, made.stderr);
    const secrets = [PASSPHRASE, ...pemBody(await Deno.readTextFile(`${root}/carol/id`))];
    ok(secrets.length > 1);
    assertNoSecrets(made.stdout + made.stderr, secrets, "keygen");

    // A wrong passphrase: the error names the file, never the passphrase tried.
    const wrong = await runCli(["listen", "--port", "0", "--pipe"], {
      env: { ...env, SECURECHAT_PASSPHRASE: `${PASSPHRASE} typo` },
    });
    strictEqual(wrong.code, 1);
    match(wrong.stderr, /wrong passphrase/);
    assertNoSecrets(wrong.stdout + wrong.stderr, [...secrets, `${PASSPHRASE} typo`], "error");

    // A whole session, with an unencrypted dialer key as well.
    const alice = await makePeer(root, "alice");
    const aliceSecrets = pemBody(await Deno.readTextFile(`${alice.home}/id`));
    const carol = { name: "carol", home: `${root}/carol`, fingerprint: "", env };
    const listener = await startListener(carol);
    await listener.closeStdin();
    const dial = await dialOnce(alice, listener.port, "hello\n");
    const l = await listener.finished();
    strictEqual(dial.code, 0, dial.stderr);
    const all = dial.stdout + dial.stderr + new TextDecoder().decode(l.stdout) + l.stderr;
    assertNoSecrets(all, [...secrets, ...aliceSecrets], "session");

    // fingerprint of the private key file prints the fingerprint only.
    const print = await runCli(["fingerprint", `${root}/carol/id`], { env });
    strictEqual(print.code, 0, print.stderr);
    match(print.stdout, /^SHA256:\S+ carol\n$/);
    assertNoSecrets(print.stdout + print.stderr, secrets, "fingerprint");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
