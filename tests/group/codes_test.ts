import { notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concat, sha256, u8, utf8 } from "../../lib/core/bytes.ts";
import { formatVerificationCode } from "../../lib/crypto/key_schedule.ts";
import { epochCode, safetyNumber } from "../../lib/group/codes.ts";

const a = new Uint8Array(32).fill(0xaa);
const b = new Uint8Array(32).fill(0x0b);

Deno.test("`safetyNumber()` is the section 7.4 code of SHA-256 over the label and the sorted ids", async () => {
  const expected = formatVerificationCode(
    (await sha256(concat(utf8("securechat/2 safety number"), u8(0), b, a))).subarray(0, 8),
  );
  strictEqual(await safetyNumber(a, b), expected);
  strictEqual(await safetyNumber(b, a), expected);
  ok(/^\d{4} \d{4} \d{4}$/.test(expected), expected);
  notStrictEqual(await safetyNumber(a, a), expected);
});

Deno.test("`epochCode()` is the section 7.4 code of SHA-256 over its label and the authenticator", async () => {
  const authenticator = new Uint8Array(64).fill(7);
  const expected = formatVerificationCode(
    (await sha256(concat(utf8("securechat/2 epoch code"), u8(0), authenticator))).subarray(0, 8),
  );
  strictEqual(await epochCode(authenticator), expected);
  authenticator[63] = 8;
  notStrictEqual(await epochCode(authenticator), expected);
});
