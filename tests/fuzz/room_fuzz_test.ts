/**
 * Fuzzing a room (PROTOCOL.md 13): a real Relay, two honest members who joined with joinRoom()
 * over loopback (real handshakes, real MLS), and round after round an attacker that writes relay
 * messages by hand on its own connection. In most rounds the attacker is a real member of the
 * group (admitted by the admin's commit, holding the group, following its commits), so what it
 * mutates was real: MLS messages it encrypted, with bits flipped, cut, spliced or replaced by
 * garbage; replays of its own and the others' messages; messages and commits of another group;
 * commits of epochs gone by; valid MLS around content that does not decode; Sealed messages
 * tampered with; Directs of junk; a relay message over the size limit. In the others it is a
 * connection the group never admits. Each round ends with the attacker removed by the admin, or
 * leaving, or disconnected by the relay.
 *
 * What must hold: the relay answers every message as 13.4 and 13.8 say (a model of the spec
 * predicts each verdict: _relay_model.ts), disconnecting the attacker only for a message that
 * does not decode or at its third violation; the honest members never show a message that was not
 * sent as shown, never show one twice, show every message that was, never fail, and keep talking.
 *
 * Not sent: a commit for the room's current epoch that MLS would refuse. The relay must pass on
 * the epoch's first commit (it cannot read it), and 13.6 has every member end its session on a
 * commit it cannot apply: a member can always end the room so, by design. The fuzzer skips such
 * mutants and counts them.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { authorOf, type Identity } from "../../lib/keys/identity.ts";
import { Relay } from "../../lib/room/relay.ts";
import { entered, identities, join, rosterSize, type TestMember } from "../_helpers/room.ts";
import { fuzzCount, hex, iterate, summary } from "./_fuzz.ts";
import { Log, type Outcome, RoomAttacker } from "./_room_attacker.ts";
import {
  chat,
  type Context,
  groupMessage,
  MEMBER_STEPS,
  OUTSIDER_STEPS,
  pickStep,
  type Sent,
} from "./_room_steps.ts";

const [relayIdentity, aliceIdentity, bobIdentity, ...others] = await identities(7) as [
  Identity,
  Identity,
  Identity,
  ...Identity[],
];
/** Attackers the admin admits at once, and ones it never admits. */
const insiders = others.slice(0, 3);
const outsiders = others.slice(3);

const fingerprintOf = (member: TestMember) => member.identity.fingerprint;
const joins = (member: TestMember, fingerprint: string) =>
  member.events.filter((e) => e.type === "join" && e.member.fingerprint === fingerprint).length;
const leaves = (member: TestMember, fingerprint: string) =>
  member.events.filter((e) => e.type === "leave" && e.member.fingerprint === fingerprint).length;

/** Waits for `predicate`, polling (events arrive on other connections). */
async function until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * The honest members' every shown message was sent so (by that sender, to them when private),
 * none twice; every message sent to them was shown; they never failed.
 */
function checkHonest(honest: TestMember[], sent: Map<string, Sent>): number {
  let shown = 0;
  for (const member of honest) {
    const me = fingerprintOf(member);
    const messages = member.events.filter((e) => e.type === "message");
    const texts = messages.map((e) => e.type === "message" ? e.text : "");
    deepStrictEqual(
      texts.length,
      new Set(texts).size,
      `${member.identity.comment} showed a message twice`,
    );
    for (const event of messages) {
      if (event.type !== "message") continue;
      const origin = sent.get(event.text);
      ok(
        origin,
        `${member.identity.comment} showed a message nobody sent: ${JSON.stringify(event.text)}`,
      );
      strictEqual(
        event.from.fingerprint,
        origin.from,
        `the sender of ${JSON.stringify(event.text)}`,
      );
      strictEqual(event.kind === "private", origin.to !== undefined, `kind of ${event.text}`);
      if (origin.to !== undefined && !event.from.self) strictEqual(origin.to, me);
    }
    for (const [text, origin] of sent) {
      if (origin.from === me || origin.late || (origin.to !== undefined && origin.to !== me)) {
        continue;
      }
      ok(texts.includes(text), `${member.identity.comment} never showed ${JSON.stringify(text)}`);
    }
    const failures = member.events.filter((e) => e.type === "error" || e.type === "closed");
    deepStrictEqual(failures, [], `${member.identity.comment} failed`);
    shown += messages.length;
  }
  return shown;
}

