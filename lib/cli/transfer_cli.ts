/**
 * One-shot transfers without the chat UI (`dial --send PATH`, `listen --receive DIR`), the size
 * flag parser, and the progress line shown on stderr for them and for `--pipe --progress`.
 *
 * @module
 */

import type { ChatEvent, Participant } from "../chat/chat_events.ts";
import { formatBytes, offerDetails, renderEvent } from "../terminal/chat_view.ts";
import { SecurechatError, UsageError } from "../core/errors.ts";
import { type ParsedArgs, stringFlag } from "./args.ts";
import { status } from "./output.ts";

const encoder = new TextEncoder();

/** Parses `--max-file-size` (bytes, or with K, M, G, T suffixes in powers of 1024). */
export function sizeFlag(parsed: ParsedArgs, name: string): number | undefined {
  const raw = stringFlag(parsed, name);
  if (raw === undefined) return undefined;
  const match = /^(\d+)\s*([kKmMgGtT]?)(i?[bB])?$/.exec(raw.trim());
  if (!match) throw new UsageError(`flag "--${name}" takes a size like 500M or 2G, got "${raw}"`);
  const power = ["", "k", "m", "g", "t"].indexOf(match[2]!.toLowerCase());
  return Number(match[1]) * 1024 ** power;
}

/** Shows progress on stderr: one rewritten line on a terminal, else a line every few seconds. */
export class ProgressLine {
  #terminal = Deno.stderr.isTerminal();
  #last = 0;
  #shown = false;

  /** Shows `text`; `final` lines always show and end the rewritten line. */
  show(text: string, final = false): void {
    const now = Date.now();
    if (this.#terminal) {
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${text}${final ? "\n" : ""}`));
      this.#shown = !final;
      return;
    }
    if (final || now - this.#last >= 2000) {
      this.#last = now;
      status(text);
    }
  }

  /** Ends a rewritten line before other output. */
  clear(): void {
    if (this.#terminal && this.#shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    this.#shown = false;
  }
}

const FINAL = new Set(["done", "failed", "cancelled", "rejected"]);

/**
 * Follows one transfer on stderr until it ends, then leaves the room. A failure ends with one
 * `securechat: error:` line (thrown for main to print), not a progress line and an error both.
 *
 * @returns 0 when the transfer completed
 * @throws {SecurechatError} `transfer_failed` when it was rejected, cancelled or failed
 */
export async function followTransfer(
  session: Participant,
  direction: "send" | "receive",
  start: () => Promise<void>,
): Promise<number> {
  const line = new ProgressLine();
  let outcome: (ChatEvent & { type: "transfer" }) | undefined;
  let lastError: string | undefined;
  let resolve: () => void = () => {};
  const ended = new Promise<void>((r) => resolve = r);
  let sessionClosed: () => void = () => {};
  const closed = new Promise<void>((r) => sessionClosed = r);
  session.onEvent((event: ChatEvent) => {
    if (event.type === "transfer" && event.direction === direction) {
      const text = renderEvent(event, { colors: false }).join(" ").replace(/^\d\d:\d\d -- /, "");
      if (!FINAL.has(event.state)) return line.show(text);
      outcome = event;
      if (event.state === "done") line.show(text, true);
      else line.clear();
      resolve();
    } else if (event.type === "offer" && direction === "receive") {
      line.clear();
      status(
        `offer from "${event.from.name}" ${event.from.fingerprint}: "${event.name}" (${event.files} ${
          event.files === 1 ? "file" : "files"
        }, ${formatBytes(event.size)}); ${offerDetails(event)}`,
      );
    } else if (event.type === "rejected" || event.type === "notice") {
      line.clear();
      status(renderEvent(event, { colors: false }).join(" ").replace(/^\d\d:\d\d (-- )?/, ""));
    } else if (event.type === "error") {
      lastError = event.message;
    } else if (event.type === "closed") {
      lastError ??= event.reason;
      sessionClosed();
      resolve();
    }
  });
  try {
    await start();
  } catch (error) {
    await session.close();
    throw error;
  }
  await ended;
  if (outcome?.state === "failed" && /connection is gone/.test(outcome.reason ?? "")) {
    // A failed send only says the connection broke; the receive side says how (as pipe mode).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise((r) => timer = setTimeout(r, 2000))]);
    clearTimeout(timer);
    if (lastError !== undefined) outcome = { ...outcome, reason: lastError };
  }
  await session.close();
  if (outcome?.state === "done") return 0;
  const what = outcome ? `"${outcome.name}"` : "the file";
  const verb = direction === "send" ? "sending" : "receiving";
  const reason = outcome?.reason ?? lastError ?? "the session ended first";
  throw new SecurechatError(
    "transfer_failed",
    outcome?.state === "rejected"
      ? `${what} was rejected: ${reason}`
      : `${verb} ${what} ${outcome?.state === "cancelled" ? "was cancelled" : "failed"}: ${reason}`,
    1,
    // A refused offer ("file offer ... refused") wrote nothing: there is nothing to resume.
    outcome?.state === "failed" && !reason.startsWith("file offer ")
      ? { hints: ["the part file is kept: sending the same file again resumes it"] }
      : {},
  );
}

/** Byte counts of a pipe as a progress line. */
export function pipeProgress(line: ProgressLine, started: number) {
  let last = 0;
  return (sent: number, received: number) => {
    const now = Date.now();
    if (now - last < 250) return;
    last = now;
    const seconds = Math.max(0.001, (now - started) / 1000);
    line.show(
      `sent ${formatBytes(sent)}, received ${formatBytes(received)} (${
        formatBytes((sent + received) / seconds)
      }/s)`,
    );
  };
}
