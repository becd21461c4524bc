/**
 * A rendezvous relay: accepts connections from clients that can only dial out, runs the responder
 * handshake with any client key (behind the listener's admission and flood defences), and reads
 * one request from each. A Register waits (with keepalives) until a Meet of the same token comes;
 * then both hear Paired, both answer Spliced, and from then on the relay only copies bytes between
 * the two sockets (lib/rendezvous/splice.ts), while the end-to-end handshake runs through it. A
 * Room request is answered Joined and handed to the room of its token (lib/room/relay.ts, made on
 * first use, dropped when empty). The limits of section 15.6 apply; one client's failure or
 * misbehaviour never touches another.
 *
 * What it never does: hold a key of a spliced session, read what it copies, or learn a client's
 * fingerprint (clients come with throwaway keys; room members are the exception, 15.1). Its log
 * names clients by address and tokens by a short hash prefix, never in clear. It does not handle
 * signals or flags (the `relay` command does).
 *
 * Paired is the relay's last record on a connection but its close_notify, sent right after it
 * (15.4): a keepalive answer in flight could otherwise follow Paired, and the client would take
 * it for the start of the session.
 *
 * Its parts: relay_admission.ts (the handshake), registrations.ts (who waits), relay_exchange.ts
 * (Refused, Paired, Spliced on one connection), splice.ts with byte_budget.ts (the copy),
 * relay_rooms.ts (rooms by token), rendezvous_limits.ts (the numbers).
 *
 * On a cluster (16.5) it is given a directory and its advertised address: each waiting
 * registration is published there, and a Meet for a token with none here asks the directory and
 * answers Redirect to the relay that holds it. Rooms may come from outside (`rooms`: the
 * cluster's, which also serve ResumeRoom, 16.4); a single relay refuses ResumeRoom.
 *
 * Mirrors: docs/PROTOCOL.md sections 15.2 (requests and answers), 15.4 (splicing), 15.5 (rooms)
 * and 15.6 (limits), 16.4 (ResumeRoom) and 16.5 (Redirect); the handshake's admission is section
 * 6.3 (lib/transport/listener.ts).
 *
 * @module
 */

import type { SuiteName } from "../crypto/kex.ts";
import type { Identity } from "../keys/identity.ts";
import { acceptLoop, closeQuietly, type Source, WaitingLine } from "../transport/listener.ts";
import type { SecureConnection } from "../transport/secure_connection.ts";
import type { RelayOptions } from "../room/relay.ts";
import { ByteBudgets } from "./byte_budget.ts";
import { RelayAdmission } from "./relay_admission.ts";
import {
  expectSpliced,
  receiveWithin,
  redirect,
  refuse,
  sendPaired,
  tokenLabel,
} from "./relay_exchange.ts";
import { RelayRooms } from "./relay_rooms.ts";
import {
  DEFAULT_RELAY_KEEPALIVE_MS,
  DEFAULT_RELAY_SUITES,
  DEFAULT_RENDEZVOUS_LIMITS,
  type RendezvousLimits,
} from "./rendezvous_limits.ts";
import { type Registration, Registrations } from "./registrations.ts";
import {
  decodeRendezvousRequest,
  encodeRendezvousAnswer,
  REFUSAL,
  type RendezvousRequest,
} from "./rendezvous_messages.ts";
import { type Splice, splice } from "./splice.ts";

export {
  DEFAULT_RELAY_KEEPALIVE_MS,
  DEFAULT_RELAY_SUITES,
  DEFAULT_RENDEZVOUS_LIMITS,
  type RendezvousLimits,
};

/**
 * The rooms a relay hosts (15.5), by token: RelayRooms for a single relay, the cluster's rooms
 * (lib/cluster) for a relay started with `--nats`. Both `enter` and `resume` answer Joined
 * themselves, run the room protocol until the connection ends, never throw, and close it.
 */
