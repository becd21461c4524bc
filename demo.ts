// deno-lint-ignore-file no-console
/**
 * `deno task demo`: a self-contained tour on loopback. It makes two throwaway identities in a
 * temporary folder, starts `securechat listen` (Bob) and `securechat dial` (Alice) as real
 * processes with the shipped permission flags, routes their TCP connection through a tap that
 * records the wire, sends a few lines each way, and shows side by side what the people see and
 * what the network sees. Then it cleans up.
 *
 * @module
 */

import { runCli, spawnCli } from "./tests/_helpers/cli.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
const bold = (text: string) => color ? `\x1b[1m${text}\x1b[0m` : text;
const dim = (text: string) => color ? `\x1b[2m${text}\x1b[0m` : text;

/** Bytes seen on the wire in one direction, with the offset at which each chat line was sent. */
class WireLog {
  chunks: Uint8Array[] = [];
  length = 0;
  add(chunk: Uint8Array) {
    this.chunks.push(chunk.slice());
    this.length += chunk.length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

function hexLines(bytes: Uint8Array, max: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < Math.min(bytes.length, max); i += 16) {
    const row = bytes.subarray(i, Math.min(i + 16, max, bytes.length));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."))
      .join("");
    lines.push(`${hex.padEnd(48)} ${ascii}`);
  }
  return lines;
}

/** A TCP tap between dialer and listener that records both directions. */
function startTap(targetPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const toListener = new WireLog();
  const toDialer = new WireLog();
  const pumps: Promise<void>[] = [];
  const accepted = (async () => {
    const inbound = await listener.accept();
    listener.close();
    const outbound = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    const pump = async (from: Deno.Conn, to: Deno.Conn, log: WireLog) => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const n = await from.read(buffer);
          if (n === null) break;
          log.add(buffer.subarray(0, n));
          let written = 0;
          while (written < n) written += await to.write(buffer.subarray(written, n));
        }
        await to.closeWrite().catch(() => {});
      } catch {
        // One side went away; the other notices on its own.
      }
    };
    pumps.push(pump(inbound, outbound, toListener), pump(outbound, inbound, toDialer));
    await Promise.all(pumps);
    inbound.close();
    outbound.close();
  })();
  return { port: (listener.addr as Deno.NetAddr).port, toListener, toDialer, done: accepted };
}

/** Collects a child's stderr lines and resolves when a line matches. */
function watchLines(stream: ReadableStream<Uint8Array>, sink: string[]) {
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  (async () => {
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        sink.push(line);
        for (const waiter of [...waiters]) {
          if (waiter.pattern.test(line)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    }
  })();
  return (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      const seen = sink.find((line) => pattern.test(line));
      if (seen !== undefined) resolve(seen);
      else waiters.push({ pattern, resolve });
    });
}

