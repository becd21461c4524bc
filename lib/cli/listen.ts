/**
 * `securechat listen`: accepts dialers, runs the responder handshake with each concurrently, admits
 * those in authorized_keys (or anyone, when no file is given), and pipes stdin/stdout with one peer
 * at a time. Failed or refused connections are reported and the listener keeps serving.
 *
 * @module
 */

import { ConnectionError, SecurechatError, TrustError, UsageError } from "../errors.ts";
import { type AuthorizedKey, findAuthorizedKey, readAuthorizedKeys } from "../trust.ts";
import { runResponder, type SecureConnection } from "../connection.ts";
import { ALL_SUITES } from "../kex.ts";
import { runPipe } from "../pipe.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../record.ts";
import { booleanFlag, integerFlag, parseFlags, stringFlag } from "./args.ts";
import { print, reportError, status, warning } from "./output.ts";
import {
  announcePeer,
  handshakeTimeoutMs,
  loadOwnIdentity,
  SESSION_FLAGS,
  standardPipeEnds,
  suitesFlag,
} from "./session.ts";
import { USAGE } from "./usage.ts";

/** Default port, as the two-party chat we grew from used. */
export const DEFAULT_PORT = 65432;

const FLAGS = {
  ...SESSION_FLAGS,
  host: { type: "string" as const },
  port: { type: "string" as const, short: "p" },
  "authorized-keys": { type: "string" as const },
  "keep-open": { type: "boolean" as const },
};

function listenError(error: unknown, where: string): SecurechatError {
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

/** Runs `securechat listen`. */
export async function run(args: string[]): Promise<number> {
  const parsed = parseFlags("listen", FLAGS, args);
  if (parsed.values.help) {
    print(USAGE.listen!);
    return 0;
  }
  const host = stringFlag(parsed, "host") ?? "127.0.0.1";
  const port = integerFlag(parsed, "port", { min: 0, max: 65535, fallback: DEFAULT_PORT });
  const keepOpen = booleanFlag(parsed, "keep-open");
  const suites = suitesFlag(parsed, [...ALL_SUITES]);
  const timeoutMs = handshakeTimeoutMs(parsed);
  const authorizedFile = stringFlag(parsed, "authorized-keys");
  if (host === "") throw new UsageError('flag "--host" needs an address');

  const authorized = authorizedFile === undefined
    ? undefined
    : await readAuthorizedKeys(authorizedFile);
  const identity = await loadOwnIdentity(parsed);

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: host, port, transport: "tcp" });
  } catch (error) {
    throw listenError(error, `${host}:${port}`);
  }
  const address = listener.addr as Deno.NetAddr;
  status(`listening on ${address.hostname}:${address.port} as ${identity.fingerprint}`);
  if (authorized === undefined) {
    status("admitting any dialer (no --authorized-keys): check the fingerprint each one shows");
  } else {
    status(`admitting the ${authorized.length} key(s) in "${authorizedFile}"`);
  }

  // One pipe at a time: stdin and stdout are shared. With --keep-open later peers wait their turn.
  let busy = false;
  let sessionEnded: Promise<void> = Promise.resolve();
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => finish = resolve);

  const names = new Map<string, string>();
  function authorize(
    peer: { identity: { fingerprint: string }; name: string },
  ): Promise<void> {
    if (authorized === undefined) return Promise.resolve();
    const entry: AuthorizedKey | undefined = findAuthorizedKey(
      authorized,
      peer.identity.fingerprint,
    );
    if (entry === undefined) {
      throw new TrustError(
        "unauthorized_key",
        `key ${peer.identity.fingerprint} (calling itself "${peer.name}") is not in "${authorizedFile}"`,
        { alert: "access_denied" },
      );
    }
    names.set(peer.identity.fingerprint, entry.name);
    return Promise.resolve();
  }

  async function serve(conn: Deno.Conn): Promise<void> {
    const remote = conn.remoteAddr as Deno.NetAddr;
    const from = `${remote.hostname}:${remote.port}`;
    let secure: SecureConnection;
    try {
      secure = await runResponder(conn, {
        identity,
        suites,
        maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
        timeoutMs,
        authorize,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      warning(`connection from ${from} refused: ${message}`);
      return;
    }
    while (busy && keepOpen) await sessionEnded;
    if (busy) {
      await secure.abort(new SecurechatError("busy", "busy", 1, { alert: "user_canceled" }));
      warning(`connection from ${from} refused: already serving a peer`);
      return;
    }
    busy = true;
    let endSession = () => {};
    sessionEnded = new Promise((resolve) => endSession = resolve);
    const fingerprint = secure.peer.identity.fingerprint;
    const authorizedName = names.get(fingerprint);
    announcePeer(`connection from ${from}`, secure.peer, {
      suite: secure.suite,
      verificationCode: secure.verificationCode,
      ...(authorizedName === undefined ? {} : { name: authorizedName }),
    });
    let code = 0;
    try {
      const stats = await runPipe(secure, standardPipeEnds({ keepOutputOpen: keepOpen }));
      status(`session with ${from} ended: sent ${stats.sent} bytes, received ${stats.received}`);
    } catch (error) {
      code = reportError(error);
    }
    busy = false;
    endSession();
    if (!keepOpen) finish(code);
  }

  (async () => {
    try {
      for await (const conn of listener) serve(conn);
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) finish(reportError(error));
    }
  })();

  const code = await finished;
  try {
    listener.close();
  } catch {
    // Already closed.
  }
  return code;
}
