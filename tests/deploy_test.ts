/**
 * The deployment files (deploy/, docs/DEPLOYMENT.md) checked against each other, against the CLI
 * and against the spec: compose parses as YAML, nats-server itself accepts every node's config
 * (`nats-server -t`), the systemd units have their hardening, routes and client URLs point at the
 * ports the nodes listen on, relay command lines use only flags `securechat relay --help` lists,
 * and the relay user's NATS permissions are exactly those of PROTOCOL.md 16.6.
 *
 * @module
 */

import { deepStrictEqual as eql, ok } from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { ROOT_DIR, runCli } from "./_helpers/cli.ts";
import { natsServerPath } from "./_helpers/nats_servers.ts";

const DEPLOY = `${ROOT_DIR}/deploy`;
const NODES = [1, 2, 3];
const RELAYS = [1, 2, 3];
/** The flags of issue 15 the deploy files use (PROTOCOL.md 16). */
const CLUSTER_FLAGS = ["--nats", "--advertise", "--nats-replicas"];

// ---- a reader for the subset of the NATS config format the deploy files use --------------------

type NatsValue = string | NatsValue[] | { [key: string]: NatsValue };
type NatsMap = { [key: string]: NatsValue };

/**
 * Parses NATS server config text (maps with `{}`, arrays with `[]`, `key: value`, `key = value`
 * or `key { ... }`, quoted or bare strings, `#` comments) into plain values. Bare values stay
 * strings; nats-server's own `-t` is what proves the file valid, this only reads it.
 */
function parseNatsConfig(text: string): NatsMap {
  let at = 0;
  const skip = () => {
    while (at < text.length) {
      const c = text[at]!;
      if (c === "#") {
        while (at < text.length && text[at] !== "\n") at++;
      } else if (/[\s,;]/.test(c)) {
        at++;
      } else {
        return;
      }
    }
  };
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${at}: ${JSON.stringify(text.slice(at, at + 20))}`);
  };
  const value = (): NatsValue => {
    skip();
    const c = text[at];
    if (c === "{") {
      at++;
      return map("}");
    }
    if (c === "[") {
      at++;
      const items: NatsValue[] = [];
      while (true) {
        skip();
        if (text[at] === "]") {
          at++;
          return items;
        }
        if (at >= text.length) fail("unclosed array");
        items.push(value());
      }
    }
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, at + 1);
      if (end < 0) fail("unclosed string");
      const quoted = text.slice(at + 1, end);
      at = end + 1;
      return quoted;
    }
    const start = at;
    while (at < text.length && !/[\s,\]}]/.test(text[at]!)) at++;
    if (at === start) fail("expected a value");
    return text.slice(start, at);
  };
  const map = (close: string | undefined): NatsMap => {
    const result: NatsMap = {};
    while (true) {
      skip();
      if (at >= text.length) {
        if (close !== undefined) fail(`missing "${close}"`);
        return result;
      }
      if (text[at] === close) {
        at++;
        return result;
      }
      const start = at;
      while (at < text.length && /[A-Za-z0-9_\-.$]/.test(text[at]!)) at++;
      if (at === start) fail("expected a key");
      const key = text.slice(start, at);
      while (text[at] === " " || text[at] === "\t") at++;
      if (text[at] === ":" || text[at] === "=") at++;
      result[key] = value();
    }
  };
  return map(undefined);
}

function mapAt(config: NatsMap, ...path: string[]): NatsMap {
  let current: NatsValue = config;
  for (const key of path) {
    ok(typeof current === "object" && !Array.isArray(current), `"${path.join(".")}" is a map`);
    current = (current as NatsMap)[key]!;
  }
  ok(typeof current === "object" && !Array.isArray(current), `"${path.join(".")}" is a map`);
  return current as NatsMap;
}

function stringsAt(config: NatsMap, key: string): string[] {
  const list = config[key];
  ok(Array.isArray(list) && list.every((item) => typeof item === "string"), `"${key}" is a list`);
  return list as string[];
}

function portOf(address: NatsValue | undefined): number {
  ok(typeof address === "string", "an address is a string");
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

// ---- a reader for systemd unit files ------------------------------------------------------------

/** A unit file as section -> key -> values (a key may repeat). */
type Unit = Map<string, Map<string, string[]>>;

/** Parses a systemd unit: `[Section]` headers, `Key=value` lines, `#`/`;` comments, `\` joins. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!pair || section === undefined) {
      throw new SyntaxError(`line ${index + 1} is not "Key=value" in a section: ${raw}`);
    }
    const values = section.get(pair[1]!) ?? [];
    values.push(pair[2]!);
    section.set(pair[1]!, values);
  }
  return unit;
}

