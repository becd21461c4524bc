/**
 * A hostile recipient against an honest sender, through a real relay: it accepts a file and then
 * acknowledges far more data than it was sent. The sender must not take that as room in its
 * window: if it did, it would send past the window the relay enforces (14.4), and the relay would
 * count each slice as the sender's violation and disconnect it. The recipient is built from the
 * library; the sender is an ordinary room member.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import type { Identity } from "../../lib/keys/identity.ts";
import { Relay } from "../../lib/room/relay.ts";
import { decodeRoomMessage } from "../../lib/chat/room_messages.ts";
import { exchangeSessionHello } from "../../lib/transport/session_hello.ts";
import {
  decodeTransfer,
  encodeTransfer,
  isTransferType,
  WINDOW_BYTES,
} from "../../lib/transfer/transfer_messages.ts";
import { connectPair, identities, join } from "../_helpers/room.ts";
import { randomBytes } from "../_helpers/peers.ts";

const [relayIdentity, honest, hostile] = await identities(3) as Identity[];

Deno.test("an Ack for data never sent does not open the sender's window (no relay violation)", async () => {
  const root = await Deno.makeTempDir({ prefix: "securechat-ack-" });
  const room = new Relay({ identity: relayIdentity!, hostParticipates: false });
  const sender = await join(honest!, relayIdentity!, (conn, name) => room.admit(conn, name));
  const { clientSide, serverSide } = await connectPair(hostile!, relayIdentity!);
  const served = room.admit(serverSide, "mallory");
  try {
    await exchangeSessionHello(clientSide, "chat");
    await sender.until(() => sender.session.members().length === 2);
    const size = 4 * 1024 * 1024;
    await Deno.writeFile(`${root}/data.bin`, randomBytes(size));
    await sender.session.sendFile!(`${root}/data.bin`, "mallory");

    let received = 0;
    let lastAck = 0;
    let done = false;
    while (!done) {
      const data = await clientSide.receive();
      if (data === null) break;
      if (data.length === 0) continue;
      if (!isTransferType(data[0]!)) {
        const message = decodeRoomMessage(data);
        if (message.type === "left") break; // the relay threw the sender out
        continue;
      }
      const message = decodeTransfer(data);
      if (message.type === "offer") {
        await clientSide.send(encodeTransfer.accept(message.party, message.transferId));
        // The attack: acknowledge a terabyte at once.
        await clientSide.send(encodeTransfer.ack(message.party, message.transferId, 2 ** 40));
      } else if (message.type === "manifest") {
        await clientSide.send(encodeTransfer.resume(message.party, message.transferId, []));
      } else if (message.type === "data") {
        received += message.bytes.length;
        // Acks as late as the window allows: only once the sender must be waiting for one, so the
        // relay has seen a whole window go by unacknowledged when the sender sends on.
        if (received - lastAck >= WINDOW_BYTES || received === size) {
          lastAck = received;
          await clientSide.send(encodeTransfer.ack(message.party, message.transferId, received));
        }
      } else if (message.type === "done") done = true;
    }
    ok(done, `the transfer did not finish: ${received} of ${size} bytes arrived`);
    deepStrictEqual(
      sender.events.filter((e) => e.type === "notice").map((e) => e.type === "notice" && e.text),
      [],
    );
  } finally {
    clientSide.close();
    await served.catch(() => {});
    await sender.session.close();
    await room.close();
    await Deno.remove(root, { recursive: true });
  }
});
