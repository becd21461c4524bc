import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { CHAT_HELP } from "../../lib/terminal/chat_commands.ts";
import type { ChatEvent, MemberInfo, Participant } from "../../lib/chat/chat_events.ts";
import {
  MAX_JSON_INPUT_LINE,
  runJsonChat,
  runTerminalChat,
} from "../../lib/terminal/chat_terminal.ts";
import type { TransferEvent } from "../../lib/terminal/chat_view.ts";
import { SecurechatError } from "../../lib/core/errors.ts";
import { alice, bob, carol, KIB, MIB, sendingTransfer, TIME } from "../_helpers/chat_fixtures.ts";

/**
 * A test double of our own Participant interface (not of the network or the crypto): it records
 * the calls the UI makes, echoes what we send as events like the real session, and emits events
 * on demand.
 */
class FakeSession implements Participant {
  readonly self = alice;
  readonly calls: string[][] = [];
  readonly #listeners = new Set<(event: ChatEvent) => void>();
  readonly #closed = Promise.withResolvers<void>();
  readonly closed = this.#closed.promise;

  onEvent(listener: (event: ChatEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  emit(event: ChatEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
  sendText(text: string): Promise<void> {
    this.calls.push(["sendText", text]);
    this.emit(message(alice, text));
    return Promise.resolve();
  }
  sendAction(text: string): Promise<void> {
    this.calls.push(["sendAction", text]);
    this.emit(message(alice, text, "action"));
    return Promise.resolve();
  }
  sendPrivate(to: string, text: string): Promise<void> {
    this.calls.push(["sendPrivate", to, text]);
    const member = this.members().find((m) => m.name === to && !m.self);
    if (member === undefined) {
      return Promise.reject(
        new SecurechatError("unknown_member", `cannot send to "${to}": no such member`, 1, {
          hints: ["/who lists the members"],
        }),
      );
    }
    this.emit({ ...message(alice, text, "private"), to: member });
    return Promise.resolve();
  }
  members(): MemberInfo[] {
    return [alice, bob];
  }
  verify(member?: string): Promise<ChatEvent & { type: "verification" }> {
    this.calls.push(member === undefined ? ["verify"] : ["verify", member]);
    return Promise.resolve(verification(member));
  }
  close(): Promise<void> {
    this.calls.push(["close"]);
    this.end("you left");
    return Promise.resolve();
  }
  /** Ends the session as the far side would, with or without a `closed` event. */
  end(reason?: string): void {
    if (reason !== undefined) this.emit({ type: "closed", time: TIME, reason });
    this.#closed.resolve();
  }
  fail(error: Error): void {
    this.#closed.reject(error);
  }
}

/**
 * A FakeSession whose person may admit, remove and make admins: it records those calls too, and
 * refuses a name nobody has, as the real session does.
 */
class AdminSession extends FakeSession {
  admit(who: string): Promise<void> {
    return this.#record("admit", who);
  }
  kick(who: string): Promise<void> {
    return this.#record("kick", who);
  }
  setAdmin(who: string, on: boolean): Promise<void> {
    return this.#record("setAdmin", who, String(on));
  }
  #record(method: string, who: string, ...rest: string[]): Promise<void> {
    this.calls.push([method, who, ...rest]);
    if (who === "zed") {
      return Promise.reject(
        new SecurechatError("unknown_member", `no member called "${who}" in the room`),
      );
    }
    return Promise.resolve();
  }
}

/** What FakeSession.verify() answers: with a member, the safety number with bob. */
function verification(member?: string): ChatEvent & { type: "verification" } {
  const event: ChatEvent & { type: "verification" } = {
    type: "verification",
    time: TIME,
    code: "0421 9973 1205",
    peer: bob,
    epochCode: "5550 1234 9876",
  };
  if (member !== undefined) event.safety = { member: bob, number: "1111 2222 3333" };
  return event;
}

function message(
  from: MemberInfo,
  text: string,
  kind: "text" | "action" | "private" = "text",
): ChatEvent & { type: "message" } {
  return { type: "message", time: TIME, from, text, kind, verified: true };
}

/** Typed input as a stream the test pushes bytes into. */
function keyboard() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  return {
    stream,
    type: (input: string | Uint8Array) =>
      controller.enqueue(typeof input === "string" ? new TextEncoder().encode(input) : input),
    end: () => controller.close(),
  };
}

/** Captures writes, one string per write. */
class Capture {
  readonly writes: string[] = [];
  write(bytes: Uint8Array): Promise<number> {
    this.writes.push(new TextDecoder().decode(bytes));
    return Promise.resolve(bytes.length);
  }
  get text(): string {
    return this.writes.join("");
  }
  get last(): string {
    return this.writes[this.writes.length - 1] ?? "";
  }
}

/** Records raw mode switches. */
class RawRecorder {
  readonly calls: boolean[] = [];
  setRaw(mode: boolean): void {
    this.calls.push(mode);
  }
}

/** Lets the chat run until `condition` holds (bounded, so a bug fails instead of hanging). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function startTerminal(session = new FakeSession(), columns = 80) {
  const keys = keyboard();
  const output = new Capture();
  const raw = new RawRecorder();
  const done = runTerminalChat(session, {
    input: keys.stream,
    output,
    colors: false,
    raw,
    now: () => new Date(TIME),
    timeZone: "UTC",
    columns: () => columns,
  });
  return { session, keys, output, raw, done };
}

const CLEAR = "\r\x1b[2K";
/** Back to the first of `rows` status rows above the prompt row, and clear to the end. */
const up = (rows: number) => `\r\x1b[${rows}A\x1b[J`;
/** A `transfer` event of "a.bin" (4 MiB) to bob, sending, without rate and ETA yet. */
function transfer(bytes: number, extra: Partial<TransferEvent> = {}): TransferEvent {
  return sendingTransfer("a.bin", bytes, extra);
}

/** The write at index `from`, once it lands. */
async function nextWrite(output: Capture, from: number, what: string): Promise<string> {
  await until(() => output.writes.length > from, what);
  return output.writes[from]!;
}

Deno.test("`runTerminalChat()` keeps the partly typed line intact when a message arrives", async () => {
  const { session, keys, output, raw, done } = startTerminal();
  await until(() => output.text.includes("alice> "), "the prompt");
  equal(output.writes[0], `${CLEAR}alice> \r\x1b[7C`);
  keys.type("hel");
  await until(() => output.last.includes("alice> hel"), "the echo of typing");
  session.emit(message(bob, "hi there"));
  await until(() => output.text.includes("hi there"), "the message");
  equal(output.last, `${CLEAR}09:05 bob ✓: hi there\r\nalice> hel\r\x1b[10C`);
  keys.type("lo\r");
  await until(() => session.calls.length === 1, "the send");
  eql(session.calls, [["sendText", "hello"]]);
  await until(() => output.text.includes("alice ✓: hello"), "our message");
  equal(output.last, `${CLEAR}09:05 alice ✓: hello\r\nalice> \r\x1b[7C`);
  keys.type("/quit\r");
  await done;
  eql(session.calls, [["sendText", "hello"], ["close"]]);
  eql(raw.calls, [true, false]);
});

Deno.test("`runTerminalChat()` /quit closes the session and restores the terminal", async () => {
  const { session, keys, output, raw, done } = startTerminal();
  keys.type("/quit\r");
  await done;
  eql(session.calls, [["close"]]);
  eql(raw.calls, [true, false]);
  equal(output.text.split("chat closed: you left").length, 2, "said once");
  equal(output.last, CLEAR, "the prompt row is cleared for the shell");
});

Deno.test("`runTerminalChat()` quits on Ctrl-C, Ctrl-D on an empty line, and end of input", async () => {
  for (const [name, input] of [["Ctrl-C", "typed\x03"], ["Ctrl-D", "\x04"], ["end", ""]]) {
    const { session, keys, raw, done } = startTerminal();
    keys.type(input!);
    if (name === "end") keys.end();
    await done;
    eql(session.calls, [["close"]], name);
    eql(raw.calls, [true, false], name);
  }
});

Deno.test("`runTerminalChat()` prints the hint for an unknown command and goes on", async () => {
  const { session, keys, output, done } = startTerminal();
  keys.type("/frob\r");
  await until(() => output.text.includes("frob"), "the hint");
  ok(output.text.includes(`09:05 ! error: unknown command "/frob": type /help for the commands`));
  keys.type("/me waves\r");
  await until(() => session.calls.length === 1, "the action");
  eql(session.calls, [["sendAction", "waves"]]);
  ok(output.text.includes("09:05 * alice ✓ waves"));
  keys.type("\x04");
  await done;
});

Deno.test("`runTerminalChat()` shows a failed /msg as an error and goes on", async () => {
  const { session, keys, output, done } = startTerminal();
  keys.type("/msg zed hi\r");
  await until(() => output.text.includes("/who lists"), "the error");
  ok(output.text.includes(`09:05 ! error: cannot send to "zed": no such member\r\n`));
  ok(output.text.includes("09:05 -- hint: /who lists the members\r\n"));
  keys.type("/msg bob hi\r");
  await until(() => session.calls.length === 2, "the second /msg");
  eql(session.calls[1], ["sendPrivate", "bob", "hi"]);
  await until(() => output.text.includes("[private] you -> bob: hi"), "the private echo");
  keys.type("/quit\r");
  await done;
});

Deno.test("`runTerminalChat()` answers /who, /verify and /help locally", async () => {
  const { session, keys, output, done } = startTerminal();
  keys.type("/who\r/verify\r/help\r/quit\r");
  await done;
  eql(session.calls, [["verify"], ["close"]], "nothing sent");
  for (
    const expected of [
      "09:05 -- 2 members in the room:\r\n         alice (you) SHA256:aaa\r\n         bob (host) SHA256:bbb\r\n",
      "09:05 -- verification code with the relay: 0421 9973 1205\r\n09:05 -- relay: bob (host) SHA256:bbb\r\n",
      "09:05 -- room epoch code: 5550 1234 9876\r\n",
      "commands:\r\n  /help            this list\r\n",
    ]
  ) ok(output.text.includes(expected), expected);
  ok(!output.text.includes("-- safety number with"), "no safety number without a NAME");
});

Deno.test("`runTerminalChat()` hands /admit, /kick, /op, /deop and /verify NAME to the session", async () => {
  const { session, keys, output, done } = startTerminal(new AdminSession());
  keys.type("/admit dave\r/kick carol\r/op carol\r/deop SHA256:ccc\r/verify bob\r/kick zed\r");
  await until(() => output.text.includes('"zed" in the room'), "the error");
  eql(session.calls, [
    ["admit", "dave"],
    ["kick", "carol"],
    ["setAdmin", "carol", "true"],
    ["setAdmin", "SHA256:ccc", "false"],
    ["verify", "bob"],
    ["kick", "zed"],
  ]);
  ok(output.text.includes("09:05 -- safety number with bob (SHA256:bbb): 1111 2222 3333\r\n"));
  ok(output.text.includes('09:05 ! error: no member called "zed" in the room\r\n'));
  keys.type("/kick\r");
  await until(() => output.text.includes("usage: /kick NAME"), "the usage");
  equal(session.calls.length, 6, "a bad usage calls nothing");
  keys.type("/quit\r");
  await done;
});

Deno.test("`runTerminalChat()` says so when the session cannot /admit, /kick, /op or /deop", async () => {
  const { session, keys, output, done } = startTerminal();
  keys.type("/admit dave\r/kick carol\r/op carol\r/deop carol\r");
  await until(() => output.text.split("does not support").length === 5, "four errors");
  for (
    const what of [
      "admitting newcomers (/admit)",
      "removing members (/kick)",
      "making admins (/op, /deop)",
    ]
  ) ok(output.text.includes(`09:05 ! error: this session does not support ${what}\r\n`), what);
  eql(session.calls, []);
  keys.type("/quit\r");
  await done;
});

Deno.test("`runTerminalChat()` ends when the session closes, and says why", async () => {
  const { session, output, raw, done } = startTerminal();
  await until(() => output.text.includes("alice> "), "the prompt");
  session.end("bob closed the room");
  await done;
  ok(output.text.includes("09:05 -- chat closed: bob closed the room\r\n"));
  eql(session.calls, [], "no close() of an ended session");
  eql(raw.calls, [true, false]);

  const silent = startTerminal();
  await until(() => silent.output.text.includes("alice> "), "the prompt");
  silent.session.end();
  await silent.done;
  ok(silent.output.text.includes("09:05 -- chat closed: the session ended\r\n"));
});

Deno.test("`runTerminalChat()` restores the terminal when the session fails", async () => {
  const { session, output, raw, done } = startTerminal();
  await until(() => output.text.includes("alice> "), "the prompt");
  session.fail(new SecurechatError("bad_record_mac", "record failed authentication"));
  await rejects(done, (error: unknown) => (error as SecurechatError).code === "bad_record_mac");
  eql(raw.calls, [true, false]);
  equal(output.last, CLEAR);
});

Deno.test("`runTerminalChat()` never lets peer text reach the terminal as escape sequences", async () => {
  const { session, keys, output, done } = startTerminal();
  session.emit(message({ name: "m\x1b[2Jal", fingerprint: "f" }, "x\x1b]0;owned\x07\ny\u009b1m"));
  await until(() => output.text.includes("owned"), "the message");
  ok(output.text.includes("09:05 m[2Jal ✓: x]0;owned y1m\r\n"));
  ok(!output.text.includes("\x1b]") && !output.text.includes("\x1b[2J"));
  ok(!output.text.includes("\u009b"));
  keys.type("\x03");
  await done;
});

Deno.test("`runTerminalChat()` scrolls a line wider than the terminal", async () => {
  const session = new FakeSession();
  const keys = keyboard();
  const output = new Capture();
  const done = runTerminalChat(session, {
    input: keys.stream,
    output,
    colors: false,
    raw: new RawRecorder(),
    columns: () => 20,
  });
  keys.type("0123456789abcdefghij");
  await until(() => output.last.includes("j"), "the redraw");
  // 20 columns - "alice> " (7) - 1 free column = 12 characters before the cursor.
  equal(output.last, `${CLEAR}alice> 89abcdefghij\r\x1b[19C`);
  keys.type("\x01");
  await until(() => output.last.includes("alice> 0"), "Home");
  equal(output.last, `${CLEAR}alice> 0123456789ab\r\x1b[7C`);
  keys.type("\x03");
  await done;
});

/** Runs the JSON chat over `input` chunks and returns the parsed output lines. */
async function runJson(session: FakeSession, ...chunks: (string | Uint8Array)[]) {
  const keys = keyboard();
  const output = new Capture();
  for (const chunk of chunks) keys.type(chunk);
  keys.end();
  await runJsonChat(session, { input: keys.stream, output, now: () => new Date(TIME) });
  ok(output.text.endsWith("\n"));
  const lines = output.text.slice(0, -1).split("\n");
  equal(lines.length, output.writes.length, "one write per line");
  return lines.map((line) => JSON.parse(line) as ChatEvent);
}

Deno.test("`runJsonChat()` emits one JSON event per line and runs every command", async () => {
  const session = new FakeSession();
  const events = await runJson(
    session,
    "hello\n/me waves\n/who\n/verify\n/help\n/frob\n/msg zed hi\n/msg bob psst\n",
  );
  eql(events, [
    message(alice, "hello"),
    message(alice, "waves", "action"),
    { type: "roster", time: TIME, members: [alice, bob] },
    verification(),
    { type: "notice", time: TIME, text: CHAT_HELP.join("\n") },
    {
      type: "error",
      time: TIME,
      code: "invalid_input",
      message: 'unknown command "/frob": type /help for the commands',
    },
    {
      type: "error",
      time: TIME,
      code: "unknown_member",
      message: 'cannot send to "zed": no such member',
    },
    { type: "notice", time: TIME, text: "hint: /who lists the members" },
    { ...message(alice, "psst", "private"), to: bob },
    { type: "closed", time: TIME, reason: "you left" },
  ]);
  eql(session.calls, [
    ["sendText", "hello"],
    ["sendAction", "waves"],
    ["verify"],
    ["sendPrivate", "zed", "hi"],
    ["sendPrivate", "bob", "psst"],
    ["close"],
  ]);
});

Deno.test("`runJsonChat()` takes /admit, /kick, /op, /deop and /verify NAME as typed lines", async () => {
  const session = new AdminSession();
  const events = await runJson(
    session,
    "/admit dave\n/kick carol\n/op carol\n/deop carol\n/verify bob\n/op\n/admit zed\n",
  );
  eql(session.calls, [
    ["admit", "dave"],
    ["kick", "carol"],
    ["setAdmin", "carol", "true"],
    ["setAdmin", "carol", "false"],
    ["verify", "bob"],
    ["admit", "zed"],
    ["close"],
  ]);
  eql(events, [
    verification("bob"),
    { type: "error", time: TIME, code: "invalid_input", message: "usage: /op NAME" },
    {
      type: "error",
      time: TIME,
      code: "unknown_member",
      message: 'no member called "zed" in the room',
    },
    { type: "closed", time: TIME, reason: "you left" },
  ]);
});

Deno.test("`runJsonChat()` answers an admin command the session lacks with an unsupported error", async () => {
  const events = await runJson(new FakeSession(), "/kick carol\n");
  eql(events, [
    {
      type: "error",
      time: TIME,
      code: "unsupported",
      message: "this session does not support removing members (/kick)",
    },
    { type: "closed", time: TIME, reason: "you left" },
  ]);
});

Deno.test("`runJsonChat()` decodes UTF-8 split across reads, CR LF, and a last line without LF", async () => {
  const session = new FakeSession();
  const bytes = new TextEncoder().encode("café 🔑\r\nlast");
  await runJson(session, bytes.subarray(0, 4), bytes.subarray(4, 8), bytes.subarray(8));
  eql(session.calls, [["sendText", "café 🔑"], ["sendText", "last"], ["close"]]);
});

Deno.test("`runJsonChat()` refuses a line longer than MAX_JSON_INPUT_LINE and goes on", async () => {
  const session = new FakeSession();
  const long = "x".repeat(MAX_JSON_INPUT_LINE + 1);
  const events = await runJson(session, long.slice(0, 1000), long.slice(1000), "yy\nok\n");
  equal(events[0]!.type, "error");
  equal((events[0] as { code: string }).code, "line_too_long");
  eql(session.calls, [["sendText", "ok"], ["close"]]);
});

Deno.test("`runJsonChat()` ends when the session closes while input is still open", async () => {
  const session = new FakeSession();
  const output = new Capture();
  const chunks = [new TextEncoder().encode("hi\n")];
  // A plain reader (like Deno.stdin) that never ends after its first chunk.
  const input = {
    read(buffer: Uint8Array): Promise<number | null> {
      const chunk = chunks.shift();
      if (chunk === undefined) return new Promise(() => {});
      buffer.set(chunk);
      return Promise.resolve(chunk.length);
    },
  };
  const done = runJsonChat(session, { input, output, now: () => new Date(TIME) });
  await until(() => session.calls.length === 1, "the first line");
  session.end();
  await done;
  eql(output.text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line)), [
    message(alice, "hi"),
    { type: "closed", time: TIME, reason: "the session ended" },
  ]);
  eql(session.calls, [["sendText", "hi"]]);
});

