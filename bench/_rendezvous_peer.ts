// deno-lint-ignore-file no-console
/**
 * One end of the relay throughput benchmark (bench/relay_throughput.ts), in a process of its own:
 * the real end-to-end handshake, then `runPipe()` (lib/transport/pipe.ts, pipe mode as `listen
 * --pipe` / `dial --pipe` run it) from a source of zeros to a sink that counts, over a direct
 * connection or over a rendezvous relay's splice. Only the path differs between the two: same
 * process layout, same code, same buffers.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 bench/_rendezvous_peer.ts listen direct
 * deno run --allow-net=127.0.0.1 bench/_rendezvous_peer.ts listen via RELAY_PORT RELAY_FP
 * deno run --allow-net=127.0.0.1 bench/_rendezvous_peer.ts dial direct PORT LISTENER_FP BYTES
 * deno run --allow-net=127.0.0.1 bench/_rendezvous_peer.ts dial via RELAY_PORT RELAY_FP LISTENER_FP BYTES
 * ```
 *
 * A listener prints one JSON line when it is ready (`{"port":N,"fingerprint":"SHA256:..."}`, the
 * port 0 when it waits at a relay), then each end one line when its pipe is done: bytes, the
 * pipe's seconds (after the handshake, until the receipts are exchanged), its own CPU seconds.
 *
 * @module
 */

import process from "node:process";
import { TrustError } from "../lib/core/errors.ts";
import type { ByteSink, ByteSource } from "../lib/core/io.ts";
import { generateIdentity } from "../lib/keys/identity.ts";
import type { VerifiedPeer } from "../lib/protocol/handshake_state.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../lib/protocol/record.ts";
import { connectToRelay, meetAt, registerAt } from "../lib/rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../lib/rendezvous/tokens.ts";
import { runInitiator, runResponder } from "../lib/transport/connection.ts";
import { runPipe } from "../lib/transport/pipe.ts";

/** What an end prints when its pipe is done. */
export interface PeerResult {
  sent: number;
  received: number;
  /** From the start of `runPipe()` to its end. */
  pipeSeconds: number;
  /** This process's user+system CPU seconds, in all. */
  cpuSeconds: number;
}

/** `bytes` zeros, as `head -c BYTES /dev/zero` gives them. */
function zeros(bytes: number): ByteSource {
  let left = bytes;
  return {
    read(buffer) {
      if (left === 0) return Promise.resolve(null);
      const n = Math.min(buffer.length, left);
      buffer.fill(0, 0, n);
      left -= n;
      return Promise.resolve(n);
    },
  };
}

/** A sink that only counts, as `> /dev/null`. */
const discard: ByteSink = { write: (data) => Promise.resolve(data.length) };

function pinned(expected: string): (peer: VerifiedPeer) => Promise<void> {
  return (peer) =>
    peer.identity.fingerprint === expected
      ? Promise.resolve()
      : Promise.reject(new TrustError("fingerprint_mismatch", `unexpected key ${expected}`));
}

function say(value: unknown): void {
  console.log(JSON.stringify(value));
}

async function pipe(
  secure: Awaited<ReturnType<typeof runResponder>>,
  input: ByteSource,
): Promise<void> {
  const started = performance.now();
  const stats = await runPipe(secure, { input, output: discard, inputIsTerminal: false });
  const pipeSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage();
  const result: PeerResult = { ...stats, pipeSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  say(result);
}

const SESSION = {
  suites: ["x25519-mlkem768", "x25519"] as const,
  maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
};

async function main(args: string[]): Promise<void> {
  const [role, path, ...rest] = args;
  const { identity } = await generateIdentity({ type: "ed25519", comment: role ?? "peer" });
  const relayDial = (port: string, fingerprint: string) =>
    connectToRelay({ host: "127.0.0.1", port: Number(port), checkRelay: pinned(fingerprint) });
  if (role === "listen") {
    let socket: Deno.Conn;
    if (path === "direct") {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      say({ port: listener.addr.port, fingerprint: identity.fingerprint });
      socket = await listener.accept();
      listener.close();
    } else {
      const [relayPort, relayFingerprint] = rest as [string, string];
      const relay = await relayDial(relayPort, relayFingerprint);
      const registered = await registerAt(relay, await rendezvousToken(identity.fingerprint));
      say({ port: 0, fingerprint: identity.fingerprint });
      socket = await registered.paired;
    }
    const secure = await runResponder(socket, {
      identity,
      ...SESSION,
      authorize: () => Promise.resolve(),
    });
    await pipe(secure, zeros(0));
    return;
  }
  if (role === "dial") {
    let socket: Deno.Conn;
    let listenerFingerprint: string;
    let bytes: string;
    if (path === "direct") {
      const [port, fingerprint, size] = rest as [string, string, string];
      socket = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
      [listenerFingerprint, bytes] = [fingerprint, size];
    } else {
      const [relayPort, relayFingerprint, fingerprint, size] = rest as [
        string,
        string,
        string,
        string,
      ];
      const relay = await relayDial(relayPort, relayFingerprint);
      socket = await meetAt(relay, await rendezvousToken(fingerprint));
      [listenerFingerprint, bytes] = [fingerprint, size];
    }
    const secure = await runInitiator(socket, {
      identity,
      ...SESSION,
      checkPeer: pinned(listenerFingerprint),
    });
    await pipe(secure, zeros(Number(bytes)));
    return;
  }
  throw new Error("usage: _rendezvous_peer.ts listen|dial direct|via ...");
}

if (import.meta.main) await main(Deno.args);
