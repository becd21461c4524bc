/**
 * `listen --via RELAY`: a listener that opens no port of its own. It registers at a rendezvous
 * relay by an outbound connection, under the token of its own fingerprint (docs/PROTOCOL.md
 * 15.3), and each dialer the relay pairs with it arrives as a socket on which the listener runs
 * its usual responder handshake and admission (lib/cli/listen.ts). It registers again as soon as
 * one registration is paired or expires, so one always waits for the next dialer (15.4). When the
 * relay goes away it says so in one line and registers again with backoff (1 s doubling to 30 s)
 * until it is stopped. Given a list of relays (`--via R1,R2`), it registers at the first that
 * takes it, and when that one goes, at the next in turn (wrapping), pausing only once every relay
 * of the list failed in a row.
 *
 * What it does not do: admit anyone (the caller's `serve` runs the handshake and its checks), or
 * trust the relay with anything but pairing: the end-to-end handshake that follows decides who the
 * dialer is.
 *
 * Mirrors: docs/PROTOCOL.md sections 15.2 (Register), 15.3 (the token) and 15.4 (registering
 * again).
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  PeerAlertError,
  ProtocolError,
} from "../core/errors.ts";
import { registerAt, type Registered } from "../rendezvous/rendezvous_client.ts";
import { rendezvousToken } from "../rendezvous/tokens.ts";
import type { Source } from "../transport/listener.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import type { RelayKeyCheck } from "./relay_link.ts";

/** Backoff between attempts to reach a relay that went away: 1 s, doubling, at most 30 s. */
export const FIRST_RETRY_MS = 1_000;
export const MAX_RETRY_MS = 30_000;

/** Serves one dialer's socket: the handshake, admission and session (lib/cli/listen.ts). */
export type Serve = (conn: Deno.Conn, source: Source) => Promise<void>;

/** Options of {@linkcode RelayRegistrations.start}. */
export interface RelayRegistrationsOptions {
  /** The relays, in the order to try them, and the check of their key (at least one). */
  relays: readonly RelayKeyCheck[];
  /** Our own fingerprint: dialers find us by its token. */
  fingerprint: string;
  /** Handshake deadline with the relay, in milliseconds. */
  timeoutMs: number;
  /** Keepalive interval while a registration waits (0: none). */
  keepaliveMs: number;
}

/** A listener's registrations at a relay, one waiting at all times. */
export class RelayRegistrations {
  readonly #options: RelayRegistrationsOptions;
  readonly #token: Uint8Array;
  #current: SecureConnection | undefined;
  /** The relay of the list we register at now. */
  #index = 0;
  #waiting: Registered | undefined;
  #stopped = false;
  #wake: () => void = () => {};
  #fail: (error: unknown) => void = () => {};
  /** Rejects when registering can no longer work (the relay's key changed); never resolves. */
  readonly failed: Promise<never>;

  private constructor(options: RelayRegistrationsOptions, token: Uint8Array) {
    this.#options = options;
    this.#token = token;
    this.failed = new Promise<never>((_, reject) => this.#fail = reject);
    this.failed.catch(() => {}); // the caller races it; a stop after a failure is not unhandled
  }

  /**
   * Makes the first registration. Its failure is the caller's (a wrong address, a relay key that
   * is not the expected one): only later losses are retried.
   *
   * @returns the registrations, with one waiting; `run()` serves the dialers paired with it
   * @throws {SecurechatError} when the relay cannot be reached, its key is refused, or it refuses us
   */
  static async start(options: RelayRegistrationsOptions): Promise<RelayRegistrations> {
    if (options.relays.length === 0) throw new RangeError("no relay to register at");
    const registrations = new RelayRegistrations(
      options,
      await rendezvousToken(options.fingerprint),
    );
    // The first relay of the list that takes us; a refused key is not worth trying further.
    for (let index = 0;; index++) {
      registrations.#index = index;
      try {
        registrations.#waiting = await registrations.#register();
        return registrations;
      } catch (error) {
        if (!retryable(error) || index === options.relays.length - 1) throw error;
      }
    }
  }

  /** Where the relay we register at now is, as known_hosts names it. */
  get relayHostPort(): string {
    return this.#options.relays[this.#index]!.address.hostPort;
  }

  /**
   * Hands each dialer the relay pairs with us to `serve`, registering again after each, until
   * `stop()` or a failure that retrying cannot mend (then `failed` rejects).
   *
   * @param report tells the person at the listener what happened to the relay (one line each)
   */
  run(serve: Serve, report: (line: string) => void): void {
    this.#loop(serve, report).catch((error) => this.#fail(error));
  }

  /** Stops registering and closes the connection that waits at the relay. */
  stop(): void {
    this.#stopped = true;
    this.#current?.close();
    this.#wake();
  }

  async #loop(serve: Serve, report: (line: string) => void): Promise<void> {
    const relays = this.#options.relays.length;
    let retryMs = FIRST_RETRY_MS;
    let lost = false;
    /** Relays that failed in a row: once every one did, we pause before the next round. */
    let failures = 0;
    while (!this.#stopped) {
      const hostPort = this.relayHostPort;
      try {
        if (this.#waiting === undefined) {
          this.#waiting = await this.#register();
          if (lost) report(`registered again at relay ${hostPort}: waiting for dialers`);
          lost = false;
          failures = 0;
          retryMs = FIRST_RETRY_MS;
        }
        const socket = await this.#waiting.paired;
        this.#waiting = undefined;
        const source: Source = {
          address: socket.remoteAddr.hostname,
          from: `a dialer through relay ${hostPort}`,
        };
        serve(socket, source).catch((error) => {
          report(`connection from ${source.from} failed: ${messageOf(error)}`);
        });
      } catch (error) {
        this.#waiting = undefined;
        if (this.#stopped) return;
        if (!retryable(error)) throw error;
        // The relay ends a registration after its life (15.6): make the next one at once.
        if (error instanceof ConnectionError && error.code === "registration_expired") continue;
        this.#index = (this.#index + 1) % relays;
        if (!lost) {
          const next = relays > 1
            ? `registering at relay ${this.relayHostPort}, then the others in turn`
            : "registering again";
          report(
            `lost the relay at ${hostPort}: ${
              messageOf(error)
            }; ${next} (after 1 s, doubling to 30 s, until Ctrl-C)`,
          );
        }
        lost = true;
        failures++;
        if (failures % relays !== 0) continue;
        await this.#pause(retryMs);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    }
  }

  /** One connection to the relay and its Register; the connection is kept to close on stop. */
  async #register(): Promise<Registered> {
    const relay = await this.#options.relays[this.#index]!.open({
      timeoutMs: this.#options.timeoutMs,
    });
    this.#current = relay;
    if (this.#stopped) relay.close();
    return await registerAt(relay, this.#token, { keepaliveMs: this.#options.keepaliveMs });
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * Whether registering again may mend `error`: the relay went away, refused us for now, timed out
 * or misbehaved. A refused relay key (TrustError) or a local failure (known_hosts unreadable) is
 * not retried: it would fail the same way every time.
 */
function retryable(error: unknown): boolean {
  return error instanceof ConnectionError || error instanceof ProtocolError ||
    error instanceof AuthenticationError || error instanceof PeerAlertError;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
