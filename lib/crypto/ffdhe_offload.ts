/**
 * Runs the ffdhe3072 responder's work (lib/crypto/kex.ts `ffdheAnswer()`) in a worker thread. Its public
 * value check is a 3071-bit exponentiation, ~50 ms of CPU: on the main thread a flood of hellos
 * would stall every other connection of a listener. The worker starts with the first request and
 * ends when none is left, so a process that never meets ffdhe3072 never starts it.
 *
 * Mirrors: docs/PROTOCOL.md section 4.3 (ffdhe3072 on a listener).
 *
 * @module
 */

/** A request to lib/crypto/ffdhe_worker.ts. */
export interface FfdheRequest {
  id: number;
  secret: ArrayBuffer;
  share: ArrayBuffer;
}

/** Its answer: our share and the shared secret, the fault of a degenerate value, or a failure. */
export type FfdheReply =
  | { id: number; share: Uint8Array; sharedSecret: Uint8Array }
  | { id: number; fault: string }
  | { id: number; error: string };

type Answer = { share: Uint8Array; sharedSecret: Uint8Array } | { fault: string };

interface Waiter {
  resolve(answer: Answer): void;
  reject(error: Error): void;
}

let worker: Worker | undefined;
const waiting = new Map<number, Waiter>();
let nextId = 1;

function failAll(error: Error): void {
  for (const waiter of waiting.values()) waiter.reject(error);
  waiting.clear();
  worker?.terminate();
  worker = undefined;
}

function startWorker(): Worker {
  const started = new Worker(new URL("./ffdhe_worker.ts", import.meta.url).href, {
    type: "module",
  });
  started.onmessage = (event: MessageEvent<FfdheReply>) => {
    const reply = event.data;
    const waiter = waiting.get(reply.id);
    if (waiter === undefined) return;
    waiting.delete(reply.id);
    if ("error" in reply) waiter.reject(new Error(`ffdhe3072 worker: ${reply.error}`));
    else if ("fault" in reply) waiter.resolve({ fault: reply.fault });
    else waiter.resolve({ share: reply.share, sharedSecret: reply.sharedSecret });
    if (waiting.size === 0 && worker === started) {
      started.terminate();
      worker = undefined;
    }
  };
  started.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    failAll(new Error(`the ffdhe3072 worker failed: ${event.message}`));
  };
  return started;
}

/**
 * `ffdheAnswer(secret, initiatorShare)` in the worker. The caller keeps (and wipes) `secret`.
 *
 * @throws {Error} when the worker fails (our fault, never the peer's)
 */
export function ffdheAnswerOffThread(
  secret: Uint8Array,
  initiatorShare: Uint8Array,
): Promise<Answer> {
  worker ??= startWorker();
  const id = nextId++;
  const secretCopy = secret.slice().buffer; // transferred: gone from this thread once posted
  const shareCopy = initiatorShare.slice().buffer;
  const target = worker;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    const request: FfdheRequest = { id, secret: secretCopy, share: shareCopy };
    target.postMessage(request, [secretCopy, shareCopy]);
  });
}
