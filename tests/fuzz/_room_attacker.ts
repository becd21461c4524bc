/**
 * The attacker of room_fuzz_test.ts: a connection to a real Relay that writes whatever relay
 * messages the fuzzer makes, and checks each against the verdict PROTOCOL.md 13.4 and 13.8 give
 * (_relay_model.ts): the warning Notice of a violation, the Refused of a commit for another epoch,
 * the info Notice of an undeliverable Direct, the disconnect after a decode error or at the third
 * violation, and silence otherwise. As a member it is a real one: it joined with its own
 * KeyPackage and the Welcome an admin made, holds the group (lib/group) and follows every commit,
 * so it can encrypt what it then mutates. As an outsider it waits to be admitted and never is.
 *
 * @module
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { toHex } from "../../lib/core/bytes.ts";
import { AuthenticationError, PeerAlertError } from "../../lib/core/errors.ts";
import { type FromRelay, NOTICE_LEVEL } from "../../lib/chat/relay_messages.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { Newcomer, type PendingCommit, type RoomGroup } from "../../lib/group/group.ts";
import type { Relay } from "../../lib/room/relay.ts";
import { describe, joinOverTcp, type RelayPeer } from "../_helpers/relay_peers.ts";
import { relayVerdict, type RelayView, type Verdict } from "./_relay_model.ts";

/** The relay's operator log, with a way to wait for lines about one connection. */
export class Log {
  readonly lines: string[] = [];
  #wake: (() => void)[] = [];
  push = (line: string): void => {
    this.lines.push(line);
    for (const wake of this.#wake.splice(0)) wake();
  };
  /** Lines that name `fingerprint`. */
  about(fingerprint: string): string[] {
    return this.lines.filter((line) => line.includes(fingerprint));
  }
  /** Waits until more than `count` lines name `fingerprint`; returns the next one. */
  async next(fingerprint: string, count: number, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.about(fingerprint).length <= count) {
      if (Date.now() > deadline) {
        throw new Error(
          `no log line about ${fingerprint}; last: ${this.lines.slice(-4).join(" | ")}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.about(fingerprint)[count]!;
  }
}

/** What the attacker saw the relay do, for the summary. */
export type Outcome = Verdict["kind"] | "ejected";

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A connection to the relay that sends what the fuzzer makes and checks each verdict. */
export class RoomAttacker {
  readonly identity: Identity;
  readonly peer: RelayPeer;
  readonly view: RelayView;
  /** The group, while it is a member of it (undefined for an outsider, or once removed). */
  group: RoomGroup | undefined;
  /** Group messages of other members the relay passed it, to replay. */
  readonly heard: Uint8Array[] = [];
  /** Set once the relay ended the connection. */
  ejected = false;
  /** True once a commit removed it from the group (the relay still counts it a member). */
  removed = false;
  /** The relay ended the connection for a decode error, but its decode_error alert was lost. */
  alertLost = false;
  #log: Log;
  #violations = 0;

  private constructor(identity: Identity, peer: RelayPeer, view: RelayView, log: Log) {
    this.identity = identity;
    this.peer = peer;
    this.view = view;
    this.#log = log;
  }

  /** Connects and waits to be admitted, without asking (it may send a KeyPackage later). */
  static async outsider(relay: Relay, relayIdentity: Identity, identity: Identity, log: Log) {
    const peer = await joinOverTcp(relay, relayIdentity, identity);
    deepStrictEqual(await peer.next(), { type: "start", role: "wait" });
    const view: RelayView = {
      role: "waiting",
      knocked: false,
      groupId: undefined,
      epoch: undefined,
      members: new Set(),
    };
    return new RoomAttacker(identity, peer, view, log);
  }

  /**
   * Connects, sends its KeyPackage and joins with the Welcome an admin makes for it (its
   * fingerprint must be on the admin's admit list).
   *
   * @param members author ids of the group's other members, as the relay knows them
   */
  static async member(
    relay: Relay,
    relayIdentity: Identity,
    identity: Identity,
    log: Log,
    members: Uint8Array[],
  ): Promise<RoomAttacker> {
    const attacker = await RoomAttacker.outsider(relay, relayIdentity, identity, log);
    const newcomer = await Newcomer.create(identity, identity.comment);
    await attacker.peer.send({ type: "key_package", keyPackage: newcomer.keyPackage });
    let message: FromRelay;
    while ((message = await attacker.peer.next()).type !== "welcome") {
      ok(message.type === "notice" && message.level === NOTICE_LEVEL.info, describe([message]));
    }
    const { group } = await newcomer.join(message.welcome);
    attacker.group = group;
    Object.assign(attacker.view, {
      role: "member",
      groupId: group.groupId,
      epoch: group.epoch,
      members: new Set([...members, attacker.peer.author].map(toHex)),
    });
    return attacker;
  }

  /** The sender's view of the room's epoch: its group's, while it follows the group. */
  get epoch(): bigint | undefined {
    return this.view.epoch;
  }

  /** What the relay will do with `bytes` from this connection now. */
  verdict(bytes: Uint8Array): Verdict {
    return relayVerdict(bytes, this.view);
  }

  /**
   * Sends `bytes` and checks that the relay did what the spec says, as `verdict` predicted.
   *
   * @param pending our own commit, when `bytes` carries it: adopted on Accepted
   * @returns the verdict, or "ejected" when the relay ended the connection for it
   */
  async send(bytes: Uint8Array, pending?: PendingCommit): Promise<Outcome> {
    const verdict = this.verdict(bytes);
    const fingerprint = this.identity.fingerprint;
    const logged = this.#log.about(fingerprint).length;
    if (verdict.kind === "violation") this.#violations++;
    const ejection = verdict.kind === "decode_error" ||
      (verdict.kind === "violation" && this.#violations >= 3);
    await this.peer.connection.send(bytes);
    if (ejection) {
      await this.#ejected(verdict, logged);
      return "ejected";
    }
    // Everything the relay queued for us before the barrier's answer is our message's answer,
    // and the group's traffic around it. An outsider has no free question: each of its messages
    // makes exactly one log line.
    let answers: FromRelay[];
    if (this.view.role === "member") {
      answers = [];
      // Ours comes before the barrier's, which would stop at the first such Notice.
      if (verdict.kind === "undeliverable") answers.push(...await this.#undelivered());
      answers.push(...await this.peer.barrier());
    } else {
      const line = await this.#log.next(fingerprint, logged);
      if (verdict.kind === "knock") ok(/asks to be admitted$/.test(line), line);
      else ok(new RegExp(`^warning "[^"]*" ${escape(fingerprint)}: `).test(line), line);
      answers = [];
      while (answers.length < (verdict.kind === "violation" ? 1 : 0)) {
        answers.push(await this.peer.next());
      }
    }
    await this.#check(verdict, answers, pending);
    if (verdict.kind === "knock") this.view.knocked = true;
    return verdict.kind;
  }

  /** The answers to one message: exactly what `verdict` says, and the group's traffic. */
  async #check(verdict: Verdict, answers: FromRelay[], pending?: PendingCommit): Promise<void> {
    const notices = answers.filter((m) => m.type === "notice");
    const rulings = answers.filter((m) => m.type === "accepted" || m.type === "refused");
    const wanted: FromRelay[] = [];
    if (verdict.kind === "violation") {
      ok(
        notices.length === 1 && notices[0]!.level === NOTICE_LEVEL.warning &&
          / dropped$/.test(notices[0]!.text),
        `${verdict.why}: expected one warning, got ${describe(answers)}`,
      );
      if (verdict.refused !== undefined) wanted.push({ type: "refused", epoch: verdict.refused });
    } else {
      strictEqual(notices.length, 0, `${verdict.kind}: ${describe(answers)}`);
    }
    if (verdict.kind === "accepted" || verdict.kind === "refused") {
      wanted.push({ type: verdict.kind, epoch: verdict.epoch });
    }
    deepStrictEqual(rulings, wanted, `${verdict.kind}: the relay's rulings`);
    if (verdict.kind === "accepted") {
      ok(pending, "the relay accepted a commit nobody meant to make");
      this.view.epoch = verdict.epoch + 1n;
      await this.group!.confirmCommit(pending);
    } else if (pending) {
      this.group?.discardCommit(pending);
    }
    await this.absorb(answers);
  }

