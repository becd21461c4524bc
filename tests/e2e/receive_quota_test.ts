/**
 * A room member against `listen --receive DIR`, which accepts offers without asking: the
 * free-space check must count the bytes the listener already agreed to receive. Otherwise a
 * sender that offers two files at once, each of which fits alone, gets both accepted and fills
 * the disk. The sender is built from the library and signs offers for sizes it does not have:
 * only the Offers and the listener's answers are exchanged, nothing is written.
 */

import { deepStrictEqual, match } from "node:assert/strict";
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

/** The free space of `dir`'s file system, as a child with the statfs permission sees it. */
async function freeSpaceOf(dir: string): Promise<number> {
  const script = `import { statfs } from "node:fs/promises";
const info = await statfs(${JSON.stringify(dir)});
console.log(Number(info.bavail) * Number(info.bsize));`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--allow-sys", "--allow-read", script],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return Number(new TextDecoder().decode(output.stdout).trim());
}

Deno.test("listen --receive declines a second offer when the two together exceed the free space", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-receive-quota-" });
  try {
    const host = await makePeer(root, "host");
    const dir = `${root}/inbox`;
    await Deno.mkdir(dir);
    const listener = startPeer(
      ["listen", "--port", "0", "--receive", dir, "--max-file-size", "8000T"],
      host.env,
    );
    const line = await listener.stderr.waitFor(/listening on/);
    const port = Number(/:(\d+) as /.exec(line)?.[1]);
    const { secure, roomId, hostAuthor } = await joinListenerRoom(port, sender);
    // Each fits alone with a wide margin; the two together do not.
    const size = Math.floor((await freeSpaceOf(dir)) * 0.6);
    const ids: Uint8Array[] = [];
    for (const [n, name] of ["one.bin", "two.bin"].entries()) {
      const id = crypto.getRandomValues(new Uint8Array(16));
      ids.push(id);
      const offer = await signOffer(sender, {
        roomId,
        sender: authorOf(sender.fingerprint),
        recipient: hostAuthor,
        transferId: id,
      }, {
        counter: BigInt(Date.now()) * 1000n + 1_000_000n + BigInt(n),
        timestamp: Date.now(),
        name,
        fileCount: 1,
        totalSize: size,
        manifestSha256: new Uint8Array(32),
      });
      await secure.send(encodeTransfer.offer(hostAuthor, id, offer));
    }
    const answers: string[] = [];
    let reason = "";
    while (answers.length < 2) {
      const data = await secure.receive();
      if (data === null) break;
      if (data[0] === TRANSFER_MESSAGE.accept || data[0] === TRANSFER_MESSAGE.reject) {
        const answer = decodeTransfer(data);
        answers.push(answer.type);
        if (answer.type === "reject") reason = answer.reason;
      }
    }
    listener.child.kill("SIGTERM");
    await listener.finished();
    secure.close();
    deepStrictEqual(answers, ["accept", "reject"]);
    match(reason, /^not enough free space: \d+ bytes offered, \d+ available/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
