/**
 * A man in the middle that terminates both connections with its own identity key and relays
 * between them (built from the library, as a real attacker would build it). Pinning and
 * authorized_keys stop it on each side; without either, the verification codes differ.
 */

import { match, notStrictEqual, strictEqual } from "node:assert/strict";
import { runInitiator, runResponder } from "../../lib/transport/connection.ts";
import type { SecureConnection } from "../../lib/transport/secure_connection.ts";
import { loadIdentity } from "../../lib/keys/identity_file.ts";
import { ALL_SUITES } from "../../lib/crypto/kex.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../../lib/protocol/record.ts";
import { dialOnce, makePeer, startListener, type TestPeer } from "../_helpers/peers.ts";

/** Starts the attacker in front of `targetPort`; it relays whatever it can. */
async function startMitm(attacker: TestPeer, targetPort: number) {
  const identity = await loadIdentity(`${attacker.home}/id`, {
    passphrase: () => Promise.resolve(""),
  });
  const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const outcome = (async () => {
    const victim = await front.accept();
    front.close();
    const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    const [towardDialer, towardListener] = await Promise.allSettled([
      runResponder(victim, {
        identity,
        suites: ALL_SUITES,
        maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
        authorize: () => Promise.resolve(),
      }),
      runInitiator(server, {
        identity,
        suites: ["x25519-mlkem768"],
        maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT,
        checkPeer: () => Promise.resolve(),
      }),
    ]);
    if (towardDialer.status === "fulfilled" && towardListener.status === "fulfilled") {
      const relay = async (from: SecureConnection, to: SecureConnection) => {
        try {
          while (true) {
            const data = await from.receive();
            if (data === null) break;
            await to.send(data);
          }
          await to.closeWrite();
        } catch {
          to.close();
        }
      };
      await Promise.all([
        relay(towardDialer.value, towardListener.value),
        relay(towardListener.value, towardDialer.value),
      ]);
      towardDialer.value.close();
      towardListener.value.close();
    } else {
      if (towardDialer.status === "fulfilled") towardDialer.value.close();
      if (towardListener.status === "fulfilled") towardListener.value.close();
    }
    return {
      dialerSide: towardDialer.status === "fulfilled"
        ? towardDialer.value.verificationCode
        : undefined,
      listenerSide: towardListener.status === "fulfilled"
        ? towardListener.value.verificationCode
        : undefined,
    };
  })();
  return { port: (front.addr as Deno.NetAddr).port, outcome };
}

async function withPeers(
  body: (alice: TestPeer, bob: TestPeer, mallory: TestPeer, root: string) => Promise<void>,
) {
  const root = await Deno.makeTempDir({ prefix: "securechat-mitm-" });
  try {
    const [alice, bob, mallory] = await Promise.all([
      makePeer(root, "alice"),
      makePeer(root, "bob"),
      makePeer(root, "mallory"),
    ]);
    await body(alice, bob, mallory, root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a key-substituting man in the middle is detected by both sides", async () => {
  await withPeers(async (alice, bob, mallory, root) => {
    const authorized = `${root}/authorized_keys`;
    await Deno.writeTextFile(authorized, `${alice.fingerprint} alice\n`);
    const listener = await startListener(bob, ["--authorized-keys", authorized]);
    await listener.closeStdin();
    const mitm = await startMitm(mallory, listener.port);

    // The dialer knows bob's key: it sees mallory's instead and refuses before revealing itself.
    const dial = await dialOnce(alice, mitm.port, "for bob only\n", ["--expect", bob.fingerprint]);
    strictEqual(dial.code, 3, dial.stderr);
    match(dial.stderr, /error: listener 127\.0\.0\.1:\d+ has key SHA256:\S+, not the expected/);
    match(dial.stderr, /man-in-the-middle/);

    // The listener sees mallory's key, which is not authorized.
    await listener.stderr.waitFor(/refused: key SHA256:\S+ \(calling itself "mallory"\) is not in/);
    await mitm.outcome;
    listener.child.kill("SIGTERM");
    const l = await listener.finished();
    strictEqual(l.stdout.length, 0);
  });
});

Deno.test("without pins, a man in the middle shows up as different verification codes", async () => {
  await withPeers(async (alice, bob, mallory) => {
    const listener = await startListener(bob);
    const mitm = await startMitm(mallory, listener.port);
    await listener.closeStdin();
    const dial = await dialOnce(alice, mitm.port, "hello\n");
    const l = await listener.finished();
    await mitm.outcome;
    const code = (text: string) => /verification code: (\d{4} \d{4} \d{4})/.exec(text)?.[1];
    const aliceCode = code(dial.stderr);
    const bobCode = code(l.stderr);
    strictEqual(typeof aliceCode, "string", dial.stderr);
    strictEqual(typeof bobCode, "string", l.stderr);
    notStrictEqual(aliceCode, bobCode);
    // Each side also sees mallory's key, not the other's.
    match(dial.stderr, new RegExp(mallory.fingerprint.replace(/[+/]/g, "\\$&")));
    match(l.stderr, new RegExp(mallory.fingerprint.replace(/[+/]/g, "\\$&")));
  });
});
