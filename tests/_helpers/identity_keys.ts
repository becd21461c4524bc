/**
 * Key fixtures shared by identity_test.ts and identity_file_test.ts.
 *
 * @module
 */

import { utf8 } from "../../lib/core/bytes.ts";
import { generateIdentity, type Identity } from "../../lib/keys/identity.ts";

/** What the tests sign: shaped like the transcript a handshake signs. */
export const MESSAGE = utf8("securechat/1 server signature\0transcript hash goes here");

/** One key of each type, made once when first imported: RSA 3072 keygen costs about a second. */
export const testKeys: Promise<
  Record<"rsa-pss" | "ed25519", { identity: Identity; pkcs8: Uint8Array }>
> = (async () => ({
  "rsa-pss": await generateIdentity({ type: "rsa-pss", comment: "alice@laptop" }),
  "ed25519": await generateIdentity({ type: "ed25519", comment: "bob" }),
}))();
