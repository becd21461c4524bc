/**
 * Renders the live status area of running transfers (one line each, fitted to the terminal
 * width), which `TerminalScreen` (`lib/terminal/terminal_screen.ts`) redraws in place above the prompt.
 * Pure: it returns strings and never writes; `lib/terminal/chat_terminal.ts` hands them to the screen.
 *
 * A status line is the progress line of a `transfer` event (`lib/terminal/chat_view.ts`) without the time,
 * cut down until it is narrower than the terminal: the screen erases the area by moving up as many
 * rows as it drew, so a line that wrapped would leave a stale row behind. Peer text passes
 * through `sanitize()` and `displayName()` from `lib/terminal/chat_view.ts` before widths are measured, and
 * colours are added only after that.
 *
 * @module
 */

import {
  arrowOf,
  BAR_WIDTH,
  displayName,
  type Keep,
  KEEP_ALL,
  progressText,
  sanitize,
  type Style,
  styler,
  type TransferEvent,
} from "./chat_view.ts";
import { charWidth } from "./line_editor.ts";

/** The least the status area shrinks a progress bar to, in cells. */
const MIN_BAR_WIDTH = 10;

/** What a status line gives up, in order, once the name is as short as it gets. */
const STATUS_FALLBACKS: readonly Keep[] = [
  KEEP_ALL,
  { bytes: true, rate: true, eta: false },
  { bytes: true, rate: false, eta: false },
  { bytes: false, rate: false, eta: false },
];

/** Transfers the status area shows one line each; the rest are counted in a "+N more" line. */
export const MAX_STATUS_TRANSFERS = 3;

/** Columns a file name keeps before the status line gives up anything else. */
const MIN_STATUS_NAME = 12;

/** Longest peer name on a status line, in code points (as in the chat prompt). */
const MAX_STATUS_PEER = 16;

/** Options for {@linkcode renderTransferStatus}. */
export interface StatusOptions {
  /** ANSI colours on or off. */
  colors: boolean;
  /** Terminal width in columns; every line stays narrower (the last column is left free). */
  columns: number;
}

/**
 * Renders the status area of running transfers: one line each for the first
 * {@linkcode MAX_STATUS_TRANSFERS}, then "+N more" for the rest. A line has the name, the
 * direction and peer, a progress bar, percent, bytes of total, rate and ETA, as the progress line
 * of `renderEvent()` (`lib/terminal/chat_view.ts`) does, without the time and with the peer's name cut at
 * 16 code points. To fit `columns - 1` columns (the last column stays free, so no terminal wraps),
 * a line gives up, in order: the end of the file name (down to 12 columns, cut with "…"), bar
 * cells (down to 10), the ETA, the rate, the bytes, and at last its own end. Widths are measured
 * with `charWidth()` from `lib/terminal/line_editor.ts`.
 *
 * @param transfers `transfer` events in the "sending" or "receiving" state, in display order
 * @param options colours and the terminal width
 * @returns the status lines, without line endings; none for no transfers
 *
 * @example
 * ```ts
 * import { renderTransferStatus } from "./transfer_view.ts";
 * import assert from "node:assert/strict";
 *
 * const peer = { name: "bob", fingerprint: "SHA256:bbb" };
 * const event = {
 *   type: "transfer", time: 0, id: "a1", direction: "send", peer, name: "notes.txt",
 *   state: "sending", bytes: 512, total: 1024, rate: 256, eta: 2,
 * } as const;
 * assert.deepEqual(renderTransferStatus([event], { colors: false, columns: 100 }), [
 *   '"notes.txt" to bob: [##########..........] 50% 512 B of 1.0 KiB 256 B/s ETA 0:02',
 * ]);
 * ```
 */
export function renderTransferStatus(
  transfers: readonly TransferEvent[],
  options: StatusOptions,
): string[] {
  const style = styler(options.colors);
  const width = Math.max(1, options.columns - 1);
  const lines = transfers.slice(0, MAX_STATUS_TRANSFERS).map((event) =>
    paint(fitStatusLine(event, width), style)
  );
  const more = transfers.length - MAX_STATUS_TRANSFERS;
  if (more > 0) lines.push(paint(cutToWidth([[undefined, `+${more} more`]], width), style));
  return lines;
}

/** Text in a style (SGR codes, or none): widths are measured before the codes are added. */
type Segment = [codes: string | undefined, text: string];

function fitStatusLine(event: TransferEvent, width: number): Segment[] {
  const fileName = sanitize(event.name);
  const nameWidth = textWidth(fileName);
  const pieces = (shown: string, bar: number, keep: Keep): Segment[] => [
    [undefined, `"${shown}" ${arrowOf(event)} `],
    [event.peer.self ? "1;36" : "1", displayName(event.peer.name, MAX_STATUS_PEER)],
    [undefined, `: ${progressText(event, bar, keep)}`],
  ];
  for (const keep of STATUS_FALLBACKS) {
    const fixed = segmentsWidth(pieces("", BAR_WIDTH, keep));
    // The name gives up columns first, down to MIN_STATUS_NAME; then the bar gives up cells.
    const shown = cutText(fileName, Math.max(width - fixed, Math.min(nameWidth, MIN_STATUS_NAME)));
    const bar = BAR_WIDTH - Math.max(0, fixed + textWidth(shown) - width);
    if (bar >= MIN_BAR_WIDTH) return pieces(shown, bar, keep);
  }
  const last = STATUS_FALLBACKS[STATUS_FALLBACKS.length - 1]!;
  return cutToWidth(pieces(cutText(fileName, MIN_STATUS_NAME), MIN_BAR_WIDTH, last), width);
}

function paint(segments: Segment[], style: Style): string {
  return segments.map(([codes, text]) => codes === undefined ? text : style(codes, text)).join(
    "",
  );
}

function textWidth(text: string): number {
  let width = 0;
  for (const char of text) width += charWidth(char);
  return width;
}

function segmentsWidth(segments: Segment[]): number {
  return segments.reduce((sum, [, text]) => sum + textWidth(text), 0);
}

/** `text` when it fits `width` columns (and `cut` is off), else what fits with "…" after it. */
function cutText(text: string, width: number, cut = false): string {
  if (!cut && textWidth(text) <= width) return text;
  let kept = "";
  let used = 0;
  for (const char of text) {
    const w = charWidth(char);
    if (used + w > width - 1) break;
    kept += char;
    used += w;
  }
  return kept + "\u2026";
}

/** Segments cut to `width` columns, ending with "…" where they were cut. */
function cutToWidth(segments: Segment[], width: number): Segment[] {
  if (segmentsWidth(segments) <= width) return segments;
  const out: Segment[] = [];
  let room = width;
  for (const [codes, text] of segments) {
    const w = textWidth(text);
    if (w >= room) {
      out.push([codes, cutText(text, room, true)]);
      break;
    }
    out.push([codes, text]);
    room -= w;
  }
  return out;
}
