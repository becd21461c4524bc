/**
 * Bytes through a relay's splice against bytes through NATS, for the cluster benchmark: the
 * measurement behind redirecting a dialer to the relay that holds its listener instead of
 * forwarding its bytes between relays over NATS (PROTOCOL.md 16.5).
 *
 * Splice: a RendezvousRelay in its own process (tests/_helpers/rendezvous_relay_process.ts, its
 * per-address byte budget raised as bench/relay_throughput.ts does), a listener registered and a
 * dialer met there from this process, then raw bytes written into the dialer's spliced socket in
 * 64 KiB writes and read from the listener's. NATS: a publisher on the first node and a subscriber
 * on the second (the way a forward from one relay to another would cross the cluster), core NATS
 * publish/subscribe of 64 KiB messages, at most two windows of 2 MiB unacknowledged (core NATS has
 * no flow control: without one a fast publisher makes the subscriber a slow consumer and the
 * server drops it). Both carry the same bytes between two clients in this process; only the path
 * differs. Neither encrypts: the end-to-end records would cost the same on either path.
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import { generateIdentity } from "../lib/keys/identity.ts";
import { connectToRelay, meetAt, registerAt } from "../lib/rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../lib/rendezvous/tokens.ts";
import { startRelayProcess } from "../tests/_helpers/rendezvous_relay_process.ts";
import { writeAll } from "../lib/core/io.ts";
import { processCpuMs } from "./_room_relay.ts";
import { BENCH_RELAY_BYTES_PER_SECOND } from "./relay_throughput.ts";
import { sleep } from "./_room_members.ts";

/** The chunk both paths carry: 64 KiB. */
export const CHUNK = 64 * 1024;
/** Chunks a NATS subscriber acknowledges at once (2 MiB). */
const WINDOW = 32;

/** One path's figures. */
export interface BytePath {
  /** Bytes a second from the first write to the last byte read. */
  bytesPerSecond: number;
  /** CPU milliseconds per MiB of what is between the clients: the relay, or every NATS node. */
  pathCpuMsPerMiB: number;
  /** CPU milliseconds per MiB of this process (both clients). */
  clientsCpuMsPerMiB: number;
}

/** Raw bytes through a relay's splice. */
export async function spliceThroughput(bytes: number): Promise<BytePath> {
  const relay = await startRelayProcess({
    limits: { bytesPerSecondPerAddress: BENCH_RELAY_BYTES_PER_SECOND },
  });
  try {
    const checkRelay = () => Promise.resolve();
    const dial = () => connectToRelay({ host: "127.0.0.1", port: relay.port, checkRelay });
    const { identity } = await generateIdentity({ type: "ed25519", comment: "listener" });
    const token = await rendezvousToken(identity.fingerprint);
    const registration = await registerAt(await dial(), token);
    const dialer = await meetAt(await dial(), token);
    const listener = await registration.paired;
    try {
      const [relay0, self0] = await Promise.all([processCpuMs(relay.pid), processCpuMs(Deno.pid)]);
      const started = performance.now();
      const chunk = new Uint8Array(CHUNK);
      const writing = (async () => {
        for (let sent = 0; sent < bytes; sent += CHUNK) {
          await writeAll(dialer, chunk.subarray(0, Math.min(CHUNK, bytes - sent)));
        }
      })();
      const buffer = new Uint8Array(256 * 1024);
      let received = 0;
      while (received < bytes) {
        const n = await listener.read(buffer);
        if (n === null) throw new Error(`the splice ended after ${received} of ${bytes} bytes`);
        received += n;
      }
      await writing;
      const seconds = (performance.now() - started) / 1000;
      const [relay1, self1] = await Promise.all([processCpuMs(relay.pid), processCpuMs(Deno.pid)]);
      const mib = bytes / 2 ** 20;
      return {
        bytesPerSecond: bytes / seconds,
        pathCpuMsPerMiB: (relay1 - relay0) / mib,
        clientsCpuMsPerMiB: (self1 - self0) / mib,
      };
    } finally {
      dialer.close();
      listener.close();
    }
  } finally {
    await relay.stop();
  }
}

/**
 * Raw bytes through NATS from a client of node `urls[0]` to a client of `urls[1]` (the same node
 * when there is one).
 *
 * @param natsCpuMs CPU milliseconds of every NATS node so far
 */
export async function natsThroughput(
  urls: string[],
  bytes: number,
  natsCpuMs: () => Promise<number>,
): Promise<BytePath> {
  const publisher = await connect({ servers: urls[0]! });
  const subscriber = await connect({ servers: urls[1] ?? urls[0]! });
  const subject = `bench.bytes.${crypto.randomUUID()}`;
  const acks = `${subject}.ack`;
  try {
    let received = 0;
    let chunks = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => done = resolve);
    subscriber.subscribe(subject, {
      callback: (_error, message) => {
        if (message.data.length === 0) return; // a probe
        received += message.data.length;
        if (++chunks % WINDOW === 0) subscriber.publish(acks, String(chunks));
        if (received >= bytes) done();
      },
    });
    let acked = 0;
    let wake: () => void = () => {};
    publisher.subscribe(acks, {
      callback: (_error, message) => {
        acked = Number(message.string());
        wake();
      },
    });
    await Promise.all([subscriber.flush(), publisher.flush()]);
    // The subscription's interest reaches the publisher's node through the route a moment later:
    // publish probes until one arrives, then count from zero.
    let probed = false;
    const probe = subscriber.subscribe(`${subject}.probe`, {
      callback: () => {
        probed = true;
      },
    });
    await subscriber.flush();
    while (!probed) {
      publisher.publish(`${subject}.probe`, "");
      await publisher.flush();
      await sleep(20);
    }
    probe.unsubscribe();
    await sleep(200); // both subscriptions' interest has crossed the route by now, as the probe's did
    const [nats0, self0] = await Promise.all([natsCpuMs(), processCpuMs(Deno.pid)]);
    const started = performance.now();
    const chunk = new Uint8Array(CHUNK);
    let sent = 0;
    for (let offset = 0; offset < bytes; offset += CHUNK) {
      while (sent - acked >= 2 * WINDOW) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 1000);
        });
      }
      publisher.publish(subject, chunk.subarray(0, Math.min(CHUNK, bytes - offset)));
      sent++;
      if (sent % WINDOW === 0) await publisher.flush();
    }
    await publisher.flush();
    await finished;
    const seconds = (performance.now() - started) / 1000;
    const [nats1, self1] = await Promise.all([natsCpuMs(), processCpuMs(Deno.pid)]);
    const mib = bytes / 2 ** 20;
    return {
      bytesPerSecond: bytes / seconds,
      pathCpuMsPerMiB: (nats1 - nats0) / mib,
      clientsCpuMsPerMiB: (self1 - self0) / mib,
    };
  } finally {
    await publisher.close();
    await subscriber.close();
  }
}
