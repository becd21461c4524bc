import { deepStrictEqual as eql, throws } from "node:assert/strict";
import { concat, u16 } from "../../lib/core/bytes.ts";
import { GroupRejection } from "../../lib/group/group_errors.ts";
import { LeafKeyHistory, parseSealed } from "../../lib/group/sealed.ts";

Deno.test("`parseSealed()` splits recipient, enc and ciphertext, and rejects a body cut short", () => {
  const recipient = new Uint8Array(32).fill(1);
  const enc = new Uint8Array(5).fill(2);
  const body = concat(recipient, u16(5), enc, Uint8Array.of(3, 3));
  eql(parseSealed(body), { recipient, enc, ciphertext: Uint8Array.of(3, 3) });
  for (const length of [0, 31, 33, 36]) {
    throws(() => parseSealed(body.subarray(0, length)), GroupRejection, `${length}`);
  }
});

Deno.test("`LeafKeyHistory` keeps a replaced key for 4 epochs, newest first, and wipes it after", () => {
  const history = new LeafKeyHistory();
  const first = Uint8Array.of(1);
  history.note(1n, first);
  history.note(2n, Uint8Array.of(1));
  eql(history.keys(), [Uint8Array.of(1)]);
  history.note(3n, Uint8Array.of(2));
  eql(history.keys(), [Uint8Array.of(2), Uint8Array.of(1)]);
  const kept = history.keys()[1]!;
  for (const epoch of [4n, 5n, 6n]) {
    history.note(epoch, Uint8Array.of(2));
    eql(history.keys(), [Uint8Array.of(2), Uint8Array.of(1)], `epoch ${epoch}`);
  }
  history.note(7n, Uint8Array.of(2));
  eql(history.keys(), [Uint8Array.of(2)]);
  eql(kept, Uint8Array.of(0));
  eql(first, Uint8Array.of(1), "the caller's copy is not touched");
});
