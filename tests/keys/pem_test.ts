import { deepStrictEqual as eql, strictEqual, throws } from "node:assert/strict";
import { decodePem, encodePem } from "../../lib/keys/pem.ts";
import { HAS_OPENSSL, NEEDS_OPENSSL, openssl } from "../_helpers/openssl.ts";

// A real Ed25519 SubjectPublicKeyInfo (RFC 8410 section 10.1).
const SPKI_PEM = "-----BEGIN PUBLIC KEY-----\n" +
  "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n" +
  "-----END PUBLIC KEY-----\n";

Deno.test("`encodePem()` writes a Comment line, 64-character lines and a final newline", () => {
  const text = encodePem("PRIVATE KEY", new Uint8Array(100).fill(0xab), { comment: "alice@box" });
  const lines = text.split("\n");
  strictEqual(lines[0], "Comment: alice@box");
  strictEqual(lines[1], "-----BEGIN PRIVATE KEY-----");
  eql(lines.slice(2, 5).map((line) => line.length), [64, 64, 8]);
  strictEqual(lines[5], "-----END PRIVATE KEY-----");
  strictEqual(lines[6], "");
  strictEqual(lines.length, 7);
});

Deno.test("`encodePem()` omits the Comment line for an empty comment", () => {
  strictEqual(
    encodePem("PUBLIC KEY", Uint8Array.of(1, 2, 3)),
    "-----BEGIN PUBLIC KEY-----\nAQID\n-----END PUBLIC KEY-----\n",
  );
});

Deno.test("`encodePem()` refuses a comment with a line break", () => {
  throws(() => encodePem("PUBLIC KEY", Uint8Array.of(1), { comment: "a\nb" }), RangeError);
  throws(() => encodePem("PUBLIC KEY", Uint8Array.of(1), { comment: "a\rb" }), RangeError);
});

Deno.test("`decodePem()` round-trips `encodePem()` with its comment", () => {
  const der = crypto.getRandomValues(new Uint8Array(1234));
  const block = decodePem(encodePem("ENCRYPTED PRIVATE KEY", der, { comment: "bob: the builder" }));
  eql(block, { label: "ENCRYPTED PRIVATE KEY", der, comment: "bob: the builder" });
});

Deno.test("`decodePem()` reads the lax form: CRLF, spaces, other text around the block", () => {
  const text = "some notes\r\nComment:   carol  \r\nComment: ignored\r\n" +
    SPKI_PEM.replace(/\n/g, "\r\n").replace("MCow", "MC ow") + "trailing text\n";
  const block = decodePem(text);
  strictEqual(block.label, "PUBLIC KEY");
  strictEqual(block.comment, "carol");
  strictEqual(block.der.length, 44);
});

Deno.test("`decodePem()` rejects malformed files with a SyntaxError", () => {
  const cases: [string, string][] = [
    ["no BEGIN line", "hello\n"],
    ["no END line", SPKI_PEM.replace("-----END PUBLIC KEY-----", "")],
    ["mismatched END label", SPKI_PEM.replace("END PUBLIC", "END PRIVATE")],
    ["bad base64", SPKI_PEM.replace("MCow", "MC*w")],
    ["empty block", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"],
    [
      "RFC 1421 headers",
      "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    ],
  ];
  for (const [name, text] of cases) throws(() => decodePem(text), SyntaxError, name);
});

Deno.test({
  name: "openssl ignores the Comment line before BEGIN" + NEEDS_OPENSSL,
  ignore: !HAS_OPENSSL,
  async fn() {
    const der = decodePem(SPKI_PEM).der;
    const text = encodePem("PUBLIC KEY", der, { comment: "alice@box" });
    const out = await openssl(
      ["pkey", "-pubin", "-outform", "DER"],
      new TextEncoder().encode(text),
    );
    eql(out, der);
  },
});
