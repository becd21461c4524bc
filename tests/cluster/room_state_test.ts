import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { toHex } from "../../lib/core/bytes.ts";
import type { ToRelay } from "../../lib/chat/relay_messages.ts";
import type { RoomEntry } from "../../lib/cluster/room_entries.ts";
import { type Applied, decodeRoomState, RoomState } from "../../lib/cluster/room_state.ts";
import { keyPackage, privateMessage, random, welcome } from "../_helpers/mls_messages.ts";

/** An author with one connection on one relay. */
interface Who {
  author: Uint8Array;
  connection: Uint8Array;
  relay: Uint8Array;
  name: string;
}

function who(name: string, relay = random(16)): Who {
  return { author: random(32), connection: random(16), relay, name };
}

/** Applies entries at positions 1, 2, ... and keeps what each yielded. */
class Log {
  state = new RoomState({ maxMembers: 4 });
  position = 0n;
  names = new Map<string, string>();

  apply(entry: RoomEntry): Applied {
    return this.state.apply(++this.position, entry);
  }
  join(w: Who): string[] {
    this.names.set(toHex(w.connection), w.name);
    return this.#short(this.apply({ type: "joined", ...w }));
  }
  send(w: Who, message: ToRelay): string[] {
    return this.#short(
      this.apply({ type: "message", author: w.author, connection: w.connection, message }),
    );
  }
  leave(w: Who): string[] {
    return this.#short(this.apply({ type: "left", author: w.author, connection: w.connection }));
  }
  short(applied: Applied): string[] {
    return this.#short(applied);
  }
  /** `name:type[:detail]` per delivery. */
  #short(applied: Applied): string[] {
    return applied.deliveries.map((d) => {
      const name = this.names.get(d.connection) ?? "?";
      const m = d.message;
      const detail = m.type === "start"
        ? `:${m.role}`
        : m.type === "accepted" || m.type === "refused"
        ? `:${m.epoch}`
        : m.type === "position"
        ? `:${m.position}`
        : m.type === "notice"
        ? `:${m.text}`
        : "";
      return `${name}:${m.type}${detail}${d.close ? ":close" : ""}`;
    });
  }
}

const groupId = random(8);
const commitAt = (epoch: bigint) => privateMessage({ groupId, epoch, contentType: "commit" });

Deno.test("apply() Joined: the first creates the group, the next waits, positions follow", () => {
  const log = new Log();
  const [a, b] = [who("a"), who("b")];
  deepStrictEqual(log.join(a), ["a:start:create", "a:position:1"]);
  deepStrictEqual(log.join(b), ["b:start:wait"]);
  const again = { ...a, connection: random(16), name: "a2" };
  deepStrictEqual(log.join(again), ["a2:notice:your key is already in the room:close"]);
});

Deno.test("apply() competing commits: the first for the epoch wins, the later one is Refused", () => {
  const log = new Log();
  const [a, b, c] = [who("a"), who("b"), who("c")];
  log.join(a);
  log.join(b);
  const kp = keyPackage();
  deepStrictEqual(log.send(b, { type: "key_package", keyPackage: kp }), [
    "a:knock",
    "a:position:3",
  ]);
  deepStrictEqual(
    log.send(a, {
      type: "commit",
      commit: commitAt(0n),
      welcome: welcome(),
      recipients: [b.author],
    }),
    ["a:accepted:0", "b:welcome", "a:position:4", "b:position:4"],
  );
  log.join(c);
  deepStrictEqual(log.send(a, { type: "commit", commit: commitAt(1n), recipients: [] }), [
    "a:accepted:1",
    "b:commit",
    "a:position:6",
    "b:position:6",
  ]);
  // b's commit for epoch 1 reaches the log after a's: refused with the room's epoch.
  deepStrictEqual(log.send(b, { type: "commit", commit: commitAt(1n), recipients: [] }), [
    "b:refused:2",
    "b:position:7",
  ]);
  strictEqual(log.state.epoch, 2n);
  // A commit for another group is refused too.
  const other = privateMessage({ groupId: random(8), epoch: 2n, contentType: "commit" });
  deepStrictEqual(log.send(b, { type: "commit", commit: other, recipients: [] }), [
    "b:refused:2",
    "b:position:8",
  ]);
  // A waiting newcomer's commit changes nothing.
  deepStrictEqual(log.send(c, { type: "commit", commit: commitAt(2n), recipients: [] }), []);
});

Deno.test("apply() ignores entries naming a connection that is not the author's current one", () => {
  const log = new Log();
  const [a, b] = [who("a"), who("b")];
  log.join(a);
  log.join(b);
  const stale = { ...b, connection: random(16) };
  deepStrictEqual(log.leave(stale), []);
  deepStrictEqual(log.send(stale, { type: "key_package", keyPackage: keyPackage() }), []);
  strictEqual(log.state.present.size, 2);
  deepStrictEqual(log.leave(b), ["a:left", "a:position:5"]);
});

