// deno-lint-ignore-file camelcase -- vector fields use the spec's snake_case value names
/**
 * The PROTOCOL.md test vector replays byte for byte, and the spec prints exactly the data file.
 */

import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { fromHex } from "../../lib/core/bytes.ts";
import { SUITE_IDS } from "../../lib/crypto/kex.ts";
import { decodeClientHello, decodeServerHello } from "../../lib/protocol/messages.ts";
import { renderVectorAppendix } from "../_helpers/vector_doc.ts";
import {
  ed25519Identity,
  type HandshakeVector,
  runVectorHandshake,
  VECTOR_SETTINGS,
} from "../_helpers/vector.ts";

const vector: HandshakeVector = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/handshake_v1.json", import.meta.url)),
);

Deno.test("handshake vector: replaying the inputs reproduces every message and value", async () => {
  const replay = await runVectorHandshake(vector.inputs);
  deepStrictEqual(replay.messages, vector.messages);
  deepStrictEqual(replay.intermediates, vector.intermediates);
  deepStrictEqual(replay.records, vector.records);
  deepStrictEqual(replay, vector);
});

Deno.test("handshake vector: the initiator's real ML-KEM decapsulation yields the recorded key", () => {
  const shared = vector.intermediates.client_shared_secret!;
  strictEqual(shared.length, 128);
  strictEqual(shared.slice(0, 64), vector.inputs.mlkem_shared_key);
  strictEqual(vector.intermediates.server_shared_secret, shared);
});

Deno.test("handshake vector: a different input changes the transcript and every key", async () => {
  const changed = { ...vector.inputs, server_random: "00".repeat(32) };
  const replay = await runVectorHandshake(changed);
  notStrictEqual(replay.intermediates.th_hello, vector.intermediates.th_hello);
  notStrictEqual(replay.intermediates.c_ap_traffic, vector.intermediates.c_ap_traffic);
  notStrictEqual(
    replay.records.initiator_to_responder_seq0,
    vector.records.initiator_to_responder_seq0,
  );
});

Deno.test("handshake vector: docs/PROTOCOL.md prints the vector file exactly", async () => {
  const spec = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
  ok(spec.includes(renderVectorAppendix(vector)), "regenerate with tests/_helpers/make_vector.ts");
});

Deno.test("handshake vector: the listed settings are what the hello bytes carry", () => {
  const settings = vector.settings;
  deepStrictEqual(settings, VECTOR_SETTINGS);
  // MAGIC (12), then the client_hello frame header (5), then its body.
  const clientHello = decodeClientHello(
    fromHex(vector.messages.client_magic_and_hello!).subarray(17),
  );
  deepStrictEqual(clientHello.versions, settings.versions);
  strictEqual(clientHello.maxRecordPlaintext, settings.initiator_max_record_plaintext);
  deepStrictEqual(clientHello.shares.map((s) => s.suite), settings.initiator_suites);
  const serverHello = decodeServerHello(fromHex(vector.messages.server_hello_frame!).subarray(5));
  strictEqual(serverHello.maxRecordPlaintext, settings.responder_max_record_plaintext);
  strictEqual(serverHello.version, settings.versions[0]);
  // The responder's first preference the initiator offered a share for (section 5.2).
  const chosen = settings.responder_suites.find((s) => settings.initiator_suites.includes(s));
  strictEqual(serverHello.suite, chosen);
  strictEqual(SUITE_IDS[serverHello.suite], 0x01);
  strictEqual(vector.suite, chosen);
  // Section 4.5: the record suites, chosen the same way.
  deepStrictEqual(clientHello.recordSuites, settings.initiator_record_suites);
  const recordSuite = settings.responder_record_suites.find((s) =>
    settings.initiator_record_suites.includes(s)
  );
  strictEqual(serverHello.recordSuite, recordSuite);
  strictEqual(vector.record_suite, recordSuite);
});

Deno.test("handshake vector: the first application record is ChaCha20-Poly1305 of section 8.1 under the listed key and IV", async () => {
  // Built from the spec's formula with node:crypto directly, not through lib/protocol.
  const { createDecipheriv } = await import("node:crypto");
  const frame = fromHex(vector.records.initiator_to_responder_seq0!);
  const key = fromHex(vector.intermediates.c_ap_traffic_key!);
  const nonce = fromHex(vector.intermediates.c_ap_traffic_iv!); // sequence 0: IV XOR 0
  const header = frame.subarray(0, 5);
  const sealed = frame.subarray(5);
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  decipher.setAAD(header, { plaintextLength: sealed.length - 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const plaintext = new Uint8Array([
    ...decipher.update(sealed.subarray(0, sealed.length - 16)),
    ...decipher.final(),
  ]);
  strictEqual(plaintext[0], 0x17, "content type application_data");
  strictEqual(
    new TextDecoder().decode(plaintext.subarray(1)),
    vector.settings.initiator_record_plaintext,
  );
});

Deno.test("handshake vector: a fingerprint is SHA256: and unpadded standard base64 of SHA-256(SPKI DER)", async () => {
  // Computed here with WebCrypto and btoa alone, not with lib/keys/identity.ts.
  for (
    const [seed, name, expected] of [
      [
        vector.inputs.client_identity_ed25519_seed,
        "alice",
        vector.messages.client_identity_fingerprint,
      ],
      [
        vector.inputs.server_identity_ed25519_seed,
        "bob",
        vector.messages.server_identity_fingerprint,
      ],
    ]
  ) {
    const { spki } = await ed25519Identity(fromHex(seed!), name!);
    strictEqual(spki.length, 44, "an Ed25519 SPKI is 44 bytes of DER");
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", spki as Uint8Array<ArrayBuffer>),
    );
    const base64 = btoa(String.fromCharCode(...digest));
    strictEqual(base64.length, 44);
    ok(base64.endsWith("="));
    strictEqual(expected, "SHA256:" + base64.slice(0, 43));
  }
  // Standard base64, not base64url: these two use both '+' and '/'.
  ok(
    /[+/]/.test(
      vector.messages.client_identity_fingerprint! + vector.messages.server_identity_fingerprint!,
    ),
  );
});
