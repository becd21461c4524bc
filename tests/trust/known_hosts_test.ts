import {
  deepStrictEqual as eql,
  match,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { utf8 } from "../../lib/core/bytes.ts";
import { SecurechatError, TrustError } from "../../lib/core/errors.ts";
import {
  addKnownHost,
  canonicalHostPort,
  checkKnownHost,
  knownHostKeys,
  knownHostsPath,
} from "../../lib/trust/known_hosts.ts";
import { fingerprintOf, isError, withFile, withTempDir } from "../_helpers/trust_files.ts";

const POSIX = Deno.build.os !== "windows";

const FP_A = await fingerprintOf("key a");
const FP_B = await fingerprintOf("key b");
const FP_C = await fingerprintOf("key c");

// --- canonicalHostPort ------------------------------------------------------------------------

Deno.test("canonicalHostPort() lowercases names and writes IPv6 in brackets", () => {
  const cases: [string, number, string][] = [
    ["example.org", 65432, "example.org:65432"],
    ["Example.ORG", 65432, "example.org:65432"],
    ["localhost", 1, "localhost:1"],
    ["127.0.0.1", 65535, "127.0.0.1:65535"],
    ["::1", 65432, "[::1]:65432"],
    ["[::1]", 65432, "[::1]:65432"],
    ["0:0:0:0:0:0:0:1", 65432, "[::1]:65432"],
    ["2001:DB8::A", 22, "[2001:db8::a]:22"],
    ["fe80::1%eth0", 65432, "[fe80::1%eth0]:65432"],
    ["Bücher.example", 65432, "xn--bcher-kva.example:65432"],
  ];
  for (const [host, port, expected] of cases) strictEqual(canonicalHostPort(host, port), expected);
});

Deno.test("canonicalHostPort() rejects hosts and ports that cannot be dialed", () => {
  for (const host of ["", "a b", "user@example.org", "example.org#x", "a/b", "[example.org]"]) {
    throws(() => canonicalHostPort(host, 65432), isError("bad_host", /^invalid host "/), host);
  }
  for (const host of ["1:2:3", "::1%", "::g", "example.org:80"]) {
    throws(() => canonicalHostPort(host, 65432), isError("bad_host"), host);
  }
  for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
    throws(
      () => canonicalHostPort("example.org", port),
      isError("bad_port", `invalid port "${port}": expected a whole number from 1 to 65535`),
    );
  }
});

// --- known_hosts ------------------------------------------------------------------------------

Deno.test("checkKnownHost() reports an unknown host when the file does not exist", async () => {
  await withTempDir(async (dir) => {
    eql(await checkKnownHost(`${dir}/known_hosts`, "example.org:65432", FP_A), {
      status: "unknown",
    });
  });
});

Deno.test("addKnownHost() records a first contact that checkKnownHost() then matches", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/sub/known_hosts`;
    eql(await checkKnownHost(file, "example.org:65432", FP_A), { status: "unknown" });
    await addKnownHost(file, "example.org:65432", FP_A, "alice");
    eql(await checkKnownHost(file, "example.org:65432", FP_A), { status: "match", line: 1 });
    strictEqual(await Deno.readTextFile(file), `example.org:65432 ${FP_A} alice\n`);
    eql(await checkKnownHost(file, "example.org:1", FP_A), { status: "unknown" });
    if (POSIX) {
      strictEqual((await Deno.stat(`${dir}/sub`)).mode! & 0o777, 0o700);
      strictEqual((await Deno.stat(file)).mode! & 0o022, 0, "not group/world writable");
    }
  });
});

Deno.test("checkKnownHost() reports a changed key with the line to remove", async () => {
  const content = `# my hosts\n\nother.org:65432 ${FP_C}\nexample.org:65432 ${FP_A} alice\n`;
  await withFile(content, async (file) => {
    await rejects(checkKnownHost(file, "example.org:65432", FP_B), (error: unknown) => {
      ok(error instanceof TrustError);
      strictEqual(error.code, "host_key_changed");
      strictEqual(error.exitCode, 3);
      strictEqual(error.alert, "bad_certificate");
      strictEqual(
        error.message,
        `host key for "example.org:65432" changed: expected "${FP_A}", got "${FP_B}"`,
      );
      eql(error.hints, [
        "someone may be intercepting this connection (a man-in-the-middle attack), or the listener's key was replaced",
        'ask the listener\'s owner for their fingerprint ("securechat fingerprint") and compare it over a channel you trust',
        `if the change is expected, remove line 4 of "${file}" and dial again`,
      ]);
      return true;
    });
  });
});

Deno.test("checkKnownHost() accepts any listed key of a host and names every line when none matches", async () => {
  const content = `example.org:65432 ${FP_A} old\n# rotated\nexample.org:65432 ${FP_B} new\n`;
  await withFile(content, async (file) => {
    eql(await checkKnownHost(file, "example.org:65432", FP_A), { status: "match", line: 1 });
    eql(await checkKnownHost(file, "example.org:65432", FP_B), { status: "match", line: 3 });
    await rejects(checkKnownHost(file, "example.org:65432", FP_C), (error: unknown) => {
      ok(error instanceof TrustError);
      strictEqual(
        error.message,
        `host key for "example.org:65432" changed: expected "${FP_A}" or "${FP_B}", got "${FP_C}"`,
      );
      strictEqual(
        error.hints[2],
        `if the change is expected, remove lines 1 and 3 of "${file}" and dial again`,
      );
      return true;
    });
  });
});

Deno.test("knownHostKeys() lists a host's keys in file order, each once, in canonical form", async () => {
  const content = `Example.ORG:65432 ${FP_A} old\nother.org:65432 ${FP_C}\n` +
    `example.org:65432 ${FP_B} new\nexample.org:65432 ${FP_A} again\nexample.org:1 ${FP_C}\n`;
  await withFile(content, async (file, dir) => {
    eql(await knownHostKeys(file, "example.org:65432"), [FP_A, FP_B]);
    eql(await knownHostKeys(file, "example.org:1"), [FP_C]);
    eql(await knownHostKeys(file, "unlisted.org:65432"), []);
    eql(await knownHostKeys(`${dir}/missing`, "example.org:65432"), []);
    await rejects(knownHostKeys(file, "example.org"), isError("bad_host"));
  });
  await withFile(`example.org:65432 SHA256:short\n`, async (file) => {
    await rejects(knownHostKeys(file, "example.org:65432"), isError("bad_known_hosts", /line 1/));
  });
});

Deno.test("checkKnownHost() compares hosts in canonical form", async () => {
  const content = `Example.ORG:65432 ${FP_A}\n[0:0::1]:65432\t${FP_B}\r\n`;
  await withFile(content, async (file) => {
    eql(await checkKnownHost(file, "example.org:65432", FP_A), { status: "match", line: 1 });
    eql(await checkKnownHost(file, canonicalHostPort("::1", 65432), FP_B), {
      status: "match",
      line: 2,
    });
    await rejects(checkKnownHost(file, "[::1]:65432", FP_A), TrustError);
  });
});

Deno.test("checkKnownHost() rejects malformed lines with the file and line number", async () => {
  const good = `example.org:65432 ${FP_A}`;
  const cases: [string, string, RegExp][] = [
    [
      "no fingerprint",
      "example.org:65432",
      /: expected "HOST:PORT SHA256:<fingerprint> \[comment\]"$/,
    ],
    ["reversed", `${FP_A} example.org:65432`, /: expected "HOST:PORT SHA256:<fingerprint>/],
    ["no port", `example.org ${FP_A}`, /: invalid address "example.org": expected "HOST:PORT"/],
    ["bare IPv6", `::1:65432 ${FP_A}`, /: invalid address "::1:65432"/],
    ["bad port", `example.org:70000 ${FP_A}`, /: invalid port "70000"/],
    ["bad host", `exa!mple.org:1 ${FP_A}`, /: invalid host "exa!mple.org"/],
    ["padded fingerprint", `example.org:1 ${FP_A}=`, /: invalid fingerprint ".*": remove the "="/],
    ["short fingerprint", `example.org:1 SHA256:abc`, /: invalid fingerprint "SHA256:abc"/],
  ];
  for (const [name, bad, detail] of cases) {
    await withFile(`# header\n${good}\n\n${bad}\n${good}\n`, async (file) => {
      const prefix = `cannot read known hosts "${file}": line 4: `;
      await rejects(checkKnownHost(file, "other.org:1", FP_A), (error: unknown) => {
        ok(error instanceof SecurechatError, name);
        strictEqual(error.code, "bad_known_hosts", name);
        ok(error.message.startsWith(prefix), `${name}: ${error.message}`);
        match(error.message, detail, name);
        match(error.hints.at(-1) ?? "", /fix line 4 of "/, name);
        return true;
      });
      // Appending to a damaged file is refused too: it would hide the damage.
      await rejects(addKnownHost(file, "other.org:1", FP_A), isError("bad_known_hosts"));
    });
  }
  const invalidUtf8 = new Uint8Array([...utf8(`${good}\n`), 0xff, 0xfe, 0x0a]);
  await withFile(invalidUtf8, async (file) => {
    await rejects(
      checkKnownHost(file, "other.org:1", FP_A),
      isError(
        "bad_known_hosts",
        `cannot read known hosts "${file}": line 2: it is not valid UTF-8 text`,
      ),
    );
  });
});

Deno.test("checkKnownHost() reports a folder as known_hosts_unreadable", async () => {
  await withTempDir(async (dir) => {
    await rejects(
      checkKnownHost(dir, "example.org:1", FP_A),
      isError("known_hosts_unreadable", new RegExp(`^cannot read known hosts "${dir}": `)),
    );
  });
});

Deno.test("checkKnownHost() rejects bad arguments before reading the file", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/known_hosts`;
    await rejects(checkKnownHost(file, "example.org", FP_A), isError("bad_host"));
    await rejects(checkKnownHost(file, "example.org:1", "SHA256:x"), isError("bad_fingerprint"));
  });
});

Deno.test("addKnownHost() preserves comments, blank lines and line endings byte for byte", async () => {
  const cases: [string, string, string][] = [
    ["LF", `# first\n\n  # indented\nb.org:1 ${FP_B} bob  \n`, "\n"],
    ["CRLF", `# first\r\n\r\nb.org:1 ${FP_B}\r\n`, "\r\n"],
    ["no final newline", `# first\nb.org:1 ${FP_B}`, "\n"],
    ["empty", "", "\n"],
    ["byte order mark", `\uFEFF# first\nb.org:1 ${FP_B}\n`, "\n"],
  ];
  for (const [name, content, newline] of cases) {
    await withFile(content, async (file) => {
      await addKnownHost(file, "a.org:1", FP_A, "alice");
      const separator = content === "" || content.endsWith("\n") ? "" : newline;
      const expected = `${content}${separator}a.org:1 ${FP_A} alice${newline}`;
      strictEqual(await Deno.readTextFile(file), expected, name);
      const lines = expected.split("\n").length - 1;
      eql(await checkKnownHost(file, "a.org:1", FP_A), { status: "match", line: lines }, name);
      if (content.includes("b.org")) {
        strictEqual((await checkKnownHost(file, "b.org:1", FP_B)).status, "match", name);
      }
    });
  }
});

Deno.test("addKnownHost() keeps both entries of two adds, in sequence or at once", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/known_hosts`;
    await addKnownHost(file, "a.org:1", FP_A);
    await addKnownHost(file, "b.org:1", FP_B);
    strictEqual(await Deno.readTextFile(file), `a.org:1 ${FP_A}\nb.org:1 ${FP_B}\n`);

    await Promise.all([
      addKnownHost(file, "c.org:1", FP_C),
      addKnownHost(file, "d.org:1", FP_A),
      addKnownHost(file, "e.org:1", FP_B),
    ]);
    const lines = (await Deno.readTextFile(file)).trimEnd().split("\n");
    eql(lines.map((line) => line.split(" ")[0]).sort(), [
      "a.org:1",
      "b.org:1",
      "c.org:1",
      "d.org:1",
      "e.org:1",
    ]);
    const leftovers = [];
    for await (const entry of Deno.readDir(dir)) leftovers.push(entry.name);
    eql(leftovers, ["known_hosts"], "no temporary files left behind");
  });
});

Deno.test("addKnownHost() ignores a key already listed and refuses a different one", async () => {
  await withFile(`a.org:1 ${FP_A}\n`, async (file) => {
    await addKnownHost(file, "A.org:1", FP_A, "again");
    strictEqual(await Deno.readTextFile(file), `a.org:1 ${FP_A}\n`);
    await rejects(addKnownHost(file, "a.org:1", FP_B), (error: unknown) => {
      ok(error instanceof TrustError);
      strictEqual(error.code, "host_key_changed");
      return true;
    });
    strictEqual(await Deno.readTextFile(file), `a.org:1 ${FP_A}\n`);
  });
});

Deno.test("addKnownHost() keeps an untrusted comment on its own line", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/known_hosts`;
    const evil = `mallory\nevil.org:1 ${FP_C}\r\u2028\u202e\t x`;
    await addKnownHost(file, "a.org:1", FP_A, evil);
    strictEqual(await Deno.readTextFile(file), `a.org:1 ${FP_A} mallory evil.org:1 ${FP_C} x\n`);
    eql(await checkKnownHost(file, "evil.org:1", FP_C), { status: "unknown" });
    await addKnownHost(file, "b.org:1", FP_B, " \n ");
    strictEqual((await Deno.readTextFile(file)).split("\n")[1], `b.org:1 ${FP_B}`);
  });
});

