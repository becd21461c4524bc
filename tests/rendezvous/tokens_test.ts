/**
 * The tokens of PROTOCOL.md 15.3, checked against the formula computed here with WebCrypto from
 * the spec's text, and the room names they accept.
 */

import { deepStrictEqual, notDeepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { UsageError } from "../../lib/core/errors.ts";
import { generateIdentity } from "../../lib/keys/identity.ts";
import { rendezvousToken, roomToken } from "../../lib/rendezvous/tokens.ts";

async function specHash(label: string, value: Uint8Array): Promise<Uint8Array> {
  const input = new Uint8Array([...new TextEncoder().encode(label), 0x00, ...value]);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
}

Deno.test('rendezvousToken() is SHA-256("securechat/2 rendezvous" || 0x00 || the author id)', async () => {
  const { identity } = await generateIdentity({ type: "ed25519", comment: "listener" });
  const author = new Uint8Array(
    await crypto.subtle.digest("SHA-256", identity.spki as BufferSource),
  );
  const token = await rendezvousToken(identity.fingerprint);
  strictEqual(token.length, 32);
  deepStrictEqual(token, await specHash("securechat/2 rendezvous", author));
});

Deno.test("rendezvousToken() of a fixed fingerprint matches the spec's formula", async () => {
  // The fingerprint of the handshake vector's responder (PROTOCOL.md Appendix A).
  const fingerprint = "SHA256:oD5v2FWGmkb/AMsumOASMnFhuXW5PycFk0ZeyxYVP+E";
  const author = Uint8Array.from(
    atob("oD5v2FWGmkb/AMsumOASMnFhuXW5PycFk0ZeyxYVP+E="),
    (c) => c.charCodeAt(0),
  );
  deepStrictEqual(
    await rendezvousToken(fingerprint),
    await specHash("securechat/2 rendezvous", author),
  );
});

Deno.test('roomToken() is SHA-256("securechat/2 room" || 0x00 || the name as UTF-8)', async () => {
  for (const name of ["a", "book club", "Café ☕", "x".repeat(64), "é".repeat(32)]) {
    deepStrictEqual(
      await roomToken(name),
      await specHash("securechat/2 room", new TextEncoder().encode(name)),
    );
  }
  notDeepStrictEqual(await roomToken("room"), await roomToken("Room"));
});

Deno.test("a room and a listener never share a token: the labels differ", async () => {
  const bytes = new Uint8Array(32).fill(7);
  notDeepStrictEqual(
    await specHash("securechat/2 room", bytes),
    await specHash("securechat/2 rendezvous", bytes),
  );
});

Deno.test("roomToken() refuses an empty, long or unsafe name with a usage error", async () => {
  for (
    const name of ["", "x".repeat(65), "é".repeat(33), "a\nb", "tab\there", "\u202eevil", "\ud800"]
  ) {
    await rejects(roomToken(name), UsageError, JSON.stringify(name));
  }
});

Deno.test("rendezvousToken() refuses what is not a fingerprint with a usage error", async () => {
  for (
    const text of ["", "SHA256:", "SHA256:abc", "MD5:" + "A".repeat(43), "SHA256:" + "A".repeat(44)]
  ) {
    await rejects(rendezvousToken(text), UsageError, JSON.stringify(text));
  }
});
