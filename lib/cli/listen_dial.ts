/**
 * What `listen`, `dial` and `relay` share (their flags are in flags.ts): choosing between pipe, terminal
 * chat and JSON chat, loading our identity, the suite and timeout flags, the local pipe ends,
 * running a chat UI, and the lines that tell the user who the peer is.
 *
 * @module
 */

import type { Participant } from "../chat/chat_events.ts";
import { ConnectionError, type SecurechatError, UsageError } from "../core/errors.ts";
import type { VerifiedPeer } from "../protocol/handshake_state.ts";
import { commentProblem, type Identity } from "../keys/identity.ts";
import { loadIdentity } from "../keys/identity_file.ts";
import { parseSuiteList, type SuiteName } from "../crypto/kex.ts";
import {
  DEFAULT_RECORD_SUITES,
  parseRecordSuites,
  type RecordSuiteName,
} from "../crypto/record_suites.ts";
import { passphraseSource } from "../terminal/passphrase.ts";
import { joinPath, securechatHome } from "../core/paths.ts";
import { readAuthorizedKeys } from "../trust/authorized_keys.ts";
import type { PipeEnds } from "../transport/pipe.ts";
import { colorEnabled } from "../terminal/tty.ts";
import { booleanFlag, integerFlag, type ParsedArgs, stringFlag } from "./args.ts";
import { reportError, status } from "./output.ts";
import type { ReceivePolicy } from "../transfer/receive_policy.ts";
import { pipeProgress, ProgressLine, sizeFlag } from "./transfer_cli.ts";

/** `--keepalive` in milliseconds (default 30 s; 0 turns keepalives off). */
export function keepaliveMs(parsed: ParsedArgs): number {
  return integerFlag(parsed, "keepalive", { min: 0, max: 86_400, fallback: 30 }) * 1000;
}

/** How a session talks to the local user. */
export type SessionMode = "pipe" | "terminal" | "json" | "relay" | "oneshot";

/**
 * One-shot transfer with --send or --receive; pipe with --pipe, or when stdin or stdout is not a
 * terminal; JSON chat with --json; a relay without a local person with --relay-only; else the
 * terminal chat.
 *
 * @throws {UsageError} for contradictory flags
 */
export function chooseMode(parsed: ParsedArgs): SessionMode {
  const pipe = booleanFlag(parsed, "pipe");
  const json = booleanFlag(parsed, "json");
  const relay = booleanFlag(parsed, "relay-only");
  const oneShot = stringFlag(parsed, "send") !== undefined ||
    stringFlag(parsed, "receive") !== undefined;
  if ([pipe, json, relay, oneShot].filter(Boolean).length > 1) {
    throw new UsageError(
      'flags "--pipe", "--json", "--relay-only", "--send" and "--receive" exclude each other',
    );
  }
  if (oneShot) return "oneshot";
  if (pipe) return "pipe";
  if (json) return "json";
  if (relay) return "relay";
  return Deno.stdin.isTerminal() && Deno.stdout.isTerminal() ? "terminal" : "pipe";
}

/**
 * A folder flag (`--accept-files`, `--receive`): it must exist and be a folder.
 *
 * @throws {UsageError}
 */
export async function folderFlag(parsed: ParsedArgs, name: string): Promise<string | undefined> {
  const path = stringFlag(parsed, name);
  if (path === undefined) return undefined;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new UsageError(`flag "--${name}": folder "${path}" does not exist`);
  }
  if (!info.isDirectory) throw new UsageError(`flag "--${name}": "${path}" is not a folder`);
  return path;
}

/** Resolves once the session's roster has arrived (the relay sends it right after joining). */
export function rosterReady(session: Participant): Promise<void> {
  return new Promise((resolve) => {
    const stop = session.onEvent((event) => {
      if (event.type === "roster" || event.type === "closed") {
        resolve();
        queueMicrotask(() => stop());
      }
    });
  });
}

/**
 * `--admit FILE`: the newcomers we admit without asking once we are an admin of a room, listed
 * like authorized_keys (docs/PROTOCOL.md 13.3).
 *
 * @returns whether a fingerprint is listed, or undefined without the flag
 * @throws {SecurechatError} when the file is missing or malformed
 */
export async function admitListFlag(
  parsed: ParsedArgs,
): Promise<((fingerprint: string) => boolean) | undefined> {
  const file = stringFlag(parsed, "admit");
  if (file === undefined) return undefined;
  const listed = new Set((await readAuthorizedKeys(file)).map((key) => key.fingerprint));
  return (fingerprint) => listed.has(fingerprint);
}

/** `--name`, checked like a key comment. @throws {UsageError} */
export function nameFlag(parsed: ParsedArgs): string | undefined {
  const name = stringFlag(parsed, "name");
  if (name === undefined) return undefined;
  const problem = commentProblem(name);
  if (problem !== undefined || name.trim() === "") {
    throw new UsageError(`flag "--name": ${problem ?? "the name is empty"}`);
  }
  return name;
}

/** Loads the private key named by `--identity` (default `$SECURECHAT_HOME/id`). */
export async function loadOwnIdentity(parsed: ParsedArgs): Promise<Identity> {
  const path = stringFlag(parsed, "identity") ?? joinPath(securechatHome(), "id");
  const passphraseFile = stringFlag(parsed, "passphrase-file");
  return await loadIdentity(path, {
    passphrase: passphraseSource(passphraseFile === undefined ? {} : { passphraseFile }),
  });
}

