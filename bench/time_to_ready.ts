/**
 * Time to ready: from starting the dialer process to the first application byte echoed back by
 * the listener, median of `count`, for securechat (as users run it) against socat OPENSSL doing
 * the same, with ssh and a raw TCP Deno program (Deno's own start-up) beside them; then the
 * handshake alone inside one process (no process start), per identity type and suite.
 *
 * The listener is started and waiting before the clock starts. securechat's and the raw
 * program's listeners serve one peer, so a fresh one waits for each dialer, its stdout pumped back
 * into its stdin by the bench; socat forks `cat` per connection, sshd runs `cat`.
 *
 * @module
 */

import {
  type BenchOptions,
  printHeading,
  printInfo,
  printRow,
  printTargets,
  type Row,
  type Section,
} from "./_report.ts";
import {
  benchIdentities,
  benchProgramArgv,
  freePort,
  Lines,
  median,
  run,
  securechatArgv,
  stop,
} from "./_measure.ts";
import { makeCertificate, missingPeer, type Peers, startSshServer } from "./peers.ts";
import { runInitiator, runResponder } from "../lib/transport/connection.ts";
import { generateIdentity, type Identity, type KeyType } from "../lib/keys/identity.ts";
import type { SuiteName } from "../lib/crypto/kex.ts";
import { MAX_RECORD_PLAINTEXT_LIMIT } from "../lib/protocol/record.ts";

/**
 * Run-to-run stability is judged inside one run: the samples, taken in turn with socat's, are cut
 * into this many consecutive blocks, and the ratio of the medians is compared across blocks.
 */
const STABILITY_BLOCKS = 3;

/**
 * The ratio securechat / socat of each block's medians, and their spread (max - min) / median.
 * Undefined when either has too few samples.
 */
function blockRatios(
  ours: number[] | undefined,
  socat: number[] | undefined,
): { spread: number; ratios: number[] } | undefined {
  if (ours === undefined || socat === undefined) return undefined;
  const size = Math.floor(Math.min(ours.length, socat.length) / STABILITY_BLOCKS);
  if (size < 3) return undefined;
  const ratios = Array.from({ length: STABILITY_BLOCKS }, (_, block) => {
    const slice = (times: number[]) => times.slice(block * size, (block + 1) * size);
    return median(slice(ours)) / median(slice(socat));
  });
  const middle = median(ratios);
  return { spread: (Math.max(...ratios) - Math.min(...ratios)) / middle, ratios };
}

/** Dialers timed per program (the issue's median of 30). */
export const TIME_TO_READY_COUNT = 30;

/** A listener waiting for one dialer (or a standing server). */
interface Waiting {
  port: number;
  /** Resolves once the listener has ended (for a standing server, at once). */
  finish(): Promise<void>;
}

interface Program {
  name: string;
  /** Starts a listener for the next dialer. */
  listen(): Promise<Waiting>;
  dial(port: number): string[];
  env?: Record<string, string>;
  /** How many dialers to time (fewer for slow variants). */
  count?: number;
}

/** Starts a one-peer listener whose stdout the bench pumps back into its stdin: an echo. */
async function echoListener(
  argv: string[],
  env: Record<string, string> = {},
): Promise<Waiting> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
  const lines = new Lines(child.stderr);
  const echo = child.stdout.pipeTo(child.stdin).catch(() => {});
  let line: string;
  try {
    line = await lines.waitFor(/listening on [^ ]*:(\d+)/);
  } catch (error) {
    await stop(child);
    throw error;
  }
  return {
    port: Number(/listening on [^ ]*:(\d+)/.exec(line)![1]),
    async finish() {
      await stop(child, 2000);
      await echo;
      await lines.done;
    },
  };
}

