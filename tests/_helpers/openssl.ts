/**
 * Runs the real `openssl` binary, the independent implementation our key files are checked
 * against. Tests that need it are ignored, with the reason in their name, when it is absent.
 *
 * @module
 */

/**
 * True when an `openssl` binary answers `openssl version` as OpenSSL 3 or later. LibreSSL (macOS's
 * /usr/bin/openssl) takes other options and lacks some algorithms the tests use, so it counts as
 * absent rather than failing tests for its differences.
 */
export const HAS_OPENSSL: boolean = await (async () => {
  try {
    const { success, stdout } = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return success && /^OpenSSL ([3-9]|\d\d)\./.test(new TextDecoder().decode(stdout));
  } catch {
    return false;
  }
})();

/** Suffix for the names of tests that need openssl, saying why they were skipped. */
export const NEEDS_OPENSSL: string = HAS_OPENSSL ? "" : " [ignored: OpenSSL 3 binary not found]";

/** `openssl` arguments that encrypt a key as PKCS#8 PBES2: AES-256-CBC, PBKDF2 with HMAC-SHA256. */
export const PKCS8_PBES2_ARGS: readonly string[] = [
  "pkcs8",
  "-topk8",
  "-v2",
  "aes-256-cbc",
  "-v2prf",
  "hmacWithSHA256",
];

/** Runs `openssl args...`, feeding `stdin`; throws with its stderr when it fails. */
export async function openssl(args: string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const output = await child.output();
  if (!output.success) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return output.stdout;
}

/** The fingerprint of a PEM public key file, computed by openssl alone. */
export async function opensslFingerprint(publicKeyPath: string): Promise<string> {
  const der = await openssl(["pkey", "-pubin", "-in", publicKeyPath, "-outform", "DER"]);
  const digest = await openssl(["dgst", "-sha256", "-binary"], der);
  const base64 = btoa(String.fromCharCode(...digest));
  return "SHA256:" + base64.replace(/=+$/, "");
}
