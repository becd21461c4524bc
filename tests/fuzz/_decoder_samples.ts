/**
 * Valid encodings for decoder_fuzz_test.ts, written field by field from PROTOCOL.md (5, 13.2,
 * 13.4, 13.5, 14) with their length fields marked, for the codecs of _decoder_codecs.ts. The MLS
 * messages are hand-built headers around seeded bytes: the relay reads no further than the
 * header, and members hand them to MLS, whose own decoding is the MLS library's.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import { utf8 } from "../../lib/core/bytes.ts";
import { initiatorKex, SHARE_LENGTHS, SUITE_IDS, type SuiteName } from "../../lib/crypto/kex.ts";
import { makeCredential } from "../../lib/group/credential.ts";
import { MLS_CONTENT_TYPE } from "../../lib/room/mls_header.ts";
import { encodeTransfer } from "../../lib/transfer/transfer_messages.ts";
import { DataSealer } from "../../lib/transfer/data_seal.ts";
import {
  alice,
  aliceAuthor,
  bob,
  bobAuthor,
  clientHello,
  type Codec,
  credential,
  DATA_KEY,
  DATA_PARTIES,
  dataSeal,
  dataSlice,
  finished,
  fromRelay,
  groupId,
  identity,
  identityVerify,
  Layout,
  mlsHeader,
  roomContent,
  type Sample,
  sealedContent,
  serverHello,
  setup,
  SIGNATURE_KEY,
  SUITE_ID,
  toRelay,
  transfer,
} from "./_decoder_codecs.ts";

// --- valid samples, field by field from the spec ---

export function clientHelloLayout(
  versions: number[],
  maxRecord: number,
  shares: { id: number; share: Uint8Array }[],
  recordSuites: number[] = [0x02, 0x01],
): Layout {
  const l = new Layout().int(1, versions.length, 16).bytes(Uint8Array.from(versions))
    .bytes(setup.bytes(32)).int(4, maxRecord, 1_048_576).int(1, shares.length, 8);
  for (const { id, share } of shares) l.int(1, id).sized(2, share, share.length);
  return l.int(1, recordSuites.length, 8).bytes(Uint8Array.from(recordSuites));
}

async function helloSamples(): Promise<Sample[]> {
  const out: Sample[] = [];
  const suiteSets: SuiteName[][] = [
    ["x25519-mlkem768", "x25519"],
    ["x25519"],
    ["ffdhe3072"],
    ["x25519-mlkem768", "x25519", "ffdhe3072"],
  ];
  for (const suites of suiteSets) {
    const shares = [];
    for (const suite of suites) {
      const kex = await initiatorKex(suite, (length) => setup.bytes(length));
      shares.push({ id: SUITE_IDS[suite], share: kex.share });
    }
    out.push({ codec: clientHello, ...clientHelloLayout([1], 1 << 14, shares).done() });
  }
  // A newer peer: more versions, an unknown suite the decoder must skip.
  out.push({
    codec: clientHello,
    ...clientHelloLayout([3, 2, 1], 1 << 20, [
      { id: 0x7f, share: setup.bytes(5) },
      { id: SUITE_IDS.x25519, share: setup.bytes(32) },
    ], [0x7e, 0x01]).done(),
  });
  for (const suite of Object.keys(SUITE_IDS) as SuiteName[]) {
    const share = setup.bytes(SHARE_LENGTHS[suite].responder);
    const layout = new Layout().int(1, 1).bytes(setup.bytes(32)).int(4, 1 << 20, 1_048_576)
      .int(1, SUITE_IDS[suite]).sized(2, share, share.length).int(1, 0x02).done();
    out.push({ codec: serverHello, ...layout });
  }
  for (const name of ["", "alice", "é".repeat(32), "x".repeat(64)]) {
    const layout = new Layout().int(1, 0x0b).sized(2, alice.spki, 0xffff)
      .sized(1, utf8(name), 64).done();
    out.push({ codec: identity, ...layout });
  }
  out.push({
    codec: identityVerify,
    ...new Layout().int(1, 0x0f).sized(2, setup.bytes(64), 0xffff).done(),
  });
  out.push({ codec: finished, ...new Layout().int(1, 0x14).bytes(setup.bytes(32)).done() });
  return out;
}

/**
 * RFC 9420 section 6.3, a PrivateMessage: its clear header, then authenticated_data,
 * encrypted_sender_data (a leaf index, generation and reuse guard sealed: 28 bytes) and the
 * ciphertext, seeded.
 */
