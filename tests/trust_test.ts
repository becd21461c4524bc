import {
  deepStrictEqual as eql,
  match,
  ok,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { sha256, toBase64, utf8 } from "../lib/bytes.ts";
import { SecurechatError, TrustError } from "../lib/errors.ts";
import {
  addKnownHost,
  authorizedKeysPath,
  canonicalHostPort,
  checkKnownHost,
  findAuthorizedKey,
  knownHostsPath,
  parseFingerprint,
  readAuthorizedKeys,
} from "../lib/trust.ts";

const POSIX = Deno.build.os !== "windows";

/** A real fingerprint: SHA-256 of `seed`, unpadded standard base64. */
async function fingerprintOf(seed: string): Promise<string> {
  return "SHA256:" + toBase64(await sha256(utf8(seed))).replace(/=+$/, "");
}

const FP_A = await fingerprintOf("key a");
const FP_B = await fingerprintOf("key b");
const FP_C = await fingerprintOf("key c");

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "securechat_trust_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with `name` written to a temporary folder holding `content`. */
function withFile(
  content: string | Uint8Array,
  fn: (file: string, dir: string) => Promise<void>,
): Promise<void> {
  return withTempDir(async (dir) => {
    const file = `${dir}/trust_file`;
    await Deno.writeFile(file, typeof content === "string" ? utf8(content) : content);
    await fn(file, dir);
  });
}

function isError(code: string, message?: string | RegExp) {
  return (error: unknown) => {
    ok(error instanceof SecurechatError, `expected a SecurechatError, got ${error}`);
    strictEqual(error.code, code);
    if (typeof message === "string") strictEqual(error.message, message);
    else if (message) match(error.message, message);
    return true;
  };
}

// --- parseFingerprint -------------------------------------------------------------------------

Deno.test("parseFingerprint() accepts SHA-256 fingerprints in unpadded base64", async () => {
  for (let i = 0; i < 64; i++) {
    const fingerprint = await fingerprintOf(`seed ${i}`);
    strictEqual(parseFingerprint(fingerprint), fingerprint);
  }
});

Deno.test("parseFingerprint() rejects a wrong prefix, length, padding or alphabet", () => {
  const body = FP_A.slice("SHA256:".length);
  const cases: [string, string, RegExp][] = [
    ["no prefix", body, /: it does not start with "SHA256:"$/],
    ["lowercase prefix", `sha256:${body}`, /: it does not start with "SHA256:"$/],
    ["md5 prefix", `MD5:${body}`, /: it does not start with "SHA256:"$/],
    ["empty", "", /^invalid fingerprint "": it does not start with "SHA256:"$/],
    ["padding", `${FP_A}=`, /: remove the "=" padding: expected 43 base64 characters$/],
    ["one short", FP_A.slice(0, -1), /: expected 43 base64 characters after "SHA256:", found 42$/],
    ["one long", `${FP_A}A`, /found 44$/],
    ["prefix only", "SHA256:", /found 0$/],
    ["base64url", `SHA256:-${body.slice(1)}`, /: "-" is not a standard base64 character$/],
    ["non-base64", `SHA256:!${body.slice(1)}`, /: "!" is not a standard base64 character$/],
    ["space inside", `SHA256: ${body.slice(1)}`, /" " is not a standard base64 character$/],
    ["trailing newline", `${FP_A}\n`, /"\\u000a" is not a standard base64 character$/],
    ["leading space", ` ${FP_A}`, /does not start with "SHA256:"$/],
    ["last character has low bits set", `${FP_A.slice(0, -1)}B`, /"B" cannot end a SHA-256/],
  ];
  for (const [name, text, message] of cases) {
    throws(() => parseFingerprint(text), (error: unknown) => {
      ok(error instanceof SecurechatError, name);
      strictEqual(error.code, "bad_fingerprint", name);
      strictEqual(error.exitCode, 2, name);
      match(error.message, /^invalid fingerprint "/, name);
      match(error.message, message, name);
      match(error.hints[0] ?? "", /43 base64 characters/, name);
      return true;
    });
  }
});

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

// --- authorized_keys --------------------------------------------------------------------------

Deno.test("readAuthorizedKeys() reads fingerprints with their names and line numbers", async () => {
  const content = [
    "\uFEFF# people I talk to",
    "",
    `${FP_A} alice`,
    `  ${FP_B}\tbob@desk   work laptop, added 2024  `,
    "   # indented comment",
    `${FP_C} Zoë\r`,
    `${FP_A} alice-phone`,
  ].join("\n");
  await withFile(content, async (file) => {
    const keys = await readAuthorizedKeys(file);
    eql(keys, [
      { fingerprint: FP_A, name: "alice", line: 3 },
      { fingerprint: FP_B, name: "bob@desk", line: 4 },
      { fingerprint: FP_C, name: "Zoë", line: 6 },
      { fingerprint: FP_A, name: "alice-phone", line: 7 },
    ]);
    strictEqual(findAuthorizedKey(keys, FP_B)?.name, "bob@desk");
    strictEqual(findAuthorizedKey(keys, FP_A)?.name, "alice", "the first entry wins");
    strictEqual(findAuthorizedKey(keys, await fingerprintOf("stranger")), undefined);
  });
});

Deno.test("readAuthorizedKeys() reads an empty file as admitting nobody", async () => {
  await withFile("# nobody yet\n", async (file) => eql(await readAuthorizedKeys(file), []));
});

Deno.test("readAuthorizedKeys() rejects malformed lines with the file and line number", async () => {
  const cases: [string, string, string, RegExp?][] = [
    ["no name", FP_B, `expected "SHA256:<fingerprint> NAME", found no NAME`, /add the name/],
    ["reversed", `bob ${FP_B}`, `expected "SHA256:<fingerprint> NAME"`, /comes first: write "/],
    ["pasted key", "ssh-ed25519 AAAAC3Nza bob", `expected "SHA256:<fingerprint> NAME"`, /not keys/],
    ["garbage", "hello", `expected "SHA256:<fingerprint> NAME"`],
    [
      "bad fingerprint",
      `SHA256:abc= bob`,
      `invalid fingerprint "SHA256:abc=": remove the "=" padding: expected 43 base64 characters`,
    ],
    [
      "long name",
      `${FP_B} ${"n".repeat(65)}`,
      `invalid name "${
        "n".repeat(65)
      }": expected 1 to 64 printable characters, not starting with "#"`,
    ],
    [
      "hash name",
      `${FP_B} #bob`,
      `invalid name "#bob": expected 1 to 64 printable characters, not starting with "#"`,
    ],
    [
      "control in name",
      `${FP_B} b\u0007ob`,
      `invalid name "b\\u0007ob": expected 1 to 64 printable characters, not starting with "#"`,
    ],
  ];
  for (const [name, bad, detail, hint] of cases) {
    await withFile(`# keys\n${FP_A} alice\n${bad}\n`, async (file) => {
      await rejects(readAuthorizedKeys(file), (error: unknown) => {
        ok(error instanceof SecurechatError, name);
        strictEqual(error.code, "bad_authorized_keys", name);
        strictEqual(
          error.message,
          `cannot read authorized keys "${file}": line 3: ${detail}`,
          name,
        );
        strictEqual(
          error.hints.at(-1),
          `each line reads "SHA256:<fingerprint> NAME [comment]"; fix line 3 of "${file}"`,
          name,
        );
        if (hint) match(error.hints[0] ?? "", hint, name);
        return true;
      });
    });
  }
  // 64 characters is the longest name.
  await withFile(`${FP_B} ${"n".repeat(64)}\n`, async (file) => {
    strictEqual((await readAuthorizedKeys(file))[0]?.name.length, 64);
  });
});

Deno.test("readAuthorizedKeys() reports a missing file as authorized_keys_unreadable", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/authorized_keys`;
    await rejects(readAuthorizedKeys(file), (error: unknown) => {
      ok(error instanceof SecurechatError);
      strictEqual(error.code, "authorized_keys_unreadable");
      strictEqual(error.message, `cannot read authorized keys "${file}": it does not exist`);
      match(error.hints[0] ?? "", /securechat fingerprint/);
      return true;
    });
    await rejects(readAuthorizedKeys(dir), isError("authorized_keys_unreadable"));
  });
});

Deno.test("knownHostsPath() and authorizedKeysPath() live in SECURECHAT_HOME", () => {
  const saved = Deno.env.get("SECURECHAT_HOME");
  try {
    Deno.env.set("SECURECHAT_HOME", "/tmp/securechat-home");
    match(knownHostsPath(), /securechat-home[\\/]known_hosts$/);
    match(authorizedKeysPath(), /securechat-home[\\/]authorized_keys$/);
  } finally {
    if (saved === undefined) Deno.env.delete("SECURECHAT_HOME");
    else Deno.env.set("SECURECHAT_HOME", saved);
  }
});
