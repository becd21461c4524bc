/**
 * The terminal chat through a real pseudo-terminal: `securechat listen` runs inside a tmux pane
 * (its stdin and stdout are the pty, so it picks the terminal chat), and a `--json` dialer talks
 * to it as a normal subprocess. The test types into the pane with `tmux send-keys` and reads the
 * screen with `tmux capture-pane`, polling with a deadline instead of sleeping.
 *
 * Covered: a half-typed line survives incoming messages (they are printed above the prompt,
 * which is redrawn with the line and the cursor after it); Enter sends it, verified; /who lists
 * both members with fingerprints; a refused dialer is reported on the host's terminal; /quit ends
 * the host, the room closes for the dialer, and the terminal is back in canonical mode with echo.
 *
 * Needs tmux: when it is missing the test tries `apt-get install -y tmux` (as root only), else it
 * is skipped with a warning.
 */

import { deepStrictEqual, doesNotMatch, match, ok, strictEqual } from "node:assert/strict";
import { ChatFixture, isMessage } from "../_helpers/chat.ts";
import { cliCommand, ROOT_DIR } from "../_helpers/cli.ts";

/** How long the pane may take to show something before the test fails with the screen. */
const PANE_WAIT_MS = 20_000;

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  try {
    const output = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
      .output();
    const decoder = new TextDecoder();
    return {
      ok: output.success,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } catch (error) {
    return { ok: false, stdout: "", stderr: String(error) };
  }
}

/** The tmux binary, installing it with apt-get when we are root and it is missing. */
async function findTmux(): Promise<string | undefined> {
  for (const candidate of ["/usr/bin/tmux", "tmux"]) {
    if ((await run(candidate, ["-V"])).ok) return candidate;
  }
  const uid = await run("id", ["-u"]);
  if (uid.ok && uid.stdout.trim() === "0") {
    const install = await run("apt-get", ["install", "-y", "tmux"], {
      DEBIAN_FRONTEND: "noninteractive",
    });
    if (install.ok && (await run("tmux", ["-V"])).ok) return "tmux";
  }
  return undefined;
}

// tmux and POSIX pseudo-terminals do not exist on Windows: the raw-mode chat is not tested there.
const WINDOWS = Deno.build.os === "windows";
const TMUX = WINDOWS ? undefined : await findTmux();
if (TMUX === undefined) {
  // deno-lint-ignore no-console
  console.warn(
    WINDOWS
      ? "terminal_chat_test.ts: SKIPPED: no tmux and no POSIX pseudo-terminal on Windows"
      : "terminal_chat_test.ts: SKIPPED: tmux is not installed (and could not be installed); " +
        "install tmux to test the terminal chat through a pseudo-terminal",
  );
}

/** Single-quotes a word for the shell. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** One tmux pane on a private server (`tmux -L`), with a bash in it. */
class TmuxPane implements AsyncDisposable {
  readonly #socket = `securechat-test-${crypto.randomUUID().slice(0, 8)}`;
  readonly #target = "chat";

