/**
 * `securechat relay`: runs a rendezvous relay (docs/PROTOCOL.md 15) on HOST:PORT (default
 * 127.0.0.1:65433) until SIGTERM or SIGINT. Listeners that can only dial out register there
 * (`listen --via`), dialers meet them (`dial FINGERPRINT --via`), and members meet in rooms by
 * name (`dial RELAY --room NAME`); the relay only pairs and copies bytes it cannot read. Its
 * identity is the operator's securechat key, which clients check like a listener's. The limits of
 * section 15.6 that an operator would tune are flags; its log goes to stderr.
 *
 * On SIGTERM or SIGINT it stops accepting, tells every waiting listener "the relay is shutting
 * down", closes every connection, and exits 0.
 *
 * What it does not do: the relay itself (lib/rendezvous/rendezvous_relay.ts), or anything a
 * session's security depends on: the end-to-end handshake runs through it.
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";
import { DEFAULT_MAX_MEMBERS } from "../room/limits.ts";
import { DEFAULT_RENDEZVOUS_LIMITS, RendezvousRelay } from "../rendezvous/rendezvous_relay.ts";
import { integerFlag, parseFlags, stringFlag } from "./args.ts";
import { DEFAULT_RELAY_PORT, RELAY_FLAGS } from "./flags.ts";
import { listenError, loadOwnIdentity } from "./listen_dial.ts";
import { print, status } from "./output.ts";
import { sizeFlag } from "./transfer_cli.ts";
import { USAGE } from "./usage.ts";

/** Runs `securechat relay`. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("relay", RELAY_FLAGS, args);
  if (parsed.values.help) {
    print(USAGE.relay!);
    return 0;
  }
  const host = stringFlag(parsed, "host") ?? "127.0.0.1";
  if (host === "") throw new UsageError('flag "--host" needs an address');
  const port = integerFlag(parsed, "port", { min: 0, max: 65535, fallback: DEFAULT_RELAY_PORT });
  const defaults = DEFAULT_RENDEZVOUS_LIMITS;
  const count = (name: string, fallback: number) =>
    integerFlag(parsed, name, { min: 1, max: 1_000_000, fallback });
  const limits = {
    maxConnectionsPerAddress: count(
      "max-connections-per-address",
      defaults.maxConnectionsPerAddress,
    ),
    maxWaiting: count("max-waiting", defaults.maxWaiting),
    maxWaitingPerAddress: count("max-waiting-per-address", defaults.maxWaitingPerAddress),
    registrationLifeMs: integerFlag(parsed, "registration-life", {
      min: 1,
      max: 7 * 86_400,
      fallback: defaults.registrationLifeMs / 1000,
    }) * 1000,
    bytesPerSecondPerAddress: rateFlag(parsed, defaults.bytesPerSecondPerAddress),
    maxPendingHandshakes: count("max-pending-handshakes", defaults.maxPendingHandshakes),
    maxPendingPerAddress: count("max-pending-per-address", defaults.maxPendingPerAddress),
  };
  const maxMembers = integerFlag(parsed, "max-members", {
    min: 1,
    max: 100_000,
    fallback: DEFAULT_MAX_MEMBERS,
  });
  const identity = await loadOwnIdentity(parsed);

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: host, port, transport: "tcp" });
  } catch (error) {
    throw listenError(error, `${host}:${port}`);
  }
  const relay = new RendezvousRelay({
    identity,
    limits,
    room: { maxMembers },
    log: status,
  });
  const address = listener.addr as Deno.NetAddr;
  // Signals first: a SIGTERM right after the "listening" line must still stop the relay cleanly.
  const stopped = stopSignal();
  relay.serve(listener);
  status(`relay listening on ${address.hostname}:${address.port} as ${identity.fingerprint}`);
  status(
    `clients pin it with --relay-key ${identity.fingerprint}, or trust it on first contact`,
  );
  const signal = await stopped;
  status(`${signal}: stopping (waiting listeners are told the relay is shutting down)`);
  await relay.close();
  status("relay stopped");
  return 0;
}

/** `--rate-per-address SIZE`: bytes a second (K, M, G suffixes), at least 1 KiB. */
function rateFlag(parsed: ReturnType<typeof parseFlags>, fallback: number): number {
  const rate = sizeFlag(parsed, "rate-per-address") ?? fallback;
  if (rate < 1024) {
    throw new UsageError('flag "--rate-per-address" must be at least 1K bytes a second');
  }
  return rate;
}

/** Resolves with the name of the first SIGTERM or SIGINT. */
function stopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const signal of signals) Deno.addSignalListener(signal, () => resolve(signal));
  });
}