function unitValue(unit: Unit, section: string, key: string): string {
  const values = unit.get(section)?.get(key);
  ok(values !== undefined && values.length > 0, `[${section}] has ${key}=`);
  return values.at(-1)!;
}

// ---- what the spec and the CLI say ---------------------------------------------------------------

/** The subjects of PROTOCOL.md 16.6: `{ publish, subscribe }`, read from its first sentence. */
async function spec166(): Promise<{ publish: string[]; subscribe: string[] }> {
  const protocol = await Deno.readTextFile(`${ROOT_DIR}/docs/PROTOCOL.md`);
  const start = protocol.indexOf("### 16.6");
  ok(start >= 0, "PROTOCOL.md has a section 16.6");
  const section = protocol.slice(start, protocol.indexOf("\n#", start + 1));
  // The sentence ends at the first period outside a subject: after a closing backquote.
  const sentence = /Publish on (.*?); subscribe to (.*?`)\.\s/s.exec(section);
  ok(sentence, 'PROTOCOL.md 16.6 says "Publish on ...; subscribe to ..."');
  const subjects = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
  return { publish: subjects(sentence[1]!), subscribe: subjects(sentence[2]!) };
}

/** Every `--flag` that `securechat relay --help` lists. */
async function relayUsageFlags(): Promise<Set<string>> {
  const result = await runCli(["relay", "--help"]);
  eql(result.code, 0, `relay --help failed: ${result.stderr}`);
  return new Set([...result.stdout.matchAll(/(?:^|[\s,])(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]!));
}

function flagsOf(args: string[]): string[] {
  return args.filter((arg) => arg.startsWith("--")).map((arg) => arg.split("=")[0]!);
}

// ---- the files -----------------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  secrets?: string[];
}

async function readCompose(): Promise<{
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
}> {
  const compose = parseYaml(await Deno.readTextFile(`${DEPLOY}/compose.yaml`));
  ok(compose && typeof compose === "object", "compose.yaml is a map");
  return compose;
}

async function readNode(n: number): Promise<NatsMap> {
  return parseNatsConfig(await Deno.readTextFile(`${DEPLOY}/nats/nats-${n}.conf`));
}

/** The value after `flag` in a command line. */
function flagValue(args: string[], flag: string): string {
  const index = args.indexOf(flag);
  ok(index >= 0 && index + 1 < args.length, `the command line has ${flag} VALUE`);
  return args[index + 1]!;
}

function relayCommand(service: ComposeService | undefined, name: string): string[] {
  ok(Array.isArray(service?.command), `compose service ${name} has a command list`);
  return service.command;
}

Deno.test("deploy/nats/nats-N.conf: nats-server -t accepts each node's config", async () => {
  const binary = await natsServerPath();
  for (const n of NODES) {
    const file = `${DEPLOY}/nats/nats-${n}.conf`;
    const output = await new Deno.Command(binary, {
      args: ["-t", "-c", file],
      env: { SECURECHAT_NATS_PASSWORD: "test-password" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    eql(output.code, 0, `nats-server -t -c ${file}: ${text}`);
    ok(text.includes("is valid"), text);
  }
});

Deno.test("deploy/nats/nats-N.conf: JetStream, 4 MiB payloads, and a full mesh of routes to the others' route ports", async () => {
  const configs = await Promise.all(NODES.map(readNode));
  for (const [index, config] of configs.entries()) {
    const n = NODES[index]!;
    eql(config.server_name, `nats-${n}`);
    eql(config.max_payload, "4194304");
    ok(config.jetstream !== undefined, `nats-${n} enables JetStream`);
    eql(portOf(config.listen), 4222);
    eql(portOf(config.http), 8222);
    const cluster = mapAt(config, "cluster");
    eql(cluster.name, "securechat");
    const routes = stringsAt(cluster, "routes").map((route) => new URL(route));
    eql(
      routes.map((route) => route.hostname).sort(),
      NODES.filter((other) => other !== n).map((other) => `nats-${other}`),
    );
    for (const route of routes) {
      eql(route.protocol, "nats-route:");
      const target = configs[NODES.indexOf(Number(route.hostname.slice("nats-".length)))]!;
      eql(Number(route.port), portOf(mapAt(target, "cluster").listen), `route ${route}`);
    }
  }
});

Deno.test("deploy/nats/nats-N.conf: the securechat-relay user may do exactly what PROTOCOL.md 16.6 lists", async () => {
  const spec = await spec166();
  ok(spec.publish.length > 0 && spec.subscribe.length > 0, "16.6 lists subjects");
  for (const n of NODES) {
    const users = (await readNode(n)).authorization;
    ok(typeof users === "object" && !Array.isArray(users), `nats-${n} has an authorization block`);
    const list = (users as NatsMap).users;
    ok(Array.isArray(list) && list.length === 1, `nats-${n} has exactly one user`);
    const user = list[0] as NatsMap;
    eql(user.user, "securechat-relay");
    eql(user.password, "$SECURECHAT_NATS_PASSWORD", "the password comes from the environment");
    const permissions = mapAt(user, "permissions");
    eql(Object.keys(permissions).sort(), ["publish", "subscribe"]);
    eql(Object.keys(mapAt(permissions, "publish")), ["allow"]);
    eql(Object.keys(mapAt(permissions, "subscribe")), ["allow"]);
    eql(stringsAt(mapAt(permissions, "publish"), "allow").sort(), [...spec.publish].sort());
    eql(stringsAt(mapAt(permissions, "subscribe"), "allow").sort(), [...spec.subscribe].sort());
  }
});

Deno.test("deploy/compose.yaml: three nodes with their configs, three relays on the nodes' client ports sharing one read-only key", async () => {
  const { services, secrets } = await readCompose();
  eql(
    Object.keys(services).sort(),
    [...NODES.map((n) => `nats-${n}`), ...RELAYS.map((n) => `relay-${n}`)].sort(),
  );
  const clientPorts = new Map<string, number>();
  for (const n of NODES) {
    const service = services[`nats-${n}`]!;
    ok(service.image?.startsWith("nats:"), `nats-${n} runs the nats image`);
    ok(
      service.volumes?.includes(`./nats/nats-${n}.conf:/etc/nats/nats.conf:ro`),
      `nats-${n} mounts its config read-only`,
    );
    eql(service.command, ["-c", "/etc/nats/nats.conf"]);
    ok(service.environment?.SECURECHAT_NATS_PASSWORD !== undefined, "the password is passed on");
    clientPorts.set(`nats-${n}`, portOf((await readNode(n)).listen));
    // Clients and routes stay on the compose network; only monitoring is published, on loopback.
    for (const port of service.ports ?? []) ok(port.startsWith("127.0.0.1:"), port);
  }
  eql(secrets["relay-key"]?.file, "./secrets/relay.key");
  const advertised = new Set<string>();
  for (const n of RELAYS) {
    const name = `relay-${n}`;
    const service = services[name]!;
    const args = relayCommand(service, name);
    eql(args[0], "relay");
    eql(flagValue(args, "--host"), "0.0.0.0");
    eql(flagValue(args, "--port"), "65433");
    eql(flagValue(args, "--identity"), "/run/secrets/relay-key");
    eql(service.secrets, ["relay-key"], "the key is a compose secret, mounted read-only");
    const urls = flagValue(args, "--nats").split(",").map((url) => new URL(url));
    eql(urls.map((url) => url.hostname).sort(), NODES.map((m) => `nats-${m}`));
    for (const url of urls) {
      eql(url.protocol, "nats:");
      eql(url.username, "securechat-relay");
      eql(Number(url.port), clientPorts.get(url.hostname), `${url.hostname}'s client port`);
    }
    // Each relay publishes its port 65433 on its own host port, the one it advertises (16.5).
    const advertise = flagValue(args, "--advertise");
    const hostPort = Number(advertise.slice(advertise.lastIndexOf(":") + 1));
    eql(service.ports, [`${hostPort}:65433`]);
    advertised.add(advertise);
  }
  eql(advertised.size, RELAYS.length, "every relay advertises its own address");
});

