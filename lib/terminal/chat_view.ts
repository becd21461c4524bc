/**
 * Renders chat events (`lib/chat/chat_events.ts`) as terminal lines: `HH:MM`, the author, a verified
 * mark and the text, with ANSI colours when the caller enables them (`colorEnabled()` in
 * `lib/terminal/tty.ts` decides). Pure: it returns strings and never writes; `lib/terminal/chat_terminal.ts` prints.
 *
 * Every string that can come from a peer (names, texts, reasons, codes) passes through
 * {@linkcode sanitize} before it is placed in a line, and colours are added only after that, so
 * the only escape sequences in the output are ours:
 * - C0 controls, DEL and C1 controls are removed: ESC (0x1B) and CSI (0x9B) would let a peer move
 *   the cursor, rewrite earlier lines, retitle the window or inject "keystrokes" via answerback
 *   sequences. Tab, newline, CR, VT, FF, NEL and the Unicode line/paragraph separators become a
 *   space instead, so a message can never start a new line that looks like it came from someone
 *   else, and words do not run together.
 * - Bidirectional formatting characters (embeddings, overrides, isolates and the implicit marks
 *   ALM, LRM, RLM) are removed: they reorder what is shown around them (Trojan Source,
 *   CVE-2021-42574). The sets are `lib/core/text.ts`'s, shared with names, comments and paths.
 * - Lone surrogates become U+FFFD; all other Unicode (accents, CJK, emoji, ZWJ sequences) is kept.
 * - Names are cut at {@linkcode MAX_NAME_DISPLAY} code points. Look-alike names are not detected:
 *   the fingerprint (shown by /who, on join, leave and knock) is what identifies a member.
 *
 * Room lines mirror docs/PROTOCOL.md 13.3 and 13.7: a knock says how to /admit the newcomer (or
 * that an admin can), joins and leaves say which admin added or removed whom, /who marks admins,
 * and /verify shows each code with whom to compare it and what a different one means.
 *
 * The progress text of a transfer line is built here and shared with the live status area above
 * the prompt (`renderTransferStatus()` in `lib/terminal/transfer_view.ts`).
 *
 * The verified mark is "✓" with and without colours (green with): every `message` event is
 * verified by construction, so it is there on every message line and absent from the red
 * `rejected` line, which is what it contrasts with.
 *
 * @module
 */

import { CHAT_HELP } from "./chat_commands.ts";
import type { ChatEvent, MemberInfo } from "../chat/chat_events.ts";
import { toTerminalLine } from "../core/text.ts";

/** The mark after a verified author's name. */
export const VERIFIED_MARK = "\u2713";

/** Longest name shown, in code points; longer names end with "…". */
export const MAX_NAME_DISPLAY = 64;

/** How lines are rendered. */
export interface ViewOptions {
  /** ANSI colours on or off (see `colorEnabled()` in `lib/terminal/tty.ts`). */
  colors: boolean;
  /** IANA time zone for `HH:MM`, e.g. "UTC" in tests; default the local zone. */
  timeZone?: string;
}

/**
 * Makes text from a peer safe to print on a terminal (see the module doc for what changes).
 *
 * @param text untrusted text
 * @returns the text without control characters or bidi overrides, on one line
 *
 * @example
 * ```ts
 * import { sanitize } from "./chat_view.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sanitize("hi\x1b[2J\nbob: lies\u202e"), "hi[2J bob: lies");
 * assert.equal(sanitize("café 👋"), "café 👋");
 * ```
 */
export function sanitize(text: string): string {
  return toTerminalLine(text);
}

/**
 * A name as shown: sanitized, and cut with "…" when longer than `max` code points.
 *
 * @param text a member's name (untrusted)
 * @param max longest result in code points (default {@linkcode MAX_NAME_DISPLAY})
 * @returns the name, safe to print
 */
export function displayName(text: string, max: number = MAX_NAME_DISPLAY): string {
  const chars = [...sanitize(text)];
  if (chars.length <= max) return chars.join("");
  return chars.slice(0, max - 1).join("") + "\u2026";
}

const timeFormats = new Map<string, Intl.DateTimeFormat>();

/**
 * Formats a time as `HH:MM` on a 24-hour clock.
 *
 * @param time milliseconds since the epoch
 * @param timeZone IANA zone; default the local zone
 * @returns e.g. "09:05"
 */
export function formatTime(time: number, timeZone?: string): string {
  const key = timeZone ?? "";
  let format = timeFormats.get(key);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-GB", {
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
      ...(timeZone === undefined ? {} : { timeZone }),
    });
    timeFormats.set(key, format);
  }
  return format.format(time);
}

/**
 * Renders one event as terminal lines (one line, except roster, verification and offer).
 *
 * @param event any chat event
 * @param options colours and time zone
 * @returns the lines, without line endings
 *
 * @example
 * ```ts
 * import { renderEvent } from "./chat_view.ts";
 * import assert from "node:assert/strict";
 *
 * const from = { name: "alice", fingerprint: "SHA256:abc" };
 * const event = { type: "message", time: 0, from, text: "hi", kind: "text", verified: true } as const;
 * assert.deepEqual(renderEvent(event, { colors: false, timeZone: "UTC" }), ["00:00 alice ✓: hi"]);
 * ```
 */