/** `--handshake-timeout` in milliseconds (default 10 s). */
export function handshakeTimeoutMs(parsed: ParsedArgs): number {
  return integerFlag(parsed, "handshake-timeout", { min: 1, max: 3600, fallback: 10 }) * 1000;
}

/** `--suites`, or the fallback. @throws {UsageError} for an unknown suite */
export function suitesFlag(parsed: ParsedArgs, fallback: SuiteName[]): SuiteName[] {
  const raw = stringFlag(parsed, "suites");
  if (raw === undefined) return fallback;
  try {
    return parseSuiteList(raw);
  } catch (error) {
    throw new UsageError(`flag "--suites": ${(error as Error).message}`);
  }
}

/**
 * `--record-suites`, or both sides' default (section 4.5).
 *
 * @throws {UsageError} for an unknown record suite
 */
export function recordSuitesFlag(parsed: ParsedArgs): RecordSuiteName[] {
  const raw = stringFlag(parsed, "record-suites");
  if (raw === undefined) return [...DEFAULT_RECORD_SUITES];
  try {
    return parseRecordSuites(raw);
  } catch (error) {
    throw new UsageError(`flag "--record-suites": ${(error as Error).message}`);
  }
}

/**
 * The process's stdin and stdout as pipe ends. With `keepOutputOpen` (a listener serving one peer
 * after another) the peer's close_notify does not close stdout, so the next peer can use it.
 */
export function standardPipeEnds(
  options: { keepOutputOpen?: boolean; progress?: ProgressLine } = {},
): PipeEnds {
  const stdout = Deno.stdout;
  const ends: PipeEnds = {
    input: Deno.stdin,
    output: options.keepOutputOpen ? { write: (data: Uint8Array) => stdout.write(data) } : stdout,
    inputIsTerminal: Deno.stdin.isTerminal(),
  };
  if (options.progress) ends.onProgress = pipeProgress(options.progress, Date.now());
  return ends;
}

/**
 * `--progress`, or by default when stderr is a terminal and stdout is not (so the progress line
 * never mixes into data shown on the same screen).
 */
export function progressLine(parsed: ParsedArgs): ProgressLine | undefined {
  const wanted = booleanFlag(parsed, "progress") ||
    (Deno.stderr.isTerminal() && !Deno.stdout.isTerminal());
  return wanted ? new ProgressLine() : undefined;
}

/**
 * Runs the terminal or JSON chat UI on stdin/stdout until the session ends.
 *
 * @returns the exit code: 0, or the code of the error that ended the session
 */
export async function runChatUi(session: Participant, mode: "terminal" | "json"): Promise<number> {
  // Loaded here, not at start-up: pipe mode needs no chat UI.
  const { runJsonChat, runTerminalChat } = await import("../terminal/chat_terminal.ts");
  if (mode === "terminal") {
    await runTerminalChat(session, {
      input: Deno.stdin,
      output: Deno.stdout,
      colors: colorEnabled(),
    });
  } else {
    await runJsonChat(session, { input: Deno.stdin, output: Deno.stdout });
  }
  const failure = session.failure?.();
  return failure === undefined ? 0 : reportError(failure);
}

/** Prints who the peer is and the verification code. */
export function announcePeer(
  where: string,
  peer: VerifiedPeer,
  details: { suite: string; verificationCode: string; name?: string },
): void {
  const name = details.name ?? peer.name;
  const label = name === "" ? "" : `"${name}" `;
  status(`${where}: ${label}${peer.identity.fingerprint} (suite ${details.suite})`);
  status(`verification code: ${details.verificationCode}`);
}

/**
 * The receive policy the flags ask for. A folder named by one of `folderFlags` (`--receive`,
 * `--accept-files`) means offers are accepted into it without asking.
 *
 * @param parsed the command's flags
 * @param folderFlags the flags that name a receive folder, the first one given wins
 * @returns the policy, with only the fields the flags set
 * @throws {UsageError} for a folder that does not exist or a bad size
 */
export async function receivePolicyFlags(
  parsed: ParsedArgs,
  folderFlags: string[],
): Promise<ReceivePolicy> {
  let receiveDir: string | undefined;
  for (const name of folderFlags) receiveDir ??= await folderFlag(parsed, name);
  const maxFileSize = sizeFlag(parsed, "max-file-size");
  return {
    ...(receiveDir === undefined ? {} : { receiveDir, autoAccept: true }),
    ...(booleanFlag(parsed, "allow-hidden-files") ? { allowHidden: true } : {}),
    ...(maxFileSize === undefined ? {} : { maxFileSize }),
  };
}

/** The error of a `Deno.listen()` on `where` that failed: the address taken, absent, or else. */
export function listenError(error: unknown, where: string): SecurechatError {
  if (error instanceof Deno.errors.AddrInUse) {
    return new ConnectionError("address_in_use", `cannot listen on ${where}: address in use`, {
      hints: ["another program listens there: pick another port with --port"],
    });
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new ConnectionError("address_unavailable", `cannot listen on ${where}: no such address`);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ConnectionError("listen_failed", `cannot listen on ${where}: ${message}`);
}
