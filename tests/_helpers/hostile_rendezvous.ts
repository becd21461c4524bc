/**
 * A hostile rendezvous relay for tests, built from the library's own pieces: it runs the relay's
 * real handshake (lib/rendezvous/relay_admission.ts, behind the listener's defences), speaks
 * PROTOCOL.md 15.2 honestly (Register answered Waiting, Meet answered Paired and close_notify, the
 * clients' Spliced awaited, the connections detached), and then misbehaves in the splice, where
 * only the end-to-end handshake and records stand between it and the two people:
 *
 * - `choose` pairs a Meet with any registration it likes (another listener's, or none);
 * - `tamper` decides the fate of every frame of the spliced stream, the same `SwitchHandler` that
 *   `tests/_helpers/switchboard.ts` applies as an on-path attacker (forward, alter, drop, inject
 *   ahead or back, cut), so a test can stage one attack both ways and compare what the victims see;
 * - every splice is recorded byte for byte (`sessions`), and `impersonateDialer()` or the
 *   `playListener` option replay a recorded session's bytes into a later pairing.
 *
 * What it does not do: hold a key of a spliced session (it cannot: the end-to-end handshake runs
 * through it), enforce any limit of 15.6, or serve rooms.
 *
 * Mirrors: docs/PROTOCOL.md sections 15.2 and 15.4 (the honest part); 15.4's last paragraph is
 * what the tests built on it check.
 *
 * @module
 */

import { concat } from "../../lib/core/bytes.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { MAGIC } from "../../lib/protocol/frame.ts";
import { RelayAdmission } from "../../lib/rendezvous/relay_admission.ts";
import { expectSpliced, refuse, sendPaired } from "../../lib/rendezvous/relay_exchange.ts";
import { DEFAULT_RELAY_SUITES } from "../../lib/rendezvous/rendezvous_limits.ts";
import {
  decodeRendezvousRequest,
  encodeRendezvousAnswer,
  REFUSAL,
} from "../../lib/rendezvous/rendezvous_messages.ts";
import { acceptLoop, closeQuietly } from "../../lib/transport/listener.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { SplicedSocket } from "../../lib/transport/spliced_socket.ts";
import type { Direction, SwitchHandler, SwitchVerdict } from "./switchboard.ts";

/** A registration waiting at the hostile relay. */
export interface Waiting {
  readonly token: Uint8Array;
  readonly secure: SecureConnection;
  /** The receive pending since Waiting: the client's Spliced once paired. */
  readonly next: Promise<Uint8Array | null>;
}

/** The bytes one splice carried each way, as the relay read them (before any tampering). */
export interface Recording {
  toListener: Uint8Array[];
  toDialer: Uint8Array[];
}

/** Options of {@linkcode HostileRendezvous}. */
export interface HostileRendezvousOptions {
  identity: Identity;
  /**
   * The registration a Meet of `token` is spliced to, taken from `waiting` (default: the oldest of
   * that token, as an honest relay does); undefined refuses the Meet with "no listener".
   */
  choose?: (token: Uint8Array, waiting: readonly Waiting[]) => Waiting | undefined;
  /** The fate of each frame after the 12-byte magic (default: forwarded). */
  tamper?: SwitchHandler;
  /** The fate of each side's magic (default: forwarded). */
  onMagic?: (direction: Direction, magic: Uint8Array) => SwitchVerdict;
  /**
   * When set, a Meet is paired with nobody: the relay answers the dialer itself with these bytes
   * (a recorded listener's side of an earlier session), reading what the dialer sends until it
   * closes.
   */
  playListener?: Uint8Array;
}

/** A relay that is honest up to the splice and hostile in it. */
export class HostileRendezvous {
  readonly port: number;
  /** Registrations waiting, oldest first. */
  readonly waiting: Waiting[] = [];
  /** Every splice so far, in the order they started. */
  readonly sessions: Recording[] = [];
  #options: HostileRendezvousOptions;
  #listener: Deno.TcpListener;
  #admission: RelayAdmission;
  #conns = new Set<Deno.Conn>();
  #secures = new Set<SecureConnection>();
  #tasks: Promise<unknown>[] = [];
  #accepting: Promise<void>;