Deno.test("deploy/systemd/*.service: sections and the hardening a relay and a node need", async () => {
  const relay = parseUnit(await Deno.readTextFile(`${DEPLOY}/systemd/securechat-relay.service`));
  eql([...relay.keys()], ["Unit", "Service", "Install"]);
  ok(
    relay.get("Service")?.has("User") || unitValue(relay, "Service", "DynamicUser") === "yes",
    "the relay runs as its own user",
  );
  eql(unitValue(relay, "Service", "NoNewPrivileges"), "yes");
  eql(unitValue(relay, "Service", "ProtectSystem"), "strict");
  eql(unitValue(relay, "Service", "Restart"), "on-failure");
  eql(unitValue(relay, "Service", "KillSignal"), "SIGTERM");
  eql(unitValue(relay, "Service", "CapabilityBoundingSet"), "");
  eql(unitValue(relay, "Install", "WantedBy"), "multi-user.target");
  ok(!relay.get("Service")?.has("MemoryDenyWriteExecute"), "V8's JIT needs W^X off");
  const args = unitValue(relay, "Service", "ExecStart").split(/\s+/);
  eql(args.slice(0, 2), ["/usr/local/bin/securechat", "relay"]);
  const key = flagValue(args, "--identity");
  const readOnly = unitValue(relay, "Service", "ReadOnlyPaths").split(/\s+/);
  ok(
    readOnly.some((path) => key === path || key.startsWith(`${path}/`)),
    `ReadOnlyPaths covers the key ${key}`,
  );
  eql(flagValue(args, "--port"), "65433");

  const node = parseUnit(await Deno.readTextFile(`${DEPLOY}/systemd/nats-server.service`));
  eql([...node.keys()], ["Unit", "Service", "Install"]);
  eql(unitValue(node, "Service", "NoNewPrivileges"), "yes");
  eql(unitValue(node, "Service", "ProtectSystem"), "strict");
  eql(unitValue(node, "Service", "Restart"), "on-failure");
  ok(unitValue(node, "Service", "ExecStart").includes("nats-server -c /etc/nats/"));
  // The configs keep the JetStream store where the unit lets the node write.
  const store = mapAt(await readNode(1), "jetstream").store_dir;
  ok(typeof store === "string", "store_dir is set");
  const writable = unitValue(node, "Service", "ReadWritePaths");
  ok(store.startsWith(`${writable}/`), `ReadWritePaths ${writable} covers ${store}`);
});

