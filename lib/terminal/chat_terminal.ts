/**
 * The two chat front ends over a `Participant` (`lib/chat/chat_events.ts`):
 * - `runTerminalChat`: the interactive chat. Keys are decoded and edited by `lib/terminal/line_editor.ts`,
 *   events rendered by `lib/terminal/chat_view.ts` and printed above the prompt by `TerminalScreen`
 *   (`lib/terminal/terminal_screen.ts`), so incoming messages never garble the line being typed. Progress
 *   of running transfers ("sending", "receiving") is not printed but kept in a status area right
 *   above the prompt (`lib/terminal/transfer_view.ts`), redrawn in place, one line per transfer; the other
 *   transfer states are printed once and take the transfer out of the status area.
 * - `runJsonChat`: the `--json` mode. Every event is one JSON line on the output; input lines are
 *   the same commands as typed lines (/admit, /kick, /op and /deop included), and local replies
 *   (/who, /verify, /help, errors) are events too.
 *
 * Both run typed lines through `parseChatInput` one at a time and in order, turn failures
 * (an unknown member for /msg, a closed session) into `error` events, and keep going. They end
 * when the session's `closed` resolves or the user quits (/quit, Ctrl-C, Ctrl-D on an empty line,
 * end of input), and the last thing they report is a `closed` event.
 *
 * What they do not do: open connections, parse flags or choose between terminal and JSON; the CLI
 * (`lib/cli/listen.ts`, `lib/cli/dial.ts`) does, with `colorEnabled()` from `lib/terminal/tty.ts`. They
 * never echo what was sent: the session reports our own messages as events.
 *
 * Caveat: a pending `read()` on a plain reader (such as `Deno.stdin`) cannot be cancelled, so
 * after these functions return the caller should exit the process (`main.ts` does); a
 * `ReadableStream` input is cancelled.
 *
 * @module
 */

import { CHAT_HELP, parseChatInput } from "./chat_commands.ts";
import type { ChatEvent, Participant } from "../chat/chat_events.ts";
import {
  displayName,
  renderEvent,
  renderHelp,
  type TransferEvent,
  type ViewOptions,
} from "./chat_view.ts";
import { SecurechatError } from "../core/errors.ts";
import { type ByteSink, type ByteSource, writeAll } from "../core/io.ts";
import { KeyParser, LineEditor } from "./line_editor.ts";
import { type RawMode, TerminalScreen } from "./terminal_screen.ts";
import { renderTransferStatus } from "./transfer_view.ts";

/** Longest input line `runJsonChat` buffers, in characters; a longer line is an error. */
export const MAX_JSON_INPUT_LINE = 64 * 1024;

/** Longest name in the prompt, in code points. */
const MAX_PROMPT_NAME = 16;

/** Where typed bytes come from: a stream, or a reader such as `Deno.stdin`. */
export type ChatInputSource = ReadableStream<Uint8Array> | ByteSource;

/** Options for {@linkcode runTerminalChat}. */
export interface TerminalChatOptions {
  /** Raw terminal bytes (usually `Deno.stdin`). */
  input: ChatInputSource;
  /** The terminal (usually `Deno.stdout`). */
  output: ByteSink;
  /** ANSI colours on or off: `colorEnabled()` from `lib/terminal/tty.ts`. */
  colors: boolean;
  /** Raw mode switch (default `Deno.stdin`). */
  raw?: RawMode;
  /** Clock for local events (default `new Date()`). */
  now?: () => Date;
  /** IANA time zone for `HH:MM` (default local). */
  timeZone?: string;
  /** Terminal width (default `Deno.consoleSize()`). */
  columns?: () => number;
  /** Signal handlers while running (default: when `raw` is `Deno.stdin`, see `TerminalScreen`). */
  signals?: boolean;
}

