import { rejects, strictEqual } from "node:assert/strict";
import { SecurechatError, UsageError } from "../../lib/core/errors.ts";
import { newPassphrase, PASSPHRASE_ENV, passphraseSource } from "../../lib/terminal/passphrase.ts";

/** Runs `fn` with SECURECHAT_PASSPHRASE set to `value` (or unset), then restores it. */
async function withEnv(value: string | undefined, fn: () => Promise<void>): Promise<void> {
  const saved = Deno.env.get(PASSPHRASE_ENV);
  if (value === undefined) Deno.env.delete(PASSPHRASE_ENV);
  else Deno.env.set(PASSPHRASE_ENV, value);
  try {
    await fn();
  } finally {
    if (saved === undefined) Deno.env.delete(PASSPHRASE_ENV);
    else Deno.env.set(PASSPHRASE_ENV, saved);
  }
}

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ prefix: "securechat-passphrase-" });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("`passphraseSource()` reads the first line of --passphrase-file, before the environment", async () => {
  await withEnv("from env", async () => {
    for (const text of ["s3cret\n", "s3cret\r\nsecond line\n", "s3cret"]) {
      await withFile(text, async (path) => {
        strictEqual(await passphraseSource({ passphraseFile: path })(), "s3cret");
        strictEqual(await newPassphrase({ passphraseFile: path }), "s3cret");
      });
    }
  });
});

Deno.test("`passphraseSource()` falls back to SECURECHAT_PASSPHRASE", async () => {
  await withEnv("  spaces kept  ", async () => {
    strictEqual(await passphraseSource()(), "  spaces kept  ");
    strictEqual(await newPassphrase(), "  spaces kept  ");
  });
});

Deno.test("`passphraseSource()` reads nothing until it is called", async () => {
  const source = passphraseSource({ passphraseFile: "/nonexistent/securechat/passphrase" });
  await rejects(source(), (error: unknown) => {
    strictEqual((error as SecurechatError).code, "passphrase_file");
    strictEqual(
      (error as Error).message,
      'cannot read passphrase file "/nonexistent/securechat/passphrase": no such file',
    );
    return true;
  });
});

Deno.test("`newPassphrase()` refuses an empty passphrase file", async () => {
  await withFile("\nsecond\n", async (path) => {
    await rejects(newPassphrase({ passphraseFile: path }), SecurechatError);
  });
});

Deno.test({
  name:
    "`newPassphrase()` fails with a UsageError when stdin is not a terminal and no source is set",
  // On a terminal it would prompt, which a test must not do.
  ignore: Deno.stdin.isTerminal(),
  async fn() {
    await withEnv(undefined, async () => {
      await rejects(newPassphrase(), (error: unknown) => {
        strictEqual(error instanceof UsageError, true);
        strictEqual((error as UsageError).exitCode, 2);
        strictEqual((error as UsageError).hints[0]!.includes("--no-passphrase"), true);
        return true;
      });
    });
  },
});
