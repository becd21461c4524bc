/**
 * `listen --receive DIR` accepts offers without asking, so it declines what cannot or should not
 * be received: an offer over the default 1 GiB limit (without --max-file-size), and one larger
 * than the free space of DIR's file system, each with its reason sent back to the sender and shown
 * by the listener. The sender is built from the library and signs honest-looking offers for
 * sizes it does not have: only the Offer is needed to be declined.
 */

import { match, notStrictEqual, strictEqual } from "node:assert/strict";
import type { Identity } from "../../lib/keys/identity.ts";
import { authorOf } from "../../lib/chat/room_messages.ts";
import {
  decodeTransfer,
  encodeTransfer,
  signOffer,
  TRANSFER_MESSAGE,
} from "../../lib/transfer/transfer_messages.ts";
import { makePeer, startPeer } from "../_helpers/peers.ts";
import { identities, joinListenerRoom } from "../_helpers/room.ts";

const [sender] = await identities(1) as [Identity];

/**
 * Starts `listen --receive DIR ...extra`, offers `totalSize` bytes to it and returns the
 * listener's answer (Accept or Reject) and its exit.
 */
async function offerToReceiver(totalSize: number, extra: string[] = []) {
  const root = await Deno.makeTempDir({ prefix: "securechat-receive-limits-" });
  try {
    const host = await makePeer(root, "host");
    const dir = `${root}/inbox`;
    await Deno.mkdir(dir);
    const listener = startPeer(["listen", "--port", "0", "--receive", dir, ...extra], host.env);
    const line = await listener.stderr.waitFor(/listening on/);
    const port = Number(/:(\d+) as /.exec(line)?.[1]);
    const { secure, roomId, hostAuthor } = await joinListenerRoom(port, sender);
    const id = crypto.getRandomValues(new Uint8Array(16));
    const offer = await signOffer(sender, {
      roomId,
      sender: authorOf(sender.fingerprint),
      recipient: hostAuthor,
      transferId: id,
    }, {
      counter: BigInt(Date.now()) * 1000n + 1_000_000n,
      timestamp: Date.now(),
      name: "huge.bin",
      fileCount: 1,
      totalSize,
      manifestSha256: new Uint8Array(32),
    });
    await secure.send(encodeTransfer.offer(hostAuthor, id, offer));
    let answer;
    while (answer === undefined) {
      const data = await secure.receive();
      if (data === null) break;
      if (data[0] === TRANSFER_MESSAGE.accept || data[0] === TRANSFER_MESSAGE.reject) {
        answer = decodeTransfer(data);
      }
    }
    // A declined offer ends the one-shot listener by itself; anything else would leave it waiting.
    if (answer?.type !== "reject") listener.child.kill("SIGTERM");
    const exit = await listener.finished();
    secure.close();
    return { answer, listener: exit };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("listen --receive declines an offer over 1 GiB by default, saying why on both sides", async () => {
  const { answer, listener } = await offerToReceiver(2 * 1024 ** 3);
  strictEqual(answer?.type, "reject");
  const reason = answer.type === "reject" ? answer.reason : "";
  strictEqual(reason, "larger than the recipient's limit of 1073741824 bytes");
  notStrictEqual(listener.code, 0);
  match(listener.stderr, /was rejected: larger than the recipient's limit of 1073741824 bytes/);
});

Deno.test("listen --receive declines an offer larger than the receive folder's free space", async () => {
  // 4 PiB: under the raised limit, over any disk this runs on.
  const { answer, listener } = await offerToReceiver(2 ** 52, ["--max-file-size", "8000T"]);
  strictEqual(answer?.type, "reject");
  const reason = answer.type === "reject" ? answer.reason : "";
  match(reason, /^not enough free space: 4503599627370496 bytes offered, \d+ available$/);
  notStrictEqual(listener.code, 0);
  match(listener.stderr, /was rejected: not enough free space: 4503599627370496 bytes offered/);
});
