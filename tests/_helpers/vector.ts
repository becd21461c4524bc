// deno-lint-ignore-file camelcase -- vector fields use the spec's snake_case value names
/**
 * Runs one complete handshake with injected inputs and records every message and intermediate
 * value (PROTOCOL.md section 10). `make_vector.ts` uses it to write the vector once;
 * `handshake_vector_test.ts` uses it to replay the vector and compare byte for byte.
 *
 * @module
 */

import { concat, fromHex, toHex } from "../../lib/core/bytes.ts";
import { type Frame, FRAME_HEADER_LENGTH, MAGIC } from "../../lib/protocol/frame.ts";
import { InitiatorHandshake } from "../../lib/protocol/handshake_initiator.ts";
import { ResponderHandshake } from "../../lib/protocol/handshake_responder.ts";
import { fingerprintOf, type Identity } from "../../lib/keys/identity.ts";
import type { RecordedEncapsulation, SuiteName } from "../../lib/crypto/kex.ts";
import { trafficKeys } from "../../lib/crypto/key_schedule.ts";
import type { RecordSuiteName } from "../../lib/crypto/record_suites.ts";
import { SUPPORTED_VERSIONS } from "../../lib/protocol/messages.ts";
import { CONTENT_TYPE, type RecordEvent, RecordLayer } from "../../lib/protocol/record.ts";

/** Inputs of the vector, hex-encoded. */
export interface VectorInputs {
  client_mlkem_seed: string;
  client_x25519_private: string;
  client_random: string;
  server_x25519_private: string;
  server_random: string;
  client_identity_ed25519_seed: string;
  server_identity_ed25519_seed: string;
  client_name: string;
  server_name: string;
  mlkem_ciphertext?: string;
  mlkem_shared_key?: string;
}

/**
 * How both sides are configured: everything besides the random draws that shapes the bytes, so
 * that an implementation can rebuild the hellos without reading these values out of the hex.
 */
export interface VectorSettings {
  /** The ClientHello's versions, highest first. */
  versions: number[];
  /** The initiator's shares, in its order of preference: one share only. */
  initiator_suites: SuiteName[];
  /** The responder's preference list (section 5.2). */
  responder_suites: SuiteName[];
  /** The ClientHello's record suites, in the initiator's order (section 4.5). */
  initiator_record_suites: RecordSuiteName[];
  /** The responder's record suite preference (section 4.5). */
  responder_record_suites: RecordSuiteName[];
  /** max_record_plaintext in each hello. */
  initiator_max_record_plaintext: number;
  responder_max_record_plaintext: number;
  /** The application data each side seals at sequence number 0 (UTF-8). */
  initiator_record_plaintext: string;
  responder_record_plaintext: string;
}

/** The settings of the vector (see VectorSettings). */
export const VECTOR_SETTINGS: VectorSettings = {
  versions: [...SUPPORTED_VERSIONS],
  initiator_suites: ["x25519-mlkem768"],
  responder_suites: ["x25519-mlkem768", "x25519", "ffdhe3072"],
  initiator_record_suites: ["chacha20-poly1305", "aes-256-gcm"],
  responder_record_suites: ["chacha20-poly1305", "aes-256-gcm"],
  initiator_max_record_plaintext: 16384,
  responder_max_record_plaintext: 16384,
  initiator_record_plaintext: "hello from the initiator",
  responder_record_plaintext: "hello from the responder",
};

/** The whole vector file. */
export interface HandshakeVector {
  description: string;
  suite: string;
  record_suite: string;
  max_record_plaintext: number;
  settings: VectorSettings;
  inputs: VectorInputs;
  messages: Record<string, string>;
  intermediates: Record<string, string>;
  records: Record<string, string>;
}

const ED25519_PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");

