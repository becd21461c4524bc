/**
 * `deno run scripts/check_tag.ts TAG`: the release workflow's guard that the tag being released is
 * `v` followed by the version in deno.json, the one place the version is written (`securechat
 * --version` prints it from there). On a match it prints the version on stdout and exits 0; else
 * it says what differs on stderr and exits 1, so no release goes out under a wrong number.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/**
 * Why `tag` cannot release `version`, or undefined when it can.
 *
 * @param tag the git tag, e.g. "v0.1.0" (a "refs/tags/" prefix is allowed)
 * @param version the version in deno.json, e.g. "0.1.0"
 * @returns the problem in one line, or undefined
 */
export function tagProblem(tag: string, version: string): string | undefined {
  const name = tag.replace(/^refs\/tags\//, "");
  if (!/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(version)) {
    return `deno.json's version "${version}" is not a semantic version like 1.2.3`;
  }
  if (name !== `v${version}`) {
    return `tag "${name}" does not match deno.json's version "${version}": expected tag "v${version}"`;
  }
  return undefined;
}

if (import.meta.main) {
  const tag = Deno.args[0];
  const problem = tag === undefined ? "usage: check_tag.ts TAG" : tagProblem(tag, denoJson.version);
  if (problem !== undefined) {
    Deno.stderr.writeSync(new TextEncoder().encode(`check_tag: error: ${problem}\n`));
    Deno.exit(1);
  }
  Deno.stdout.writeSync(new TextEncoder().encode(`${denoJson.version}\n`));
}