  constructor(options: HostileRendezvousOptions) {
    this.#options = options;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#admission = new RelayAdmission({
      identity: options.identity,
      name: undefined,
      suites: DEFAULT_RELAY_SUITES,
      handshakeTimeoutMs: undefined,
      firstFlightTimeoutMs: undefined,
      maxPending: 256,
      maxPendingPerAddress: 256,
      log: () => {},
    });
    this.#accepting = acceptLoop(this.#listener, (conn, source) => {
      const task = (async () => {
        const secure = await this.#admission.admit(conn, source);
        if (secure !== undefined) await this.#serve(secure);
      })().catch(() => {});
      this.#tasks.push(task);
      return task;
    }, () => {});
  }

  /** Section 15.2, honestly: one request, and Waiting, Paired or Refused as an honest relay says. */
  async #serve(secure: SecureConnection): Promise<void> {
    this.#secures.add(secure);
    const data = await secure.receive();
    if (data === null) return secure.close();
    const request = decodeRendezvousRequest(data);
    if (request.type === "register") {
      const next = secure.receive();
      next.catch(() => {});
      await secure.send(encodeRendezvousAnswer({ type: "waiting", expiresIn: 3600 }));
      this.waiting.push({ token: request.token, secure, next });
      return;
    }
    if (request.type !== "meet") return await refuse(secure, REFUSAL.malformed);
    if (this.#options.playListener !== undefined) {
      const dialer = await this.#detachPaired(secure, secure.receive());
      this.#conns.add(dialer);
      await playBytes(dialer, this.#options.playListener);
      return;
    }
    const choose = this.#options.choose ?? oldestOf;
    const registration = choose(request.token, this.waiting);
    if (registration === undefined) return await refuse(secure, REFUSAL.noListener);
    this.waiting.splice(this.waiting.indexOf(registration), 1);
    const dialerNext = secure.receive();
    dialerNext.catch(() => {});
    const [listener, dialer] = await Promise.all([
      this.#detachPaired(registration.secure, registration.next),
      this.#detachPaired(secure, dialerNext),
    ]);
    await this.#splice(listener, dialer);
  }

  /** Section 15.4, honestly: Paired and close_notify, the client's Spliced, the socket handed over. */
  async #detachPaired(
    secure: SecureConnection,
    next: Promise<Uint8Array | null>,
  ): Promise<SplicedSocket> {
    sendPaired(secure);
    await expectSpliced(next);
    const { conn, leftover } = await secure.detach();
    this.#secures.delete(secure);
    return new SplicedSocket(conn, leftover);
  }

  /**
   * Replays `bytes` (a recorded dialer's side of an earlier session) to the oldest registration
   * of `token`, as if a dialer had come, and returns everything the listener sent back until it
   * closed.
   *
   * @throws {Error} when no registration of `token` waits
   */
  async impersonateDialer(token: Uint8Array, bytes: Uint8Array): Promise<Uint8Array> {
    const registration = oldestOf(token, this.waiting);
    if (registration === undefined) throw new Error("no registration of that token waits");
    this.waiting.splice(this.waiting.indexOf(registration), 1);
    const listener = await this.#detachPaired(registration.secure, registration.next);
    this.#conns.add(listener);
    return await playBytes(listener, bytes);
  }

  /** Copies between the two sockets frame by frame, recording, as `tamper` says. */
  async #splice(listener: SplicedSocket, dialer: SplicedSocket): Promise<void> {
    this.#conns.add(listener);
    this.#conns.add(dialer);
    const recording: Recording = { toListener: [], toDialer: [] };
    this.sessions.push(recording);
    const outlets = { toListener: new Outlet(listener), toDialer: new Outlet(dialer) };
    const closeBoth = () => {
      closeQuietly(listener);
      closeQuietly(dialer);
    };
    const tamper = this.#options.tamper ?? ((_direction, frame) => ({ forward: [frame] }));
    const onMagic = this.#options.onMagic ?? ((_direction, magic) => ({ forward: [magic] }));
    const pump = async (from: Deno.Conn, direction: Direction) => {
      const ahead = outlets[direction];
      const behind = outlets[direction === "toListener" ? "toDialer" : "toListener"];
      const apply = async (verdict: SwitchVerdict) => {
        if (verdict === "cut") return false;
        for (const bytes of verdict.back ?? []) await behind.write(bytes);
        for (const bytes of verdict.forward ?? []) await ahead.write(bytes);
        return true;
      };
      let pending: Uint8Array = new Uint8Array(0);
      let magicDone = false;
      let index = 0;
      let recordIndex = 0;
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const n = await from.read(buffer);
          if (n === null) break;
          recording[direction].push(buffer.slice(0, n));
          pending = concat(pending, buffer.subarray(0, n));
          if (!magicDone) {
            if (pending.length < MAGIC.length) continue;
            magicDone = true;
            const magic = pending.slice(0, MAGIC.length);
            pending = pending.slice(MAGIC.length);
            if (!await apply(onMagic(direction, magic))) return closeBoth();
          }
          while (pending.length >= 5) {
            const length = new DataView(pending.buffer, pending.byteOffset, 5).getUint32(1);
            if (pending.length < 5 + length) break;
            const frame = pending.slice(0, 5 + length);
            pending = pending.slice(5 + length);
            const type = frame[0]!;
            const verdict = tamper(direction, frame, { index, recordIndex, type });
            index++;
            if (type === 0x17) recordIndex++;
            if (!await apply(verdict)) return closeBoth();
          }
        }
        await ahead.closeWrite();
      } catch {
        closeBoth();
      }
    };
    await Promise.all([pump(dialer, "toListener"), pump(listener, "toDialer")]);
    closeBoth();
  }

  /** Closes the listener, every registration and every splice; resolves once all have ended. */
  async close(): Promise<void> {
    this.#admission.close();
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
    for (const waiting of this.waiting.splice(0)) waiting.secure.close();
    for (const secure of this.#secures) secure.close();
    for (const conn of this.#conns) closeQuietly(conn);
    await Promise.all(this.#tasks);
  }
}

/** The bytes of one direction of a recording, joined. */
export function bytesOf(recording: Recording, direction: Direction): Uint8Array {
  return concat(...recording[direction]);
}

/**
 * The frames of a recorded direction after its 12-byte magic (PROTOCOL.md 3): what an attacker
 * can lift out of an earlier session and replay into a later one.
 */
export function framesOf(bytes: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let offset = MAGIC.length;
  while (offset + 5 <= bytes.length) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + offset, 5).getUint32(1);
    if (offset + 5 + length > bytes.length) break;
    frames.push(bytes.slice(offset, offset + 5 + length));
    offset += 5 + length;
  }
  return frames;
}

