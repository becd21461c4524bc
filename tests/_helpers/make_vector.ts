// deno-lint-ignore-file no-console
/**
 * Writes tests/vectors/handshake_v1.json and the vector appendix of docs/PROTOCOL.md:
 * `deno run --allow-read --allow-write tests/_helpers/make_vector.ts`. The inputs are fixed
 * expansions of labels; the ML-KEM encapsulation is a real one, recorded. When the vector file
 * exists its recorded inputs are replayed, so adding a value never changes the handshake bytes;
 * `--fresh` draws a new encapsulation.
 *
 * @module
 */

import { toHex, utf8 } from "../../lib/core/bytes.ts";
import { hkdfExpand, hkdfExtract } from "../../lib/crypto/key_schedule.ts";
import { renderVectorAppendix, VECTOR_BEGIN, VECTOR_END } from "./vector_doc.ts";
import { type HandshakeVector, runVectorHandshake } from "./vector.ts";

async function fixed(label: string, length: number): Promise<string> {
  const prk = await hkdfExtract(utf8("securechat test vector"), utf8(label));
  return toHex(await hkdfExpand(prk, new Uint8Array(0), length));
}

const root = new URL("../../", import.meta.url);
const vectorUrl = new URL("tests/vectors/handshake_v1.json", root);
const recorded: HandshakeVector | undefined = Deno.args.includes("--fresh")
  ? undefined
  : await Deno.readTextFile(vectorUrl).then(JSON.parse, () => undefined);
const vector = await runVectorHandshake(
  recorded?.inputs ?? {
    client_mlkem_seed: await fixed("client ml-kem seed", 64),
    client_x25519_private: await fixed("client x25519 private", 32),
    client_random: await fixed("client random", 32),
    server_x25519_private: await fixed("server x25519 private", 32),
    server_random: await fixed("server random", 32),
    client_identity_ed25519_seed: await fixed("client identity", 32),
    server_identity_ed25519_seed: await fixed("server identity", 32),
    client_name: "alice",
    server_name: "bob",
  },
);
await Deno.writeTextFile(vectorUrl, JSON.stringify(vector, null, 2) + "\n");
const specUrl = new URL("docs/PROTOCOL.md", root);
const spec = await Deno.readTextFile(specUrl);
const begin = spec.indexOf(VECTOR_BEGIN);
const end = spec.indexOf(VECTOR_END);
const appendix = renderVectorAppendix(vector);
const updated = begin >= 0 && end > begin
  ? spec.slice(0, begin) + appendix + spec.slice(end + VECTOR_END.length)
  : spec.trimEnd() + "\n\n" + appendix + "\n";
await Deno.writeTextFile(specUrl, updated);
console.log("wrote tests/vectors/handshake_v1.json and the PROTOCOL.md appendix");