Deno.test("deploy relay command lines use only flags that `securechat relay --help` lists", async () => {
  const usage = await relayUsageFlags();
  const missing = CLUSTER_FLAGS.filter((flag) => !usage.has(flag));
  if (missing.length > 0) {
    throw new Error(
      `"securechat relay --help" does not list ${missing.join(", ")}: the relay's cluster flags ` +
        "(PROTOCOL.md 16, issue 15) are not in this build, so deploy/ cannot run it",
    );
  }
  const { services } = await readCompose();
  const lines: [string, string[]][] = RELAYS.map((n) => [
    `compose relay-${n}`,
    relayCommand(services[`relay-${n}`], `relay-${n}`),
  ]);
  const relay = parseUnit(await Deno.readTextFile(`${DEPLOY}/systemd/securechat-relay.service`));
  lines.push([
    "securechat-relay.service",
    unitValue(relay, "Service", "ExecStart").split(/\s+/).slice(1),
  ]);
  for (const [where, args] of lines) {
    eql(args[0], "relay", where);
    for (const flag of flagsOf(args)) ok(usage.has(flag), `${where}: ${flag} is not a relay flag`);
  }
});

Deno.test("parseNatsConfig() and parseUnit() reject text they cannot read", () => {
  let thrown: unknown;
  try {
    parseNatsConfig("cluster {\n  routes: [ a\n");
  } catch (error) {
    thrown = error;
  }
  ok(thrown instanceof SyntaxError, "an unclosed block is refused");
  thrown = undefined;
  try {
    parseUnit("ExecStart=/bin/true\n");
  } catch (error) {
    thrown = error;
  }
  ok(thrown instanceof SyntaxError, "a key outside a section is refused");
  eql(parseNatsConfig('a: 1\nb { c: "x y", d: [p, "q"] }  # note\n'), {
    a: "1",
    b: { c: "x y", d: ["p", "q"] },
  });
});