export interface RoomHost {
  /** Rooms with at least one connection here. */
  readonly size: number;
  /** Section 15.5 Room: Joined, then the room of `token`. */
  enter(secure: SecureConnection, source: Source, token: Uint8Array, label: string): Promise<void>;
  /**
   * Section 16.4 ResumeRoom: Joined, then the room of `token` after `position` of its log. Left
   * out where there is no log (a single relay): ResumeRoom is then refused.
   */
  resume?(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    position: bigint,
    label: string,
  ): Promise<void>;
  /** Closes every room with a final Notice of `reason`. */
  close(reason: string): Promise<void>;
}

/**
 * The cluster's directory of waiting registrations (16.5), as a relay uses it:
 * lib/cluster/rendezvous_directory.ts over NATS.
 */
export interface RegistrationDirectory {
  /** Answers for `token` with `address` until the returned release is called. */
  publish(token: Uint8Array, address: string): () => void;
  /** The address of a relay holding a registration of `token`, if any answers. */
  lookup(token: Uint8Array): Promise<string | undefined>;
}

/** Options of {@linkcode RendezvousRelay}. */
export interface RendezvousRelayOptions {
  /** The relay's own identity: clients check it like a listener's key (15.2). */
  identity: Identity;
  /** The name sent in the handshake (default: the key's comment). */
  name?: string;
  /** Suites accepted, in preference order (default {@linkcode DEFAULT_RELAY_SUITES}). */
  suites?: readonly SuiteName[];
  /** Section 15.6 limits; each one left out is its default. */
  limits?: Partial<RendezvousLimits>;
  /** Handshake deadline, and the first flight's (section 6.3; defaults of connection.ts). */
  handshakeTimeoutMs?: number;
  firstFlightTimeoutMs?: number;
  /** Keepalive interval of waiting registrations and room connections (default 30 s). */
  keepaliveMs?: number;
  /** Limits of every room (13.8); `log` and `now` are the relay's. */
  room?: Omit<RelayOptions, "log" | "now">;
  /** Operator lines (stderr in the CLI): addresses and token hash prefixes, no fingerprint. */
  log?: (line: string) => void;
  /** Milliseconds clock of the byte budgets and rooms (default `Date.now`). */
  now?: () => number;
  /** The rooms (default: this relay's own, lib/rendezvous/relay_rooms.ts; `room` is theirs). */
  rooms?: RoomHost;
  /**
   * Section 16.5, with `advertise`: registrations waiting here are published to the cluster, and a
   * Meet for a token with none here is redirected to the relay that has one.
   */
  directory?: RegistrationDirectory;
  /** This relay's `host:port` as dialers reach it, published for its registrations (16.5). */
  advertise?: string;
}

/** What a relay is doing now. */
export interface RendezvousStats {
  /** Connections past the handshake: waiting, pairing, spliced, in rooms. */
  connections: number;
  /** Registrations waiting for a dialer. */
  waiting: number;
  /** Pairs being spliced. */
  spliced: number;
  /** Rooms with at least one connection. */
  rooms: number;
}

/** A waiting registration's connection and its fate. */
interface Waiter {
  readonly secure: SecureConnection;
  readonly source: Source;
  readonly label: string;
  /** `waiting` in the table; `paired` once a Meet took it; `gone` once it ended otherwise. */
  state: "waiting" | "paired" | "gone";
  /** The receive pending while it waits: a record here is Spliced once paired, else a violation. */
  next: Promise<Uint8Array | null>;
  expiry: ReturnType<typeof setTimeout> | undefined;
  /** Its entry in the table, once added. */
  entry: Registration<Waiter> | undefined;
  /** The Refused sent when it expired or the relay closed. */
  farewell: Promise<void> | undefined;
  /** Resolves when the pairing and its splice are over. */
  ended: Promise<void>;
  /** Withdraws it from the cluster's directory (16.5); nothing without a cluster. */
  unpublish: () => void;
  end: () => void;
}

/** A rendezvous relay (docs/PROTOCOL.md section 15). */
export class RendezvousRelay {
  #options: RendezvousRelayOptions;
  #limits: RendezvousLimits;
  #log: (line: string) => void;
  #now: () => number;
  #admission: RelayAdmission;
  /** Connections past the handshake, capped per address. */
  #perAddress: WaitingLine;
  #registrations: Registrations<Waiter>;
  #budgets: ByteBudgets;
  #splices = new Set<Splice>();
  #rooms: RoomHost;
  #cluster: { directory: RegistrationDirectory; advertise: string } | undefined;
  #listeners = new Set<Deno.Listener>();
  /** Connections past the handshake not handed to a registration, splice or room yet. */
  #between = new Set<SecureConnection>();
  #tasks = new Set<Promise<unknown>>();
  #closed = false;

