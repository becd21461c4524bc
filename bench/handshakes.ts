/**
 * Handshakes per second one listener process sustains: `securechat listen --relay-only` (the mode
 * that takes dialers concurrently and keeps serving) with 8 concurrent dialers, each connecting,
 * completing the handshake and waiting for the listener's first record (its SessionHello, which it
 * seals only after the handshake verified and the dialer was admitted), then closing and dialing
 * again. The dialers run in this process (runInitiator) so process start-up is not counted.
 *
 * Measured for both identity key types, RSA-PSS 3072 and Ed25519, each against its own baseline in
 * the same run: `openssl s_server` answering 8 concurrent `openssl s_time -new` clients with the
 * same shape of work: TLS 1.3, certificates of the same key type on both sides (mutual
 * authentication, as securechat's handshake always is), each connection fetching one small page
 * after the handshake. For RSA also the same listener with a single dialer (what concurrency buys).
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
  type BenchIdentities,
  benchIdentities,
  freePort,
  Lines,
  processTimes,
  securechatArgv,
  sleep,
  stop,
} from "./_measure.ts";
import { makeCertificate, missingPeer, type Peers } from "./peers.ts";
import { makePeer } from "../tests/_helpers/peers.ts";
import { runInitiator } from "../lib/transport/connection.ts";
import { generateIdentity, type Identity, type KeyType } from "../lib/keys/identity.ts";
import { MAX_RECORD_PLAINTEXT } from "../lib/protocol/record.ts";

/** Concurrent dialers (the 8). */
export const CONCURRENT_DIALERS = 8;

/** Seconds each rate is measured over. */
export const SECONDS = 10;

/** CPU seconds (user + system) a process has used so far. */
async function processCpu(pid: number): Promise<number | undefined> {
  const times = await processTimes(pid);
  return times === undefined ? undefined : times.user + times.system;
}

async function dialOnce(port: number, identity: Identity, expected: string): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const secure = await runInitiator(conn, {
    identity,
    suites: ["x25519-mlkem768", "x25519"],
    maxRecordPlaintext: MAX_RECORD_PLAINTEXT,
    timeoutMs: 60_000,
    checkPeer: (peer) => {
      if (peer.identity.fingerprint !== expected) throw new Error("unexpected listener key");
      return Promise.resolve();
    },
  });
  try {
    const hello = await secure.receive();
    if (hello === null) throw new Error("the listener closed before its SessionHello");
  } finally {
    secure.close();
  }
}

/** Runs `dialers` loops of dialOnce for `seconds`; returns handshakes per second. */
async function rate(
  dialers: number,
  seconds: number,
  dial: () => Promise<void>,
): Promise<{ perSecond: number; count: number; failures: number; lastError?: string }> {
  let count = 0;
  let failures = 0;
  let lastError: string | undefined;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: dialers }, async () => {
    while (performance.now() < end) {
      try {
        await dial();
        count++;
      } catch (error) {
        failures++;
        lastError = (error as Error).message;
        if (failures > 20 && count === 0) return;
      }
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  return { perSecond: count / elapsed, count, failures, ...(lastError ? { lastError } : {}) };
}

/** The listener's identity of `type`: the run's RSA `bob`, or an Ed25519 one made once here. */
async function listenerIdentity(
  options: BenchOptions,
  type: KeyType,
): Promise<BenchIdentities["bob"]> {
  if (type === "rsa-pss") return (await benchIdentities(options.tempDir)).bob;
  const root = `${options.tempDir}/identities-ed25519`;
  await Deno.mkdir(root, { recursive: true });
  return await makePeer(root, "bob", "ed25519");
}

/** How a key type is named in the rows. */
const TYPE_NAMES: Record<KeyType, string> = { "rsa-pss": "RSA 3072", "ed25519": "Ed25519" };

async function measureSecurechat(
  options: BenchOptions,
  seconds: number,
  type: KeyType,
  withSingle: boolean,
): Promise<{ concurrent: Row; single?: Row }> {
  const bob = await listenerIdentity(options, type);
  const argv = securechatArgv([
    "listen",
    "--relay-only",
    "--port",
    "0",
    "--handshake-timeout",
    "60",
  ]);
  const listener = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1", ...bob.env },
  }).spawn();
  const lines = new Lines(listener.stderr);
  try {
    const line = await lines.waitFor(/listening on [^ ]*:(\d+)/);
    const port = Number(/listening on [^ ]*:(\d+)/.exec(line)![1]);
    const { identity } = await generateIdentity({ type, comment: "alice" });
    const dial = () => dialOnce(port, identity, bob.fingerprint);
    await rate(CONCURRENT_DIALERS, 1, dial); // warm-up
    const measure = async (dialers: number, name: string): Promise<Row> => {
      const before = await processCpu(listener.pid);
      const result = await rate(dialers, seconds, dial);
      const after = await processCpu(listener.pid);
      const notes = [`${result.count} in ${seconds} s`];
      if (before !== undefined && after !== undefined && result.count > 0) {
        notes.push(`listener CPU ${((after - before) / result.count * 1000).toFixed(1)} ms each`);
      }
      if (result.failures > 0) notes.push(`${result.failures} failed: ${result.lastError}`);
      return { name, value: result.perSecond, unit: "handshakes/s", note: notes.join(", ") };
    };
    const concurrent = await measure(
      CONCURRENT_DIALERS,
      `securechat listen, ${TYPE_NAMES[type]}, ${CONCURRENT_DIALERS} concurrent dialers`,
    );
    if (!withSingle) return { concurrent };
    await sleep(500);
    const single = await measure(1, `securechat listen, ${TYPE_NAMES[type]}, 1 dialer at a time`);
    return { concurrent, single };
  } finally {
    await stop(listener);
    await lines.done;
  }
}