/** Options for {@linkcode runJsonChat}. */
export interface JsonChatOptions {
  /** Command lines, UTF-8, one per `\n`. */
  input: ChatInputSource;
  /** Where the JSON lines go. */
  output: ByteSink;
  /** Clock for local events (default `new Date()`). */
  now?: () => Date;
}

/**
 * Runs the interactive chat until the session ends or the user quits, always restoring the
 * terminal.
 *
 * @param session the participant to drive
 * @param options terminal input, output, colours and test seams
 * @throws {Error} what the session's `closed` rejects with, or a terminal read/write failure,
 *   after the terminal is restored
 */
export async function runTerminalChat(
  session: Participant,
  options: TerminalChatOptions,
): Promise<void> {
  const now = options.now ?? (() => new Date());
  const view: ViewOptions = { colors: options.colors };
  if (options.timeZone !== undefined) view.timeZone = options.timeZone;
  const editor = new LineEditor();
  const control = new Control(session, now);
  // Running transfers by key, in the order they started: the status area above the prompt.
  const running = new Map<string, TransferEvent>();
  const screen = new TerminalScreen(editor, {
    prompt: `${displayName(session.self.name, MAX_PROMPT_NAME)}> `,
    writer: options.output,
    ...(options.raw === undefined ? {} : { raw: options.raw }),
    ...(options.columns === undefined ? {} : { columns: options.columns }),
    ...(options.signals === undefined ? {} : { signals: options.signals }),
    status: (columns) =>
      renderTransferStatus([...running.values()], { colors: options.colors, columns }),
    onSignal: () => control.quit(true),
  });
  // Subscribe now, not after start(): events that arrive meanwhile wait in `early`.
  let early: Reply[] | undefined = [];
  const show = (reply: Reply) => {
    if (reply !== "help" && reply.type === "closed") control.sawClosed = true;
    if (early !== undefined) return void early.push(reply);
    if (reply === "help") return void screen.printAbove(renderHelp(view));
    if (reply.type === "transfer") {
      const key = transferKey(reply);
      if (reply.state === "sending" || reply.state === "receiving") {
        running.set(key, reply);
        return void screen.redraw();
      }
      running.delete(key); // waiting, done, rejected, cancelled, failed: one line, as any event
    } else if (reply.type === "closed") {
      running.clear(); // nothing runs on after the session
    }
    void screen.printAbove(renderEvent(reply, view));
  };
  const unsubscribe = session.onEvent(show);
  const source = chunks(options.input);
  try {
    await screen.start();
    const waiting = early;
    early = undefined;
    for (const reply of waiting) show(reply);
    const readKeys = async () => {
      const parser = new KeyParser();
      while (!control.ended) {
        const chunk = await source.next();
        if (chunk === null || control.ended) break;
        let redraw = false;
        for (const action of editor.feed(parser.feed(chunk))) {
          if (action.type === "submit") control.submit(action.line, show);
          else if (action.type === "quit") control.quit(true);
          else if (action.type === "bell") void screen.bell();
          else redraw = true;
        }
        if (redraw) void screen.redraw();
      }
      control.quit();
    };
    await control.run(readKeys(), show);
  } finally {
    unsubscribe();
    source.cancel();
    await screen.stop();
  }
  if (screen.error !== undefined) throw screen.error;
}

/**
 * Runs the `--json` chat: each event becomes `JSON.stringify(event)` and a newline on `output`;
 * each input line is a typed line (`parseChatInput`). /who answers with a `roster` event, /verify
 * with the `verification` event, /help with one `notice` whose text holds the help lines, and
 * failures with `error` events. End of input closes the session.
 *
 * @param session the participant to drive
 * @param options command input, JSON output and clock
 * @throws {Error} what the session's `closed` rejects with, or an input/output failure
 */
