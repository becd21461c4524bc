/**
 * Wycheproof `ed25519_test.json` through lib/keys/identity.ts: `importPublicIdentity()` on the group's
 * `publicKeyDer` (an RFC 8410 SubjectPublicKeyInfo, what a peer sends), then `verifyTranscript()`,
 * the check every Ed25519 identity signature goes through (docs/PROTOCOL.md 5.3, pure Ed25519).
 *
 * - valid: `importPublicIdentity()` accepts the key, keeps its SPKI byte for byte, and
 *   `verifyTranscript()` returns true.
 * - invalid: `verifyTranscript()` returns false (it returns a boolean; lib/protocol/handshake.ts turns
 *   false into `AuthenticationError`). This covers RFC 8032 section 5.1.7's checks: S >= L
 *   (malleability), non-canonical or altered R, signatures of the wrong length, zero values.
 *   WebCrypto (Deno 2.9) already does all of them: no check had to be added in lib/.
 * - acceptable: rejected. The file has none; signatures must be non-malleable, so anything not
 *   plainly valid fails closed.
 */

import { strictEqual } from "node:assert/strict";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import { importPublicIdentity, verifyTranscript } from "../../lib/keys/identity.ts";
import {
  loadWycheproofGroups,
  type WycheproofCase,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

interface SignatureCase extends WycheproofCase {
  msg: string;
  sig: string;
}

interface EddsaGroup {
  publicKey: { curve: string; pk: string };
  publicKeyDer: string;
  tests: SignatureCase[];
}

const FILE = "ed25519_test.json";
const groups = await loadWycheproofGroups<EddsaGroup>(FILE);

Deno.test({
  name:
    "importPublicIdentity() and verifyTranscript() accept every valid and refuse every invalid Wycheproof Ed25519 signature",
  async fn() {
    const tally = new WycheproofTally(FILE, groups, { acceptable: "rejected" });
    for (const group of groups) {
      strictEqual(group.publicKey.curve, "edwards25519");
      const peer = await importPublicIdentity(fromHex(group.publicKeyDer));
      strictEqual(peer.type, "ed25519");
      strictEqual(toHex(peer.spki), group.publicKeyDer, "canonical SPKI");
      strictEqual(toHex(peer.spki.subarray(-32)), group.publicKey.pk);
      for (const v of group.tests) {
        const verified = await verifyTranscript(peer, fromHex(v.msg), fromHex(v.sig));
        tally.record(v, verified ? "accepted" : "rejected");
      }
    }
    tally.finish();
  },
});