async function measureOpenssl(
  peers: Peers,
  options: BenchOptions,
  seconds: number,
  type: KeyType,
): Promise<Row> {
  const name = `openssl s_server, ${
    TYPE_NAMES[type]
  }, ${CONCURRENT_DIALERS} concurrent s_time clients`;
  if (!peers.openssl) {
    return { name, value: null, unit: "handshakes/s", note: missingPeer("openssl") };
  }
  const dir = `${options.tempDir}/handshakes-openssl-${type}`;
  const keyType = type === "ed25519" ? "ed25519" : "rsa:3072";
  const server = await makeCertificate(peers, dir, "bob", keyType);
  const client = await makeCertificate(peers, dir, "alice", keyType);
  const port = freePort();
  const child = new Deno.Command(peers.openssl, {
    args: [
      "s_server",
      "-quiet",
      "-www",
      "-accept",
      `127.0.0.1:${port}`,
      "-cert",
      server.cert,
      "-key",
      server.key,
      "-Verify",
      "1",
      "-CAfile",
      client.cert,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const errors = new Lines(child.stderr);
  try {
    await sleep(300);
    const before = await processCpu(child.pid);
    const start = performance.now();
    const clients = await Promise.all(Array.from({ length: CONCURRENT_DIALERS }, async () => {
      const output = await new Deno.Command(peers.openssl!, {
        args: [
          "s_time",
          "-connect",
          `127.0.0.1:${port}`,
          "-new",
          "-www",
          "/",
          "-time",
          String(seconds),
          "-cert",
          client.cert,
          "-key",
          client.key,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(output.stdout);
      const match = /(\d+) connections in [\d.]+ real seconds/.exec(text);
      return match ? Number(match[1]) : undefined;
    }));
    const elapsed = (performance.now() - start) / 1000;
    const after = await processCpu(child.pid);
    if (clients.some((result) => result === undefined)) {
      return {
        name,
        value: null,
        unit: "handshakes/s",
        note: `s_time failed: ${errors.text.split("\n").slice(-3).join(" ")}`,
      };
    }
    const count = clients.reduce((sum: number, result) => sum + result!, 0);
    const notes = [`${count} in ${seconds} s`];
    if (before !== undefined && after !== undefined && count > 0) {
      notes.push(`server CPU ${((after - before) / count * 1000).toFixed(1)} ms each`);
    }
    return { name, value: count / elapsed, unit: "handshakes/s", note: notes.join(", ") };
  } finally {
    await stop(child);
    await errors.done;
  }
}

/**
 * Runs the handshakes-per-second benchmark.
 *
 * @param peers the comparison programs found (openssl for the baselines)
 * @param options the temporary folder (size and runs do not apply)
 * @param seconds how long each rate is measured
 * @returns the section: per key type, securechat with 8 dialers and its OpenSSL baseline, and for
 *   RSA securechat with 1 dialer
 */
export async function benchHandshakes(
  peers: Peers,
  options: BenchOptions,
  seconds = SECONDS,
): Promise<Section> {
  const section: Section = {
    title: "Handshakes per second",
    notes: [
      `One listener process, ${CONCURRENT_DIALERS} dialers dialing again as soon as each handshake is done, for ${seconds} s; the dialers share the machine's cores with the listener.`,
      "securechat: `listen --relay-only` (x25519-mlkem768) with an RSA-PSS 3072, then an Ed25519 identity; dialers in the bench process (runInitiator, an identity of the same type), each waiting for the listener's SessionHello, which proves the listener finished and admitted it.",
      "Baselines: `openssl s_server -www` (one process, TLS 1.3, X25519, certificates of the same key type on both sides, client certificate required) with the same number of `openssl s_time -new -www /` clients; OpenSSL 3.0 has no ML-KEM.",
      "CPU per handshake is the listener's own user+system time over the run (/proc/PID/stat).",
    ],
    rows: [],
  };
  printHeading(section);
  section.targets = [];
  for (const type of ["rsa-pss", "ed25519"] as const) {
    const openssl = await measureOpenssl(peers, options, seconds, type);
    if (openssl.value === null) printInfo(openssl.note ?? "openssl baseline failed");
    let ours: { concurrent: Row; single?: Row } | undefined;
    try {
      ours = await measureSecurechat(options, seconds, type, type === "rsa-pss");
    } catch (error) {
      printInfo(`securechat (${TYPE_NAMES[type]}): ${(error as Error).message}`);
    }
    const rows: Row[] = [];
    if (ours !== undefined) {
      const { concurrent, single } = ours;
      if (openssl.value !== null && concurrent.value !== null) {
        concurrent.ratio = concurrent.value / openssl.value;
        concurrent.baseline = `openssl s_server, ${TYPE_NAMES[type]}, 8 concurrent clients`;
      }
      rows.push(concurrent);
      if (single !== undefined) {
        if (single.value !== null && concurrent.value !== null) {
          single.ratio = single.value / concurrent.value;
          single.baseline = `securechat listen, ${TYPE_NAMES[type]}, 8 concurrent dialers`;
        }
        rows.push(single);
      }
    }
    rows.push(openssl);
    for (const row of rows) printRow(row);
    section.rows.push(...rows);
    const ratio = ours?.concurrent.ratio;
    section.targets.push({
      text:
        `handshakes/s with ${CONCURRENT_DIALERS} concurrent dialers at least openssl s_server's, ${
          TYPE_NAMES[type]
        }`,
      met: ratio === undefined ? null : ratio >= 1,
      detail: ratio === undefined
        ? "not measured"
        : `${ratio.toFixed(2)}x: ${ours!.concurrent.value!.toFixed(0)} vs ${
          openssl.value!.toFixed(0)
        } handshakes/s`,
    });
  }
  printTargets(section.targets);
  return section;
}
