/**
 * Parses the address a command dials: `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address,
 * with the command's default port (a listener's 65432, a relay's 65433).
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";

/**
 * Parses `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 address.
 *
 * @param defaultPort the port when the text names none
 * @throws {UsageError} for an empty host or a port that is not 1 to 65535
 */
export function parseTarget(text: string, defaultPort: number): { host: string; port: number } {
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(":") as [string, string];
  }
  if (host === "") throw new UsageError(`cannot parse "${text}": the host is empty`);
  if (portText === undefined) return { host, port: defaultPort };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new UsageError(`cannot parse "${text}": port must be a number from 1 to 65535`);
  }
  return { host, port };
}
