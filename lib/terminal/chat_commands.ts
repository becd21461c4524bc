/**
 * What a person types in a chat: `parseChatInput()` turns a line into a {@linkcode ChatInput}
 * (text, /me, /msg, /verify, /admit, /kick, /op, /send, /accept, ...), and {@linkcode CHAT_HELP}
 * lists the commands for /help. The admin commands are docs/PROTOCOL.md 13.3's, /verify 13.7's.
 * It is the terminal's: the room and transfer layers never see typed lines, only the calls on
 * `Participant` (`lib/chat/chat_events.ts`) that a parsed line turns into.
 *
 * @module
 */

/** What a typed line means (see `parseChatInput`). */
export type ChatInput =
  | { kind: "text"; text: string }
  | { kind: "action"; text: string }
  | { kind: "private"; to: string; text: string }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "who" }
  | { kind: "verify"; member?: string }
  | { kind: "admit"; who: string }
  | { kind: "kick"; who: string }
  | { kind: "admin"; who: string; on: boolean }
  | { kind: "send"; path: string; to?: string }
  | { kind: "accept"; id?: string }
  | { kind: "reject"; id?: string }
  | { kind: "cancel"; id?: string }
  | { kind: "empty" }
  | { kind: "invalid"; message: string };

/** Parses a typed line into a chat input: commands start with "/", "//" sends a literal "/". */
export function parseChatInput(line: string): ChatInput {
  const trimmed = line.replace(/[\r\n]+$/, "");
  if (trimmed.trim() === "") return { kind: "empty" };
  if (trimmed.startsWith("//")) return { kind: "text", text: trimmed.slice(1) };
  if (!trimmed.startsWith("/")) return { kind: "text", text: trimmed };
  const [command = "", ...rest] = trimmed.slice(1).split(" ");
  const argument = rest.join(" ").trim();
  switch (command.toLowerCase()) {
    case "help":
    case "?":
      return { kind: "help" };
    case "quit":
    case "exit":
      return { kind: "quit" };
    case "who":
      return { kind: "who" };
    case "verify":
      return argument === "" ? { kind: "verify" } : { kind: "verify", member: argument };
    case "admit":
    case "kick":
      // The whole rest of the line: a name may hold spaces.
      return argument === ""
        ? { kind: "invalid", message: `usage: /${command.toLowerCase()} NAME` }
        : { kind: command.toLowerCase() as "admit" | "kick", who: argument };
    case "op":
    case "deop":
      return argument === ""
        ? { kind: "invalid", message: `usage: /${command.toLowerCase()} NAME` }
        : { kind: "admin", who: argument, on: command.toLowerCase() === "op" };
    case "me":
      return argument === ""
        ? { kind: "invalid", message: "/me needs an action, e.g. /me waves" }
        : { kind: "action", text: argument };
    case "send": {
      const [path = "", to] = argument.split(" ");
      if (path === "") return { kind: "invalid", message: "usage: /send PATH [NAME]" };
      return to ? { kind: "send", path, to } : { kind: "send", path };
    }
    case "accept":
    case "reject":
    case "cancel":
      return argument === ""
        ? { kind: command.toLowerCase() as "accept" | "reject" | "cancel" }
        : { kind: command.toLowerCase() as "accept" | "reject" | "cancel", id: argument };
    case "msg": {
      const [to = "", ...words] = argument.split(" ");
      const text = words.join(" ").trim();
      if (to === "" || text === "") {
        return { kind: "invalid", message: "usage: /msg NAME text" };
      }
      return { kind: "private", to, text };
    }
    default:
      return {
        kind: "invalid",
        message: `unknown command "/${command}": type /help for the commands`,
      };
  }
}

/** The /help text, one command a line. */
export const CHAT_HELP: readonly string[] = [
  "/help            this list",
  "/who             members of the room, with fingerprints and admins",
  "/msg NAME text   a private message to one member",
  "/me action       an action, e.g. /me waves",
  "/verify [NAME]   codes to compare: the room's, and your safety number with NAME",
  "/send PATH [NAME] offer a file or folder (to NAME, in a room)",
  "/accept [ID]     accept a file offer; /reject [ID] declines it",
  "/cancel [ID]     stop a transfer",
  "/admit NAME      let in a newcomer that asks to join, by name or fingerprint (admins)",
  "/kick NAME       remove a member from the room (admins)",
  "/op NAME         make a member an admin (admins)",
  "/deop NAME       make an admin a plain member again (admins)",
  "/quit            leave (also Ctrl-D or Ctrl-C)",
  "//text           send a line starting with /",
];