Deno.test("`runTerminalChat()` shows transfer progress on a status line above the prompt, redrawn in place", async () => {
  const { session, keys, output, done } = startTerminal();
  await until(() => output.text.includes("alice> "), "the prompt");
  keys.type("hel");
  await until(() => output.last.includes("alice> hel"), "the echo of typing");
  const typed = "alice> hel\r\x1b[10C";

  let count = output.writes.length;
  session.emit(transfer(MIB));
  const first = '"a.bin" to bob: [#####...............] 25% 1.0 MiB of 4.0 MiB';
  equal(
    await nextWrite(output, count, "the status line"),
    `${CLEAR}${first}\r\n${typed}`,
    "the prompt row becomes the status row and the prompt moves down one: no line printed",
  );

  count = output.writes.length;
  session.emit(transfer(2 * MIB, { rate: 512 * KIB, eta: 4 }));
  // 80 columns: with the rate and ETA the bar gives up 3 cells (the name is shorter than 12).
  const second = '"a.bin" to bob: [#########........] 50% 2.0 MiB of 4.0 MiB 512.0 KiB/s ETA 0:04';
  equal(
    await nextWrite(output, count, "the second progress"),
    `${up(1)}${second}\r\n${typed}`,
    "rewritten in place: up over the one status row, so nothing scrolls",
  );

  count = output.writes.length;
  session.emit(message(bob, "hi there"));
  equal(
    await nextWrite(output, count, "the message"),
    `${up(1)}09:05 bob ✓: hi there\r\n${second}\r\n${typed}`,
    "the message goes above the status line; the status and the typed text are drawn again",
  );

  count = output.writes.length;
  keys.type("lo");
  equal(
    await nextWrite(output, count, "the echo"),
    `${up(1)}${second}\r\nalice> hello\r\x1b[12C`,
    "typing keeps the status line",
  );

  count = output.writes.length;
  session.emit(transfer(4 * MIB, { state: "done" }));
  const final = '09:05 -- "a.bin" to bob: done, 4.0 MiB verified';
  equal(
    await nextWrite(output, count, "the final line"),
    `${up(1)}${final}\r\nalice> hello\r\x1b[12C`,
    "done takes the status line away and prints one line in its place",
  );

  count = output.writes.length;
  keys.type("\x01");
  equal(await nextWrite(output, count, "Home"), `${CLEAR}alice> hello\r\x1b[7C`, "no status left");
  equal(output.text.split(final).length, 2, "the final line is printed once");
  ok(!output.text.includes('09:05 -- "a.bin" to bob: ['), "progress is never a scrolling line");
  keys.type("\x03");
  await done;
});

