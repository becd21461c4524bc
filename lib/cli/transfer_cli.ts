/**
 * One-shot transfers without the chat UI (`dial --send PATH`, `listen --receive DIR`), the size
 * flag parser, and the progress line shown on stderr for them and for `--pipe --progress`.
 *
 * @module
 */

import type { ChatEvent, ChatSession } from "../chat_events.ts";
import { formatBytes, renderEvent } from "../chat_view.ts";
import { UsageError } from "../errors.ts";
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
 * Follows one transfer on stderr until it ends, then leaves the room.
 *
 * @returns 0 when the transfer completed, 1 otherwise
 */
export async function followTransfer(
  session: ChatSession,
  direction: "send" | "receive",
  start: () => Promise<void>,
): Promise<number> {
  const line = new ProgressLine();
  let resolve: (code: number) => void = () => {};
  const ended = new Promise<number>((r) => resolve = r);
  session.onEvent((event: ChatEvent) => {
    if (event.type === "transfer" && event.direction === direction) {
      const text = renderEvent(event, { colors: false }).join(" ").replace(/^\d\d:\d\d -- /, "");
      line.show(text, FINAL.has(event.state));
      if (FINAL.has(event.state)) resolve(event.state === "done" ? 0 : 1);
    } else if (event.type === "offer" && direction === "receive") {
      line.clear();
      status(
        `offer from "${event.from.name}" ${event.from.fingerprint}: "${event.name}" (${
          formatBytes(event.size)
        })`,
      );
    } else if (event.type === "error" || event.type === "rejected" || event.type === "notice") {
      line.clear();
      status(renderEvent(event, { colors: false }).join(" ").replace(/^\d\d:\d\d /, ""));
    } else if (event.type === "closed") {
      resolve(1);
    }
  });
  await start();
  const code = await ended;
  await session.close();
  return code;
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