async function main() {
  const root = await Deno.makeTempDir({ prefix: "securechat-demo-" });
  const aliceHome = `${root}/alice`;
  const bobHome = `${root}/bob`;
  try {
    console.log(bold("securechat demo") + dim(`  (temporary folder ${root})`));
    console.log("\n1. Each person makes an identity once:");
    for (
      const [who, home, type] of [["alice", aliceHome, "ed25519"], ["bob", bobHome, "rsa-pss"]]
    ) {
      const result = await runCli(
        ["keygen", "--type", type!, "--comment", who!, "--no-passphrase"],
        { env: { SECURECHAT_HOME: home! } },
      );
      if (result.code !== 0) throw new Error(`keygen failed: ${result.stderr}`);
      console.log(`   ${who!.padEnd(6)} ${type!.padEnd(8)} ${result.stdout.trim()}`);
    }

    console.log(
      "\n2. Bob listens, Alice dials (through a wire tap that records what the network sees):",
    );
    const bobErr: string[] = [];
    const bob = spawnCli(["listen", "--port", "0", "--pipe"], {
      env: { SECURECHAT_HOME: bobHome },
    });
    const bobWait = watchLines(bob.stderr, bobErr);
    const listening = await bobWait(/listening on/);
    const bobPort = Number(/:(\d+) as/.exec(listening)![1]);
    const tap = await startTap(bobPort);

    const aliceErr: string[] = [];
    const alice = spawnCli(["dial", `127.0.0.1:${tap.port}`, "--pipe"], {
      env: { SECURECHAT_HOME: aliceHome },
    });
    const aliceWait = watchLines(alice.stderr, aliceErr);
    await Promise.all([aliceWait(/verification code/), bobWait(/verification code/)]);

    const aliceSees: string[] = [];
    const bobSees: string[] = [];
    const readInto = async (stream: ReadableStream<Uint8Array>, lines: string[]) => {
      for await (const chunk of stream) {
        lines.push(...decoder.decode(chunk).split("\n").filter(Boolean));
      }
    };
    const aliceReading = readInto(alice.stdout, aliceSees);
    const bobReading = readInto(bob.stdout, bobSees);

    const aliceIn = alice.stdin.getWriter();
    const bobIn = bob.stdin.getWriter();
    const script: [string, WritableStreamDefaultWriter<Uint8Array>, string][] = [
      ["alice", aliceIn, "Hi Bob, it's Alice. Can you read this?"],
      ["bob", bobIn, "Loud and clear. Nobody else can."],
      ["alice", aliceIn, "Sending the secret recipe next."],
      ["bob", bobIn, "Ready when you are."],
    ];
    const wireOffsets: { who: string; text: string; offset: number }[] = [];
    for (const [who, writer, text] of script) {
      const log = who === "alice" ? tap.toListener : tap.toDialer;
      wireOffsets.push({ who, text, offset: log.length });
      await writer.write(encoder.encode(text + "\n"));
      const seen = who === "alice" ? bobSees : aliceSees;
      const deadline = Date.now() + 5000;
      while (!seen.includes(text) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    await aliceIn.close();
    await bobIn.close();
    const [aliceStatus, bobStatus] = await Promise.all([alice.status, bob.status]);
    await Promise.all([aliceReading, bobReading, tap.done]);

    const width = 44;
    const row = (left: string, right: string) => console.log(`   ${left.padEnd(width)} | ${right}`);
    console.log();
    row(bold("Alice's terminal (dial)"), bold("Bob's terminal (listen)"));
    row("-".repeat(width), "-".repeat(width));
    const status = (lines: string[]) =>
      lines.filter((line) =>
        /^securechat: (connected to|connection from|verification code)/.test(line)
      )
        .map((line) => line.replace(/^securechat: /, "").replace(/\(suite .*\)/, ""));
    const left = status(aliceErr);
    const right = status(bobErr);
    for (let i = 0; i < Math.max(left.length, right.length); i++) {
      row((left[i] ?? "").slice(0, width), (right[i] ?? "").slice(0, 60));
    }
    for (const { who, text } of wireOffsets) {
      if (who === "alice") row(`> ${text}`.slice(0, width), `${text}`);
      else row(`${text}`.slice(0, width), `> ${text}`);
    }
    const code = /verification code: (.*)/;
    const aliceCode = aliceErr.map((l) => code.exec(l)?.[1]).find(Boolean);
    const bobCode = bobErr.map((l) => code.exec(l)?.[1]).find(Boolean);
    console.log(
      `\n   Both sides show the verification code ${aliceCode}${
        aliceCode === bobCode ? " (equal: nobody sits in between)" : " (DIFFERENT!)"
      }.`,
    );

    console.log(`\n3. What the network saw (first bytes, hex and ASCII):`);
    console.log(
      dim("   Alice -> Bob, start of the handshake (magic, ClientHello with key shares):"),
    );
    for (const line of hexLines(tap.toListener.bytes(), 48)) console.log(`     ${line}`);
    for (const { who, text, offset } of wireOffsets) {
      const log = who === "alice" ? tap.toListener : tap.toDialer;
      console.log(
        dim(
          `   ${who === "alice" ? "Alice -> Bob" : "Bob -> Alice"}: the record carrying "${text}":`,
        ),
      );
      const record = log.bytes().subarray(offset);
      const length = record.length >= 5
        ? 5 + new DataView(record.buffer, record.byteOffset).getUint32(1)
        : 0;
      for (const line of hexLines(record.subarray(0, length), 48)) console.log(`     ${line}`);
    }
    const plain = decoder.decode(tap.toListener.bytes()) + decoder.decode(tap.toDialer.bytes());
    const leaked = script.some(([, , text]) => plain.includes(text));
    console.log(
      `\n   Any chat line readable on the wire? ${leaked ? "YES (bug!)" : "no: only ciphertext"}.`,
    );
    console.log(
      `   Both processes exited ${aliceStatus.code} and ${bobStatus.code} after close_notify.`,
    );
    console.log(
      `   Wire totals: ${tap.toListener.length} bytes Alice->Bob, ${tap.toDialer.length} bytes Bob->Alice.`,
    );
    if (leaked || aliceStatus.code !== 0 || bobStatus.code !== 0) Deno.exitCode = 1;
  } finally {
    await Deno.remove(root, { recursive: true });
    console.log(dim(`\n   (removed ${root})`));
  }
}

await main();