Deno.test("apply() Left of the last member: the longest-waiting newcomer creates, with knocks", () => {
  const log = new Log();
  const [a, b, c] = [who("a"), who("b"), who("c")];
  log.join(a);
  log.join(b);
  log.join(c);
  log.send(a, { type: "commit", commit: commitAt(0n), recipients: [] });
  log.send(c, { type: "key_package", keyPackage: keyPackage() });
  deepStrictEqual(log.leave(a), ["b:start:create", "b:knock", "b:position:6"]);
  strictEqual(log.state.epoch, undefined);
  // The new group's first commit sets the epoch afresh.
  deepStrictEqual(log.send(b, { type: "commit", commit: commitAt(0n), recipients: [] }), [
    "b:accepted:0",
    "b:position:7",
  ]);
});

Deno.test("apply() hands the knocks of those still waiting to each member that joins", () => {
  const log = new Log();
  const [a, b, c] = [who("a"), who("b"), who("c")];
  log.join(a);
  log.join(b);
  log.join(c);
  log.send(b, { type: "key_package", keyPackage: keyPackage() });
  log.send(c, { type: "key_package", keyPackage: keyPackage() });
  deepStrictEqual(
    log.send(a, {
      type: "commit",
      commit: commitAt(0n),
      welcome: welcome(),
      recipients: [b.author],
    }),
    ["a:accepted:0", "b:welcome", "b:knock", "a:position:6", "b:position:6"],
  );
});

Deno.test("apply() Resumed: only a member resumes; anyone else is refused", () => {
  const log = new Log();
  const [a, b] = [who("a"), who("b")];
  log.join(a);
  log.join(b);
  const newA = { ...a, connection: random(16), relay: random(16) };
  log.names.set(toHex(newA.connection), "a'");
  const resumed = log.apply({ type: "resumed", ...newA, position: 1n });
  deepStrictEqual(log.short(resumed), ["a':start:resume"]);
  deepStrictEqual(resumed.resume, {
    author: toHex(a.author),
    connection: toHex(newA.connection),
    previous: toHex(a.connection),
    position: 1n,
  });
  // The old connection's late Left changes nothing; the new one is served.
  deepStrictEqual(log.leave(a), []);
  deepStrictEqual(
    log.send(newA, { type: "direct", recipient: b.author, bytes: Uint8Array.of(1) }),
    [
      "a':notice:no such member in the group: the direct message was not delivered",
      "a':position:5",
    ],
  );
  const newB = { ...b, connection: random(16) };
  log.names.set(toHex(newB.connection), "b'");
  deepStrictEqual(log.short(log.apply({ type: "resumed", ...newB, position: 2n })), [
    "b':notice:nothing to resume: join the room again:close",
  ]);
});

Deno.test("apply() Group and Direct: fan-out to the others, a Direct to its recipient", () => {
  const log = new Log();
  const [a, b, c] = [who("a"), who("b"), who("c")];
  log.join(a);
  log.join(b);
  log.join(c);
  log.send(a, {
    type: "commit",
    commit: commitAt(0n),
    welcome: welcome(),
    recipients: [b.author, c.author],
  });
  const message = privateMessage({ groupId, epoch: 1n, contentType: "application" });
  deepStrictEqual(log.send(b, { type: "group", message }), [
    "a:group",
    "c:group",
    "a:position:5",
    "c:position:5",
  ]);
  deepStrictEqual(log.send(b, { type: "direct", recipient: c.author, bytes: Uint8Array.of(7) }), [
    "c:direct",
    "c:position:6",
  ]);
});

Deno.test("apply() refuses a Joined over the room's limit", () => {
  const log = new Log();
  const people = [who("a"), who("b"), who("c"), who("d"), who("e")];
  for (const p of people.slice(0, 4)) log.join(p);
  deepStrictEqual(log.join(people[4]!), ["e:notice:the room is full (4 members):close"]);
});

Deno.test("encode() and decodeRoomState(): a restored state decides like the original", () => {
  const log = new Log();
  const [a, b, c] = [who("a"), who("b"), who("c")];
  log.join(a);
  log.join(b);
  log.join(c);
  log.send(c, { type: "key_package", keyPackage: keyPackage() });
  log.send(a, { type: "commit", commit: commitAt(0n), welcome: welcome(), recipients: [b.author] });
  const copy = new Log();
  copy.state = decodeRoomState(log.state.encode(), { maxMembers: 4 });
  copy.position = log.position;
  copy.names = log.names;
  deepStrictEqual(copy.state.encode(), log.state.encode());
  const next: ToRelay = { type: "commit", commit: commitAt(1n), recipients: [] };
  deepStrictEqual(copy.send(b, next), log.send(b, next));
  deepStrictEqual(copy.leave(a), log.leave(a));
  ok(decodeRoomState(new RoomState().encode()).present.size === 0);
});
