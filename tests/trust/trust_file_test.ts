import { match, ok, strictEqual, throws } from "node:assert/strict";
import { SecurechatError } from "../../lib/core/errors.ts";
import { parseFingerprint } from "../../lib/trust/trust_file.ts";
import { fingerprintOf } from "../_helpers/trust_files.ts";

const FP_A = await fingerprintOf("key a");

// --- parseFingerprint -------------------------------------------------------------------------

Deno.test("parseFingerprint() accepts SHA-256 fingerprints in unpadded base64", async () => {
  for (let i = 0; i < 64; i++) {
    const fingerprint = await fingerprintOf(`seed ${i}`);
    strictEqual(parseFingerprint(fingerprint), fingerprint);
  }
});

Deno.test("parseFingerprint() rejects a wrong prefix, length, padding or alphabet", () => {
  const body = FP_A.slice("SHA256:".length);
  const cases: [string, string, RegExp][] = [
    ["no prefix", body, /: it does not start with "SHA256:"$/],
    ["lowercase prefix", `sha256:${body}`, /: it does not start with "SHA256:"$/],
    ["md5 prefix", `MD5:${body}`, /: it does not start with "SHA256:"$/],
    ["empty", "", /^invalid fingerprint "": it does not start with "SHA256:"$/],
    ["padding", `${FP_A}=`, /: remove the "=" padding: expected 43 base64 characters$/],
    ["one short", FP_A.slice(0, -1), /: expected 43 base64 characters after "SHA256:", found 42$/],
    ["one long", `${FP_A}A`, /found 44$/],
    ["prefix only", "SHA256:", /found 0$/],
    ["base64url", `SHA256:-${body.slice(1)}`, /: "-" is not a standard base64 character$/],
    ["non-base64", `SHA256:!${body.slice(1)}`, /: "!" is not a standard base64 character$/],
    ["space inside", `SHA256: ${body.slice(1)}`, /" " is not a standard base64 character$/],
    ["trailing newline", `${FP_A}\n`, /"\\u000a" is not a standard base64 character$/],
    ["leading space", ` ${FP_A}`, /does not start with "SHA256:"$/],
    ["last character has low bits set", `${FP_A.slice(0, -1)}B`, /"B" cannot end a SHA-256/],
  ];
  for (const [name, text, message] of cases) {
    throws(() => parseFingerprint(text), (error: unknown) => {
      ok(error instanceof SecurechatError, name);
      strictEqual(error.code, "bad_fingerprint", name);
      strictEqual(error.exitCode, 2, name);
      match(error.message, /^invalid fingerprint "/, name);
      match(error.message, message, name);
      match(error.hints[0] ?? "", /43 base64 characters/, name);
      return true;
    });
  }
});
