/**
 * The receive policy: which size limit applies, how a policy is handed on, and the free-space
 * check, which is skipped (never guessed) where the free space cannot be read.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  DEFAULT_AUTO_ACCEPT_MAX_BYTES,
  freeSpace,
  noRoomFor,
  receivePolicyOf,
  sizeLimit,
} from "../../lib/transfer/receive_policy.ts";

Deno.test("`sizeLimit()` is --max-file-size when given, else 1 GiB when accepting without asking", () => {
  strictEqual(sizeLimit(500, true), 500);
  strictEqual(sizeLimit(500, false), 500);
  strictEqual(sizeLimit(undefined, true), DEFAULT_AUTO_ACCEPT_MAX_BYTES);
  strictEqual(DEFAULT_AUTO_ACCEPT_MAX_BYTES, 1024 ** 3);
  strictEqual(sizeLimit(undefined, false), undefined);
  strictEqual(sizeLimit(undefined, undefined), undefined);
});

Deno.test("`receivePolicyOf()` hands on the four policy fields that are set, and nothing else", () => {
  const options = {
    identity: "not part of the policy",
    receiveDir: "/tmp/in",
    autoAccept: true,
    maxFileSize: undefined,
  };
  deepStrictEqual(receivePolicyOf(options), { receiveDir: "/tmp/in", autoAccept: true });
  deepStrictEqual(receivePolicyOf({}), {});
});

Deno.test("`noRoomFor()` skips the check where the free space cannot be read", async () => {
  const missing = `${await Deno.makeTempDir()}/does-not-exist`;
  strictEqual(await freeSpace(missing), undefined);
  strictEqual(await noRoomFor(2 ** 60, missing), undefined);
});

Deno.test("`noRoomFor()` refuses what the file system cannot hold, counting bytes already promised", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const free = await freeSpace(dir);
    // statfs needs --allow-sys=statfs, which the binary has and `deno task test` does not grant
    // in-process; tests/e2e/receive_policy_test.ts covers it through real processes.
    if (free === undefined) {
      const granted = Deno.permissions.querySync({ name: "sys", kind: "statfs" });
      strictEqual(granted.state === "granted", false, "statfs is allowed, yet unreadable");
      return;
    }
    await t.step("an offer larger than the free space", async () => {
      ok((await noRoomFor(free + 2 ** 40, dir))?.startsWith("not enough free space"));
    });
    await t.step("an offer that fits alone but not beside what is promised", async () => {
      const reason = await noRoomFor(Math.floor(free * 0.6), dir, () => Math.floor(free * 0.6));
      ok(reason?.includes("promised to transfers in progress"), reason);
    });
    await t.step("an offer that fits", async () => {
      strictEqual(await noRoomFor(1, dir), undefined);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