/** An Ed25519 identity from a 32-byte seed (RFC 8410 PKCS#8). */
export async function ed25519Identity(seed: Uint8Array, comment: string): Promise<Identity> {
  const privateKey = await crypto.subtle.importKey(
    "pkcs8",
    concat(ED25519_PKCS8_PREFIX, seed) as Uint8Array<ArrayBuffer>,
    { name: "Ed25519" },
    true,
    ["sign"],
  );
  // deno-lint-ignore no-explicit-any
  const publicKey: CryptoKey = await (crypto.subtle as any).getPublicKey(privateKey, ["verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
  return {
    type: "ed25519",
    privateKey,
    publicKey,
    spki,
    fingerprint: await fingerprintOf(spki),
    comment,
  };
}

/** Hands out injected random values in order, and fails loudly on any unplanned draw. */
function queue(values: Uint8Array[]): (length: number) => Uint8Array {
  const pending = [...values];
  return (length) => {
    const next = pending.shift();
    if (next === undefined || next.length !== length) {
      throw new Error(`unexpected random draw of ${length} bytes`);
    }
    return next.slice();
  };
}

/** Splits a flight (optionally starting with MAGIC) into frames. */
export function splitFrames(bytes: Uint8Array, withMagic: boolean): Frame[] {
  let offset = withMagic ? MAGIC.length : 0;
  const frames: Frame[] = [];
  while (offset < bytes.length) {
    const header = bytes.subarray(offset, offset + FRAME_HEADER_LENGTH);
    const length = new DataView(header.buffer, header.byteOffset, 5).getUint32(1);
    const body = bytes.subarray(
      offset + FRAME_HEADER_LENGTH,
      offset + FRAME_HEADER_LENGTH + length,
    );
    frames.push({ type: header[0]!, header: header.slice(), body: body.slice() });
    offset += FRAME_HEADER_LENGTH + length;
  }
  return frames;
}

/**
 * Runs the handshake with `inputs`. Without a recorded encapsulation, it encapsulates for real
 * and records the result (only when making the vector).
 */
export async function runVectorHandshake(inputs: VectorInputs): Promise<HandshakeVector> {
  const intermediates: Record<string, string> = {};
  const recordSecret = (side: string) => (name: string, value: Uint8Array) => {
    const key = name.endsWith("_finished") || name.startsWith("c_") || name.startsWith("s_") ||
        name === "th_hello" || name === "th_final" || name === "handshake_secret" ||
        name === "master_secret" || name === "verification_code"
      ? name
      : `${side}_${name}`;
    const hex = toHex(value);
    if (intermediates[key] !== undefined && intermediates[key] !== hex) {
      throw new Error(`the two sides disagree on ${key}`);
    }
    intermediates[key] = hex;
  };
  const alice = await ed25519Identity(
    fromHex(inputs.client_identity_ed25519_seed),
    inputs.client_name,
  );
  const bob = await ed25519Identity(
    fromHex(inputs.server_identity_ed25519_seed),
    inputs.server_name,
  );
  const client = new InitiatorHandshake({
    identity: alice,
    suites: VECTOR_SETTINGS.initiator_suites,
    recordSuites: VECTOR_SETTINGS.initiator_record_suites,
    maxRecordPlaintext: VECTOR_SETTINGS.initiator_max_record_plaintext,
    random: queue([
      fromHex(inputs.client_mlkem_seed),
      fromHex(inputs.client_x25519_private),
      fromHex(inputs.client_random),
    ]),
    onSecret: recordSecret("client"),
  });
  const clientHello = await client.writeClientHello();
  const [helloFrame] = splitFrames(clientHello, true);

  let encapsulation: RecordedEncapsulation;
  if (inputs.mlkem_ciphertext && inputs.mlkem_shared_key) {
    encapsulation = {
      ciphertext: fromHex(inputs.mlkem_ciphertext),
      sharedKey: fromHex(inputs.mlkem_shared_key),
    };
  } else {
    // Making the vector: one real encapsulation to the client's ek, recorded for replays.
    const ek = helloFrame!.body.subarray(
      1 + 1 + 32 + 4 + 1 + 1 + 2,
      1 + 1 + 32 + 4 + 1 + 1 + 2 + 1184,
    );
    // deno-lint-ignore no-explicit-any
    const subtle = crypto.subtle as any;
    const key = await subtle.importKey("raw-public", ek.slice(), { name: "ML-KEM-768" }, false, [
      "encapsulateBits",
    ]);
    const result = await subtle.encapsulateBits({ name: "ML-KEM-768" }, key);
    encapsulation = {
      ciphertext: new Uint8Array(result.ciphertext),
      sharedKey: new Uint8Array(result.sharedKey),
    };
    inputs = {
      ...inputs,
      mlkem_ciphertext: toHex(encapsulation.ciphertext),
      mlkem_shared_key: toHex(encapsulation.sharedKey),
    };
  }

  const server = new ResponderHandshake({
    identity: bob,
    suites: VECTOR_SETTINGS.responder_suites,
    recordSuites: VECTOR_SETTINGS.responder_record_suites,
    maxRecordPlaintext: VECTOR_SETTINGS.responder_max_record_plaintext,
    random: queue([fromHex(inputs.server_x25519_private), fromHex(inputs.server_random)]),
    encapsulation,
    onSecret: recordSecret("server"),
  });
  await server.readClientHello(helloFrame!);
  const serverFlight = await server.writeServerFlight();
  const [serverHello, sIdentity, sVerify, sFinished] = splitFrames(serverFlight, true);
  await client.readServerHello(serverHello!);
  await client.readServerIdentity(sIdentity!);
  await client.readServerIdentityVerify(sVerify!);
  await client.readServerFinished(sFinished!);
  const clientFlight = await client.writeClientFlight();
  const [cIdentity, cVerify, cFinished] = splitFrames(clientFlight, false);
  await server.readClientIdentity(cIdentity!);
  await server.readClientIdentityVerify(cVerify!);
  await server.readClientFinished(cFinished!);
  const clientResult = client.finish();
  const serverResult = server.finish();
  if (clientResult.verificationCode !== serverResult.verificationCode) {
    throw new Error("verification codes differ");
  }
  intermediates.verification_code_text = clientResult.verificationCode;

  for (const name of ["c_hs_traffic", "s_hs_traffic", "c_ap_traffic", "s_ap_traffic"]) {
    const keys = await trafficKeys(fromHex(intermediates[name]!));
    intermediates[`${name}_key`] = toHex(keys.key);
    intermediates[`${name}_iv`] = toHex(keys.iv);
  }

  const clientRecords = await RecordLayer.create({
    sendSecret: clientResult.sendSecret,
    receiveSecret: clientResult.receiveSecret,
    suite: clientResult.recordSuite,
    peerMaxPlaintext: clientResult.peerMaxPlaintext,
    ownMaxPlaintext: clientResult.ownMaxPlaintext,
  });
  const serverRecords = await RecordLayer.create({
    sendSecret: serverResult.sendSecret,
    receiveSecret: serverResult.receiveSecret,
    suite: serverResult.recordSuite,
    peerMaxPlaintext: serverResult.peerMaxPlaintext,
    ownMaxPlaintext: serverResult.ownMaxPlaintext,
  });
  const encoder = new TextEncoder();
  const [toServer] = await clientRecords.sealData(
    encoder.encode(VECTOR_SETTINGS.initiator_record_plaintext),
  );
  const toClientText = encoder.encode(VECTOR_SETTINGS.responder_record_plaintext);
  const [toClient] = await serverRecords.sealData(toClientText);
  // Each side opens the other's record, so the vector is known to be consistent.
  for (const [layer, frame] of [[serverRecords, toServer!], [clientRecords, toClient!]] as const) {
    const event = await layer.open(frame.subarray(0, 5), frame.subarray(5));
    if (event.kind !== "data") throw new Error("record did not open as data");
  }
  // Section 8.5: the initiator ends its direction, close_notify then its receipt for the
  // responder's 24 bytes, at sequence numbers 1 and 2.
  const closeNotify = await clientRecords.sealCloseNotify();
  const receipt = await clientRecords.sealReceipt(toClientText.length);
  const closing = [await serverRecords.open(closeNotify.subarray(0, 5), closeNotify.subarray(5))];
  closing.push(await serverRecords.open(receipt.subarray(0, 5), receipt.subarray(5)));
  const [closed, confirmed] = closing as [RecordEvent, RecordEvent];
  if (closed.kind !== "close" || confirmed.kind !== "receipt" || confirmed.bytesReceived !== 24n) {
    throw new Error("close_notify and the receipt for 24 bytes did not open as such");
  }

  return {
    description:
      "securechat protocol v1 handshake, suite x25519-mlkem768, record suite chacha20-poly1305, Ed25519 identities (PROTOCOL.md section 10)",
    suite: "x25519-mlkem768",
    record_suite: serverResult.recordSuite,
    max_record_plaintext: 16384,
    settings: VECTOR_SETTINGS,
    inputs,
    messages: {
      client_magic_and_hello: toHex(clientHello),
      server_magic_hello_and_flight: toHex(serverFlight),
      server_hello_frame: toHex(concat(serverHello!.header, serverHello!.body)),
      client_flight: toHex(clientFlight),
      client_identity_fingerprint: alice.fingerprint,
      server_identity_fingerprint: bob.fingerprint,
    },
    intermediates,
    records: {
      initiator_to_responder_seq0: toHex(toServer!),
      responder_to_initiator_seq0: toHex(toClient!),
      content_type_application_data: CONTENT_TYPE.applicationData.toString(16),
      initiator_to_responder_seq1_close_notify: toHex(closeNotify),
      initiator_to_responder_seq2_receipt_24_bytes: toHex(receipt),
      content_type_receipt: CONTENT_TYPE.receipt.toString(16),
    },
  };
}
