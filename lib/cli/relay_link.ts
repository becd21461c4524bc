/**
 * The command line's way to a rendezvous relay (docs/PROTOCOL.md 15.2): its address
 * (`RELAY[:PORT]`, default port 65433, or a list of them separated by commas) and the check of its
 * key, as `dial` checks a listener's:
 * the `--relay-key SHA256:...` pin, else known_hosts under `RELAY:PORT`, recorded on first contact
 * with a loud warning. `openRelay()` dials it, with a throwaway key unless told otherwise (15.1),
 * and records a first contact once the handshake is done.
 *
 * What it does not do: send a request to the relay (the callers do, with the library's
 * `registerAt`, `meetAt` or `enterRoomAt`), or run the end-to-end session.
 *
 * Mirrors: docs/PROTOCOL.md sections 15.1 (the throwaway key) and 15.2 (checking the relay's key).
 *
 * @module
 */

import { TrustError, UsageError } from "../core/errors.ts";
import { joinPath, securechatHome } from "../core/paths.ts";
import type { Identity } from "../keys/identity.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import { connectToRelay } from "../rendezvous/rendezvous_client.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import { addKnownHost, canonicalHostPort, checkKnownHost } from "../trust/known_hosts.ts";
import { parseFingerprint } from "../trust/trust_file.ts";
import { type ParsedArgs, stringFlag } from "./args.ts";
import { DEFAULT_RELAY_PORT } from "./flags.ts";
import { warning } from "./output.ts";
import { parseTarget } from "./target.ts";

/** Where a relay is, and how its key is checked. */
export interface RelayAddress {
  host: string;
  port: number;
  /** `host:port` in the form known_hosts keys it on. */
  hostPort: string;
}

/**
 * Parses `RELAY`, `RELAY:PORT`, `[IPv6]:PORT` (default port 65433).
 *
 * @throws {UsageError} for an empty host or a bad port
 */
export function parseRelayAddress(text: string): RelayAddress {
  const { host, port } = parseTarget(text, DEFAULT_RELAY_PORT);
  return { host, port, hostPort: canonicalHostPort(host, port) };
}

/**
 * Parses a list of relays, `RELAY1[:PORT],RELAY2[:PORT]` (one relay is a list of one): the relays
 * of a cluster, or simply others to try in turn.
 *
 * @param flag where the list came from, for the error (`--via`, or the dial target)
 * @throws {UsageError} for an empty entry, a bad address or a relay named twice
 */
export function parseRelayList(text: string, flag: string): RelayAddress[] {
  const relays: RelayAddress[] = [];
  for (const entry of text.split(",")) {
    if (entry.trim() === "") {
      throw new UsageError(`cannot parse ${flag} "${text}": a relay in the list is empty`);
    }
    const relay = parseRelayAddress(entry.trim());
    if (relays.some((known) => known.hostPort === relay.hostPort)) {
      throw new UsageError(
        `cannot parse ${flag} "${text}": relay ${relay.hostPort} is named twice`,
      );
    }
    relays.push(relay);
  }
  return relays;
}

/**
 * `--relay-key SHA256:...`, the relay's pinned fingerprint.
 *
 * @throws {SecurechatError} `bad_fingerprint` (exit 2) for a malformed one
 */
export function relayKeyFlag(parsed: ParsedArgs): string | undefined {
  const text = stringFlag(parsed, "relay-key");
  return text === undefined ? undefined : parseFingerprint(text);
}

/**
 * Checks a relay's key during each handshake with it: against the pin, or against known_hosts
 * (the file is read at every connection, so a key recorded by another process counts too).
 */
export class RelayKeyCheck {
  readonly address: RelayAddress;
  readonly #pin: string | undefined;
  readonly #knownHosts: string;

  /**
   * @param address the relay
   * @param pin its fingerprint from `--relay-key`; without one, known_hosts decides
   */
  constructor(address: RelayAddress, pin: string | undefined) {
    this.address = address;
    this.#pin = pin;
    this.#knownHosts = joinPath(securechatHome(), "known_hosts");
  }

  /**
   * Dials the relay and runs the handshake, refusing a key that is not the pinned or known one
   * before anything else is sent; records a first contact in known_hosts, loudly.
   *
   * @param options.identity our key for the relay (default: a throwaway one, 15.1)
   * @throws {TrustError} when the relay's key is not the one expected
   * @throws {ConnectionError} when the relay cannot be reached
   */
  async open(options: { identity?: Identity; timeoutMs: number }): Promise<SecureConnection> {
    let firstContact = false;
    const checkRelay = async (peer: VerifiedPeer): Promise<void> => {
      const fingerprint = peer.identity.fingerprint;
      if (this.#pin !== undefined) {
        if (fingerprint !== this.#pin) throw this.#pinMismatch(fingerprint);
        return;
      }
      const check = await checkKnownHost(this.#knownHosts, this.address.hostPort, fingerprint);
      firstContact = check.status === "unknown";
    };
    const relay = await connectToRelay({
      host: this.address.host,
      port: this.address.port,
      ...(options.identity === undefined ? {} : { identity: options.identity }),
      timeoutMs: options.timeoutMs,
      checkRelay,
    });
    if (firstContact) {
      const fingerprint = relay.peer.identity.fingerprint;
      try {
        await addKnownHost(this.#knownHosts, this.address.hostPort, fingerprint, relay.peer.name);
      } catch (error) {
        relay.close();
        throw error;
      }
      warning(
        `first contact with relay ${this.address.hostPort}: trusting its key ${fingerprint} from now on (recorded in "${this.#knownHosts}")`,
      );
      warning(
        'compare it with the relay operator\'s "securechat fingerprint", or pin it with --relay-key',
      );
    }
    return relay;
  }

  #pinMismatch(fingerprint: string): TrustError {
    return new TrustError(
      "relay_key_mismatch",
      `relay ${this.address.hostPort} has key ${fingerprint}, not the pinned ${this.#pin}`,
      {
        hints: [
          "someone may be intercepting the connection to the relay, or the pin is wrong",
          'ask the relay\'s operator for its "securechat fingerprint" and compare',
        ],
      },
    );
  }
}

/** The usage error for `--relay-key` without a relay to check. */
export function relayKeyWithoutRelay(): UsageError {
  return new UsageError('flag "--relay-key" pins the key of a relay: use it with --via or --room');
}
