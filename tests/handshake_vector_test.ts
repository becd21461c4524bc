// deno-lint-ignore-file camelcase -- vector fields use the spec's snake_case value names
/**
 * The PROTOCOL.md test vector replays byte for byte, and the spec prints exactly the data file.
 */

import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import { renderVectorAppendix } from "./_helpers/vector_doc.ts";
import { type HandshakeVector, runVectorHandshake } from "./_helpers/vector.ts";

const vector: HandshakeVector = JSON.parse(
  await Deno.readTextFile(new URL("./vectors/handshake_v1.json", import.meta.url)),
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
  const spec = await Deno.readTextFile(new URL("../docs/PROTOCOL.md", import.meta.url));
  ok(spec.includes(renderVectorAppendix(vector)), "regenerate with tests/_helpers/make_vector.ts");
});
