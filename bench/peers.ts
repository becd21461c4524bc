/**
 * The programs securechat is compared with: OpenSSH (`ssh -c aes256-gcm@openssh.com` against a
 * private `sshd` on 127.0.0.1), socat (OPENSSL and plain TCP), OpenSSL (`s_server`/`s_time`) and
 * GNU time (CPU and memory of each process). `--install-peers` installs the missing ones with
 * apt-get; without it a missing peer is reported and its figures are left out, never failed.
 *
 * @module
 */

import { printInfo } from "./_report.ts";
import { processTimes, run, shellJoin, sleep, which } from "./_measure.ts";

/** The peers found on this machine (full paths). */
export interface Peers {
  ssh?: string;
  sshd?: string;
  socat?: string;
  openssl?: string;
  /** GNU time, for CPU and max RSS. */
  time?: string;
  bash?: string;
}

const PACKAGES: Record<string, string> = {
  ssh: "openssh-client",
  sshd: "openssh-server",
  socat: "socat",
  openssl: "openssl",
  time: "time",
};

async function findPeers(): Promise<Peers> {
  const peers: Peers = {};
  for (const name of ["ssh", "sshd", "socat", "openssl", "bash"] as const) {
    const path = await which(name);
    if (path !== undefined) peers[name] = path;
  }
  try {
    if ((await Deno.stat("/usr/bin/time")).isFile) peers.time = "/usr/bin/time";
  } catch {
    // Not installed.
  }
  return peers;
}

/**
 * Finds the peers, installing the missing ones first when `install` (apt-get, as root).
 *
 * @param install true for `--install-peers`
 * @returns the peers found
 */
export async function preparePeers(install: boolean): Promise<Peers> {
  let peers = await findPeers();
  const missing = Object.keys(PACKAGES).filter((name) => peers[name as keyof Peers] === undefined);
  if (install && missing.length > 0) {
    const packages = [...new Set(missing.map((name) => PACKAGES[name]!))];
    printInfo(`installing ${packages.join(" ")} with apt-get`);
    const env = { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" };
    const update = await run(["apt-get", "update"], { env });
    if (update.code !== 0) printInfo(`apt-get update failed: ${update.stderr.trim()}`);
    const argv = [
      "apt-get",
      "install",
      "-y",
      "--no-install-recommends",
      "-o",
      "DPkg::Lock::Timeout=300",
      ...packages,
    ];
    const result = await run(argv, { env });
    if (result.code !== 0) {
      printInfo(`${shellJoin(argv)} failed (exit ${result.code}): ${result.stderr.trim()}`);
    }
    peers = await findPeers();
  }
  for (const name of Object.keys(PACKAGES)) {
    if (peers[name as keyof Peers] === undefined) printInfo(missingPeer(name));
  }
  if (peers.bash === undefined) printInfo("bash: not installed; the pipe benchmark needs it");
  return peers;
}

/** The line printed for a missing peer. */
export function missingPeer(name: string): string {
  return `${name}: not installed (run \`deno task bench --install-peers\`)`;
}

/** A private sshd on 127.0.0.1 that admits root with a throwaway key, AES-256-GCM only. */
export interface SshServer {
  port: number;
  /** The ssh argv up to and including `root@127.0.0.1`; append the remote command. */
  client: string[];
  /** The sshd listener's pid: its reaped children's CPU is in /proc/PID/stat. */
  pid: number;
  close(): Promise<void>;
}

/**
 * Starts `sshd -D` in `dir` with a fresh host key and client key, on a free port.
 *
 * @throws {Error} when sshd does not come up (its stderr is in the message)
 */
export async function startSshServer(peers: Peers, dir: string): Promise<SshServer> {
  if (!peers.sshd || !peers.ssh) throw new Error("sshd or ssh is not installed");
  await Deno.mkdir(dir, { recursive: true });
  // sshd refuses to start without its privilege separation folder.
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  for (const key of ["host_key", "client_key"]) {
    const made = await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", `${dir}/${key}`]);
    if (made.code !== 0) throw new Error(`ssh-keygen failed: ${made.stderr}`);
  }
  await Deno.copyFile(`${dir}/client_key.pub`, `${dir}/authorized_keys`);
  const config = [
    "ListenAddress 127.0.0.1",
    `HostKey ${dir}/host_key`,
    `AuthorizedKeysFile ${dir}/authorized_keys`,
    `PidFile ${dir}/sshd.pid`,
    "Ciphers aes256-gcm@openssh.com",
    "PermitRootLogin yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "PrintMotd no",
    "UseDNS no",
    "MaxStartups 64",
    "LogLevel ERROR",
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/sshd_config`, config);
  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const child = new Deno.Command(peers.sshd, {
      args: ["-D", "-e", "-f", `${dir}/sshd_config`, "-p", String(port)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const client = [
      peers.ssh,
      "-c",
      "aes256-gcm@openssh.com",
      "-T",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      "-o",
      "BatchMode=yes",
      "-i",
      `${dir}/client_key`,
      "-p",
      String(port),
      "root@127.0.0.1",
    ];
    // Up when a command runs through it.
    for (let wait = 0; wait < 50; wait++) {
      const probe = await run([...client, "true"]);
      if (probe.code === 0) {
        return {
          port,
          client,
          pid: child.pid,
          async close() {
            try {
              child.kill("SIGTERM");
            } catch {
              // Already gone.
            }
            await child.status;
            await stderr;
          },
        };
      }
      lastError = probe.stderr;
      const exited = await Promise.race([child.status.then(() => true), sleep(100)]);
      if (exited) break;
    }
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    lastError = `${(await stderr).trim()} ${lastError.trim()}`;
  }
  throw new Error(`sshd did not start: ${lastError}`);
}

/**
 * CPU seconds (user, system) of the processes a server reaped so far (cutime, cstime). sshd reaps
 * each connection's process when it ends, so the difference across a transfer is the server side's
 * cost.
 *
 * @throws {Error} when /proc cannot be read
 */
export async function reapedCpu(pid: number): Promise<{ user: number; system: number }> {
  const times = await processTimes(pid);
  if (times === undefined) throw new Error(`cannot read /proc/${pid}/stat`);
  return { user: times.childUser, system: times.childSystem };
}

/**
 * A self-signed certificate and key in one PEM: RSA 3072 (securechat's default identity) unless
 * `keyType` asks for Ed25519.
 */
export async function makeCertificate(
  peers: Peers,
  dir: string,
  name: string,
  keyType: "rsa:3072" | "ed25519" = "rsa:3072",
): Promise<{ cert: string; key: string; pem: string }> {
  if (!peers.openssl) throw new Error("openssl is not installed");
  await Deno.mkdir(dir, { recursive: true });
  const cert = `${dir}/${name}.crt`;
  const key = `${dir}/${name}.key`;
  const made = await run([
    peers.openssl,
    "req",
    "-x509",
    "-newkey",
    keyType,
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
  ]);
  if (made.code !== 0) throw new Error(`openssl req failed: ${made.stderr}`);
  const pem = `${dir}/${name}.pem`;
  await Deno.writeTextFile(pem, (await Deno.readTextFile(cert)) + (await Deno.readTextFile(key)));
  return { cert, key, pem };
}
