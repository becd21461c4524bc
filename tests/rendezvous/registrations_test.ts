/**
 * The table of waiting registrations (PROTOCOL.md 15.2, 15.6): the oldest of a token is taken
 * first, the caps in all and per address refuse with their own reason, and removal frees a place.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Registrations } from "../../lib/rendezvous/registrations.ts";

const token = (n: number) => new Uint8Array(32).fill(n);

Deno.test("Registrations.take() hands out the oldest registration of a token, once", () => {
  const table = new Registrations<string>({ maxWaiting: 10, maxWaitingPerAddress: 10 });
  table.add(token(1), "192.0.2.1", "first");
  table.add(token(2), "192.0.2.1", "other token");
  table.add(token(1), "192.0.2.2", "second");
  strictEqual(table.size, 3);
  strictEqual(table.take(token(1)), "first");
  strictEqual(table.take(token(1)), "second");
  strictEqual(table.take(token(1)), undefined);
  strictEqual(table.take(token(3)), undefined);
  deepStrictEqual(table.values(), ["other token"]);
});

Deno.test("Registrations.add() refuses past the cap in all as full, past one address's as address", () => {
  const table = new Registrations<string>({ maxWaiting: 3, maxWaitingPerAddress: 2 });
  strictEqual(table.add(token(1), "192.0.2.1", "a").refused, undefined);
  strictEqual(table.add(token(1), "192.0.2.1", "b").refused, undefined);
  strictEqual(table.add(token(2), "192.0.2.1", "c").refused, "address");
  strictEqual(table.add(token(2), "2001:db8::1", "d").refused, undefined);
  strictEqual(table.add(token(2), "2001:db8::2", "e").refused, "full");
  strictEqual(table.size, 3);
});

Deno.test("Registrations.remove() frees the places of its address and in all; twice does nothing", () => {
  const table = new Registrations<string>({ maxWaiting: 2, maxWaitingPerAddress: 1 });
  const added = table.add(token(1), "192.0.2.1", "a");
  if (added.refused !== undefined) throw new Error("refused");
  table.add(token(1), "192.0.2.2", "b");
  strictEqual(table.add(token(1), "192.0.2.3", "c").refused, "full");
  table.remove(added.entry);
  table.remove(added.entry);
  strictEqual(table.size, 1);
  strictEqual(table.add(token(1), "192.0.2.1", "a again").refused, undefined);
  strictEqual(table.take(token(1)), "b");
  strictEqual(table.take(token(1)), "a again");
  strictEqual(table.size, 0);
});
