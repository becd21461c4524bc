/**
 * The TCP sockets a process holds, as the operating system reports them: on Linux from
 * /proc/PID/fd (the process's socket inodes) and /proc/PID/net/tcp and tcp6 (each socket's state),
 * read with `ls` and `cat`,
 * on macOS from `lsof`, on Windows from `netstat -ano`. A test proves with it that a process
 * listens on no port; it fails (never skips) when the system cannot be read.
 *
 * @module
 */

/** A process's TCP sockets: the local addresses of those that listen, and how many there are. */
export interface TcpSockets {
  /** Local address of each listening socket (the form is the system's). */
  listening: string[];
  /** All TCP sockets of the process, listening or not. */
  total: number;
}

/**
 * The TCP sockets of process `pid`.
 *
 * @throws {Error} when the system's view of the process cannot be read
 */
export async function tcpSocketsOf(pid: number): Promise<TcpSockets> {
  if (Deno.build.os === "linux") return await fromProc(pid);
  if (Deno.build.os === "darwin") return await fromLsof(pid);
  if (Deno.build.os === "windows") return await fromNetstat(pid);
  throw new Error(`no way to list the sockets of a process on ${Deno.build.os}`);
}

async function fromProc(pid: number): Promise<TcpSockets> {
  // Deno asks for --allow-all to read /proc/PID itself: the system's own tools read it instead.
  const fds = await run("ls", ["-l", `/proc/${pid}/fd/`]);
  const inodes = new Set([...fds.matchAll(/ -> socket:\[(\d+)\]$/gm)].map((m) => m[1]!));
  const listening: string[] = [];
  let total = 0;
  for (const table of ["tcp", "tcp6"]) {
    const text = await run("cat", [`/proc/${pid}/net/${table}`]);
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || !inodes.has(fields[9]!)) continue;
      total++;
      if (fields[3] === "0A") listening.push(`${table} ${fields[1]}`); // 0A: TCP_LISTEN
    }
  }
  return { listening, total };
}

async function fromLsof(pid: number): Promise<TcpSockets> {
  // -F: one field a line; "n" the addresses, "T" TCP details with "TST=LISTEN".
  const output = await run("lsof", ["-nP", "-a", "-p", String(pid), "-iTCP", "-F", "nT"]);
  const listening: string[] = [];
  let total = 0;
  let name = "";
  for (const line of output.split("\n")) {
    if (line.startsWith("n")) {
      name = line.slice(1);
      total++;
    } else if (line === "TST=LISTEN") {
      listening.push(name);
    }
  }
  return { listening, total };
}

async function fromNetstat(pid: number): Promise<TcpSockets> {
  const output = await run("netstat", ["-ano", "-p", "TCP"]);
  const listening: string[] = [];
  let total = 0;
  for (const line of output.split(/\r?\n/)) {
    // Proto  Local Address  Foreign Address  State  PID
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== "TCP" || fields[4] !== String(pid)) continue;
    total++;
    if (fields[3] === "LISTENING") listening.push(fields[1]!);
  }
  return { listening, total };
}

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout);
  // lsof exits 1 when it finds nothing; that is an answer too, unless it said why on stderr.
  const stderr = new TextDecoder().decode(output.stderr).trim();
  if (!output.success && (command !== "lsof" || text !== "" || stderr !== "")) {
    throw new Error(`${command} ${args.join(" ")} failed (${output.code}): ${stderr}`);
  }
  return text;
}
