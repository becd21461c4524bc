/**
 * The worker side of lib/crypto/aead_offload.ts: holds record keys in a thread of its own and seals
 * or opens what the main thread sends, so bulk encryption runs beside the socket I/O.
 *
 * Every operation goes through lib/crypto/record_suites.ts's AEADs, the same code the public vectors
 * test (ChaCha20-Poly1305 on its synchronous path: this thread exists for bulk work); this file only
 * moves bytes between threads. Requests may overlap; each reply carries its request's id.
 *
 * @module
 */

import { createRecordAead, type RecordAead } from "./record_suites.ts";
import { loadSynchronousChaCha20Poly1305 } from "./chacha20_poly1305.ts";
import { wipe } from "../core/bytes.ts";
import type { OffloadReply, OffloadRequest } from "./aead_offload.ts";

const keys = new Map<number, RecordAead>();

/** Answers one request; errors travel back as their name, never as key material. */
async function handle(request: OffloadRequest): Promise<OffloadReply> {
  switch (request.op) {
    case "key": {
      const key = new Uint8Array(request.key);
      try {
        if (request.suite === "chacha20-poly1305") await loadSynchronousChaCha20Poly1305();
        keys.set(request.keyId, await createRecordAead(request.suite, key));
      } finally {
        wipe(key);
      }
      return { id: request.id, ok: true };
    }
    case "forget":
      keys.delete(request.keyId);
      return { id: request.id, ok: true };
    case "seal":
    case "open": {
      const aead = keys.get(request.keyId);
      if (aead === undefined) return { id: request.id, ok: false, error: "unknown key" };
      const data = new Uint8Array(request.data);
      try {
        const result = request.op === "seal"
          ? await aead.seal(new Uint8Array(request.nonce), data, new Uint8Array(request.aad))
          : await aead.open(new Uint8Array(request.nonce), data, new Uint8Array(request.aad));
        return { id: request.id, ok: true, result };
      } catch (error) {
        return { id: request.id, ok: false, error: error instanceof Error ? error.name : "error" };
      } finally {
        wipe(data); // plaintext on the way in (seal) must not linger in this thread
      }
    }
  }
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<OffloadRequest>) => void) | null;
  postMessage(message: OffloadReply, transfer?: Transferable[]): void;
};

scope.onmessage = (event) => {
  handle(event.data).then((reply) => {
    const transfer = reply.ok && reply.result ? [reply.result.buffer as ArrayBuffer] : [];
    scope.postMessage(reply, transfer);
  });
};
