/**
 * The worker side of lib/crypto/ffdhe_offload.ts: answers ffdhe3072 shares with lib/crypto/kex.ts's
 * `ffdheAnswer()`, the same code the tests check, off the listener's event loop.
 *
 * @module
 */

import { wipe } from "../core/bytes.ts";
import { ffdheAnswer } from "./kex.ts";
import type { FfdheReply, FfdheRequest } from "./ffdhe_offload.ts";

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<FfdheRequest>) => void) | null;
  postMessage(message: FfdheReply, transfer?: Transferable[]): void;
};

scope.onmessage = async (event) => {
  const { id } = event.data;
  const secret = new Uint8Array(event.data.secret);
  try {
    const answer = await ffdheAnswer(secret, new Uint8Array(event.data.share));
    if ("fault" in answer) {
      scope.postMessage({ id, fault: answer.fault });
      return;
    }
    // postMessage copies at once, so this thread's copy can be wiped right after.
    scope.postMessage({ id, share: answer.share, sharedSecret: answer.sharedSecret });
    wipe(answer.sharedSecret);
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  } finally {
    wipe(secret);
  }
};