Deno.test("addKnownHost() keeps the file's mode and writes through a symlink", {
  ignore: !POSIX,
}, async () => {
  await withTempDir(async (dir) => {
    const real = `${dir}/real_known_hosts`;
    const link = `${dir}/known_hosts`;
    await Deno.writeTextFile(real, "# mine\n", { mode: 0o600 });
    await Deno.chmod(real, 0o600);
    await Deno.symlink(real, link);
    await addKnownHost(link, "a.org:1", FP_A);
    ok((await Deno.lstat(link)).isSymlink);
    strictEqual(await Deno.readTextFile(real), `# mine\na.org:1 ${FP_A}\n`);
    strictEqual((await Deno.stat(real)).mode! & 0o777, 0o600);
  });
});

/** True when a read-only folder refuses us (not so for root), so the test below can run. */
async function readOnlyFolderRefusesWrites(): Promise<boolean> {
  if (!POSIX) return false;
  const dir = await Deno.makeTempDir({ prefix: "securechat_trust_probe_" });
  try {
    await Deno.chmod(dir, 0o500);
    await Deno.writeFile(`${dir}/probe`, new Uint8Array());
    return false;
  } catch {
    return true;
  } finally {
    await Deno.chmod(dir, 0o700);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "addKnownHost() reports a folder it cannot write as known_hosts_unwritable",
  ignore: !(await readOnlyFolderRefusesWrites()),
  fn: async () => {
    await withTempDir(async (dir) => {
      const file = `${dir}/known_hosts`;
      await Deno.writeTextFile(file, "# mine\n");
      await Deno.chmod(dir, 0o500);
      try {
        await rejects(
          addKnownHost(file, "a.org:1", FP_A),
          isError("known_hosts_unwritable", new RegExp(`^cannot record host key in "${file}": `)),
        );
        strictEqual(await Deno.readTextFile(file), "# mine\n");
      } finally {
        await Deno.chmod(dir, 0o700);
      }
    });
  },
});

Deno.test("knownHostsPath() lives in SECURECHAT_HOME", () => {
  const saved = Deno.env.get("SECURECHAT_HOME");
  try {
    Deno.env.set("SECURECHAT_HOME", "/tmp/securechat-home");
    match(knownHostsPath(), /securechat-home[\\/]known_hosts$/);
  } finally {
    if (saved === undefined) Deno.env.delete("SECURECHAT_HOME");
    else Deno.env.set("SECURECHAT_HOME", saved);
  }
});
