/**
 * Nothing of a member's plaintext ever exists in the relay process (docs/PROTOCOL.md 13: the relay
 * holds no group secret and sees no plaintext). A unique random token goes through a
 * `listen --relay-only` child in every form a member's words take: a chat line, a private message
 * (/msg), a file's name, and a file whose content is random bytes. Then, while the relay still
 * runs, its whole readable memory (/proc/PID/maps and /proc/PID/mem, read by
 * tests/_helpers/process_memory.ts) and its stderr log are searched: the token (as UTF-8, which is
 * also V8's one-byte form of ASCII, and as UTF-16LE, V8's two-byte form) and pieces of the file's
 * bytes must be in neither.
 *
 * The positive control, in the same test: the same search finds the token in the memory of a
 * member that typed it (also a child of the test), so the test cannot pass by reading nothing. A
 * memory that cannot be read fails the test with the reason; it is never skipped.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ChatEvent } from "../../lib/chat/chat_events.ts";
import { ChatFixture, type ChatProcess, isMessage } from "../_helpers/chat.ts";
import { randomBytes } from "../_helpers/peers.ts";
import { searchProcessMemory } from "../_helpers/process_memory.ts";
import { sameMembers, shownMembers, writeAdmitList } from "../_helpers/room_cli.ts";

/** `text` in UTF-16LE. */
function utf16le(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "utf16le"));
}

/** The command line of process `pid`, as the kernel has it. */
async function commandLine(pid: number): Promise<string[]> {
  // /proc/PID/cmdline needs --allow-all in Deno; `cat` reads it for us.
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/cmdline`] }).output();
  ok(output.success, `cannot read /proc/${pid}/cmdline`);
  return new TextDecoder().decode(output.stdout).split("\0").filter((part) => part !== "");
}

Deno.test({
  name:
    "no plaintext of a chat line, a /msg, a file name or a file's bytes ever exists in the relay's memory or log",
  ignore: Deno.build.os !== "linux", // /proc/PID/mem is Linux's
  async fn() {
    await using chat = await ChatFixture.create(["relay", "ann", "ben", "cid"]);
    const fp = (name: string) => chat.fingerprint(name);
    const token = `plx${Buffer.from(randomBytes(16)).toString("hex")}`;
    const line = `the line ${token} for everyone`;
    const whisper = `the whisper ${token} for ben`;
    const fileName = `${token}.bin`;
    const content = randomBytes(256 * 1024);
    await Deno.mkdir(`${chat.root}/out`);
    await Deno.mkdir(`${chat.root}/inbox`);
    await Deno.writeFile(`${chat.root}/out/${fileName}`, content);

    const relay = await chat.listen("relay", ["--relay-only"]);
    // The relay is the deno process the test spawned (no wrapper in between).
    const argv = await commandLine(relay.child.pid);
    ok(argv.includes("--relay-only") && argv.includes("listen"), argv.join(" "));

    const admit = await writeAdmitList(`${chat.root}/admit`, [
      { fingerprint: fp("ben"), name: "ben" },
      { fingerprint: fp("cid"), name: "cid" },
    ]);
    const ann = await chat.join("ann", relay.port, ["--admit", admit]);
    const ben = await chat.join("ben", relay.port, ["--accept-files", `${chat.root}/inbox`]);
    const cid = await chat.join("cid", relay.port);
    const all = [ann, ben, cid];
    const everyone = ["ann", "ben", "cid"].map(fp);
    await Promise.all(
      all.map((p) =>
        p.out.until((events) => sameMembers(shownMembers(events), everyone), `${p.label}: 3`)
      ),
    );

    // The token through the relay: a line to all, a private message, a file's name and bytes.
    await ann.send(line, `/msg ben ${whisper}`, `/send ${chat.root}/out/${fileName} ben`);
    const done = (direction: "send" | "receive") => (e: ChatEvent) =>
      e.type === "transfer" && e.direction === direction && e.state === "done";
    await Promise.all([
      ben.out.waitFor((e) => isMessage(e, fp("ann"), line), "ben hears the line"),
      cid.out.waitFor((e) => isMessage(e, fp("ann"), line), "cid hears the line"),
      ben.out.waitFor((e) => isMessage(e, fp("ann"), whisper, "private"), "ben gets the /msg"),
      ben.out.waitFor(done("receive"), "ben receives the file"),
      ann.out.waitFor(done("send"), "ann's side of the file is done"),
    ]);
    const received = await Deno.readFile(`${chat.root}/inbox/${fileName}`);
    ok(Buffer.from(received).equals(Buffer.from(content)), "the file arrived altered");

    // The relay still runs, with everything it ever saw of the token in its memory.
    const patterns: Record<string, Uint8Array> = {
      "the token, UTF-8": new TextEncoder().encode(token),
      "the token, UTF-16LE": utf16le(token),
    };
    // One piece in each Data slice of 65484 bytes (14.4), in case one slice alone were kept.
    for (let at = 0; at + 32 <= content.length; at += 64 * 1024) {
      patterns[`the file's bytes at ${at}`] = content.subarray(at, at + 32);
    }
    const inRelay = await searchProcessMemory(relay.child.pid, patterns);
    // Positive control: the same search, on the members (ann typed the token, ben and cid were
    // shown it), finds it in at least one of them.
    const controls: string[] = [];
    for (const member of [ann, ben, cid]) {
      const search = await searchProcessMemory(member.child.pid, patterns);
      controls.push(`${member.label}: ${JSON.stringify(search)}`);
      if (Object.keys(search.found).some((name) => name.startsWith("the token"))) break;
      ok(member !== cid, `the search finds the token in no member:\n${controls.join("\n")}`);
    }
    ok(inRelay.bytesRead > 16 * 1024 * 1024, `read only ${inRelay.bytesRead} bytes of the relay`);
    deepStrictEqual(inRelay.found, {}, `plaintext in the relay's memory (${inRelay.bytesRead} B)`);

    // And its log, after it has stopped.
    for (const process of [ben, cid, ann]) {
      await process.closeStdin();
      strictEqual((await process.finished()).code, 0, process.label);
    }
    relay.kill("SIGTERM");
    const { code, stderr } = await relay.finished();
    strictEqual(code, 0, stderr);
    ok(stderr.includes("joined and creates the group"), `the relay logged nothing?\n${stderr}`);
    ok(!stderr.includes(token), `the token in the relay's log:\n${stderr}`);
    for (const piece of Object.values(patterns).slice(2)) {
      const bytes = Buffer.from(piece);
      for (const form of [bytes.toString("hex"), bytes.toString("base64")]) {
        ok(!stderr.includes(form), `the file's bytes in the relay's log:\n${stderr}`);
      }
    }
    for (const process of all) assertClean(process);
  },
});

/** No `error` or `rejected` event, and every stdout line was JSON. */
function assertClean(process: ChatProcess): void {
  deepStrictEqual(process.out.invalid, [], `${process.label}: stdout lines that are not JSON`);
  const bad = process.out.events.filter((e) => e.type === "error" || e.type === "rejected");
  deepStrictEqual(bad, [], `${process.label}: error or rejected events`);
}
