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
 * With `--nats URL[,URL...]` the relay joins a cluster (16): rooms and registrations are shared
 * through NATS (lib/cli/relay_cluster.ts, loaded only then), and it advertises `--advertise
 * HOST:PORT` (default the bound address, which must then not be 0.0.0.0 or ::) for redirects.
 *
 * What it does not do: the relay itself (lib/rendezvous/rendezvous_relay.ts), or anything a
 * session's security depends on: the end-to-end handshake runs through it.
 *
 * @module
 */

import { useSynchronousCipherForSmallInputs } from "../crypto/aead.ts";
import { loadSynchronousChaCha20Poly1305 } from "../crypto/chacha20_poly1305.ts";
import { UsageError } from "../core/errors.ts";
import { DEFAULT_MAX_MEMBERS } from "../room/limits.ts";
import {
  DEFAULT_RELAY_KEEPALIVE_MS,
  DEFAULT_RENDEZVOUS_LIMITS,
  RendezvousRelay,
} from "../rendezvous/rendezvous_relay.ts";
import { integerFlag, parseFlags, stringFlag } from "./args.ts";
import { DEFAULT_RELAY_PORT, RELAY_FLAGS } from "./flags.ts";
import { listenError, loadOwnIdentity } from "./listen_dial.ts";
import { print, status } from "./output.ts";
import { sizeFlag } from "./transfer_cli.ts";
import type { RelayCluster } from "./relay_cluster.ts";
import { parseTarget } from "./target.ts";
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
  const cluster = clusterFlags(parsed);
  const identity = await loadOwnIdentity(parsed);

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: host, port, transport: "tcp" });
  } catch (error) {
    throw listenError(error, `${host}:${port}`);
  }
  const address = listener.addr as Deno.NetAddr;
  let joined: RelayCluster | undefined;
  let advertise: string | undefined;
  if (cluster !== undefined) {
    advertise = cluster.advertise ?? defaultAdvertise(address);
    const { joinRelayCluster } = await import("./relay_cluster.ts");
    try {
      joined = await joinRelayCluster({
        servers: cluster.servers,
        replicas: cluster.replicas,
        room: { maxMembers },
        keepaliveMs: DEFAULT_RELAY_KEEPALIVE_MS,
        log: status,
        now: Date.now,
      });
    } catch (error) {
      listener.close();
      throw error;
    }
  }
  // Rooms on the relay seal one small record per member for every message (15.5): worth
  // node:crypto's start-up, as for `listen --relay-only`.
  await useSynchronousCipherForSmallInputs();
  await loadSynchronousChaCha20Poly1305();
  const relay = new RendezvousRelay({
    identity,
    limits,
    room: { maxMembers },
    log: status,
    ...(joined === undefined
      ? {}
      : { rooms: joined.rooms, directory: joined.directory, advertise: advertise! }),
  });
  // Signals first: a SIGTERM right after the "listening" line must still stop the relay cleanly.
  const stopped = stopSignal();
  relay.serve(listener);
  status(`relay listening on ${address.hostname}:${address.port} as ${identity.fingerprint}`);
  status(
    `clients pin it with --relay-key ${identity.fingerprint}, or trust it on first contact`,
  );
  if (joined !== undefined) status(`in the NATS cluster, advertised as ${advertise}`);
  const signal = await stopped;
  status(`${signal}: stopping (waiting listeners are told the relay is shutting down)`);
  await relay.close();
  await joined?.close();
  status("relay stopped");
  return 0;
}

/** The cluster flags (16): `--nats`, `--advertise`, `--nats-replicas`; undefined without `--nats`. */
function clusterFlags(
  parsed: ReturnType<typeof parseFlags>,
): { servers: string[]; advertise: string | undefined; replicas: number } | undefined {
  const nats = stringFlag(parsed, "nats");
  const advertise = stringFlag(parsed, "advertise");
  const replicasGiven = stringFlag(parsed, "nats-replicas") !== undefined;
  if (nats === undefined) {
    if (advertise !== undefined || replicasGiven) {
      throw new UsageError('flags "--advertise" and "--nats-replicas" are for a relay with --nats');
    }
    return undefined;
  }
  const servers = nats.split(",").map((url) => url.trim());
  for (const url of servers) {
    if (
      !/^(nats:\/\/)?[^\s/:,]+(:\d{1,5})?$/.test(url) &&
      !/^(nats:\/\/)?\[[^\]]+\](:\d{1,5})?$/.test(url)
    ) {
      throw new UsageError(
        `cannot parse --nats "${nats}": "${url}" is not a NATS server (nats://HOST[:PORT])`,
      );
    }
  }
  if (advertise !== undefined) {
    // HOST:PORT exactly: dialers are sent there (16.5), so there is no default port to assume.
    if (!/:\d+$/.test(advertise)) {
      throw new UsageError(`cannot parse --advertise "${advertise}": it is HOST:PORT`);
    }
    parseTarget(advertise, 0);
  }
  const replicas = integerFlag(parsed, "nats-replicas", { min: 1, max: 5, fallback: 3 });
  return { servers, advertise, replicas };
}

/**
 * The advertised address when `--advertise` is not given: the bound one, unless it is a wildcard,
 * which no dialer can be sent to.
 *
 * @throws {UsageError} for 0.0.0.0 or ::
 */
function defaultAdvertise(address: Deno.NetAddr): string {
  const { hostname, port } = address;
  if (hostname === "0.0.0.0" || hostname === "::") {
    throw new UsageError(
      `flag "--advertise HOST:PORT" is needed with --nats on ${hostname}: where do dialers reach this relay?`,
    );
  }
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
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