export function privateMessageLayout(
  contentType: keyof typeof MLS_CONTENT_TYPE,
  options: { group?: Uint8Array; epoch?: bigint; ciphertext?: number } = {},
): Layout {
  return new Layout().int(2, 1).int(2, 2).vector(options.group ?? groupId)
    .int(8, options.epoch ?? 5n).int(1, MLS_CONTENT_TYPE[contentType])
    .vector(new Uint8Array(0)).vector(setup.bytes(28)).vector(
      setup.bytes(options.ciphertext ?? 90),
    );
}

/** Another wire format (RFC 9420 section 6): the header, then a body the relay does not read. */
export function otherMessageLayout(wireFormat: number, body = 120): Layout {
  return new Layout().int(2, 1).int(2, wireFormat).rest(setup.bytes(body));
}

function mlsSamples(): Sample[] {
  const out: Sample[] = [];
  const add = (layout: Layout) => out.push({ codec: mlsHeader, ...layout.done() });
  for (const type of ["application", "proposal", "commit"] as const) {
    add(privateMessageLayout(type));
  }
  add(privateMessageLayout("application", { group: new Uint8Array(0), epoch: 0n }));
  add(privateMessageLayout("commit", { group: setup.bytes(100), epoch: 2n ** 64n - 1n }));
  add(privateMessageLayout("application", { ciphertext: 16_400 }));
  for (const wireFormat of [1, 3, 4, 5]) add(otherMessageLayout(wireFormat));
  return out;
}

function relaySamples(): Sample[] {
  const out: Sample[] = [];
  const to = (layout: Layout) => out.push({ codec: toRelay, ...layout.done() });
  const from = (layout: Layout) => out.push({ codec: fromRelay, ...layout.done() });
  const commit = () => privateMessageLayout("commit", { ciphertext: 400 });
  const welcome = () => otherMessageLayout(3, 600).done().bytes;
  // From a member (13.4).
  to(new Layout().int(1, 0x40).rest(otherMessageLayout(5, 300)));
  const alone = commit();
  to(
    new Layout().int(1, 0x41).int(4, alone.done().bytes.length, 1_048_544).embed(alone)
      .int(4, 0, 1_048_544).int(2, 0, 0xffff),
  );
  const recipients = [bobAuthor, aliceAuthor, setup.bytes(32)];
  const welcomed = commit();
  const withWelcome = new Layout().int(1, 0x41).int(4, welcomed.done().bytes.length, 1_048_544)
    .embed(welcomed).sized(4, welcome(), 1_048_544).int(2, recipients.length, 0xffff);
  for (const recipient of recipients) withWelcome.bytes(recipient);
  to(withWelcome);
  to(new Layout().int(1, 0x42).rest(privateMessageLayout("application")));
  to(new Layout().int(1, 0x42).rest(privateMessageLayout("proposal")));
  to(new Layout().int(1, 0x43).bytes(bobAuthor).rest(setup.bytes(300)));
  to(new Layout().int(1, 0x43).bytes(aliceAuthor).rest(setup.bytes(1)));
  // From the relay (13.4).
  from(new Layout().int(1, 0x01).int(1, 1));
  from(new Layout().int(1, 0x01).int(1, 2));
  for (const [level, text] of [[0, ""], [1, "too many group messages: dropped"], [2, "é∑ bye"]]) {
    from(new Layout().int(1, 0x20).int(1, level as number).sized(2, utf8(text as string), 0xffff));
  }
  from(new Layout().int(1, 0x50).bytes(bobAuthor).rest(otherMessageLayout(5, 300)));
  from(new Layout().int(1, 0x51).bytes(aliceAuthor).rest(otherMessageLayout(3, 300)));
  from(new Layout().int(1, 0x52).bytes(aliceAuthor).rest(commit()));
  from(new Layout().int(1, 0x53).int(8, 0n));
  from(new Layout().int(1, 0x54).int(8, 2n ** 64n - 1n));
  from(new Layout().int(1, 0x55).bytes(bobAuthor).rest(privateMessageLayout("application")));
  from(new Layout().int(1, 0x56).bytes(bobAuthor).rest(setup.bytes(200)));
  from(new Layout().int(1, 0x57).bytes(bobAuthor));
  return out;
}

