/**
 * Fuzzing the relay (PROTOCOL.md sections 13 and 14.1) with a real Relay, real signatures and
 * members over loopback. Round after round an attacker joins and writes raw room messages on its
 * SecureConnection: honest ones, replays from an earlier connection, transfer messages to nobody,
 * then one it must be removed for: a forged or altered signature, a replay of its own message, a
 * message in another member's name (even one that member really signed), an oversized text, or
 * garbage. Two honest members and the host watch: they never show a message that was not sent as
 * shown, never show one twice, and keep talking; the relay removes each attacker with the reason
 * the spec gives, and keeps serving.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { concat, u16, u64, u8 } from "../../lib/core/bytes.ts";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import type { Identity } from "../../lib/keys/identity.ts";
import { Relay } from "../../lib/room/relay.ts";
import {
  authorOf,
  CHAT_KIND,
  encodeChat,
  MAX_TEXT_BYTES,
  signChat,
} from "../../lib/chat/room_messages.ts";
import {
  decodeTransfer,
  isTransferType,
  TRANSFER_MESSAGE,
} from "../../lib/transfer/transfer_messages.ts";
import { Prng } from "../_helpers/prng.ts";
import { identities, join, type TestMember } from "../_helpers/room.ts";
import { fuzzCount, fuzzSeed, hex, iterationFailure, mutateMany, summary } from "./_fuzz.ts";
import { NO_RECIPIENT } from "../../lib/chat/room_roster.ts";

const [relayIdentity, aliceIdentity, bobIdentity, ...attackers] = await identities(6) as [
  Identity,
  Identity,
  Identity,
  ...Identity[],
];

/** Operator log lines, with a way to wait for one. */
class Log {
  readonly lines: string[] = [];
  #wake: (() => void)[] = [];
  push = (line: string) => {
    this.lines.push(line);
    for (const wake of this.#wake.splice(0)) wake();
  };
  async waitFor(pattern: RegExp, from: number, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const line = this.lines.slice(from).find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline) {
        throw new Error(
          `no log line matching ${pattern}; last: ${this.lines.slice(-5).join(" | ")}`,
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
  }
}

/** A watcher of the host's events, shaped like a member for the checks. */
function hostWatcher(room: Relay) {
  const events: ChatEvent[] = [];
  const session = room.hostParticipant();
  session.onEvent((event) => events.push(event));
  return { session, events };
}

function messages(events: ChatEvent[]) {
  return events.filter((e): e is ChatEvent & { type: "message" } =>
    e.type === "message" && !e.from.self
  );
}

/** A chat text longer than 4096 bytes: the encoders refuse it, so it is written by hand (13.2). */
function oversizedChat(author: Uint8Array, counter: bigint, length: number): Uint8Array {
  const text = new Uint8Array(length).fill(0x4f);
  text.set(new TextEncoder().encode("OVERSIZED"));
  return concat(
    u8(0x10),
    author,
    u64(counter),
    u64(BigInt(Date.now())),
    u8(CHAT_KIND.text),
    NO_RECIPIENT,
    u16(length),
    text,
    u16(64),
    new Uint8Array(64),
  );
}

type Fatal = "forged" | "altered" | "replay" | "wrongAuthor" | "oversized" | "garbage";

/** Why the relay removes a member for each attack (lib/room/relay.ts, section 13.2 "Relay"). */
const REASONS: Record<Fatal, RegExp> = {
  forged: /sent a message whose signature does not verify/,
  altered: /sent a message whose signature does not verify/,
  replay: /replayed one of its messages/,
  wrongAuthor: /sent a message in another member's name/,
  // 13.4: an oversized text is dropped with a warning (the relay reads texts up to the u16 limit).
  oversized: /malformed room message: text longer than 4096 bytes/,
  garbage:
    /malformed room message|member sent a \w+ message|signature does not verify|replayed one of its|another member's name/,
};

Deno.test("Relay.admit() removes senders of forged, replayed, oversized, wrong-author and garbage messages; nobody shows one", async () => {
  const seed = fuzzSeed();
  const rounds = fuzzCount(24, 0.005);
  const log = new Log();
  const room = new Relay({
    identity: relayIdentity,
    hostParticipates: true,
    hostName: "host",
    log: log.push,
  });
  const admit = (connection: Parameters<Relay["admit"]>[0], name: string) =>
    room.admit(connection, name);
  const host = hostWatcher(room);
  const alice = await join(aliceIdentity, relayIdentity, admit);
  const bob = await join(bobIdentity, relayIdentity, admit);
  await alice.until(() => alice.session.members().length === 3);
  const watchers: { name: string; events: ChatEvent[]; fingerprint: string }[] = [
    { name: "alice", events: alice.events, fingerprint: aliceIdentity.fingerprint },
    { name: "bob", events: bob.events, fingerprint: bobIdentity.fingerprint },
    { name: "host", events: host.events, fingerprint: relayIdentity.fingerprint },
  ];

  /** Texts sent honestly: public ones, and private ones with their recipient. */
  const publicTexts = new Set<string>();
  const privateTexts = new Map<string, string>();
  const counters = new Map<string, bigint>();
  const earlier = new Map<string, Uint8Array[]>();
  const tally = new Map<string, number>();
  const bump = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);
  let attacks = 0;

  const nextCounter = (identity: Identity) => {
    const next = (counters.get(identity.fingerprint) ?? BigInt(Date.now()) * 1000n) + 1n;
    counters.set(identity.fingerprint, next);
    return next;
  };
  const sign = async (identity: Identity, text: string, kind: 1 | 2 | 3 = 1, to?: Identity) =>
    await signChat(identity, room.roomId, {
      author: authorOf(identity.fingerprint),
      counter: nextCounter(identity),
      timestamp: Date.now(),
      kind,
      recipient: to ? authorOf(to.fingerprint) : NO_RECIPIENT,
      text,
    });
  const joinsSeen = (events: ChatEvent[], fingerprint: string) =>
    events.filter((e) => e.type === "join" && e.member.fingerprint === fingerprint).length;
  const leavesSeen = (events: ChatEvent[], fingerprint: string) =>
    events.filter((e) => e.type === "leave" && e.member.fingerprint === fingerprint).length;
  const until = async (predicate: () => boolean, what: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  for (let round = 0; round < rounds; round++) {
    const prng = Prng.forIteration(seed, round);
    const identity = prng.pick(attackers);
    const fingerprint = identity.fingerprint;
    const author = authorOf(fingerprint);
    const steps: string[] = [];
    let attacker: TestMember | undefined;
    try {
      const joins = watchers.map((w) => joinsSeen(w.events, fingerprint));
      attacker = await join(identity, relayIdentity, admit);
      let attackerClosed = false;
      attacker.session.closed.then(() => attackerClosed = true);
      const connection = attacker.connection!;
      await until(
        () => watchers.every((w, k) => joinsSeen(w.events, fingerprint) > joins[k]!),
        "everyone to see the attacker join",
      );
      const send = async (bytes: Uint8Array, step: string) => {
        steps.push(`${step} ${hex(bytes, 16)}`);
        await connection.send(bytes);
      };
      const sentNow: Uint8Array[] = [];

      // A replay from an earlier connection: the relay's counter is per connection, so it
      // forwards it; every recipient has seen it and must refuse it (13.2 "Recipients").
      const before = earlier.get(fingerprint) ?? [];
      if (before.length > 0 && prng.chance(0.4)) {
        await send(prng.pick(before), "replay from an earlier connection");
        bump("replays across connections (forwarded, refused by recipients)");
      }
      // Honest messages, public or private: these must arrive.
      for (let k = prng.int(3); k > 0; k--) {
        const text = `legit ${round}.${k} ${prng.u32().toString(36)}`;
        const to = prng.chance(0.3) ? prng.pick([aliceIdentity, bobIdentity]) : undefined;
        const chat = await sign(identity, text, to ? 3 : prng.pick([1, 2]), to);
        if (to) privateTexts.set(text, to.fingerprint);
        else publicTexts.add(text);
        const bytes = encodeChat(chat);
        sentNow.push(bytes);
        await send(bytes, "honest");
      }
      // Well-formed transfer messages to a party that is not in the room: dropped by the relay
      // (14.1). (Malformed ones get their sender removed: the relay decodes before forwarding.)
      for (let k = prng.int(3); k > 0; k--) {
        const bytes = concat(
          u8(TRANSFER_MESSAGE.ack),
          prng.bytes(32 + 16),
          u64(BigInt(prng.int(2 ** 30))),
        );
        await send(bytes, "transfer to nobody");
        bump("transfer messages to nobody (dropped)");
      }
      // Well-formed transfer messages to an honest member, with an unknown transfer id: ignored.
      for (let k = prng.chance(0.5) ? prng.int(3) : 0; k > 0; k--) {
        const party = authorOf(prng.pick(watchers).fingerprint);
        const [type, body] = prng.pick(
          [
            [TRANSFER_MESSAGE.accept, new Uint8Array(0)],
            [TRANSFER_MESSAGE.ack, u64(BigInt(prng.int(2 ** 30)))],
            [TRANSFER_MESSAGE.done, new Uint8Array(0)],
            [TRANSFER_MESSAGE.complete, new Uint8Array(0)],
            [TRANSFER_MESSAGE.cancel, u8(0)],
          ] as const,
        );
        const bytes = concat(u8(type), party, prng.bytes(16), body);
        decodeTransfer(bytes); // well-formed by construction: malformed ones get the sender removed
        await send(bytes, "transfer with an unknown id to a member");
        bump("well-formed transfer messages with unknown ids (ignored)");
      }

      // The attack the relay must remove it for.
      const fatal: Fatal = prng.pick(
        ["forged", "altered", "replay", "wrongAuthor", "oversized", "garbage"] as const,
      );
      const marker = `${fatal.toUpperCase()} ${round} ${prng.u32().toString(36)}`;
      let bytes: Uint8Array;
      switch (fatal) {
        case "forged": {
          const chat = await sign(identity, marker);
          bytes = encodeChat({
            ...chat,
            signature: prng.bytes(prng.pick([0, 1, 63, 64, 65, 512])),
          });
          break;
        }
        case "altered": {
          // A genuine signature over another text: the relay must see the text changed.
          const chat = await sign(identity, `legit-looking ${round}`);
          bytes = encodeChat({ ...chat, text: marker });
          break;
        }
        case "replay": {
          if (sentNow.length === 0) {
            const chat = await sign(identity, `legit ${round}.replayed`);
            publicTexts.add(chat.text);
            const honest = encodeChat(chat);
            sentNow.push(honest);
            await send(honest, "honest");
          }
          bytes = prng.pick(sentNow);
          break;
        }
        case "wrongAuthor": {
          // Signed by alice for real (as if captured), sent on the attacker's connection.
          const victim = prng.pick([aliceIdentity, bobIdentity]);
          const chat = prng.chance(0.5)
            ? await sign(victim, marker)
            : { ...await sign(identity, marker), author: authorOf(victim.fingerprint) };
          bytes = encodeChat(chat);
          break;
        }
        case "oversized": {
          // Oversized but within one 16 KiB record (a larger message cannot be one record at all).
          const length = prng.pick([MAX_TEXT_BYTES + 1, MAX_TEXT_BYTES + 2, 8192, 16000]);
          bytes = oversizedChat(author, nextCounter(identity), length);
          break;
        }
        case "garbage": {
          const source = prng.chance(0.5)
            ? encodeChat(await sign(identity, marker))
            : prng.bytes(prng.length(300));
          bytes = source.length === 0 ? source : mutateMany(prng, source).bytes;
          // Transfer types are routed, not decoded, by the relay: keep garbage a room message.
          if (bytes.length > 0 && isTransferType(bytes[0]!)) bytes[0] = 0x10;
          break;
        }
      }
      const from = log.lines.length;
      const left = new RegExp(`${fingerprint.replace(/[+/]/g, "\\$&")} left: `);
      await send(bytes, fatal);
      attacks++;
      let reason = fatal;
      if (fatal === "oversized") {
        // Section 13.4: a warning and a dropped message; a forgery then ends the round.
        const warned = () =>
          attacker!.events.some((e) => e.type === "notice" && /longer than/.test(e.text));
        await until(() => warned() || log.lines.slice(from).some((l) => left.test(l)), "a verdict");
        if (warned() && !log.lines.slice(from).some((l) => left.test(l))) {
          bump("oversized: warned and dropped (13.4)");
          const chat = await sign(identity, marker);
          await send(encodeChat({ ...chat, signature: new Uint8Array(64) }), "forged");
          reason = "forged";
        }
      }
      const line = await log.waitFor(left, from);
      ok(REASONS[reason].test(line), `${fatal}: removed for the wrong reason: ${line}`);
      bump(`removed: ${reason}`);
      await until(
        () =>
          watchers.every((w) =>
            leavesSeen(w.events, fingerprint) >= joinsSeen(w.events, fingerprint)
          ),
        "everyone to see the attacker leave",
      );
      await until(() => attackerClosed, "the attacker's session to end");
      earlier.set(fingerprint, [...before, ...sentNow].slice(-8));

      // Every few rounds the honest members talk: the room keeps serving.
      if (round % 4 === 3) {
        const text = `honest check ${round}`;
        publicTexts.add(text);
        await alice.session.sendText(text);
        await until(
          () =>
            [bob.events, host.events].every((events) =>
              messages(events).some((e) => e.text === text)
            ),
          "an honest message to arrive",
        );
      }
    } catch (error) {
      await attacker?.session.close().catch(() => {});
      throw iterationFailure("room", round, steps.join("; "), error);
    }
  }

  // The room still serves: a last exchange in both directions, everyone still present.
  await bob.session.sendText("last word from bob");
  await host.session.sendText("last word from the host");
  publicTexts.add("last word from bob").add("last word from the host");
  await until(
    () =>
      messages(alice.events).some((e) => e.text === "last word from bob") &&
      messages(alice.events).some((e) => e.text === "last word from the host") &&
      messages(host.events).some((e) => e.text === "last word from bob"),
    "the last words",
  );
  deepStrictEqual(room.memberCount, 2);

  // What the honest watchers showed: only honest texts, each once; private ones only to their
  // recipient; never an error, never a departure of their own.
  let delivered = 0;
  for (const watcher of watchers) {
    const shown = messages(watcher.events).map((e) => e.text);
    for (const text of shown) {
      const privateTo = privateTexts.get(text);
      ok(
        publicTexts.has(text) || privateTo === watcher.fingerprint,
        `${watcher.name} showed a message nobody sent like that: ${JSON.stringify(text)}`,
      );
    }
    deepStrictEqual(shown.length, new Set(shown).size, `${watcher.name} showed a message twice`);
    ok(!watcher.events.some((e) => e.type === "error" || e.type === "closed"), watcher.name);
    delivered += shown.length;
  }
  for (const member of [alice, bob]) await member.session.close();
  await room.close();
  summary("room", rounds, {
    "attacks": attacks,
    "honest messages shown": delivered,
    "forged, altered, replayed or oversized shown": 0,
    "outcomes": [...tally].map(([k, v]) => `${k} ${v}`).join("; "),
  });
});

// Regression: one malformed transfer message once made its recipient leave the room.
Deno.test({
  name: "a malformed transfer message addressed to a member never disconnects that member",
  fn: async () => {
    const log = new Log();
    const room = new Relay({ identity: relayIdentity, hostParticipates: false, log: log.push });
    const admit = (connection: Parameters<Relay["admit"]>[0], name: string) =>
      room.admit(connection, name);
    const alice = await join(aliceIdentity, relayIdentity, admit);
    const mallory = await join(attackers[0]!, relayIdentity, admit);
    await alice.until(() => alice.session.members().length === 2);
    // An Accept with one trailing byte, addressed to alice.
    await mallory.connection!.send(
      concat(
        u8(TRANSFER_MESSAGE.accept),
        authorOf(aliceIdentity.fingerprint),
        new Uint8Array(16),
        u8(0),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    ok(
      !alice.events.some((e) => e.type === "error" || e.type === "closed"),
      JSON.stringify(alice.events.filter((e) => e.type === "error")),
    );
    await mallory.session.close();
    await alice.session.close();
    await room.close();
  },
});

// Regression: an oversized chat text once disconnected its sender instead of the 13.4 warning.
Deno.test({
  name: "a chat text over 4096 bytes earns a warning Notice and is dropped, as 13.4 says",
  fn: async () => {
    const room = new Relay({ identity: relayIdentity, hostParticipates: false });
    const admit = (connection: Parameters<Relay["admit"]>[0], name: string) =>
      room.admit(connection, name);
    const mallory = await join(attackers[0]!, relayIdentity, admit);
    const counter = BigInt(Date.now()) * 1000n + 1000n;
    await mallory.connection!.send(
      oversizedChat(authorOf(attackers[0]!.fingerprint), counter, MAX_TEXT_BYTES + 1),
    );
    await mallory.until(
      (events) => events.some((e) => e.type === "notice" || e.type === "closed"),
      5000,
    );
    ok(
      mallory.events.some((e) => e.type === "notice" && /longer than 4096/.test(e.text)),
      JSON.stringify(mallory.events.slice(-3)),
    );
    ok(!mallory.events.some((e) => e.type === "closed"), "disconnected at the first violation");
    await mallory.session.close();
    await room.close();
  },
});
