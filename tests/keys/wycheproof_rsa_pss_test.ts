/**
 * Wycheproof `rsa_pss_2048_sha256_mgf1_32_test.json` and `rsa_pss_3072_sha256_mgf1_32_test.json`
 * through lib/keys/identity.ts: `importPublicIdentity()` on the group's key, then `verifyTranscript()`,
 * the check every peer's identity signature goes through (docs/PROTOCOL.md 5.3: RSA-PSS,
 * SHA-256, MGF1-SHA-256, salt 32).
 *
 * The group's key comes as `publicKeyDer`, an `rsaEncryption` SubjectPublicKeyInfo: exactly what
 * a peer sends. `importPublicIdentity()` must accept it, keep it byte for byte as the canonical
 * SPKI, and rebuild it from the group's `publicKey` modulus and exponent.
 * - valid: `verifyTranscript()` returns true.
 * - invalid: `verifyTranscript()` returns false (it returns a boolean; lib/protocol/handshake.ts turns false
 *   into `AuthenticationError`). This covers other salt lengths, PKCS #1 v1.5 signatures, and
 *   signatures of the wrong length or not reduced mod n.
 * - acceptable: rejected. The files have none; an identity check fails closed on anything that is
 *   not plainly valid.
 * A group whose parameters are not ours (hash, MGF, salt length) would be skipped; there is none.
 */

import { ok, strictEqual } from "node:assert/strict";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import {
  encodeBitString,
  encodeInteger,
  encodeNull,
  encodeOid,
  encodeSequence,
} from "../../lib/keys/der.ts";
import { importPublicIdentity, verifyTranscript } from "../../lib/keys/identity.ts";
import { KEY_OID } from "../../lib/keys/spki.ts";
import {
  loadWycheproofGroups,
  type WycheproofCase,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

interface SignatureCase extends WycheproofCase {
  msg: string;
  sig: string;
}

interface RsaPssGroup {
  keySize: number;
  sha: string;
  mgf: string;
  mgfSha: string;
  sLen: number;
  publicKey: { modulus: string; publicExponent: string };
  publicKeyDer: string;
  tests: SignatureCase[];
}

/** RFC 8017 appendix A.1.1 inside an RFC 5280 SPKI, built from the group's n and e. */
function spkiFromModulus(group: RsaPssGroup): string {
  const strip = (hex: string) => fromHex(hex.replace(/^(00)+/, ""));
  return toHex(encodeSequence(
    encodeSequence(encodeOid(KEY_OID.rsaEncryption), encodeNull()),
    encodeBitString(encodeSequence(
      encodeInteger(strip(group.publicKey.modulus)),
      encodeInteger(strip(group.publicKey.publicExponent)),
    )),
  ));
}

for (
  const file of ["rsa_pss_2048_sha256_mgf1_32_test.json", "rsa_pss_3072_sha256_mgf1_32_test.json"]
) {
  const groups = await loadWycheproofGroups<RsaPssGroup>(file);
  Deno.test({
    name:
      `importPublicIdentity() and verifyTranscript() accept every valid and refuse every invalid signature of ${file}`,
    async fn() {
      const tally = new WycheproofTally(file, groups, { acceptable: "rejected" });
      for (const group of groups) {
        const ours = group.sha === "SHA-256" && group.mgf === "MGF1" &&
          group.mgfSha === "SHA-256" && group.sLen === 32;
        if (!ours) {
          tally.skip("parameters other than SHA-256, MGF1-SHA-256, salt 32", group.tests.length);
          continue;
        }
        strictEqual(spkiFromModulus(group), group.publicKeyDer, "publicKeyDer is n and e");
        const peer = await importPublicIdentity(fromHex(group.publicKeyDer));
        strictEqual(peer.type, "rsa-pss");
        strictEqual(peer.bits, group.keySize);
        strictEqual(toHex(peer.spki), group.publicKeyDer, "canonical SPKI");
        for (const v of group.tests) {
          const verified = await verifyTranscript(peer, fromHex(v.msg), fromHex(v.sig));
          tally.record(v, verified ? "accepted" : "rejected");
        }
      }
      ok(groups.length > 0);
      tally.finish();
    },
  });
}
