/**
 * The flag table of every command, in one place: what `parseFlags()` accepts, what each help text
 * in usage.ts must mention (tests/e2e/cli_test.ts checks both ways), and what the shell
 * completions offer (completions.ts). It imports nothing heavy, so completions and tests can read
 * it without loading the protocol code.
 *
 * @module
 */

import type { FlagSpec } from "./args.ts";

/** Default port, as the two-party chat we grew from used. */
export const DEFAULT_PORT = 65432;

/** Default port of a rendezvous relay (`securechat relay`, docs/PROTOCOL.md 15): the next one. */
export const DEFAULT_RELAY_PORT = 65433;

/** Flags of the sessions that meet through a rendezvous relay (`listen --via`, `dial --via`). */
const VIA_FLAGS: Record<string, FlagSpec> = {
  via: { type: "string" },
  "relay-key": { type: "string" },
};

/** Flags both `listen` and `dial` take. */
export const SESSION_FLAGS: Record<string, FlagSpec> = {
  identity: { type: "string", short: "i" },
  "passphrase-file": { type: "string" },
  name: { type: "string" },
  suites: { type: "string" },
  "record-suites": { type: "string" },
  pipe: { type: "boolean" },
  json: { type: "boolean" },
  progress: { type: "boolean" },
  "accept-files": { type: "string" },
  "allow-hidden-files": { type: "boolean" },
  "max-file-size": { type: "string" },
  "handshake-timeout": { type: "string" },
  keepalive: { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** `securechat keygen`. */
export const KEYGEN_FLAGS: Record<string, FlagSpec> = {
  type: { type: "string" },
  bits: { type: "string" },
  out: { type: "string" },
  comment: { type: "string" },
  force: { type: "boolean" },
  "no-passphrase": { type: "boolean" },
  "passphrase-file": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** `securechat fingerprint`. */
export const FINGERPRINT_FLAGS: Record<string, FlagSpec> = {
  "passphrase-file": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** `securechat listen`. */
export const LISTEN_FLAGS: Record<string, FlagSpec> = {
  ...SESSION_FLAGS,
  host: { type: "string" },
  port: { type: "string", short: "p" },
  "authorized-keys": { type: "string" },
  "keep-open": { type: "boolean" },
  "relay-only": { type: "boolean" },
  receive: { type: "string" },
  "max-pending-handshakes": { type: "string" },
  "max-pending-per-address": { type: "string" },
  "max-waiting": { type: "string" },
  "max-members": { type: "string" },
  ...VIA_FLAGS,
};

/** `securechat dial`. */
export const DIAL_FLAGS: Record<string, FlagSpec> = {
  ...SESSION_FLAGS,
  expect: { type: "string" },
  send: { type: "string" },
  admit: { type: "string" },
  ...VIA_FLAGS,
  room: { type: "string" },
};

/** `securechat relay`: a rendezvous relay and its limits (docs/PROTOCOL.md 15.6). */
export const RELAY_FLAGS: Record<string, FlagSpec> = {
  host: { type: "string" },
  port: { type: "string", short: "p" },
  identity: { type: "string", short: "i" },
  "passphrase-file": { type: "string" },
  "max-connections-per-address": { type: "string" },
  "max-waiting": { type: "string" },
  "max-waiting-per-address": { type: "string" },
  "registration-life": { type: "string" },
  "rate-per-address": { type: "string" },
  "max-pending-handshakes": { type: "string" },
  "max-pending-per-address": { type: "string" },
  "max-members": { type: "string" },
  nats: { type: "string" },
  advertise: { type: "string" },
  "nats-replicas": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** `securechat completions`. */
export const COMPLETIONS_FLAGS: Record<string, FlagSpec> = {
  help: { type: "boolean", short: "h" },
};

/** Every command's flags, keyed like `COMMAND_SUMMARIES` in usage.ts. */
export const COMMAND_FLAGS: Record<string, Record<string, FlagSpec>> = {
  keygen: KEYGEN_FLAGS,
  fingerprint: FINGERPRINT_FLAGS,
  listen: LISTEN_FLAGS,
  dial: DIAL_FLAGS,
  relay: RELAY_FLAGS,
  completions: COMPLETIONS_FLAGS,
};
