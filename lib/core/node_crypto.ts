/**
 * Loads `node:crypto` when it is first needed instead of at start-up.
 *
 * Importing it costs a fresh process about 35 ms (it pulls in Deno's Node compatibility layer:
 * `process`, `uv`, `async_wrap`, ...), a large part of a pipe's time to ready (issue 6). Only the
 * ffdhe3072 suite (lib/crypto/kex.ts), file hashing (lib/transfer/file_hash.ts, lib/transfer/file_sink.ts,
 * lib/transfer/transfer_messages.ts) and a room's relay (small records, lib/crypto/aead.ts) use it, so a dial that
 * needs none of them never loads it.
 *
 * @module
 */

/** The `node:crypto` module, loaded once on first call. */
export function loadNodeCrypto(): Promise<typeof import("node:crypto")> {
  return import("node:crypto");
}