export async function runJsonChat(session: Participant, options: JsonChatOptions): Promise<void> {
  const now = options.now ?? (() => new Date());
  const control = new Control(session, now);
  const encoder = new TextEncoder();
  let writing = Promise.resolve();
  let writeError: unknown = undefined;
  const emit = (event: ChatEvent) => {
    const bytes = encoder.encode(JSON.stringify(event) + "\n");
    writing = writing.then(async () => {
      if (writeError !== undefined) return;
      try {
        await writeAll(options.output, bytes);
      } catch (error) {
        writeError = error;
        control.quit();
      }
    });
  };
  const show = (reply: Reply) => {
    if (reply === "help") {
      return emit({ type: "notice", time: now().getTime(), text: CHAT_HELP.join("\n") });
    }
    if (reply.type === "closed") control.sawClosed = true;
    emit(reply);
  };
  const source = chunks(options.input);
  const unsubscribe = session.onEvent(show);
  try {
    const readLines = async () => {
      const decoder = new TextDecoder();
      let pending = "";
      let skipping = false; // inside a line longer than MAX_JSON_INPUT_LINE
      while (!control.ended) {
        const chunk = await source.next();
        if (chunk === null || control.ended) break;
        pending += decoder.decode(chunk, { stream: true });
        let newline;
        while ((newline = pending.indexOf("\n")) !== -1 && !control.ended) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (skipping) skipping = false;
          else await control.perform(line, show);
        }
        if (pending.length > MAX_JSON_INPUT_LINE) {
          const message = `input line ignored: longer than ${MAX_JSON_INPUT_LINE} characters`;
          if (!skipping) show(errorEvent(now(), "line_too_long", message));
          skipping = true;
          pending = "";
        }
      }
      pending += decoder.decode();
      if (pending !== "" && !skipping && !control.ended) await control.perform(pending, show);
      control.quit();
    };
    await control.run(readLines(), show);
  } finally {
    unsubscribe();
    source.cancel();
    await writing;
  }
  if (writeError !== undefined) throw writeError;
}

/**
 * Identifies a transfer in the status area: each sender picks its own short ids, so offers from
 * two peers may share one; with the direction and the peer's fingerprint they cannot.
 */
function transferKey(event: TransferEvent): string {
  return `${event.direction} ${event.peer.fingerprint} ${event.id}`;
}

/** What a typed line makes the UI show: an event, or the help text. */
type Reply = ChatEvent | "help";

/** The part both front ends share: running typed lines in order, quitting, ending. */
class Control {
  readonly #session: Participant;
  readonly #now: () => Date;
  #commands: Promise<void> = Promise.resolve();
  #quitRequested = false;
  readonly #quitDone = Promise.withResolvers<void>();
  #closeError: unknown = undefined;
  /** Set once the UI has ended; input after that is ignored. */
  ended = false;
  /** Whether a `closed` event was shown (if not, `run()` shows one). */
  sawClosed = false;

  constructor(session: Participant, now: () => Date) {
    this.#session = session;
    this.#now = now;
  }

