/**
 * Wycheproof `aes_gcm_test.json` through lib/crypto/aead.ts `Aes256Gcm`, the AES-256-GCM every record of
 * lib/protocol/record_protection.ts is sealed and opened with.
 *
 * Run: the groups with ivSize 96, tagSize 128 and keySize 256, the one shape records use
 * (docs/PROTOCOL.md 7.3 derives 32-byte keys, 8.1 builds 12-byte nonces).
 * - valid: `seal()` gives ct || tag and `open()` gives msg back.
 * - invalid: `open()` throws `AuthenticationError` code "bad_record_mac".
 * - acceptable: rejected. The file has none; a record layer that fails closed refuses any input
 *   that is not plainly valid, and a new acceptable case would fail here until someone decides.
 * Both of Aes256Gcm's paths run every case: WebCrypto, and node:crypto for small inputs (the room
 * relay's, after useSynchronousCipherForSmallInputs(); every message here is small enough for it).
 * Skipped: the 128- and 192-bit-key groups and every IV size but 96 bits. `Aes256Gcm` refuses
 * those parameters with `RangeError` by design (no fallback to a weaker shape), which is checked
 * for every skipped case instead.
 */

import { deepStrictEqual as eql, ok, rejects } from "node:assert/strict";
import {
  Aes256Gcm,
  SMALL_INPUT_LIMIT,
  useSynchronousCipherForSmallInputs,
} from "../../lib/crypto/aead.ts";
import { fromHex, toHex } from "../../lib/core/bytes.ts";
import { AuthenticationError } from "../../lib/core/errors.ts";
import {
  type AeadCase,
  type AeadGroup,
  loadWycheproofGroups,
  type Outcome,
  rejection,
  WycheproofTally,
} from "../_helpers/wycheproof.ts";

const FILE = "aes_gcm_test.json";
const groups = await loadWycheproofGroups<AeadGroup>(FILE);

async function sealOutcome(v: AeadCase): Promise<Outcome> {
  const aead = await Aes256Gcm.create(fromHex(v.key));
  if (aead.synchronousInputLimit !== expectedLimit) return { unexpected: "wrong AES-GCM path" };
  const sealed = toHex(await aead.seal(fromHex(v.iv), fromHex(v.msg), fromHex(v.aad)));
  if (sealed !== v.ct + v.tag) return { unexpected: `seal() gave ${sealed}` };
  const opened = toHex(await aead.open(fromHex(v.iv), fromHex(v.ct + v.tag), fromHex(v.aad)));
  return opened === v.msg ? "accepted" : { unexpected: `open() gave ${opened}` };
}

async function openOutcome(v: AeadCase): Promise<Outcome> {
  const aead = await Aes256Gcm.create(fromHex(v.key));
  if (aead.synchronousInputLimit !== expectedLimit) return { unexpected: "wrong AES-GCM path" };
  return await rejection(
    () => aead.open(fromHex(v.iv), fromHex(v.ct + v.tag), fromHex(v.aad)),
    AuthenticationError,
    "bad_record_mac",
  );
}

const PATHS = [
  { name: "WebCrypto", synchronous: false },
  { name: "node:crypto for small inputs", synchronous: true },
];

/** The path the running test expects its keys on (as `Aes256Gcm.synchronousInputLimit`). */
let expectedLimit = 0;

/** Runs `body` with keys created on the given path, then restores the default (WebCrypto). */
async function onPath(synchronous: boolean, body: () => Promise<void>): Promise<void> {
  await useSynchronousCipherForSmallInputs(synchronous);
  expectedLimit = synchronous ? SMALL_INPUT_LIMIT : 0;
  try {
    await body();
  } finally {
    await useSynchronousCipherForSmallInputs(false);
    expectedLimit = 0;
  }
}

for (const path of PATHS) {
  Deno.test({
    name:
      `Aes256Gcm seal() and open() (${path.name}) match every Wycheproof AES-GCM case with a 256-bit key, 96-bit IV and 128-bit tag`,
    fn: () =>
      onPath(path.synchronous, async () => {
        const tally = new WycheproofTally(FILE, groups, { acceptable: "rejected" });
        for (const group of groups) {
          const ours = group.keySize === 256 && group.ivSize === 96 && group.tagSize === 128;
          for (const v of group.tests) {
            if (!ours) {
              // Not our parameters: the wrapper must refuse them rather than fall back.
              if (group.keySize !== 256) {
                await rejects(Aes256Gcm.create(fromHex(v.key)), RangeError, `tcId ${v.tcId}`);
                tally.skip(`${group.keySize}-bit key, refused by Aes256Gcm`);
              } else {
                const aead = await Aes256Gcm.create(fromHex(v.key));
                await rejects(
                  aead.open(fromHex(v.iv), fromHex(v.ct + v.tag), fromHex(v.aad)),
                  RangeError,
                  `tcId ${v.tcId}`,
                );
                tally.skip("IV not 96 bits, refused by Aes256Gcm");
              }
              continue;
            }
            // Else this path would not be the one under test.
            if (path.synchronous) {
              ok(v.msg.length / 2 <= SMALL_INPUT_LIMIT, `tcId ${v.tcId} too big`);
            }
            tally.record(v, v.result === "valid" ? await sealOutcome(v) : await openOutcome(v));
          }
        }
        tally.finish();
      }),
  });

  Deno.test({
    name:
      `Aes256Gcm.open() (${path.name}) rejects a valid Wycheproof case with any one of its 128 tag bits flipped`,
    fn: () =>
      onPath(path.synchronous, async () => {
        // Our own corollary of the file's valid cases: each of the 128 tag bits is checked.
        const group = groups.find((g) => g.keySize === 256 && g.ivSize === 96)!;
        const v = group.tests.find((t) => t.result === "valid" && t.msg.length > 0)!;
        const aead = await Aes256Gcm.create(fromHex(v.key));
        eql(aead.synchronousInputLimit, expectedLimit, "the path under test");
        const sealed = fromHex(v.ct + v.tag);
        eql(toHex(await aead.open(fromHex(v.iv), sealed, fromHex(v.aad))), v.msg);
        for (let bit = 0; bit < 128; bit++) {
          const bad = sealed.slice();
          bad[sealed.length - 16 + (bit >> 3)]! ^= 1 << (bit & 7);
          await rejects(aead.open(fromHex(v.iv), bad, fromHex(v.aad)), AuthenticationError);
        }
      }),
  });
}