function oldestOf(token: Uint8Array, waiting: readonly Waiting[]): Waiting | undefined {
  return waiting.find((w) => sameBytes(w.token, token));
}

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Writes `bytes` to `socket` and reads what comes back until the socket ends (a FIN or reset),
 * then closes it: a recorded session's side played to a live peer.
 */
export async function playBytes(socket: Deno.Conn, bytes: Uint8Array): Promise<Uint8Array> {
  const heard: Uint8Array[] = [];
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await socket.read(buffer);
        if (n === null) break;
        heard.push(buffer.slice(0, n));
      }
    } catch {
      // A reset ends it too.
    }
  })();
  try {
    let offset = 0;
    while (offset < bytes.length) offset += await socket.write(bytes.subarray(offset));
  } catch {
    // The peer gave up before hearing everything: what it said is in `heard`.
  }
  await reading;
  closeQuietly(socket);
  return concat(...heard);
}

/** One socket with its writes queued, so that both pumps may write to it in turn. */
class Outlet {
  #conn: Deno.Conn;
  #chain: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  write(data: Uint8Array): Promise<void> {
    const conn = this.#conn;
    const next = this.#chain.then(async () => {
      let offset = 0;
      while (offset < data.length) offset += await conn.write(data.subarray(offset));
    });
    this.#chain = next.catch(() => {});
    return next;
  }

  closeWrite(): Promise<void> {
    const next = this.#chain.then(() => this.#conn.closeWrite());
    this.#chain = next.catch(() => {});
    return next;
  }
}
