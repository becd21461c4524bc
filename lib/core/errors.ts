/**
 * Error classes, stable error codes, exit codes and the alert registry.
 *
 * Every failure a user can meet is a `SecurechatError` with a stable `code` (used by tests and
 * `--json` output), a one-line message (lowercase, failed action first, no final period), optional
 * hints, and the process exit code. Detail stays local: the peer only ever learns an alert code
 * (docs/PROTOCOL.md section 8), never why our verification failed.
 *
 * Mirrors: docs/PROTOCOL.md section 8 (alerts) and README "Exit codes".
 *
 * @module
 */

/** Process exit codes, documented in README "Exit codes". */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  trust: 3,
  authentication: 4,
  protocol: 5,
  connection: 6,
  /** A bug: an error escaped every handler (main.ts's last resort). */
  internal: 70,
} as const;

/** Alert codes carried in alert frames and records (docs/PROTOCOL.md section 8). */
export const ALERT = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  record_overflow: 22,
  handshake_failure: 40,
  bad_certificate: 42,
  illegal_parameter: 47,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  internal_error: 80,
  user_canceled: 90,
  no_application_protocol: 120,
} as const;

/** Name of an alert code. */
export type AlertName = keyof typeof ALERT;

/** Looks up the name of an alert code, or undefined for an unknown code. */
export function alertName(code: number): AlertName | undefined {
  for (const [name, value] of Object.entries(ALERT)) {
    if (value === code) return name as AlertName;
  }
  return undefined;
}

/** Options shared by every securechat error. */
export interface SecurechatErrorOptions {
  /** Lines printed after the error as `securechat: hint: ...`. */
  hints?: string[];
  /** Underlying error, kept for debugging. */
  cause?: unknown;
  /** Alert to send to the peer, when the error arises on an open connection. */
  alert?: AlertName;
}

/** Base class: a failure with a stable code, a user-facing message and an exit code. */
export class SecurechatError extends Error {
  /** Stable identifier, for tests and `--json` consumers. */
  readonly code: string;
  /** Extra lines telling the user what to do. */
  readonly hints: string[];
  /** Exit code of the process when this error ends it. */
  readonly exitCode: number;
  /** Alert code the peer is sent, if any. */
  readonly alert: AlertName | undefined;

  constructor(
    code: string,
    message: string,
    exitCode: number = EXIT.failure,
    options: SecurechatErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SecurechatError";
    this.code = code;
    this.hints = options.hints ?? [];
    this.exitCode = exitCode;
    this.alert = options.alert;
  }
}

/** Bad command line: unknown flag, missing value, bad argument. Exit 2. */
export class UsageError extends SecurechatError {
  constructor(message: string, options: SecurechatErrorOptions = {}) {
    super("usage", message, EXIT.usage, options);
    this.name = "UsageError";
  }
}

/** The peer sent malformed or out-of-order data, or data we cannot parse. Exit 5. */
export class ProtocolError extends SecurechatError {
  constructor(code: string, message: string, options: SecurechatErrorOptions = {}) {
    super(code, message, EXIT.protocol, { alert: "decode_error", ...options });
    this.name = "ProtocolError";
  }
}

/** A MAC, AEAD tag, signature or Finished check failed, or the stream was truncated. Exit 4. */
export class AuthenticationError extends SecurechatError {
  constructor(code: string, message: string, options: SecurechatErrorOptions = {}) {
    super(code, message, EXIT.authentication, { alert: "decrypt_error", ...options });
    this.name = "AuthenticationError";
  }
}

/** A known_hosts change, a pin mismatch or an unauthorized key. Exit 3. */
export class TrustError extends SecurechatError {
  constructor(code: string, message: string, options: SecurechatErrorOptions = {}) {
    super(code, message, EXIT.trust, { alert: "bad_certificate", ...options });
    this.name = "TrustError";
  }
}

/** The connection could not be made, timed out, or the peer went away. Exit 6. */
export class ConnectionError extends SecurechatError {
  constructor(code: string, message: string, options: SecurechatErrorOptions = {}) {
    super(code, message, EXIT.connection, options);
    this.name = "ConnectionError";
  }
}

/** The peer told us it failed, with an alert. Carries the alert's name. Exit 5. */
export class PeerAlertError extends SecurechatError {
  /** Alert name received from the peer. */
  readonly received: string;
  constructor(received: string, message: string, options: SecurechatErrorOptions = {}) {
    super(`peer_alert_${received}`, message, EXIT.protocol, options);
    this.name = "PeerAlertError";
    this.received = received;
  }
}
