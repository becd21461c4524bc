/**
 * Where a listener waits, across the relays of a cluster (docs/PROTOCOL.md 16.5). A relay that
 * holds a waiting registration for a token answers core NATS requests on
 * `securechat.rendezvous.<token hex>` with its advertised `host:port`; a relay that gets a Meet for
 * a token it holds no registration for asks that subject (1 s) and redirects the dialer to the
 * relay that answered.
 *
 * What it does not do: keep registrations (lib/rendezvous/registrations.ts does, on each relay),
 * use the JetStream stream (a registration lives as long as its connection: nothing to persist),
 * or trust an answer beyond its shape: the dialer checks the key of the relay it is sent to, and
 * the end-to-end handshake decides who the listener is.
 *
 * Mirrors: docs/PROTOCOL.md section 16.5.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * const directory = new RendezvousDirectory(await connect({ servers: "nats://127.0.0.1:4222" }));
 * const release = directory.publish(token, "relay-a.example:65433");
 * await directory.lookup(token); // "relay-a.example:65433", from any relay of the cluster
 * release();
 * ```
 *
 * @module
 */

import {
  type NatsConnection,
  RequestError,
  type Subscription,
  TimeoutError,
} from "@nats-io/transport-node";
import { toHex } from "../core/bytes.ts";

/** Section 16.5: how long a Meet waits for another relay to say it holds the listener. */
export const LOOKUP_TIMEOUT_MS = 1_000;

/** Section 16.5: a Redirect carries `host:port` in at most 255 bytes. */
const MAX_ADDRESS_BYTES = 255;

/** The subject a relay holding a registration of `token` answers on (16.5). */
export function rendezvousSubject(token: Uint8Array): string {
  return `securechat.rendezvous.${toHex(token)}`;
}

/** Options of {@linkcode RendezvousDirectory}. */
export interface RendezvousDirectoryOptions {
  /** How long `lookup()` waits for an answer (default {@linkcode LOOKUP_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Operator lines: a malformed answer or a failed request, never a token in clear. */
  log?: (line: string) => void;
}

/** One token this relay answers for: its subscription, held while registrations of it wait. */
interface Held {
  subscription: Subscription;
  count: number;
}

/** The cluster's directory of waiting registrations, seen from one relay (16.5). */
export class RendezvousDirectory {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #log: (line: string) => void;
  readonly #held = new Map<string, Held>();
  readonly #encoder = new TextEncoder();

  constructor(nc: NatsConnection, options: RendezvousDirectoryOptions = {}) {
    this.#nc = nc;
    this.#timeoutMs = options.timeoutMs ?? LOOKUP_TIMEOUT_MS;
    this.#log = options.log ?? (() => {});
  }

  /**
   * Answers lookups of `token` with `address` until the returned function is called (once per
   * waiting registration: the subscription stays while any of them waits).
   *
   * @param address this relay's advertised `host:port`
   * @returns the release of this registration; calling it again does nothing
   */
  publish(token: Uint8Array, address: string): () => void {
    const subject = rendezvousSubject(token);
    let held = this.#held.get(subject);
    if (held === undefined) {
      const answer = this.#encoder.encode(address);
      const subscription = this.#nc.subscribe(subject, {
        callback: (error, message) => {
          if (error === null) message.respond(answer);
        },
      });
      held = { subscription, count: 0 };
      this.#held.set(subject, held);
    }
    held.count++;
    let released = false;
    const entry = held;
    return () => {
      if (released) return;
      released = true;
      entry.count--;
      if (entry.count === 0 && this.#held.get(subject) === entry) {
        this.#held.delete(subject);
        entry.subscription.unsubscribe();
      }
    };
  }

  /**
   * Asks the cluster which relay holds a registration of `token`.
   *
   * @returns the `host:port` the first relay to answer advertised, or undefined when none answered
   *   within the timeout, nobody listens, NATS failed, or the answer is not an address
   */
  async lookup(token: Uint8Array): Promise<string | undefined> {
    let data: Uint8Array;
    try {
      const reply = await this.#nc.request(rendezvousSubject(token), undefined, {
        timeout: this.#timeoutMs,
      });
      data = reply.data;
    } catch (error) {
      // No responders and a timeout both mean "no listener here": only other failures are news.
      const quiet = error instanceof TimeoutError ||
        (error instanceof RequestError && error.isNoResponders());
      if (!quiet) {
        this.#log(`rendezvous lookup failed: ${error instanceof Error ? error.message : error}`);
      }
      return undefined;
    }
    return this.#addressOf(data);
  }

  /** Stops answering for every token (the NATS connection itself is the caller's). */
  close(): void {
    for (const held of this.#held.values()) held.subscription.unsubscribe();
    this.#held.clear();
  }

  /** An answer is `host:port`, UTF-8, 1 to 255 bytes; anything else is ignored (and logged). */
  #addressOf(data: Uint8Array): string | undefined {
    let address: string;
    try {
      address = new TextDecoder("utf-8", { fatal: true }).decode(data);
    } catch {
      address = "";
    }
    if (data.length === 0 || data.length > MAX_ADDRESS_BYTES || !/^\S+:\d+$/.test(address)) {
      this.#log(`rendezvous lookup: ignored a malformed answer of ${data.length} bytes`);
      return undefined;
    }
    return address;
  }
}