Deno.test("`runTerminalChat()` shows at most 3 transfers in the status area, then +N more", async () => {
  const { session, keys, output, done } = startTerminal();
  await until(() => output.text.includes("alice> "), "the prompt");
  // The same short id from two peers is two transfers.
  const events = [
    transfer(0, { id: "x", name: "1.bin" }),
    transfer(0, { id: "x", name: "2.bin", peer: carol }),
    transfer(0, { id: "y", name: "3.bin", direction: "receive", state: "receiving" }),
    transfer(0, { id: "z", name: "4.bin" }),
    transfer(0, { id: "w", name: "5.bin" }),
  ];
  for (const event of events) session.emit(event);
  await until(() => output.last.includes("+2 more"), "five transfers");
  // The rows of a write after its erase prefix, the first 15 characters each.
  const rows = (write: string, erased: number) => {
    ok(write.startsWith(up(erased)), `erases ${erased} status rows`);
    return write.slice(up(erased).length).split("\r\n").slice(0, -1).map((row) => row.slice(0, 15));
  };
  // Each event redrew the area; the last erased the 3 + 1 rows that the one before drew.
  eql(rows(output.last, 4), [
    '"1.bin" to bob:',
    '"2.bin" to caro',
    '"3.bin" from bo',
    "+2 more",
  ]);
  session.emit(transfer(4 * MIB, { id: "x", name: "2.bin", peer: carol, state: "done" }));
  await until(() => output.text.includes('2.bin" to carol: done'), "a transfer done");
  eql(rows(output.last, 4), [
    '09:05 -- "2.bin',
    '"1.bin" to bob:',
    '"3.bin" from bo',
    '"4.bin" to bob:',
    "+1 more",
  ]);
  keys.type("\x03");
  await done;
});