  /** Everything up to the info Notice that our undeliverable Direct earns (left out). */
  async #undelivered(): Promise<FromRelay[]> {
    const before: FromRelay[] = [];
    while (true) {
      const message = await this.peer.next();
      if (
        message.type === "notice" && message.level === NOTICE_LEVEL.info &&
        /direct message was not delivered$/.test(message.text)
      ) {
        return before;
      }
      before.push(message);
    }
  }

  /** The relay ended the connection: the way the spec says, and the log says why. */
  async #ejected(verdict: Verdict, logged: number): Promise<void> {
    this.ejected = true;
    const fingerprint = this.identity.fingerprint;
    const ending = await this.peer.ended();
    const line = await this.#log.next(fingerprint, logged);
    if (verdict.kind === "decode_error") {
      ok(ending !== null, "a message that does not decode ends the session, without close_notify");
      const alerted = ending.error instanceof PeerAlertError &&
        ending.error.received === "decode_error";
      // The relay's alert is lost when a delivery to us was under way as it aborted: the batch
      // being sealed is refused by the ended connection, whose outbox then closes the socket
      // while the alert is written, or has taken a record number it never writes (relay.ts
      // #serve, delivery.ts, SecureConnection.abort()). Then the end reads as a truncation or a
      // missing record; anything else is wrong.
      const truncated = ending.error instanceof AuthenticationError &&
        /without close_notify|is missing \(dropped or reordered/.test(ending.error.message);
      ok(
        alerted || truncated,
        `a message that does not decode ends the session with decode_error: ${ending.error}`,
      );
      if (!alerted) this.alertLost = true;
      ok(/ disconnected: peer sent a malformed relay message: /.test(line), line);
    } else {
      strictEqual(ending, null, "an ejected member is said goodbye to");
      const last = this.peer.inbox.at(-1);
      ok(
        last?.type === "notice" && last.level === NOTICE_LEVEL.final &&
          /disconnected after repeated warnings$/.test(last.text),
        `the third violation earns a final Notice: ${describe(this.peer.inbox.slice(-3))}`,
      );
      ok(/ disconnected: repeated violations, the last: /.test(line), line);
    }
    this.peer.connection.close();
    await this.peer.served;
  }

  /** Follows the group through what the relay passed on: commits applied, messages kept. */
  async absorb(messages: FromRelay[]): Promise<void> {
    for (const message of messages) {
      if (message.type === "group") this.heard.push(message.message);
      if (message.type !== "commit" || !this.group || this.removed) continue;
      const event = await this.group.process(message.commit);
      ok(event.kind === "commit", "a commit processed as a commit");
      this.view.epoch = event.epoch;
      if (event.removedUs) this.removed = true;
    }
  }

  /** Leaves the relay with close_notify, once it answered everything. */
  async close(): Promise<void> {
    if (this.ejected) return;
    await this.absorb(await this.peer.barrier().catch(() => []));
    await this.peer.connection.closeWrite().catch(() => {});
    await this.peer.ended();
    this.peer.connection.close();
    await this.peer.served;
  }
}