function contentSamples(): Sample[] {
  const out: Sample[] = [];
  const add = (codec: Codec, layout: Layout) => out.push({ codec, ...layout.done() });
  const texts = ["hi", "é∑😀 unicode", "x".repeat(4096)];
  for (const [i, text] of texts.entries()) {
    for (const kind of [1, 2]) {
      add(
        roomContent,
        new Layout().int(1, 0x10).int(1, kind).int(8, 1_700_000_000_000 + i)
          .sized(2, utf8(text), 4096),
      );
    }
    add(
      sealedContent,
      new Layout().int(1, 0x12).int(8, 1_700_000_000_000 + i).sized(2, utf8(text), 4096),
    );
  }
  // A Sealed: recipient (32) || enc_length u16 || enc (X-Wing: 1120 bytes) || ciphertext.
  add(
    roomContent,
    new Layout().int(1, 0x11).rest(
      new Layout().bytes(bobAuthor).sized(2, setup.bytes(1120), 0xffff).bytes(setup.bytes(60)),
    ),
  );
  add(roomContent, new Layout().int(1, 0x11).rest(aliceAuthor));
  // A transfer message is handed on as it is (14.1 decodes it).
  add(sealedContent, new Layout().rest(encodeTransfer.accept(bobAuthor, setup.bytes(16))));
  return out;
}

async function credentialSamples(): Promise<Sample[]> {
  const out: Sample[] = [];
  for (
    const [who, name] of [[alice, "alice"], [alice, "é".repeat(32)], [alice, "x".repeat(64)], [
      bob,
      "bob",
    ]] as const
  ) {
    const bytes = await makeCredential(who, name, SIGNATURE_KEY, SUITE_ID);
    const signature = bytes.subarray(bytes.length - 64);
    const layout = new Layout().int(1, 1).sized(1, utf8(name), 64).sized(2, who.spki, 0xffff)
      .sized(2, signature, 0xffff).done();
    deepStrictEqual(layout.bytes, bytes, "13.2 credential layout");
    out.push({ codec: credential, ...layout });
  }
  return out;
}

async function transferSamples(): Promise<Sample[]> {
  const out: Sample[] = [];
  const transferId = setup.bytes(16);
  const head = (type: number) => new Layout().int(1, type).bytes(bobAuthor).bytes(transferId);
  const add = (codec: Codec, layout: Layout) => out.push({ codec, ...layout.done() });
  for (const name of ["photos", "é".repeat(127)]) {
    add(
      transfer,
      head(0x30).int(8, 1_700_000_000_000).sized(2, utf8(name), 255).int(4, 3, 100_000)
        .int(8, 123_456_789).bytes(setup.bytes(32)).bytes(setup.bytes(32)),
    );
  }
  add(transfer, head(0x31));
  add(transfer, head(0x32).sized(1, utf8("no thanks"), 255));
  add(transfer, head(0x33).int(4, 0).rest(setup.bytes(300)));
  add(transfer, head(0x33).int(4, 15000).rest(setup.bytes(15000)));
  const resume = head(0x34).int(4, 2, 100_000);
  for (let k = 0; k < 2; k++) resume.int(4, k).int(8, 4096 * k).bytes(setup.bytes(32));
  add(transfer, resume);
  add(transfer, head(0x37).int(8, 17));
  add(transfer, head(0x38));
  add(transfer, head(0x39).sized(1, utf8("cancelled by the sender"), 255));
  for (const size of [1, 1000]) {
    add(dataSlice, new Layout().int(4, 2).int(8, 65_483 * 3).rest(setup.bytes(size)));
  }
  // Sealed slices, each the first (sequence 0) of its transfer:
  // kind (1, data) || transfer_id || sequence || seal.
  for (const size of [1, 700]) {
    const slice = { fileIndex: 1, offset: 4096, bytes: setup.bytes(size) };
    const sealed = await (await DataSealer.create(DATA_KEY, DATA_PARTIES)).seal(slice);
    const layout = new Layout().int(1, 1).bytes(DATA_PARTIES.transferId).int(8, 0)
      .bytes(sealed.subarray(25)).done();
    deepStrictEqual(layout.bytes, sealed, "14.4 sealed slice layout");
    out.push({ codec: dataSeal, ...layout });
  }
  return out;
}

export const samples: Sample[] = [
  ...await helloSamples(),
  ...mlsSamples(),
  ...relaySamples(),
  ...contentSamples(),
  ...await credentialSamples(),
  ...await transferSamples(),
];