  constructor(options: RendezvousRelayOptions) {
    this.#options = options;
    this.#limits = { ...DEFAULT_RENDEZVOUS_LIMITS, ...options.limits };
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? Date.now;
    this.#admission = new RelayAdmission({
      identity: options.identity,
      name: options.name,
      suites: options.suites ?? DEFAULT_RELAY_SUITES,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      firstFlightTimeoutMs: options.firstFlightTimeoutMs,
      maxPending: this.#limits.maxPendingHandshakes,
      maxPendingPerAddress: this.#limits.maxPendingPerAddress,
      log: this.#log,
    });
    this.#rooms = options.rooms ?? new RelayRooms({
      room: options.room,
      now: this.#now,
      keepaliveMs: options.keepaliveMs ?? DEFAULT_RELAY_KEEPALIVE_MS,
      log: this.#log,
    });
    if ((options.directory === undefined) !== (options.advertise === undefined)) {
      throw new RangeError("a relay's directory and advertised address go together (16.5)");
    }
    if (options.directory !== undefined) {
      this.#cluster = { directory: options.directory, advertise: options.advertise! };
    }
    this.#perAddress = new WaitingLine({
      max: Infinity,
      maxPerAddress: this.#limits.maxConnectionsPerAddress,
    });
    this.#registrations = new Registrations({
      maxWaiting: this.#limits.maxWaiting,
      maxWaitingPerAddress: this.#limits.maxWaitingPerAddress,
    });
    this.#budgets = new ByteBudgets({
      bytesPerSecond: this.#limits.bytesPerSecondPerAddress,
      now: this.#now,
    });
  }

  /** What the relay is doing now. */
  get stats(): RendezvousStats {
    return {
      connections: this.#perAddress.size,
      waiting: this.#registrations.size,
      spliced: this.#splices.size,
      rooms: this.#rooms.size,
    };
  }

  /**
   * Serves the connections `listener` accepts until `close()`, which also closes the listener.
   *
   * @throws {RangeError} after `close()`
   */
  serve(listener: Deno.TcpListener): void {
    if (this.#closed) throw new RangeError("the rendezvous relay is closed");
    this.#listeners.add(listener);
    this.#track(acceptLoop(listener, (conn, source) => this.#serve(conn, source), this.#log));
  }

  /**
   * Stops: closes the listeners, tells every waiting registration and room that the relay is
   * shutting down, closes every splice and connection, and resolves once all are gone.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const listener of this.#listeners) {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    }
    this.#admission.close();
    const farewells = this.#registrations.values().map((waiter) =>
      this.#endRegistration(waiter, REFUSAL.shuttingDown)
    );
    const rooms = this.#rooms.close(REFUSAL.shuttingDown);
    for (const running of this.#splices) running.close();
    for (const secure of this.#between) secure.close();
    await Promise.all([...farewells, rooms]);
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  #track(task: Promise<unknown>): Promise<void> {
    const done = task.then(() => {}, () => {});
    this.#tasks.add(done);
    done.then(() => this.#tasks.delete(done));
    return done;
  }

  /** One accepted connection, from its handshake to its end. Never throws. */
  #serve(conn: Deno.Conn, source: Source): Promise<void> {
    return this.#track((async () => {
      if (this.#closed) return closeQuietly(conn);
      const secure = await this.#admission.admit(conn, source);
      if (secure === undefined) return;
      const leave = this.#perAddress.enter(source.address);
      if (leave === undefined) {
        this.#log(`${source.from} refused: too many connections from its address`);
        return await refuse(secure, REFUSAL.tooManyConnections);
      }
      this.#between.add(secure);
      try {
        const request = await this.#readRequest(secure, source);
        if (request === undefined || request.type === "spliced") return;
        const label = await tokenLabel(request.token);
        if (this.#closed) return await refuse(secure, REFUSAL.shuttingDown);
        if (request.type === "register") await this.#register(secure, source, request.token, label);
        else if (request.type === "meet") await this.#meet(secure, source, request.token, label);
        else if (request.type === "room") {
          this.#between.delete(secure);
          await this.#rooms.enter(secure, source, request.token, label);
        } else if (request.type === "resume_room") {
          await this.#resume(secure, source, request.token, request.position, label);
        }
      } catch (error) {
        this.#log(`${source.from} failed: ${messageOf(error)}`);
        secure.close();
      } finally {
        this.#between.delete(secure);
        leave();
      }
    })());
  }

  /** Section 15.2: the first record is the request, within `requestTimeoutMs`. */
  async #readRequest(
    secure: SecureConnection,
    source: Source,
  ): Promise<RendezvousRequest | undefined> {
    let data: Uint8Array | null | "late";
    try {
      data = await receiveWithin(secure, this.#limits.requestTimeoutMs);
    } catch (error) {
      if (!this.#closed) this.#log(`${source.from} left before its request: ${messageOf(error)}`);
      data = null;
    }
    if (data === "late") {
      this.#log(`${source.from} closed: no request within ${this.#limits.requestTimeoutMs} ms`);
    }
    if (data === "late" || data === null) {
      secure.close();
      return undefined;
    }
    let request: RendezvousRequest | undefined;
    try {
      request = decodeRendezvousRequest(data);
    } catch (error) {
      this.#log(`${source.from} refused: ${messageOf(error)}`);
    }
    if (request === undefined || request.type === "spliced") {
      if (request !== undefined) this.#log(`${source.from} refused: Spliced before any Paired`);
      await refuse(secure, REFUSAL.malformed);
      return undefined;
    }
    return request;
  }

  /**
   * Register: waits in the table, with keepalives, until a Meet takes it (the Meet's side then
   * serves the pair), it expires, its client leaves or misbehaves, or the relay closes.
   */
  async #register(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    label: string,
  ): Promise<void> {
    let end = () => {};
    const waiter: Waiter = {
      secure,
      source,
      label,
      state: "waiting",
      next: Promise.resolve(null),
      expiry: undefined,
      entry: undefined,
      farewell: undefined,
      ended: new Promise((resolve) => end = resolve),
      end: () => end(),
      unpublish: () => {},
    };
    const added = this.#registrations.add(token, source.address, waiter);
    if (added.refused !== undefined) {
      const reason = added.refused === "full" ? REFUSAL.full : REFUSAL.tooManyWaiting;
      this.#log(`${source.from} refused for ${label}: ${reason}`);
      return await refuse(secure, reason);
    }
    const { entry } = added;
    waiter.entry = entry;
    if (this.#cluster !== undefined) {
      waiter.unpublish = this.#cluster.directory.publish(token, this.#cluster.advertise);
    }
    this.#between.delete(secure);
    const lifeMs = this.#limits.registrationLifeMs;
    waiter.expiry = setTimeout(() => {
      this.#log(`${source.from}: registration ${label} expired`);
      this.#endRegistration(waiter, REFUSAL.expired);
    }, lifeMs);
    waiter.next = secure.receive();
    waiter.next.catch(() => {});
    secure.send(encodeRendezvousAnswer({ type: "waiting", expiresIn: Math.ceil(lifeMs / 1000) }))
      .catch(() => {}); // a failed send also fails the pending receive
    secure.startKeepalive(this.#options.keepaliveMs ?? DEFAULT_RELAY_KEEPALIVE_MS);
    this.#log(`${source.from} waits for ${label} (${this.#registrations.size} waiting)`);
    let outcome: Uint8Array | null | undefined;
    try {
      outcome = await waiter.next;
    } catch {
      outcome = undefined;
    }
    if (waiter.state === "paired") return await waiter.ended;
    if (waiter.state === "gone") return await waiter.farewell;
    waiter.state = "gone";
    clearTimeout(waiter.expiry);
    this.#registrations.remove(entry);
    waiter.unpublish();
    if (outcome instanceof Uint8Array) {
      this.#log(`${source.from} refused: a second request while waiting for ${label}`);
      return await refuse(secure, REFUSAL.malformed);
    }
    this.#log(`${source.from} left before a dialer came for ${label}`);
    secure.close();
  }

  /** Ends a waiting registration with Refused (expiry, shutdown). */
  #endRegistration(waiter: Waiter, reason: string): Promise<void> {
    if (waiter.state !== "waiting") return waiter.farewell ?? Promise.resolve();
    waiter.state = "gone";
    clearTimeout(waiter.expiry);
    if (waiter.entry !== undefined) this.#registrations.remove(waiter.entry);
    waiter.unpublish();
    waiter.farewell = refuse(waiter.secure, reason, waiter.next);
    return waiter.farewell;
  }

  /** Meet: the oldest registration of the token, Paired to both, each side's Spliced, the splice. */
  async #meet(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    label: string,
  ): Promise<void> {
    const waiter = this.#registrations.take(token);
    if (waiter === undefined) return await this.#meetElsewhere(secure, source, token, label);
    waiter.state = "paired";
    clearTimeout(waiter.expiry);
    waiter.unpublish();
    try {
      await this.#pair(waiter, secure, source, label);
    } finally {
      waiter.end();
    }
  }

  /**
   * Section 16.5: a Meet with no registration here is redirected to the relay of the cluster that
   * holds one; without a cluster, or when none answers, it is refused as in 15.2.
   */
  async #meetElsewhere(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    label: string,
  ): Promise<void> {
    const cluster = this.#cluster;
    // Our own address answers only while a registration waits here, which take() just ruled out.
    const address = cluster === undefined ? undefined : await cluster.directory.lookup(token);
    if (this.#closed) return await refuse(secure, REFUSAL.shuttingDown);
    if (address === undefined || address === cluster!.advertise) {
      this.#log(`${source.from} refused: no listener waits for ${label}`);
      return await refuse(secure, REFUSAL.noListener);
    }
    this.#log(`${source.from} redirected to ${address} for ${label}`);
    await redirect(secure, address);
  }

  /** Section 16.4 ResumeRoom: for the cluster's rooms; a single relay has nothing to resume. */
  async #resume(
    secure: SecureConnection,
    source: Source,
    token: Uint8Array,
    position: bigint,
    label: string,
  ): Promise<void> {
    if (this.#rooms.resume === undefined) {
      this.#log(`${source.from} refused: ResumeRoom for ${label}, and this relay keeps no log`);
      return await refuse(secure, REFUSAL.nothingToResume);
    }
    this.#between.delete(secure);
    await this.#rooms.resume(secure, source, token, position, label);
  }

  async #pair(
    waiter: Waiter,
    dialer: SecureConnection,
    source: Source,
    label: string,
  ): Promise<void> {
    const listener = waiter.secure;
    sendPaired(listener);
    sendPaired(dialer);
    const dialerNext = dialer.receive();
    dialerNext.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ms = this.#limits.splicedTimeoutMs;
    try {
      await Promise.race([
        Promise.all([expectSpliced(waiter.next), expectSpliced(dialerNext)]),
        new Promise<never>((_, reject) =>
          timer = setTimeout(() => reject(new Error(`no Spliced within ${ms} ms of Paired`)), ms)
        ),
      ]);
    } catch (error) {
      this.#log(`pairing for ${label} failed: ${messageOf(error)}`);
      listener.close();
      dialer.close();
      return;
    } finally {
      clearTimeout(timer);
    }
    this.#between.delete(dialer);
    const [listenerSide, dialerSide] = await Promise.all([listener.detach(), dialer.detach()]);
    const running = splice(listenerSide, dialerSide, {
      budgets: this.#budgets,
      idleMs: this.#limits.spliceIdleMs,
    });
    this.#splices.add(running);
    if (this.#closed) running.close();
    this.#log(
      `${waiter.source.from} and ${source.from} spliced for ${label} (${this.#splices.size} spliced)`,
    );
    const outcome = await running.done;
    this.#splices.delete(running);
    this.#log(
      `splice for ${label} ended (${outcome.end}): ${outcome.aToB} bytes to the dialer, ${outcome.bToA} from it`,
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