  /** Queues a typed line behind the earlier ones (the terminal must not wait while typing). */
  submit(line: string, show: (reply: Reply) => void): void {
    if (this.#quitRequested) return;
    this.#commands = this.#commands.then(() => this.perform(line, show));
  }

  /** Runs one typed line; failures become `error` events, never rejections. */
  async perform(line: string, show: (reply: Reply) => void): Promise<void> {
    if (this.#quitRequested) return;
    const input = parseChatInput(line);
    const session = this.#session;
    try {
      switch (input.kind) {
        case "text":
          return await session.sendText(input.text);
        case "action":
          return await session.sendAction(input.text);
        case "private":
          return await session.sendPrivate(input.to, input.text);
        case "help":
          return show("help");
        case "who":
          return show({ type: "roster", time: this.#now().getTime(), members: session.members() });
        case "verify":
          return show(await session.verify(input.member));
        case "admit":
          return await required(session.admit, "admitting newcomers (/admit)").call(
            session,
            input.who,
          );
        case "kick":
          return await required(session.kick, "removing members (/kick)").call(session, input.who);
        case "admin":
          return await required(session.setAdmin, "making admins (/op, /deop)").call(
            session,
            input.who,
            input.on,
          );
        case "quit":
          return this.quit();
        case "empty":
          return;
        case "invalid":
          return show(errorEvent(this.#now(), "invalid_input", input.message));
        case "send":
          return await required(session.sendFile, "sending files").call(
            session,
            input.path,
            input.to,
          );
        case "accept":
          return await required(session.acceptOffer, "file offers").call(session, input.id);
        case "reject":
          return await required(session.rejectOffer, "file offers").call(session, input.id);
        case "cancel":
          return await required(session.cancelTransfer, "transfers").call(session, input.id);
      }
    } catch (error) {
      this.#showError(error, show);
    }
  }

  /**
   * Leaves the room after the queued lines are sent. With `force` (Ctrl-C, Ctrl-D, a signal), a
   * second request ends the UI at once, for when a send or the close hangs.
   */
  quit(force = false): void {
    if (this.ended) return;
    if (this.#quitRequested) {
      if (force) this.#quitDone.resolve();
      return;
    }
    this.#quitRequested = true;
    this.#commands = this.#commands.then(() => this.#session.close()).catch((error) => {
      this.#closeError = error;
    }).finally(() => this.#quitDone.resolve());
  }

  /** Waits for the session to end or the quit to finish, then reports a final `closed` event. */
  async run(input: Promise<void>, show: (reply: Reply) => void): Promise<void> {
    let inputError: unknown = undefined;
    input.catch((error) => {
      inputError = error;
      this.quit();
    });
    const outcome = await Promise.race([
      this.#session.closed.then(() => undefined, (error: unknown) => ({ error })),
      this.#quitDone.promise.then(() => undefined),
    ]);
    this.ended = true;
    if (this.#closeError !== undefined) this.#showError(this.#closeError, show);
    if (!this.sawClosed) {
      // The last thing reported is always a `closed` event; a failure itself is left to the
      // caller (the CLI prints it with its hints once the terminal is restored).
      const reason = outcome !== undefined
        ? messageOf(outcome.error)
        : this.#quitRequested
        ? "you left"
        : "the session ended";
      show({ type: "closed", time: this.#now().getTime(), reason });
    }
    if (outcome !== undefined) throw outcome.error;
    if (inputError !== undefined) throw inputError;
  }

  #showError(error: unknown, show: (reply: Reply) => void): void {
    const time = this.#now();
    if (error instanceof SecurechatError) {
      show(errorEvent(time, error.code, error.message));
      for (const hint of error.hints) {
        show({ type: "notice", time: time.getTime(), text: `hint: ${hint}` });
      }
    } else {
      show(errorEvent(time, "failed", messageOf(error)));
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorEvent(time: Date, code: string, message: string): ChatEvent {
  return { type: "error", time: time.getTime(), code, message };
}

/** Chunks of an input source, and a way to stop reading. */
interface Chunks {
  next(): Promise<Uint8Array | null>;
  cancel(): void;
}

function chunks(input: ChatInputSource): Chunks {
  if (input instanceof ReadableStream) {
    const reader = input.getReader();
    return {
      async next() {
        const result = await reader.read();
        return result.done ? null : result.value;
      },
      cancel() {
        reader.cancel().catch(() => {}); // the stream's own error was already reported by next()
      },
    };
  }
  const buffer = new Uint8Array(4096);
  return {
    async next() {
      const count = await input.read(buffer);
      return count === null ? null : buffer.slice(0, count);
    },
    cancel() {}, // a plain reader cannot be cancelled (see the module doc)
  };
}

/**
 * An optional session method (file transfer, the admin commands), or an error saying this session
 * lacks it.
 */
function required<T extends (...args: never[]) => Promise<void>>(
  method: T | undefined,
  what: string,
): T {
  if (method === undefined) {
    throw new SecurechatError("unsupported", `this session does not support ${what}`);
  }
  return method;
}
