/**
 * A room member against `listen --receive DIR`, which accepts offers without asking: the
 * free-space check must count the bytes the listener already agreed to receive. Otherwise a
 * sender that offers two files at once, each of which fits alone, gets both accepted and fills
 * the disk. The sender is a room member built from the library (tests/_helpers/room_cli.ts) that
 * the listener's host admits like any dialer; it seals Offers to the host inside its MLS group for
 * sizes it does not have: only the Offers and the host's answers are exchanged, nothing is written.
 */

import { deepStrictEqual, match } from "node:assert/strict";
import { authorOf, type Identity } from "../../lib/keys/identity.ts";
import { encodeTransfer } from "../../lib/transfer/transfer_messages.ts";
import { makePeer, startPeer } from "../_helpers/peers.ts";
import { identities } from "../_helpers/room.ts";
import { dialRoom, hostOf, sendSealed } from "../_helpers/room_cli.ts";

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
    const member = await dialRoom(port, sender);
    const to = hostOf(member);
    // Each fits alone with a wide margin; the two together do not.
    const size = Math.floor((await freeSpaceOf(dir)) * 0.6);
    for (const name of ["one.bin", "two.bin"]) {
      const id = crypto.getRandomValues(new Uint8Array(16));
      await sendSealed(
        member,
        to,
        encodeTransfer.offer(authorOf(to.fingerprint), id, {
          timestamp: Date.now(),
          name,
          fileCount: 1,
          totalSize: size,
          manifestSha256: new Uint8Array(32),
          dataKey: crypto.getRandomValues(new Uint8Array(32)),
        }),
      );
    }
    const answers = () =>
      member.transferMessages.filter((m) => m.type === "accept" || m.type === "reject");
    await member.until(() => answers().length >= 2);
    // The one-shot listener ends with the first transfer that ends (here the declined one); if
    // it has not yet, the test ends it.
    try {
      listener.child.kill("SIGTERM");
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // it has exited already
    }
    await listener.finished();
    await member.participant.closed;
    deepStrictEqual(answers().map((answer) => answer.type), ["accept", "reject"]);
    const reject = answers()[1];
    const reason = reject?.type === "reject" ? reject.reason : "";
    match(reason, /^not enough free space: \d+ bytes offered, \d+ available/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
