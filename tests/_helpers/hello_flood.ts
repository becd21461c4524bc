/**
 * A flood of first flights from several loopback source addresses, run as its own process
 * (`startHelloFlood()`), since binding a source address needs net permission for that address and
 * the tests run with 127.0.0.1 only. Each address keeps `perAddress` connections open that send
 * the magic and a valid x25519 ClientHello and then say nothing more; a connection the listener
 * closes (evicted, or cut at its deadline) is replaced at once, so the listener's table stays full
 * and every new connection must evict one. Runs until its stdin ends or `seconds` pass, then
 * prints how many connections it opened.
 *
 * Usage: deno run --allow-net=ADDRESSES hello_flood.ts PORT ADDRESS,ADDRESS,... PER_ADDRESS SECONDS
 *
 * Mirrors: docs/PROTOCOL.md section 6.3 (admission).
 *
 * @module
 */

import net from "node:net";
import { fileURLToPath } from "node:url";
import { concat } from "../../lib/core/bytes.ts";
import { encodeFrame, FRAME_TYPE, MAGIC } from "../../lib/protocol/frame.ts";
import {
  encodeClientHello,
  RANDOM_LENGTH,
  SUPPORTED_VERSIONS,
} from "../../lib/protocol/messages.ts";
import { MAX_RECORD_PLAINTEXT } from "../../lib/protocol/record.ts";

/** Loopback source addresses besides 127.0.0.1: Linux routes all of 127.0.0.0/8 to lo. */
export function loopbackAddresses(first: number, last: number): string[] {
  return Array.from({ length: last - first + 1 }, (_, i) => `127.0.0.${first + i}`);
}

/** A running flood process. */
export interface HelloFlood {
  /** Ends the flood; resolves with how many connections it opened. */
  stop(): Promise<number>;
}

/** Starts the flood against 127.0.0.1:`port` from `addresses` (loopback only), for at most `seconds`. */
export function startHelloFlood(
  port: number,
  options: { addresses: string[]; perAddress: number; seconds: number },
): HelloFlood {
  if (!options.addresses.every((address) => address.startsWith("127."))) {
    throw new RangeError("the flood only runs from loopback addresses");
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      `--allow-net=127.0.0.1,${options.addresses.join(",")}`,
      fileURLToPath(import.meta.url),
      String(port),
      options.addresses.join(","),
      String(options.perAddress),
      String(options.seconds),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  return {
    async stop() {
      await child.stdin.close().catch(() => {});
      const { code, stdout, stderr } = await output;
      const text = new TextDecoder().decode(stdout);
      if (code !== 0) {
        throw new Error(`the flood exited with ${code}: ${new TextDecoder().decode(stderr)}`);
      }
      return Number(/opened (\d+)/.exec(text)?.[1]);
    },
  };
}

async function x25519Hello(): Promise<Uint8Array> {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, [
    "deriveBits",
  ]) as CryptoKeyPair;
  const share = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return concat(
    MAGIC,
    encodeFrame(
      FRAME_TYPE.clientHello,
      encodeClientHello({
        versions: [...SUPPORTED_VERSIONS],
        random: crypto.getRandomValues(new Uint8Array(RANDOM_LENGTH)),
        maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
        shares: [{ suite: "x25519", share }],
        recordSuites: ["chacha20-poly1305"],
      }),
    ),
  );
}

async function main(args: string[]): Promise<void> {
  const [port, addresses, perAddress, seconds] = [
    Number(args[0]),
    args[1]!.split(","),
    Number(args[2]),
    Number(args[3]),
  ];
  const hello = await x25519Hello();
  const deadline = Date.now() + seconds * 1000;
  let running = true;
  const open = new Set<net.Socket>();
  let opened = 0;
  const stopped = (async () => {
    for await (const _ of Deno.stdin.readable) {
      // Any input is ignored; the end of it stops the flood.
    }
  })();
  const timer = setTimeout(() => running = false, seconds * 1000);
  stopped.then(() => running = false);

  /** One connection: sends the first flight and waits until either side closes it. */
  const once = (localAddress: string) =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
        opened++;
        socket.write(hello);
      });
      open.add(socket);
      socket.on("data", () => {}); // the ServerHello flight, unanswered
      socket.on("error", () => {});
      socket.on("close", () => {
        open.delete(socket);
        resolve();
      });
    });
  const workers = addresses.flatMap((address) =>
    Array.from({ length: perAddress }, async () => {
      while (running && Date.now() < deadline) await once(address);
    })
  );
  // Stop waiting on connections still held once the flood ends.
  const ended = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (!running || Date.now() >= deadline) {
        clearInterval(check);
        resolve();
      }
    }, 50);
  });
  await ended;
  for (const socket of open) socket.destroy();
  await Promise.all(workers);
  clearTimeout(timer);
  // deno-lint-ignore no-console
  console.log(`opened ${opened}`);
  Deno.exit(0);
}

if (import.meta.main) await main(Deno.args);
