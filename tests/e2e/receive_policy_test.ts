/**
 * `listen --receive DIR` accepts offers without asking, so it declines what cannot or should not
 * be received: an offer over the default 1 GiB limit (without --max-file-size), and one larger
 * than the free space of DIR's file system, each with its reason sent back to the sender and shown
 * by the listener. The sender is a room member built from the library (tests/_helpers/room_cli.ts)
 * that the listener's host admits like any dialer; it sends honest-looking Offers, sealed to the
 * host inside its MLS group, for sizes it does not have: only the Offer is needed to be declined.
 */

import { match, notStrictEqual, strictEqual } from "node:assert/strict";
import { authorOf, type Identity } from "../../lib/keys/identity.ts";
import { encodeTransfer } from "../../lib/transfer/transfer_messages.ts";
import { makePeer, startPeer } from "../_helpers/peers.ts";
import { identities } from "../_helpers/room.ts";
import { dialRoom, hostOf, sendSealed } from "../_helpers/room_cli.ts";

const [sender] = await identities(1) as [Identity];

/**
 * Starts `listen --receive DIR ...extra`, offers `totalSize` bytes to its host and returns the
 * host's answer (Accept or Reject) and the listener's exit.
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
    const member = await dialRoom(port, sender);
    const to = hostOf(member);
    const id = crypto.getRandomValues(new Uint8Array(16));
    await sendSealed(
      member,
      to,
      encodeTransfer.offer(authorOf(to.fingerprint), id, {
        timestamp: Date.now(),
        name: "huge.bin",
        fileCount: 1,
        totalSize,
        manifestSha256: new Uint8Array(32),
        dataKey: crypto.getRandomValues(new Uint8Array(32)),
      }),
    );
    await member.until(() =>
      member.transferMessages.some((m) => m.type === "accept" || m.type === "reject")
    );
    const answer = member.transferMessages.find((m) => m.type === "accept" || m.type === "reject");
    // A declined offer ends the one-shot listener by itself; anything else would leave it waiting.
    if (answer?.type !== "reject") listener.child.kill("SIGTERM");
    const exit = await listener.finished();
    await member.participant.closed;
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
