import { deepStrictEqual as eql, match, ok, rejects, strictEqual } from "node:assert/strict";
import { SecurechatError } from "../../lib/core/errors.ts";
import {
  authorizedKeysPath,
  findAuthorizedKey,
  readAuthorizedKeys,
} from "../../lib/trust/authorized_keys.ts";
import { fingerprintOf, isError, withFile, withTempDir } from "../_helpers/trust_files.ts";

const FP_A = await fingerprintOf("key a");
const FP_B = await fingerprintOf("key b");
const FP_C = await fingerprintOf("key c");

// --- authorized_keys --------------------------------------------------------------------------

Deno.test("readAuthorizedKeys() reads fingerprints with their names and line numbers", async () => {
  const content = [
    "\uFEFF# people I talk to",
    "",
    `${FP_A} alice`,
    `  ${FP_B}\tbob@desk   work laptop, added 2024  `,
    "   # indented comment",
    `${FP_C} Zoë\r`,
    `${FP_A} alice-phone`,
  ].join("\n");
  await withFile(content, async (file) => {
    const keys = await readAuthorizedKeys(file);
    eql(keys, [
      { fingerprint: FP_A, name: "alice", line: 3 },
      { fingerprint: FP_B, name: "bob@desk", line: 4 },
      { fingerprint: FP_C, name: "Zoë", line: 6 },
      { fingerprint: FP_A, name: "alice-phone", line: 7 },
    ]);
    strictEqual(findAuthorizedKey(keys, FP_B)?.name, "bob@desk");
    strictEqual(findAuthorizedKey(keys, FP_A)?.name, "alice", "the first entry wins");
    strictEqual(findAuthorizedKey(keys, await fingerprintOf("stranger")), undefined);
  });
});

Deno.test("readAuthorizedKeys() reads an empty file as admitting nobody", async () => {
  await withFile("# nobody yet\n", async (file) => eql(await readAuthorizedKeys(file), []));
});

Deno.test("readAuthorizedKeys() rejects malformed lines with the file and line number", async () => {
  const cases: [string, string, string, RegExp?][] = [
    ["no name", FP_B, `expected "SHA256:<fingerprint> NAME", found no NAME`, /add the name/],
    ["reversed", `bob ${FP_B}`, `expected "SHA256:<fingerprint> NAME"`, /comes first: write "/],
    ["pasted key", "ssh-ed25519 AAAAC3Nza bob", `expected "SHA256:<fingerprint> NAME"`, /not keys/],
    ["garbage", "hello", `expected "SHA256:<fingerprint> NAME"`],
    [
      "bad fingerprint",
      `SHA256:abc= bob`,
      `invalid fingerprint "SHA256:abc=": remove the "=" padding: expected 43 base64 characters`,
    ],
    [
      "long name",
      `${FP_B} ${"n".repeat(65)}`,
      `invalid name "${
        "n".repeat(65)
      }": expected 1 to 64 printable characters, not starting with "#"`,
    ],
    [
      "hash name",
      `${FP_B} #bob`,
      `invalid name "#bob": expected 1 to 64 printable characters, not starting with "#"`,
    ],
    [
      "control in name",
      `${FP_B} b\u0007ob`,
      `invalid name "b\\u0007ob": expected 1 to 64 printable characters, not starting with "#"`,
    ],
  ];
  for (const [name, bad, detail, hint] of cases) {
    await withFile(`# keys\n${FP_A} alice\n${bad}\n`, async (file) => {
      await rejects(readAuthorizedKeys(file), (error: unknown) => {
        ok(error instanceof SecurechatError, name);
        strictEqual(error.code, "bad_authorized_keys", name);
        strictEqual(
          error.message,
          `cannot read authorized keys "${file}": line 3: ${detail}`,
          name,
        );
        strictEqual(
          error.hints.at(-1),
          `each line reads "SHA256:<fingerprint> NAME [comment]"; fix line 3 of "${file}"`,
          name,
        );
        if (hint) match(error.hints[0] ?? "", hint, name);
        return true;
      });
    });
  }
  // 64 characters is the longest name.
  await withFile(`${FP_B} ${"n".repeat(64)}\n`, async (file) => {
    strictEqual((await readAuthorizedKeys(file))[0]?.name.length, 64);
  });
});

Deno.test("readAuthorizedKeys() reports a missing file as authorized_keys_unreadable", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/authorized_keys`;
    await rejects(readAuthorizedKeys(file), (error: unknown) => {
      ok(error instanceof SecurechatError);
      strictEqual(error.code, "authorized_keys_unreadable");
      strictEqual(error.message, `cannot read authorized keys "${file}": it does not exist`);
      match(error.hints[0] ?? "", /securechat fingerprint/);
      return true;
    });
    await rejects(readAuthorizedKeys(dir), isError("authorized_keys_unreadable"));
  });
});

Deno.test("authorizedKeysPath() lives in SECURECHAT_HOME", () => {
  const saved = Deno.env.get("SECURECHAT_HOME");
  try {
    Deno.env.set("SECURECHAT_HOME", "/tmp/securechat-home");
    match(authorizedKeysPath(), /securechat-home[\\/]authorized_keys$/);
  } finally {
    if (saved === undefined) Deno.env.delete("SECURECHAT_HOME");
    else Deno.env.set("SECURECHAT_HOME", saved);
  }
});