export function renderEvent(event: ChatEvent, options: ViewOptions): string[] {
  const style = styler(options.colors);
  const time = style("2", formatTime(event.time, options.timeZone));
  const line = (body: string) => `${time} ${body}`;
  const info = (text: string) => line(`${style("33", "--")} ${text}`);
  switch (event.type) {
    case "message":
      return [line(renderMessage(event, style))];
    case "join": {
      const by = event.by === undefined ? "" : `, added by ${name(event.by, style)}`;
      return [info(`${name(event.member, style)} joined (${fingerprint(event.member)})${by}`)];
    }
    case "leave":
      return [
        info(
          `${name(event.member, style)} left (${fingerprint(event.member)})${
            leaveReason(event, style)
          }`,
        ),
      ];
    case "knock": {
      const who = `${name(event.member, style)} (${fingerprint(event.member)}) asks to join`;
      return [
        info(
          event.canAdmit
            ? `${who}: type /admit ${admitArgument(event.member)}`
            : `${who}; an admin can /admit them`,
        ),
      ];
    }
    case "roster": {
      const count = event.members.length;
      return [
        info(`${count} ${count === 1 ? "member" : "members"} in the room:`),
        ...event.members.map((member) => `${" ".repeat(9)}${rosterEntry(member, style)}`),
      ];
    }
    case "verification":
      return renderVerification(event, style).map(info);
    case "rejected":
      return [line(style(
        "1;31",
        `! message claiming to be from "${displayName(event.claimedAuthor)}" was rejected: ${
          sanitize(event.reason)
        }`,
      ))];
    case "notice":
      return [info(sanitize(event.text))];
    case "error":
      return [line(style("31", `! error: ${sanitize(event.message)}`))];
    case "closed":
      return [info(`chat closed: ${sanitize(event.reason)}`)];
    case "offer":
      return [
        info(
          `${name(event.from, style)} ${style("32", VERIFIED_MARK)} offers "${
            sanitize(event.name)
          }" (${event.files} ${event.files === 1 ? "file" : "files"}, ${formatBytes(event.size)})`,
        ),
        info(offerDetails(event)),
        info(`type /accept ${event.id} or /reject ${event.id}`),
      ];
    case "transfer":
      return [info(renderTransfer(event, style))];
  }
}

/**
 * Where an offer would be saved and what it may hold: every path lies under its name (the
 * recipient refuses others), hidden files only with --allow-hidden-files, and nothing received
 * is ever executable (the manifest carries no modes; files are created 0600).
 */
export function offerDetails(event: ChatEvent & { type: "offer" }): string {
  const hidden = event.hidden === "allowed"
    ? "hidden (dot) files allowed"
    : "hidden (dot) files refused";
  return `saved into "${sanitize(event.folder)}" as "${
    sanitize(event.saveAs ?? event.name)
  }"; ${hidden}; no file is made executable`;
}

/** Bytes as B, KiB, MiB or GiB with one decimal. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A progress bar of `width` cells for `fraction` (0..1). */
export function progressBar(fraction: number, width = 20): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

/** A `transfer` event. */
export type TransferEvent = ChatEvent & { type: "transfer" };

function renderTransfer(event: TransferEvent, style: Style): string {
  const what = `"${sanitize(event.name)}" ${arrowOf(event)} ${name(event.peer, style)}`;
  switch (event.state) {
    case "waiting":
      return `${what}: waiting for ${event.direction === "send" ? "them" : "you"} to accept (${
        formatBytes(event.total)
      })`;
    case "sending":
    case "receiving":
      return `${what}: ${progressText(event, BAR_WIDTH, KEEP_ALL)}`;
    case "done": {
      const where = event.path === undefined ? "" : ` saved to ${sanitize(event.path)}`;
      const resumed = event.resumed
        ? ` (resumed: ${formatBytes(event.resumed)} not sent again)`
        : "";
      return style("32", `${what}: done, ${formatBytes(event.total)} verified${where}${resumed}`);
    }
    default:
      return style(
        "31",
        `${what}: ${event.state}${event.reason ? `: ${sanitize(event.reason)}` : ""}`,
      );
  }
}

/** Cells of a progress bar at full size (the status area, `lib/terminal/transfer_view.ts`, shrinks it). */
export const BAR_WIDTH = 20;

/** "to" for a send, "from" for a receive: the direction, before the peer's name. */
export function arrowOf(event: TransferEvent): string {
  return event.direction === "send" ? "to" : "from";
}

/** Which parts of a progress text to keep, after the bar and the percent. */
export interface Keep {
  bytes: boolean;
  rate: boolean;
  eta: boolean;
}

/** A progress text in full: bytes, rate and ETA. */
export const KEEP_ALL: Keep = { bytes: true, rate: true, eta: true };