Deno.test("a real room withstands a fuzzing member and outsider: the relay answers as 13.4 and 13.8 say, honest members show only what was sent, once", async () => {
  const rounds = fuzzCount(40, 0.005);
  const log = new Log();
  const relay = new Relay({ log: log.push });
  const listed = new Set([bobIdentity, ...insiders].map((identity) => identity.fingerprint));
  const alice = await join(aliceIdentity, relay, relayIdentity, {
    admitsAtOnce: (fingerprint) => listed.has(fingerprint),
  });
  await alice.until(entered);
  const bob = await join(bobIdentity, relay, relayIdentity);
  await bob.until(entered);
  await alice.until(() => rosterSize(alice, 2));
  const honest = [alice, bob];
  const sent = new Map<string, Sent>();
  const stale: Context["stale"] = [];
  const tally = new Map<string, number>();
  const bump = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);
  let steps = 0;

  await iterate("room", rounds, async (prng, round, note) => {
    const trail: string[] = [];
    const outsider = prng.chance(0.25);
    const identity = prng.pick(outsider ? outsiders : insiders);
    const fingerprint = identity.fingerprint;
    const joined = honest.map((member) => joins(member, fingerprint));
    const left = honest.map((member) => leaves(member, fingerprint));
    const attacker = outsider
      ? await RoomAttacker.outsider(relay, relayIdentity, identity, log)
      : await RoomAttacker.member(
        relay,
        relayIdentity,
        identity,
        log,
        honest.map((m) => authorOf(fingerprintOf(m))),
      );
    let counter = 0;
    const ctx: Context = {
      prng,
      attacker,
      honest,
      sent,
      stale,
      own: [],
      marker: () => `${round}.${counter++} ${prng.u32().toString(36)}`,
    };
    try {
      if (!outsider) {
        await until(
          () => honest.every((m, k) => joins(m, fingerprint) > joined[k]!),
          "the attacker's join",
        );
        // A commit made and dropped now is stale once the room moves on: replayed in later rounds.
        if (prng.chance(0.3)) {
          const pending = await attacker.group!.prepareCommit({});
          attacker.group!.discardCommit(pending);
          stale.push({ epoch: pending.epoch, commit: pending.commit });
        }
      }
      const count = prng.between(4, outsider ? 7 : 14);
      for (let k = 0; k < count && !attacker.ejected; k++) {
        const [name, step] = pickStep(prng, outsider ? OUTSIDER_STEPS : MEMBER_STEPS);
        const made = await step(ctx);
        if (!made) continue;
        const verdict = attacker.verdict(made.bytes);
        if (verdict.kind === "accepted" && !made.pending) {
          bump("skipped: a bogus commit for the current epoch (13.6 ends every member)");
          continue;
        }
        trail.push(`${name}: ${made.how}: ${hex(made.bytes, 24)}`);
        note(`${outsider ? "outsider" : "member"} ${identity.comment}: ${trail.join("; ")}`);
        const outcome: Outcome = await attacker.send(made.bytes, made.pending);
        bump(`${name} -> ${outcome}`);
        steps++;
        if (!outsider && prng.chance(0.15)) {
          const speaker = prng.pick(honest);
          const text = `honest ${ctx.marker()}`;
          sent.set(text, { from: fingerprintOf(speaker) });
          await speaker.session.sendText(text);
        }
      }
      if (attacker.alertLost) bump("decode_error alert lost in a race (see _room_attacker.ts)");
      if (!outsider) await endMembership(ctx, alice, trail);
      await attacker.close();
      if (!outsider) {
        await until(() => honest.every((m) => rosterSize(m, 2)), "the attacker out of the group");
        await until(
          () => honest.every((m, k) => leaves(m, fingerprint) > left[k]!),
          "everyone to see it leave",
        );
      }
      // The honest members keep talking.
      for (const [speaker, listener] of [[alice, bob], [bob, alice]] as const) {
        const text = `check ${ctx.marker()}`;
        sent.set(text, { from: fingerprintOf(speaker) });
        await speaker.session.sendText(text);
        await listener.until((events) =>
          events.some((e) => e.type === "message" && e.text === text)
        );
      }
      checkHonest(honest, sent);
    } catch (error) {
      await attacker.close().catch(() => {});
      throw error;
    }
  });

  strictEqual(relay.memberCount, 2, "the honest members are still connected");
  for (const member of honest) {
    ok(
      !log.about(fingerprintOf(member)).some((line) => / disconnected: /.test(line)),
      "an honest member was disconnected",
    );
  }
  const shown = checkHonest(honest, sent);
  const rejected = honest.flatMap((m) => m.events).filter((e) => e.type === "rejected").length;
  await Promise.all(honest.map((member) => member.session.close()));
  await relay.close();
  summary("room", rounds, {
    "attacker messages": steps,
    "messages shown by the honest members": shown,
    "forged, replayed or tampered shown": 0,
    "rejected by the honest members": rejected,
    "outcomes": [...tally].sort().map(([k, v]) => `${k} ${v}`).join("; "),
  });
});

/**
 * Ends a member attacker's membership: the admin removes it (then, still connected, it sends what
 * it kept from before), or it leaves with a Remove proposal, or (the relay disconnected it) the
 * admin removes what is left of it.
 */
async function endMembership(ctx: Context, admin: TestMember, trail: string[]): Promise<void> {
  const { attacker, prng } = ctx;
  if (!attacker.ejected && prng.chance(0.2)) {
    trail.push("leaves");
    await attacker.send(groupMessage(await attacker.group!.proposeLeave()));
    return;
  }
  // Made in this epoch, sent after the removal commit: a message of the epoch before, which a
  // member may still read (MLS keeps a few past epochs for messages the relay delayed). It was
  // sent by a member as it is, so it may be shown, once, by its author's name.
  const lateText = `LATE ${ctx.marker()}`;
  const late = attacker.ejected ? [] : [await attacker.group!.encrypt(chat(lateText))];
  if (late.length) ctx.sent.set(lateText, { from: attacker.identity.fingerprint, late: true });
  trail.push("removed by the admin");
  await admin.session.kick!(attacker.identity.fingerprint);
  if (attacker.ejected) return;
  const deadline = Date.now() + 20_000;
  while (!attacker.removed) {
    ok(Date.now() < deadline, "the attacker never saw its removal");
    await attacker.absorb(await attacker.peer.barrier());
  }
  // Removed from the group, still connected: the relay passes these on, and nobody shows them.
  for (const mls of [...late, ...ctx.own.slice(-2)]) {
    trail.push("sends after its removal");
    await attacker.send(groupMessage(mls));
  }
}
