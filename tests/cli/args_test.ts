/**
 * lib/cli/args.ts parseFlags(): every form of flag the commands take, and a one-line UsageError
 * naming the flag for every misuse.
 */

import { deepStrictEqual as eql, throws } from "node:assert/strict";
import { type FlagSpec, parseFlags } from "../../lib/cli/args.ts";
import { UsageError } from "../../lib/core/errors.ts";

const SPEC: Record<string, FlagSpec> = {
  port: { type: "string", short: "p" },
  identity: { type: "string", short: "i" },
  pipe: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  verbose: { type: "boolean", short: "v" },
  tag: { type: "string", multiple: true },
};

function usage(message: RegExp) {
  return (error: unknown) =>
    error instanceof UsageError && message.test(error.message) && !error.message.includes("\n");
}

Deno.test("parseFlags() reads --name value, --name=value, -n value, -nvalue, grouped switches and repeats", () => {
  const parsed = parseFlags(
    "dial",
    SPEC,
    [
      "--port",
      "65432",
      "--identity=/k/id",
      "host",
      "-hv",
      "--pipe",
      "--tag",
      "a",
      "--tag=b",
    ],
    { maxPositionals: 1 },
  );
  eql(parsed.values, {
    port: "65432",
    identity: "/k/id",
    help: true,
    verbose: true,
    pipe: true,
    tag: ["a", "b"],
  });
  eql(parsed.positionals, ["host"]);
  eql(parseFlags("dial", SPEC, ["-p", "1", "-i/k/x", "-vp2"]).values, {
    port: "2",
    identity: "/k/x",
    verbose: true,
  });
  // A value that starts with a dash is given with "="; "-" alone is a value; the last of a
  // repeated single flag wins.
  eql(
    parseFlags("dial", SPEC, ["--identity=-x=y", "-p", "-", "--port", "1", "--port", "2"]).values,
    {
      identity: "-x=y",
      port: "2",
    },
  );
});

Deno.test("parseFlags() takes everything after -- as positionals", () => {
  const parsed = parseFlags("dial", SPEC, ["--pipe", "--", "--port", "-h"], {
    maxPositionals: 2,
  });
  eql(parsed.values, { pipe: true });
  eql(parsed.positionals, ["--port", "-h"]);
});

Deno.test("parseFlags() refuses unknown flags, missing values, values for switches and extra arguments, naming each", () => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /^unknown flag "--bogus" for "securechat dial"$/],
    [["--constructor"], /^unknown flag "--constructor"/],
    [["-x"], /^unknown flag "-x"/],
    [["-hx"], /^unknown flag "-x"/],
    [["--port"], /^flag "--port" needs a value$/],
    [["-p"], /^flag "--port" needs a value$/],
    [["--pipe=yes"], /^flag "--pipe" takes no value$/],
    [["--pipe="], /^flag "--pipe" takes no value$/],
    [["--identity", "--pipe"], /^flag "--identity" needs a value, got the flag-like "--pipe"/],
    [["-p", "-1"], /^flag "--port" needs a value, got the flag-like "-1"/],
    [["a", "b"], /^unexpected argument "b" for "securechat dial"$/],
  ];
  for (const [args, message] of cases) {
    throws(() => parseFlags("dial", SPEC, args, { maxPositionals: 1 }), usage(message), `${args}`);
  }
});
