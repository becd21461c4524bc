import { deepStrictEqual as eql, ok } from "node:assert/strict";
import { CHAT_HELP, type ChatInput, parseChatInput } from "../../lib/terminal/chat_commands.ts";

/** Typed lines and what they mean. */
const CASES: [string, ChatInput][] = [
  ["hello", { kind: "text", text: "hello" }],
  ["//etc/passwd is a path", { kind: "text", text: "/etc/passwd is a path" }],
  ["   ", { kind: "empty" }],
  ["hi\r\n", { kind: "text", text: "hi" }],
  ["/help", { kind: "help" }],
  ["/?", { kind: "help" }],
  ["/quit", { kind: "quit" }],
  ["/exit", { kind: "quit" }],
  ["/who", { kind: "who" }],
  ["/me waves", { kind: "action", text: "waves" }],
  ["/me", { kind: "invalid", message: "/me needs an action, e.g. /me waves" }],
  ["/msg bob hi there", { kind: "private", to: "bob", text: "hi there" }],
  ["/msg bob", { kind: "invalid", message: "usage: /msg NAME text" }],
  ["/send a.bin bob", { kind: "send", path: "a.bin", to: "bob" }],
  ["/send a.bin", { kind: "send", path: "a.bin" }],
  ["/send", { kind: "invalid", message: "usage: /send PATH [NAME]" }],
  ["/accept", { kind: "accept" }],
  ["/reject e5f6", { kind: "reject", id: "e5f6" }],
  ["/cancel e5f6", { kind: "cancel", id: "e5f6" }],
  ["/frob", { kind: "invalid", message: 'unknown command "/frob": type /help for the commands' }],
  // docs/PROTOCOL.md 13.7: the room's codes, and a safety number with one member.
  ["/verify", { kind: "verify" }],
  ["/verify   ", { kind: "verify" }],
  ["/verify carol", { kind: "verify", member: "carol" }],
  ["/VERIFY SHA256:ccc", { kind: "verify", member: "SHA256:ccc" }],
  // docs/PROTOCOL.md 13.3: what admins do.
  ["/admit dave", { kind: "admit", who: "dave" }],
  ["/admit SHA256:Ari5bH", { kind: "admit", who: "SHA256:Ari5bH" }],
  ["/admit dave smith ", { kind: "admit", who: "dave smith" }],
  ["/admit", { kind: "invalid", message: "usage: /admit NAME" }],
  ["/admit   ", { kind: "invalid", message: "usage: /admit NAME" }],
  ["/kick carol", { kind: "kick", who: "carol" }],
  ["/Kick carol", { kind: "kick", who: "carol" }],
  ["/kick", { kind: "invalid", message: "usage: /kick NAME" }],
  ["/op carol", { kind: "admin", who: "carol", on: true }],
  ["/op", { kind: "invalid", message: "usage: /op NAME" }],
  ["/deop carol", { kind: "admin", who: "carol", on: false }],
  ["/deop", { kind: "invalid", message: "usage: /deop NAME" }],
  ["/admitx dave", {
    kind: "invalid",
    message: 'unknown command "/admitx": type /help for the commands',
  }],
];

Deno.test("`parseChatInput()` turns each typed line into its command, and bad usages into invalid", () => {
  for (const [line, expected] of CASES) eql(parseChatInput(line), expected, JSON.stringify(line));
});

Deno.test("`CHAT_HELP` lists every command, its text aligned in one column", () => {
  for (
    const command of [
      "/help",
      "/who",
      "/msg",
      "/me",
      "/verify [NAME]",
      "/send",
      "/accept",
      "/cancel",
      "/admit NAME",
      "/kick NAME",
      "/op NAME",
      "/deop NAME",
      "/quit",
    ]
  ) ok(CHAT_HELP.some((line) => line.startsWith(`${command} `)), command);
  // "/send PATH [NAME]" is wider than the column and is the one line allowed past it.
  for (const line of CHAT_HELP.filter((line) => !line.startsWith("/send "))) {
    ok(line[16] === " " && line[17] !== " ", `"${line}" starts its text at column 17`);
  }
});
