/**
 * The registrations waiting at a rendezvous relay, by token: at most `maxWaiting` in all and
 * `maxWaitingPerAddress` from one source address (by `addressPrefix()`). A Meet takes the oldest
 * registration of its token, so a listener that registers again after each dialer (a room host,
 * `--keep-open`) is found in turn with any other of the same token.
 *
 * Pure: no socket, no timer. The relay (lib/rendezvous/rendezvous_relay.ts) keeps the
 * connections, the expiry and the keepalives.
 *
 * Mirrors: docs/PROTOCOL.md sections 15.2 (Register, Meet) and 15.6 (the waiting limits).
 *
 * @example
 * ```ts
 * import { strictEqual } from "node:assert/strict";
 * import { Registrations } from "./registrations.ts";
 * const table = new Registrations<string>({ maxWaiting: 2, maxWaitingPerAddress: 1 });
 * const token = new Uint8Array(32);
 * table.add(token, "192.0.2.1", "listener");
 * strictEqual(table.add(token, "192.0.2.1", "another").refused, "address");
 * strictEqual(table.take(token), "listener");
 * ```
 *
 * @module
 */

import { toHex } from "../core/bytes.ts";
import { WaitingLine } from "../transport/listener.ts";

/** One waiting registration. */
export interface Registration<T> {
  readonly value: T;
}

/** A registration with what the table needs to remove it. */
interface Slot<T> extends Registration<T> {
  readonly key: string;
  readonly leave: () => void;
}

/** Why a registration was not added: the relay is full, or its address has too many waiting. */
export type RegistrationRefusal = "full" | "address";

/** The waiting registrations of a relay. */
export class Registrations<T> {
  #byToken = new Map<string, Slot<T>[]>();
  #line: WaitingLine;
  #maxWaiting: number;

  constructor(options: { maxWaiting: number; maxWaitingPerAddress: number }) {
    this.#maxWaiting = options.maxWaiting;
    this.#line = new WaitingLine({
      max: options.maxWaiting,
      maxPerAddress: options.maxWaitingPerAddress,
    });
  }

  /** Registrations waiting, of every token. */
  get size(): number {
    return this.#line.size;
  }

  /**
   * Adds a registration of `token` from `address`.
   *
   * @returns its entry (for `remove()`), or why it was refused
   */
  add(
    token: Uint8Array,
    address: string,
    value: T,
  ): { entry: Registration<T>; refused?: undefined } | { refused: RegistrationRefusal } {
    if (this.#line.size >= this.#maxWaiting) return { refused: "full" };
    const leave = this.#line.enter(address);
    if (leave === undefined) return { refused: "address" };
    const key = toHex(token);
    const entry: Slot<T> = { key, leave, value };
    const list = this.#byToken.get(key);
    if (list === undefined) this.#byToken.set(key, [entry]);
    else list.push(entry);
    return { entry };
  }

  /** Removes and returns the oldest registration of `token`, if any. */
  take(token: Uint8Array): T | undefined {
    const oldest = this.#byToken.get(toHex(token))?.[0];
    if (oldest === undefined) return undefined;
    this.remove(oldest);
    return oldest.value;
  }

  /** Removes a registration (expired, gone, or taken); removing twice does nothing. */
  remove(entry: Registration<T>): void {
    const slot = entry as Slot<T>;
    const list = this.#byToken.get(slot.key);
    const index = list?.indexOf(slot) ?? -1;
    if (list === undefined || index < 0) return;
    list.splice(index, 1);
    if (list.length === 0) this.#byToken.delete(slot.key);
    slot.leave();
  }

  /** Every waiting registration's value, oldest first within a token. */
  values(): T[] {
    return [...this.#byToken.values()].flat().map((slot) => slot.value);
  }
}