Deno.test("`runTerminalChat()` keeps status lines within the terminal width, the name cut first", async () => {
  const { session, keys, output, done } = startTerminal(new FakeSession(), 50);
  await until(() => output.text.includes("alice> "), "the prompt");
  session.emit(transfer(MIB, { name: "a-rather-long-file-name.tar.gz", rate: 2 * MIB, eta: 2 }));
  await until(() => output.last.includes("25%"), "the status line");
  const status = output.last.slice(CLEAR.length, output.last.indexOf("\r\n"));
  // 49 columns: the bytes, rate and ETA go, the name keeps its 12 columns ("…" included).
  equal(status, '"a-rather-lo…" to bob: [#####...............] 25%');
  ok([...status].length <= 49);
  keys.type("\x03");
  await done;
});

Deno.test("`runTerminalChat()` prints offers and the other transfer states once, and clears the status at the end", async () => {
  const { session, output, raw, done } = startTerminal();
  await until(() => output.text.includes("alice> "), "the prompt");
  session.emit({
    type: "offer",
    time: TIME,
    id: "e5f6",
    from: bob,
    name: "photos",
    files: 2,
    size: 3 * MIB,
    folder: "/in",
    hidden: "refused",
  });
  await until(() => output.text.includes("/reject e5f6"), "the offer");
  equal(
    output.last,
    `${CLEAR}09:05 -- bob ✓ offers "photos" (2 files, 3.0 MiB)\r\n` +
      `09:05 -- saved into "/in" as "photos"; hidden (dot) files refused; ` +
      `no file is made executable\r\n` +
      `09:05 -- type /accept e5f6 or /reject e5f6\r\nalice> \r\x1b[7C`,
  );
  const photos = { id: "e5f6", name: "photos", direction: "receive", total: 3 * MIB } as const;
  session.emit(transfer(0, { ...photos, state: "receiving" }));
  session.emit(transfer(0, { state: "waiting" }));
  await until(() => output.text.includes("waiting for them"), "the waiting line");
  equal(
    output.last,
    `${up(1)}09:05 -- "a.bin" to bob: waiting for them to accept (4.0 MiB)\r\n` +
      '"photos" from bob: [....................] 0% 0 B of 3.0 MiB\r\nalice> \r\x1b[7C',
    "waiting is a line above, not a status line",
  );
  session.emit(transfer(0, { ...photos, state: "failed", reason: "hash mismatch" }));
  await until(() => output.text.includes("hash mismatch"), "the failure");
  equal(
    output.last,
    `${up(1)}09:05 -- "photos" from bob: failed: hash mismatch\r\nalice> \r\x1b[7C`,
  );
  session.emit(transfer(MIB, { state: "sending" }));
  await until(() => output.last.includes("25%"), "progress again");
  session.end("bob closed the room");
  await done;
  equal(
    output.writes.at(-2),
    `${up(1)}09:05 -- chat closed: bob closed the room\r\nalice> \r\x1b[7C`,
  );
  equal(output.last, CLEAR, "the status area is gone and the prompt row cleared");
  eql(raw.calls, [true, false]);
});

Deno.test("`runJsonChat()` prints every transfer event, progress included, as one JSON line", async () => {
  const session = new FakeSession();
  const keys = keyboard();
  const output = new Capture();
  const done = runJsonChat(session, { input: keys.stream, output, now: () => new Date(TIME) });
  const events = [
    transfer(0, { state: "waiting" }),
    transfer(MIB),
    transfer(2 * MIB, { rate: MIB, eta: 2 }),
    transfer(4 * MIB, { state: "done" }),
  ];
  for (const event of events) session.emit(event);
  keys.end();
  await done;
  eql(output.text.trimEnd().split("\n").map((line) => JSON.parse(line)), [
    ...events,
    { type: "closed", time: TIME, reason: "you left" },
  ]);
});