  /** Starts the server and a session running `bash --norc --noprofile` with `env`. */
  async start(columns: number, rows: number, env: Record<string, string>): Promise<void> {
    const assignments = Object.entries(env).map(([name, value]) => `${name}=${shellQuote(value)}`);
    const shell = `env ${assignments.join(" ")} bash --norc --noprofile`;
    await this.tmux(
      ["new-session", "-d", "-s", this.#target, "-x", `${columns}`, "-y", `${rows}`, shell],
    );
  }

  /** Runs a tmux command on our server; throws when it fails. */
  async tmux(args: string[]): Promise<string> {
    const result = await run(TMUX!, ["-L", this.#socket, ...args]);
    if (!result.ok) throw new Error(`tmux ${args.join(" ")} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** Types `text` literally (no Enter). */
  async type(text: string): Promise<void> {
    await this.tmux(["send-keys", "-t", this.#target, "-l", text]);
  }

  /** Presses Enter. */
  async enter(): Promise<void> {
    await this.tmux(["send-keys", "-t", this.#target, "Enter"]);
  }

  /** The visible screen (with `history`, the scrollback too), wrapped lines joined. */
  async capture(history = false): Promise<string> {
    return await this.tmux([
      "capture-pane",
      "-p",
      "-J",
      ...(history ? ["-S", "-"] : []),
      "-t",
      this.#target,
    ]);
  }

  /** Polls the screen until `condition` holds; fails after a deadline, showing the screen. */
  async until(
    condition: (screen: string) => boolean,
    what: string,
    history = false,
  ): Promise<string> {
    const deadline = Date.now() + PANE_WAIT_MS;
    while (true) {
      const screen = await this.capture(history);
      if (condition(screen)) return screen;
      if (Date.now() > deadline) {
        throw new Error(`${what}: not on the screen within ${PANE_WAIT_MS} ms; screen:\n${screen}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The pane's pseudo-terminal device, e.g. /dev/pts/3. */
  async tty(): Promise<string> {
    return (await this.tmux(["display-message", "-p", "-t", this.#target, "#{pane_tty}"])).trim();
  }

  /** The cursor's column, 0-based. */
  async cursorColumn(): Promise<number> {
    return Number(await this.tmux(["display-message", "-p", "-t", this.#target, "#{cursor_x}"]));
  }

  /** Kills the private server and everything running in it, and removes its socket file. */
  async [Symbol.asyncDispose](): Promise<void> {
    const path = await run(TMUX!, ["-L", this.#socket, "display-message", "-p", "#{socket_path}"]);
    await run(TMUX!, ["-L", this.#socket, "kill-server"]);
    // tmux 3.3 leaves the socket file behind after kill-server.
    if (path.ok && path.stdout.trim() !== "") {
      await Deno.remove(path.stdout.trim()).catch(() => {});
    }
  }
}

/** Non-empty lines of a screen, without trailing spaces. */
function lines(screen: string): string[] {
  return screen.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "");
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** Terminal flags as `stty -a` prints them, e.g. "icanon" or "-icanon". */
function sttyFlags(text: string): Set<string> {
  return new Set(text.split(/[\s;]+/).filter((word) => /^-?[a-z0-9]+$/.test(word)));
}

Deno.test({
  name:
    "terminal chat in a pty: a half-typed line survives incoming messages, /who, /quit restores the terminal",
  ignore: TMUX === undefined,
  async fn(t) {
    await using chat = await ChatFixture.create(["alice", "bob", "carol"]);
    const [alice, bob] = [chat.fingerprint("alice"), chat.fingerprint("bob")];
    await using pane = new TmuxPane();
    await pane.start(100, 30, { SECURECHAT_HOME: chat.peer("bob").home, LANG: "C.UTF-8" });

    // The host, started from the shell so the shell (and its terminal) outlives it.
    const { cmd, args } = cliCommand(["listen", "--port", "0", "--name", "bob"]);
    await pane.type(
      `cd ${shellQuote(ROOT_DIR)} && ${[cmd, ...args].map(shellQuote).join(" ")}; ` +
        `echo "EXIT=$?"`,
    );
    await pane.enter();
    const started = await pane.until(
      (screen) => /listening on 127\.0\.0\.1:\d+/.test(screen) && lines(screen).at(-1) === "bob>",
      "the host's prompt",
    );
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(started)![1]);
    // The chat put the terminal in raw mode.
    const raw = sttyFlags((await run("stty", ["-a", "-F", await pane.tty()])).stdout);
    ok(raw.has("-icanon") && raw.has("-echo"), `raw mode during the chat: ${[...raw]}`);

    const dialer = await chat.join("alice", port);
    await pane.until((screen) => screen.includes(`alice joined (${alice})`), "alice's join");

    await t.step("incoming messages print above a half-typed line, which Enter sends", async () => {
      await pane.type("half typed");
      await pane.until((screen) => lines(screen).at(-1) === "bob> half typed", "the typed text");
      const incoming = ["msg one", "msg two", "msg three"];
      const shown = incoming.map((text) => new RegExp(`^\\d\\d:\\d\\d alice \\S+: ${text}$`));
      // One at a time, so a failure names the line that did not show (bursts: chat_test.ts).
      for (const [i, text] of incoming.entries()) {
        await dialer.send(text);
        await pane.until((s) => lines(s).some((l) => shown[i]!.test(l)), `"${text}" shown`);
      }
      const screen = await pane.until(
        (s) =>
          shown.every((line) => lines(s).some((l) => line.test(l))) &&
          lines(s).at(-1) === "bob> half typed",
        "alice's messages above the prompt with the half-typed line",
      );
      const rows = lines(screen);
      const at = shown.map((line) => rows.findIndex((row) => line.test(row)));
      deepStrictEqual(at, [...at].sort((x, y) => x - y), "alice's messages in order");
      for (const line of shown) strictEqual(rows.filter((row) => line.test(row)).length, 1);
      ok(at.every((index) => index < rows.length - 1), "the messages are above the prompt");
      doesNotMatch(screen, /rejected|error/);
      strictEqual(await pane.cursorColumn(), "bob> half typed".length, "cursor after the text");

      await pane.enter();
      const sent = await dialer.out.waitFor(
        (e) => isMessage(e, bob, "half typed", "text"),
        "alice receives the half-typed line",
      );
      strictEqual(sent.verified, true);
      strictEqual(sent.from.name, "bob");
      await pane.until((s) => lines(s).at(-1) === "bob>", "an empty prompt after Enter");
    });

    await t.step("/who lists both members with their fingerprints", async () => {
      await pane.type("/who");
      await pane.enter();
      const screen = await pane.until(
        (s) => s.includes("2 members in the room:") && s.includes(`alice ${alice}`),
        "the /who roster",
      );
      match(screen, new RegExp(`^ +bob \\(you, host, admin\\) ${escape(bob)}$`, "m"));
      // No connection code per member: the host's link to its relay is in-process, and members
      // compare safety numbers (/verify NAME) instead (docs/PROTOCOL.md 13.7).
      match(screen, new RegExp(`^ +alice ${escape(alice)}$`, "m"));
    });

    // Regression: refusals once never reached the host's terminal. lib/cli/listen.ts gave the
    // relay no log in terminal mode ("the terminal belongs to the chat UI") and dropped the
    // handshake's refusals there too, so the person at the terminal was never told that someone
    // was turned away (a mode mismatch, an unauthorized key, a full room). They are notices now.
    await t.step({
      name: "a --pipe dialer refused by the room is reported on the host's terminal",
      async fn() {
        const piped = chat.dial("carol", port, ["--pipe"]);
        await piped.closeStdin();
        const result = await piped.finished();
        strictEqual(result.code, 5, result.stderr);
        const carol = chat.fingerprint("carol");
        await pane.until(
          (s) => new RegExp(`${escape(carol)} refused: .*pipe`).test(s),
          "the refusal on the host's terminal",
        );
      },
    });

    await t.step("/quit ends the host, closes the room and restores the terminal", async () => {
      await pane.type("/quit");
      await pane.enter();
      const ended = await pane.until((s) => /^EXIT=\d+$/m.test(s), "the host's exit", true);
      match(ended, /^EXIT=0$/m);
      match(ended, /chat closed: we left the room/);

      const closed = await dialer.out.waitFor((e) => e.type === "closed", "alice's closed event");
      strictEqual(closed.type === "closed" && closed.reason, "the relay closed the room");
      ok(
        dialer.out.events.some((e) =>
          e.type === "notice" && e.text === "the relay says: the host closed the room"
        ),
        JSON.stringify(dialer.out.events),
      );
      const result = await dialer.finished();
      strictEqual(result.code, 0, result.stderr);
      deepStrictEqual(dialer.out.invalid, []);

      // The same pane, after the host: the shell's terminal is canonical with echo again. (Deno
      // 2.9.6 also resets a raw stdin when the process exits, as `deno eval
      // 'Deno.stdin.setRaw(true)'` shows, so this checks the outcome the user sees rather than
      // TerminalScreen.stop() alone; the raw-mode check above shows the chat did switch modes.)
      await pane.type(`stty -a; echo "STTY=$?"`);
      await pane.enter();
      const screen = await pane.until((s) => /^STTY=0$/m.test(s), "stty's output", true);
      const output = screen.slice(screen.lastIndexOf("EXIT=0"));
      const flags = sttyFlags(output);
      ok(flags.has("icanon") && flags.has("echo"), output);
      doesNotMatch(output, /(^|\s)-icanon(\s|$)/);
      doesNotMatch(output, /(^|\s)-echo(\s|$)/);
    });
  },
});