/** "[bar] 42% 1.2 MiB of 3.0 MiB 512.0 KiB/s ETA 0:04": rate and ETA only when known. */
export function progressText(event: TransferEvent, bar: number, keep: Keep): string {
  const fraction = event.total === 0 ? 1 : event.bytes / event.total;
  let text = `${progressBar(fraction, bar)} ${Math.floor(fraction * 100)}%`;
  if (keep.bytes) text += ` ${formatBytes(event.bytes)} of ${formatBytes(event.total)}`;
  if (keep.rate && event.rate !== undefined) text += ` ${formatBytes(event.rate)}/s`;
  if (keep.eta && event.eta !== undefined) text += ` ETA ${formatDuration(event.eta)}`;
  return text;
}

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * The /help text as display lines.
 *
 * @param options colours (the time zone is unused: help lines carry no time)
 * @returns the lines of {@linkcode CHAT_HELP}, indented under a heading
 */
export function renderHelp(options: ViewOptions): string[] {
  const style = styler(options.colors);
  return [style("1", "commands:"), ...CHAT_HELP.map((entry) => `  ${entry}`)];
}

/** Puts text in a style given as SGR codes (e.g. "1;31"), or leaves it plain. */
export type Style = (codes: string, text: string) => string;

/** The {@linkcode Style} for colours on (ANSI SGR sequences) or off (text unchanged). */
export function styler(colors: boolean): Style {
  return colors ? (codes, text) => `\x1b[${codes}m${text}\x1b[0m` : (_codes, text) => text;
}

function renderMessage(event: ChatEvent & { type: "message" }, style: Style): string {
  const author = `${name(event.from, style)} ${style("32", VERIFIED_MARK)}`;
  const text = sanitize(event.text);
  switch (event.kind) {
    case "text":
      return `${author}: ${text}`;
    case "action":
      return `* ${author} ${text}`;
    case "private": {
      const from = event.from.self ? style("1;36", "you") : author;
      const to = event.to === undefined || event.to.self
        ? style("1;36", "you")
        : name(event.to, style);
      return `${style("35", "[private]")} ${from} -> ${to}: ${text}`;
    }
  }
}

/** A member's name, bold (and cyan for ourselves). */
function name(member: MemberInfo, style: Style): string {
  return style(member.self ? "1;36" : "1", displayName(member.name));
}

/** One roster line: name, (you, host, admin), fingerprint. */
function rosterEntry(member: MemberInfo, style: Style): string {
  const tags = [member.self && "you", member.host && "host", member.admin && "admin"]
    .filter((tag) => typeof tag === "string");
  let entry = name(member, style);
  if (tags.length > 0) entry += ` (${tags.join(", ")})`;
  return `${entry} ${fingerprint(member)}`;
}

/** A member's fingerprint, safe to print. */
function fingerprint(member: MemberInfo): string {
  return sanitize(member.fingerprint);
}

/**
 * Why a member left, after "left (fingerprint)": the reason, or who removed it. With `by`, the
 * admin's name is shown from `by` (as the roster names it), and the reason only when it says more
 * than "removed by" that name.
 */
function leaveReason(event: ChatEvent & { type: "leave" }, style: Style): string {
  if (event.by === undefined) return `: ${sanitize(event.reason)}`;
  const removed = `, removed by ${name(event.by, style)}`;
  return event.reason === `removed by ${event.by.name}`
    ? removed
    : `${removed}: ${sanitize(event.reason)}`;
}

/**
 * What to type after /admit for a newcomer: its name when typing it back finds it (the name is
 * printable as it is, not cut, and has no surrounding spaces, which parsing trims), else its
 * fingerprint, which always does.
 */
function admitArgument(member: MemberInfo): string {
  const shown = displayName(member.name);
  return shown === member.name && shown.trim() === shown && shown !== ""
    ? shown
    : fingerprint(member);
}

/**
 * The /verify lines (docs/PROTOCOL.md 13.7): our connection's code with the relay, then the
 * room's epoch code once we are in the group, then the safety number with one member when asked,
 * each with what to compare it with and what a difference means.
 */
function renderVerification(event: ChatEvent & { type: "verification" }, style: Style): string[] {
  const relay = displayName(event.peer.name);
  // The host runs the relay itself: its link to it is in-process, with no code to compare.
  const lines = event.peer.self ? ["you run this room's relay"] : [
    `verification code with the relay: ${style("1", sanitize(event.code))}`,
    `relay: ${rosterEntry(event.peer, style)}`,
    `compare this code with ${relay} over another channel (voice, in person): a different code ` +
    "means someone may be intercepting your connection to the relay",
  ];
  if (event.epochCode !== undefined) {
    lines.push(
      `room epoch code: ${style("1", sanitize(event.epochCode))}`,
      "every member should see this same epoch code: compare it with the others out of band " +
        "(voice, in person); a different code means the relay split the room",
    );
  }
  if (event.safety !== undefined) {
    const member = event.safety.member;
    lines.push(
      `safety number with ${name(member, style)} (${fingerprint(member)}): ${
        style("1", sanitize(event.safety.number))
      }`,
      `compare it with ${displayName(member.name)} in person or by voice: a different number ` +
        "means one of you sees another key for the other",
    );
  }
  return lines;
}