/** Times one dialer: spawn, write one byte, wait for it to come back. */
async function timeOne(program: Program, waiting: Waiting): Promise<number> {
  const argv = program.dial(waiting.port);
  const start = performance.now();
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...program.env },
  }).spawn();
  const errors = new Lines(child.stderr);
  const writer = child.stdin.getWriter();
  await writer.write(Uint8Array.of(0x78));
  const reader = child.stdout.getReader();
  const first = await reader.read();
  const elapsed = performance.now() - start;
  // The clock has stopped; end the dialer now rather than through close_notify (which the bench
  // measures elsewhere): securechat's listener keeps its stdout open until it exits, so in an
  // echo loop neither side would ever see the end of input.
  reader.releaseLock();
  await writer.close().catch(() => {});
  await stop(child, 2000);
  await child.stdout.cancel().catch(() => {});
  await errors.done;
  if (first.done || first.value.length === 0) {
    throw new Error(`${program.name}: no byte came back: ${errors.text}`);
  }
  return elapsed;
}

async function programs(
  peers: Peers,
  options: BenchOptions,
  cleanups: (() => Promise<void>)[],
): Promise<Program[]> {
  const { alice, bob } = await benchIdentities(options.tempDir);
  const list: Program[] = [
    {
      name: "securechat",
      listen: () => echoListener(securechatArgv(["listen", "--port", "0", "--pipe"]), bob.env),
      dial: (port) =>
        securechatArgv(["dial", `127.0.0.1:${port}`, "--pipe", "--expect", bob.fingerprint]),
      env: alice.env,
    },
  ];
  const locked = await lockedIdentity(options.tempDir);
  if (locked !== undefined) {
    list.push({
      name: "securechat, passphrase-protected key",
      listen: () => echoListener(securechatArgv(["listen", "--port", "0", "--pipe"]), bob.env),
      dial: (port) =>
        securechatArgv([
          "dial",
          `127.0.0.1:${port}`,
          "--pipe",
          "--expect",
          bob.fingerprint,
          "-i",
          locked.key,
          "--passphrase-file",
          locked.passphraseFile,
        ]),
      env: alice.env,
      count: 10,
    });
  }
  list.push({
    name: "raw TCP (Deno)",
    listen: () => echoListener(benchProgramArgv("_raw_tcp.ts", ["listen", "0"])),
    dial: (port) => benchProgramArgv("_raw_tcp.ts", ["dial", `127.0.0.1:${port}`]),
  });
  if (peers.socat && peers.openssl) {
    const { pem } = await makeCertificate(peers, `${options.tempDir}/ready-socat`, "bob");
    const port = freePort();
    const server = new Deno.Command(peers.socat, {
      args: [
        "-d",
        "-d",
        `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,cert=${pem},verify=0`,
        "EXEC:cat",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines = new Lines(server.stderr);
    cleanups.push(async () => {
      await stop(server);
      await lines.done;
    });
    await lines.waitFor(/listening on/);
    const socat = peers.socat;
    list.push({
      name: "socat OPENSSL",
      listen: () => Promise.resolve({ port, finish: () => Promise.resolve() }),
      dial: () => [socat, "-", `OPENSSL:127.0.0.1:${port},verify=0`],
    });
  } else {
    printInfo(missingPeer(peers.socat ? "openssl" : "socat"));
  }
  if (peers.ssh && peers.sshd) {
    try {
      const server = await startSshServer(peers, `${options.tempDir}/ready-sshd`);
      cleanups.push(() => server.close());
      list.push({
        name: "ssh aes256-gcm",
        listen: () => Promise.resolve({ port: server.port, finish: () => Promise.resolve() }),
        dial: () => [...server.client, "cat"],
      });
    } catch (error) {
      printInfo(`ssh: left out: ${(error as Error).message}`);
    }
  } else {
    printInfo(missingPeer(peers.sshd ? "ssh" : "sshd"));
  }
  return list;
}

/** An RSA-PSS 3072 key protected by a passphrase, as `securechat keygen` makes by default. */
async function lockedIdentity(
  tempDir: string,
): Promise<{ key: string; passphraseFile: string } | undefined> {
  const dir = `${tempDir}/locked`;
  await Deno.mkdir(dir, { recursive: true });
  const passphraseFile = `${dir}/passphrase`;
  await Deno.writeTextFile(passphraseFile, "correct horse battery staple\n", { mode: 0o600 });
  const key = `${dir}/id`;
  const made = await run(
    securechatArgv([
      "keygen",
      "--out",
      key,
      "--comment",
      "carol",
      "--passphrase-file",
      passphraseFile,
    ]),
    { env: { SECURECHAT_HOME: dir } },
  );
  if (made.code !== 0) {
    printInfo(`passphrase-protected key left out: keygen failed: ${made.stderr.trim()}`);
    return undefined;
  }
  return { key, passphraseFile };
}

/** One in-process handshake over loopback TCP, in milliseconds. */
async function handshakeOnce(
  listener: Deno.TcpListener,
  identities: { initiator: Identity; responder: Identity },
  suite: SuiteName,
): Promise<number> {
  const port = (listener.addr as Deno.NetAddr).port;
  const common = { suites: [suite], maxRecordPlaintext: MAX_RECORD_PLAINTEXT_LIMIT };
  const start = performance.now();
  const [responder, initiator] = await Promise.all([
    listener.accept().then((conn) =>
      runResponder(conn, {
        ...common,
        identity: identities.responder,
        authorize: () => Promise.resolve(),
      })
    ),
    Deno.connect({ hostname: "127.0.0.1", port }).then((conn) =>
      runInitiator(conn, {
        ...common,
        identity: identities.initiator,
        checkPeer: () => Promise.resolve(),
      })
    ),
  ]);
  const elapsed = performance.now() - start;
  initiator.close();
  responder.close();
  return elapsed;
}

/**
 * From spawning `securechat dial` to a closed port until it exited with its error: process
 * start, module loading, reading the key and one refused connection, but no handshake.
 */
async function startupRow(
  count: number,
  env: Record<string, string>,
  reference: number | undefined,
): Promise<Row> {
  const name = "securechat dial to a closed port: start to error exit";
  const argv = securechatArgv(["dial", `127.0.0.1:${freePort()}`, "--pipe"]);
  const times: number[] = [];
  for (let i = -1; i < count; i++) {
    const start = performance.now();
    const result = await run(argv, { env });
    if (!/refused/.test(result.stderr)) {
      return { name, value: null, unit: "ms", note: result.stderr.trim() };
    }
    if (i >= 0) times.push(performance.now() - start);
  }
  const row: Row = { name, value: median(times), unit: "ms" };
  if (reference !== undefined) {
    row.ratio = row.value! / reference;
    row.baseline = "securechat time to ready";
  }
  return row;
}

async function inProcessRows(count: number, reference: number | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const cases: [KeyType, string, SuiteName][] = [
    ["rsa-pss", "RSA-PSS 3072", "x25519-mlkem768"],
    ["rsa-pss", "RSA-PSS 3072", "x25519"],
    ["ed25519", "Ed25519", "x25519-mlkem768"],
    ["ed25519", "Ed25519", "x25519"],
  ];
  const made = new Map<KeyType, { initiator: Identity; responder: Identity }>();
  for (const [type, label, suite] of cases) {
    let pair = made.get(type);
    if (pair === undefined) {
      const [a, b] = await Promise.all([
        generateIdentity({ type, comment: "alice" }),
        generateIdentity({ type, comment: "bob" }),
      ]);
      pair = { initiator: a.identity, responder: b.identity };
      made.set(type, pair);
    }
    for (let i = 0; i < 3; i++) await handshakeOnce(listener, pair, suite); // warm-up
    const times: number[] = [];
    for (let i = 0; i < count; i++) times.push(await handshakeOnce(listener, pair, suite));
    const value = median(times);
    const row: Row = { name: `handshake in one process, ${label}, ${suite}`, value, unit: "ms" };
    if (reference !== undefined) {
      row.ratio = value / reference;
      row.baseline = "securechat time to ready";
    }
    rows.push(row);
    printRow(row);
  }
  return rows;
}

/**
 * Runs the time to ready benchmark and the in-process handshake timings.
 *
 * @param peers the comparison programs found (see peers.ts)
 * @param options the temporary folder (size and runs do not apply)
 * @returns the section, with the target (within 1.3x of socat OPENSSL, issue 16)
 */
export async function benchTimeToReady(
  peers: Peers,
  options: BenchOptions,
  count = TIME_TO_READY_COUNT,
): Promise<Section> {
  const section: Section = {
    title: "Time to ready",
    notes: [
      `From starting the dialer process to the first application byte echoed back (median of ${count}; the listener already waiting). Ratios against socat OPENSSL.`,
      "securechat: `deno run <compile flags> main.ts dial --pipe --expect FP`, RSA-PSS 3072 identities without passphrase, suite x25519-mlkem768; the passphrase-protected row decrypts the key (PBKDF2, 600,000 iterations) at start, as a default keygen key does.",
      "raw TCP (Deno) is bench/_raw_tcp.ts: Deno's own start-up plus a TCP connection. socat: TLS 1.3 with an RSA 3072 certificate, X25519 (OpenSSL's default group), the client not checking the certificate; server `fork,EXEC:cat`.",
      "Where securechat's time goes: `securechat dial` to a closed port (process start, module loading, reading the key, a refused connection), and the handshake alone (runInitiator/runResponder in this process over loopback TCP, no process start); their ratios are shares of securechat's time to ready.",
    ],
    rows: [],
  };
  printHeading(section);
  const cleanups: (() => Promise<void>)[] = [];
  const medians = new Map<string, number>();
  let stability: { spread: number; ratios: number[] } | undefined;
  try {
    const list = await programs(peers, options, cleanups);
    const samples = new Map<string, number[]>(list.map((program) => [program.name, []]));
    const failed = new Map<string, string>();
    const most = Math.max(...list.map((program) => program.count ?? count));
    // Interleaved: dialer i of every program, then i + 1, so load from elsewhere spreads evenly.
    for (let i = -1; i < most; i++) {
      for (const program of list) {
        if (failed.has(program.name) || i >= (program.count ?? count)) continue;
        try {
          const waiting = await program.listen();
          const elapsed = await timeOne(program, waiting);
          await waiting.finish();
          if (i >= 0) samples.get(program.name)!.push(elapsed); // i = -1 warms up
        } catch (error) {
          failed.set(program.name, (error as Error).message);
          printInfo((error as Error).message);
        }
      }
    }
    for (const program of list) {
      const times = samples.get(program.name)!;
      if (failed.has(program.name) || times.length === 0) continue;
      medians.set(program.name, median(times));
    }
    const socat = medians.get("socat OPENSSL");
    stability = blockRatios(samples.get("securechat"), samples.get("socat OPENSSL"));
    for (const program of list) {
      const value = medians.get(program.name);
      const times = samples.get(program.name)!;
      const row: Row = {
        name: `${program.name}: dial to first byte echoed`,
        value: value ?? null,
        unit: "ms",
      };
      if (value === undefined) {
        row.note = failed.get(program.name) ?? "not measured";
      } else {
        row.note = `min ${Math.min(...times).toFixed(0)}, max ${
          Math.max(...times).toFixed(0)
        } ms over ${times.length}`;
        if (socat !== undefined && program.name !== "socat OPENSSL") {
          row.ratio = value / socat;
          row.baseline = "socat OPENSSL";
        }
      }
      section.rows.push(row);
      printRow(row);
    }
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
  const { alice } = await benchIdentities(options.tempDir);
  const startup = await startupRow(count, alice.env, medians.get("securechat"));
  section.rows.push(startup);
  printRow(startup);
  section.rows.push(...await inProcessRows(count, medians.get("securechat")));
  const ours = medians.get("securechat");
  const socat = medians.get("socat OPENSSL");
  section.targets = [{
    text: "time to ready within 1.3x of socat OPENSSL",
    met: ours === undefined || socat === undefined ? null : ours <= 1.3 * socat,
    detail: ours === undefined || socat === undefined
      ? "not measured"
      : `${(ours / socat).toFixed(2)}x: ${ours.toFixed(0)} vs ${socat.toFixed(0)} ms`,
  }, {
    text: `the ratio to socat stable within 10% (${STABILITY_BLOCKS} blocks of the run, in turn)`,
    met: stability === undefined ? null : stability.spread <= 0.1,
    detail: stability === undefined
      ? "not measured"
      : `spread ${(stability.spread * 100).toFixed(0)}%: ${
        stability.ratios.map((ratio) => `${ratio.toFixed(2)}x`).join(", ")
      }`,
  }];
  printTargets(section.targets);
  return section;
}
