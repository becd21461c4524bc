import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { CHAT_HELP } from "../../lib/terminal/chat_commands.ts";
import type { ChatEvent, MemberInfo } from "../../lib/chat/chat_events.ts";
import {
  displayName,
  formatTime,
  MAX_NAME_DISPLAY,
  renderEvent,
  renderHelp,
  sanitize,
  type TransferEvent,
  VERIFIED_MARK,
} from "../../lib/terminal/chat_view.ts";
import { alice, bob, carol, MIB, SGR, TIME, transferWithRate } from "../_helpers/chat_fixtures.ts";

const plain = { colors: false, timeZone: "UTC" };
const colored = { colors: true, timeZone: "UTC" };

function message(
  from: MemberInfo,
  text: string,
  kind: "text" | "action" | "private" = "text",
  to?: MemberInfo,
): ChatEvent {
  return { type: "message", time: TIME, from, text, kind, verified: true, ...(to ? { to } : {}) };
}

/** Every event type, with its expected lines without and with colours. */
const CASES: [string, ChatEvent, string[], string[]][] = [
  [
    "text message",
    message(bob, "hi"),
    ["09:05 bob ✓: hi"],
    ["\x1b[2m09:05\x1b[0m \x1b[1mbob\x1b[0m \x1b[32m✓\x1b[0m: hi"],
  ],
  [
    "our own text message",
    message(alice, "hello"),
    ["09:05 alice ✓: hello"],
    ["\x1b[2m09:05\x1b[0m \x1b[1;36malice\x1b[0m \x1b[32m✓\x1b[0m: hello"],
  ],
  [
    "/me action",
    message(bob, "waves", "action"),
    ["09:05 * bob ✓ waves"],
    ["\x1b[2m09:05\x1b[0m * \x1b[1mbob\x1b[0m \x1b[32m✓\x1b[0m waves"],
  ],
  [
    "private message to us",
    message(bob, "psst", "private", alice),
    ["09:05 [private] bob ✓ -> you: psst"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[35m[private]\x1b[0m \x1b[1mbob\x1b[0m \x1b[32m✓\x1b[0m -> " +
      "\x1b[1;36myou\x1b[0m: psst",
    ],
  ],
  [
    "private message from us",
    message(alice, "psst", "private", carol),
    ["09:05 [private] you -> carol: psst"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[35m[private]\x1b[0m \x1b[1;36myou\x1b[0m -> \x1b[1mcarol\x1b[0m: psst",
    ],
  ],
  [
    "join",
    { type: "join", time: TIME, member: carol },
    ["09:05 -- carol joined (SHA256:ccc)"],
    ["\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m \x1b[1mcarol\x1b[0m joined (SHA256:ccc)"],
  ],
  [
    "join, added by an admin",
    { type: "join", time: TIME, member: carol, by: bob },
    ["09:05 -- carol joined (SHA256:ccc), added by bob"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m \x1b[1mcarol\x1b[0m joined (SHA256:ccc), " +
      "added by \x1b[1mbob\x1b[0m",
    ],
  ],
  [
    "leave",
    { type: "leave", time: TIME, member: carol, reason: "left the room" },
    ["09:05 -- carol left (SHA256:ccc): left the room"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m \x1b[1mcarol\x1b[0m left (SHA256:ccc): " +
      "left the room",
    ],
  ],
  [
    "leave, removed by an admin",
    { type: "leave", time: TIME, member: carol, reason: "removed by bob", by: bob },
    ["09:05 -- carol left (SHA256:ccc), removed by bob"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m \x1b[1mcarol\x1b[0m left (SHA256:ccc), " +
      "removed by \x1b[1mbob\x1b[0m",
    ],
  ],
  [
    "knock, and we are an admin",
    { type: "knock", time: TIME, member: carol, canAdmit: true },
    ["09:05 -- carol (SHA256:ccc) asks to join: type /admit carol"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m \x1b[1mcarol\x1b[0m (SHA256:ccc) asks to join: " +
      "type /admit carol",
    ],
  ],
  [
    "knock, and we are no admin",
    { type: "knock", time: TIME, member: carol, canAdmit: false },
    ["09:05 -- carol (SHA256:ccc) asks to join; an admin can /admit them"],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m \x1b[1mcarol\x1b[0m (SHA256:ccc) asks to join; " +
      "an admin can /admit them",
    ],
  ],
  [
    "roster (/who)",
    { type: "roster", time: TIME, members: [alice, { ...bob, admin: true }, carol] },
    [
      "09:05 -- 3 members in the room:",
      "         alice (you) SHA256:aaa",
      "         bob (host, admin) SHA256:bbb",
      "         carol SHA256:ccc",
    ],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m 3 members in the room:",
      "         \x1b[1;36malice\x1b[0m (you) SHA256:aaa",
      "         \x1b[1mbob\x1b[0m (host, admin) SHA256:bbb",
      "         \x1b[1mcarol\x1b[0m SHA256:ccc",
    ],
  ],
  [
    "verification (/verify) before we are in the group",
    { type: "verification", time: TIME, code: "0421 9973 1205", peer: bob },
    [
      "09:05 -- verification code with the relay: 0421 9973 1205",
      "09:05 -- relay: bob (host) SHA256:bbb",
      "09:05 -- compare this code with bob over another channel (voice, in person): " +
      "a different code means someone may be intercepting your connection to the relay",
    ],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m verification code with the relay: " +
      "\x1b[1m0421 9973 1205\x1b[0m",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m relay: \x1b[1mbob\x1b[0m (host) SHA256:bbb",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m compare this code with bob over another channel " +
      "(voice, in person): a different code means someone may be intercepting your connection " +
      "to the relay",
    ],
  ],
  [
    "verification at the host, which runs the relay itself (no connection code to compare)",
    {
      type: "verification",
      time: TIME,
      code: "",
      peer: { ...bob, self: true },
      epochCode: "5550 1234 9876",
    },
    [
      "09:05 -- you run this room's relay",
      "09:05 -- room epoch code: 5550 1234 9876",
      "09:05 -- every member should see this same epoch code: compare it with the others out of " +
      "band (voice, in person); a different code means the relay split the room",
    ],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m you run this room's relay",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m room epoch code: \x1b[1m5550 1234 9876\x1b[0m",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m every member should see this same epoch code: " +
      "compare it with the others out of band (voice, in person); a different code means the " +
      "relay split the room",
    ],
  ],
  [
    "verification (/verify NAME) with the epoch code and a safety number",
    {
      type: "verification",
      time: TIME,
      code: "0421 9973 1205",
      peer: bob,
      epochCode: "5550 1234 9876",
      safety: { member: carol, number: "1111 2222 3333" },
    },
    [
      "09:05 -- verification code with the relay: 0421 9973 1205",
      "09:05 -- relay: bob (host) SHA256:bbb",
      "09:05 -- compare this code with bob over another channel (voice, in person): " +
      "a different code means someone may be intercepting your connection to the relay",
      "09:05 -- room epoch code: 5550 1234 9876",
      "09:05 -- every member should see this same epoch code: compare it with the others out of " +
      "band (voice, in person); a different code means the relay split the room",
      "09:05 -- safety number with carol (SHA256:ccc): 1111 2222 3333",
      "09:05 -- compare it with carol in person or by voice: a different number means one of " +
      "you sees another key for the other",
    ],
    [
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m verification code with the relay: " +
      "\x1b[1m0421 9973 1205\x1b[0m",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m relay: \x1b[1mbob\x1b[0m (host) SHA256:bbb",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m compare this code with bob over another channel " +
      "(voice, in person): a different code means someone may be intercepting your connection " +
      "to the relay",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m room epoch code: \x1b[1m5550 1234 9876\x1b[0m",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m every member should see this same epoch code: " +
      "compare it with the others out of band (voice, in person); a different code means the " +
      "relay split the room",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m safety number with \x1b[1mcarol\x1b[0m " +
      "(SHA256:ccc): \x1b[1m1111 2222 3333\x1b[0m",
      "\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m compare it with carol in person or by voice: " +
      "a different number means one of you sees another key for the other",
    ],
  ],
  [
    "rejected",
    { type: "rejected", time: TIME, claimedAuthor: "bob", reason: "bad signature" },
    ['09:05 ! message claiming to be from "bob" was rejected: bad signature'],
    [
      "\x1b[2m09:05\x1b[0m \x1b[1;31m! message claiming to be from " +
      '"bob" was rejected: bad signature\x1b[0m',
    ],
  ],
  [
    "notice",
    { type: "notice", time: TIME, text: "relay ready" },
    ["09:05 -- relay ready"],
    ["\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m relay ready"],
  ],
  [
    "error",
    { type: "error", time: TIME, code: "unknown_member", message: 'no member called "zed"' },
    ['09:05 ! error: no member called "zed"'],
    ['\x1b[2m09:05\x1b[0m \x1b[31m! error: no member called "zed"\x1b[0m'],
  ],
  [
    "closed",
    { type: "closed", time: TIME, reason: "you left" },
    ["09:05 -- chat closed: you left"],
    ["\x1b[2m09:05\x1b[0m \x1b[33m--\x1b[0m chat closed: you left"],
  ],
];

Deno.test("`renderEvent()` renders every event type exactly, without colours", () => {
  for (const [name, event, expected] of CASES) eql(renderEvent(event, plain), expected, name);
});

Deno.test("`renderEvent()` renders every event type exactly, with colours", () => {
  for (const [name, event, , expected] of CASES) eql(renderEvent(event, colored), expected, name);
});

Deno.test("`renderEvent()` without colours writes no escape sequence at all", () => {
  for (const [name, event] of CASES) {
    for (const line of renderEvent(event, plain)) ok(!line.includes("\x1b"), name);
  }
});

Deno.test("`renderEvent()` marks every admin in the roster, ourselves included", () => {
  eql(
    renderEvent({
      type: "roster",
      time: TIME,
      members: [{ ...alice, admin: true }, { ...carol, admin: true }, { ...bob, admin: false }],
    }, plain),
    [
      "09:05 -- 3 members in the room:",
      "         alice (you, admin) SHA256:aaa",
      "         carol (admin) SHA256:ccc",
      "         bob (host) SHA256:bbb",
    ],
  );
});

Deno.test("`renderEvent()` shows a removal's reason when it says more than who removed", () => {
  eql(
    renderEvent({
      type: "leave",
      time: TIME,
      member: carol,
      reason: "replaced by a new connection",
      by: bob,
    }, plain),
    ["09:05 -- carol left (SHA256:ccc), removed by bob: replaced by a new connection"],
  );
  eql(
    renderEvent({ type: "leave", time: TIME, member: carol, reason: "connection lost" }, plain),
    ["09:05 -- carol left (SHA256:ccc): connection lost"],
  );
});

Deno.test("`renderEvent()` suggests /admit with the fingerprint when the name cannot be typed back", () => {
  const knock = (name: string): ChatEvent => ({
    type: "knock",
    time: TIME,
    member: { name, fingerprint: "SHA256:ddd" },
    canAdmit: true,
  });
  const cases: [string, string, string][] = [
    ["a plain name", "dave", "09:05 -- dave (SHA256:ddd) asks to join: type /admit dave"],
    [
      "a name with a space inside",
      "dave smith",
      "09:05 -- dave smith (SHA256:ddd) asks to join: type /admit dave smith",
    ],
    [
      "a name with a control character",
      "da\x1bve",
      "09:05 -- dave (SHA256:ddd) asks to join: type /admit SHA256:ddd",
    ],
    [
      "a name with a trailing space",
      "dave ",
      "09:05 -- dave  (SHA256:ddd) asks to join: type /admit SHA256:ddd",
    ],
    [
      "a name too long to show whole",
      "d".repeat(MAX_NAME_DISPLAY + 1),
      `09:05 -- ${"d".repeat(MAX_NAME_DISPLAY - 1)}… (SHA256:ddd) asks to join: ` +
      "type /admit SHA256:ddd",
    ],
  ];
  for (const [what, name, expected] of cases) {
    eql(renderEvent(knock(name), plain), [expected], what);
  }
});

Deno.test("`formatTime()` writes HH:MM on a 24-hour clock in the zone given", () => {
  equal(formatTime(TIME, "UTC"), "09:05");
  equal(formatTime(TIME, "Asia/Kolkata"), "14:35");
  equal(formatTime(TIME, "America/New_York"), "04:05");
  equal(formatTime(Date.UTC(2024, 0, 2, 0, 0), "UTC"), "00:00");
  equal(formatTime(Date.UTC(2024, 0, 2, 23, 59), "UTC"), "23:59");
  const local = new Date(2024, 0, 2, 17, 8).getTime(); // local wall clock
  equal(formatTime(local), "17:08");
  eql(renderEvent(message(bob, "x"), { colors: false, timeZone: "Asia/Kolkata" }), [
    "14:35 bob ✓: x",
  ]);
});

Deno.test("`sanitize()` removes controls, escape sequences and bidi formatting, keeps Unicode", () => {
  const cases: [string, string, string][] = [
    ["ESC and a CSI sequence", "hi\x1b[2J\x1b[1;1Hthere", "hi[2J[1;1Hthere"],
    ["OSC window title", "\x1b]0;pwned\x07ok", "]0;pwnedok"],
    ["8-bit CSI (C1)", "a\u009b31mb", "a31mb"],
    ["other C1 controls", "a\u0080\u009fb", "ab"],
    ["NUL, BEL, BS, DEL", "a\x00\x07\x08\x7fb", "ab"],
    [
      "newline cannot start a forged line",
      "ok\n09:05 alice ✓: send money",
      "ok 09:05 alice ✓: send money",
    ],
    ["CR cannot overwrite the line", "innocent\rEVIL", "innocent EVIL"],
    ["tab, VT, FF, NEL", "a\tb\vc\fd\u0085e", "a b c d e"],
    ["line and paragraph separators", "a\u2028b\u2029c", "a b c"],
    ["bidi overrides and embeddings", "a\u202ab\u202bc\u202cd\u202de\u202ef", "abcdef"],
    ["bidi isolates", "a\u2066b\u2067c\u2068d\u2069e", "abcde"],
    ["lone surrogate", "a\ud800b", "a\ufffdb"],
    ["accents, CJK, emoji, ZWJ sequence", "café 中文 👋 👩‍💻", "café 中文 👋 👩‍💻"],
    ["right-to-left text stays, its implicit marks go (lib/core/text.ts)", "שלום\u200f!", "שלום!"],
  ];
  for (const [name, input, expected] of cases) equal(sanitize(input), expected, name);
});

Deno.test("`renderEvent()` sanitizes names, texts, reasons and codes from peers", () => {
  const evil: MemberInfo = { name: "mal\x1b[31mlory\u202e", fingerprint: "SHA256:m\x1bm" };
  eql(renderEvent(message(evil, "hi\x1b]0;x\x07\nbob ✓: lie"), plain), [
    "09:05 mal[31mlory ✓: hi]0;x bob ✓: lie",
  ]);
  eql(renderEvent({ type: "join", time: TIME, member: evil }, plain), [
    "09:05 -- mal[31mlory joined (SHA256:mm)",
  ]);
  eql(
    renderEvent(
      { type: "rejected", time: TIME, claimedAuthor: "b\x1bob\n", reason: "r\x07" },
      plain,
    ),
    ['09:05 ! message claiming to be from "bob " was rejected: r'],
  );
  eql(renderEvent({ type: "join", time: TIME, member: carol, by: evil }, plain), [
    "09:05 -- carol joined (SHA256:ccc), added by mal[31mlory",
  ]);
  eql(
    renderEvent(
      { type: "leave", time: TIME, member: evil, reason: "gone\x1b[2J\n", by: evil },
      plain,
    ),
    ["09:05 -- mal[31mlory left (SHA256:mm), removed by mal[31mlory: gone[2J "],
  );
  eql(renderEvent({ type: "knock", time: TIME, member: evil, canAdmit: true }, plain), [
    "09:05 -- mal[31mlory (SHA256:mm) asks to join: type /admit SHA256:mm",
  ]);
  const verification: ChatEvent = {
    type: "verification",
    time: TIME,
    code: "1\x1b2",
    peer: evil,
    epochCode: "3\x1b]4",
    safety: { member: evil, number: "5\u202e6" },
  };
  const lines = renderEvent(verification, plain);
  eql(lines.slice(0, 2), [
    "09:05 -- verification code with the relay: 12",
    "09:05 -- relay: mal[31mlory SHA256:mm",
  ]);
  equal(lines[3], "09:05 -- room epoch code: 3]4");
  equal(lines[5], "09:05 -- safety number with mal[31mlory (SHA256:mm): 56");
  for (const line of renderEvent(verification, colored)) {
    ok(!line.replaceAll(SGR, "").includes("\x1b"), "only our own SGR sequences");
  }
  const [colouredLine] = renderEvent(message(evil, "\x1b[0m"), colored);
  equal(
    colouredLine!.replaceAll(SGR, ""),
    "09:05 mal[31mlory ✓: [0m",
    "with colours, only our own SGR sequences remain",
  );
});

Deno.test("`displayName()` cuts long names with an ellipsis", () => {
  equal(displayName("a".repeat(MAX_NAME_DISPLAY)), "a".repeat(MAX_NAME_DISPLAY));
  equal(displayName("a".repeat(MAX_NAME_DISPLAY + 1)), "a".repeat(MAX_NAME_DISPLAY - 1) + "…");
  equal(displayName("🔑".repeat(10), 4), "🔑🔑🔑…");
  equal(displayName("x\x1by", 4), "xy");
  const long = message({ name: "n".repeat(100), fingerprint: "f" }, "t");
  equal(
    renderEvent(long, plain)[0],
    `09:05 ${"n".repeat(MAX_NAME_DISPLAY - 1)}… ${VERIFIED_MARK}: t`,
  );
});

Deno.test("`renderHelp()` lists CHAT_HELP under a heading", () => {
  eql(renderHelp(plain), ["commands:", ...CHAT_HELP.map((line) => `  ${line}`)]);
  eql(renderHelp(colored)[0], "\x1b[1mcommands:\x1b[0m");
});

Deno.test("`renderEvent()` prints offers and every transfer state on lines of their own", () => {
  const offer: ChatEvent = {
    type: "offer",
    time: TIME,
    id: "a1b2c3d4",
    from: bob,
    name: "photos",
    files: 3,
    size: 4 * MIB,
    folder: "/home/bob/Downloads/securechat",
    hidden: "refused",
  };
  eql(renderEvent(offer, plain), [
    '09:05 -- bob ✓ offers "photos" (3 files, 4.0 MiB)',
    '09:05 -- saved into "/home/bob/Downloads/securechat" as "photos"; ' +
    "hidden (dot) files refused; no file is made executable",
    "09:05 -- type /accept a1b2c3d4 or /reject a1b2c3d4",
  ]);
  match(renderEvent({ ...offer, hidden: "allowed" }, plain)[1]!, /hidden \(dot\) files allowed/);
  match(renderEvent({ ...offer, saveAs: "photos (1)" }, plain)[1]!, / as "photos \(1\)"; /);
  const cases: [string, TransferEvent, string][] = [
    [
      "waiting",
      transferWithRate("a.bin", 0, { state: "waiting" }),
      '09:05 -- "a.bin" to bob: waiting for them to accept (4.0 MiB)',
    ],
    [
      "sending",
      transferWithRate("a.bin", 1.5 * MIB),
      '09:05 -- "a.bin" to bob: [########............] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03',
    ],
    [
      "done",
      transferWithRate("a.bin", 4 * MIB, {
        direction: "receive",
        state: "done",
        path: "/in/a.bin",
      }),
      '09:05 -- "a.bin" from bob: done, 4.0 MiB verified saved to /in/a.bin',
    ],
    [
      "cancelled",
      transferWithRate("a.bin", MIB, { state: "cancelled", reason: "cancelled by the other side" }),
      '09:05 -- "a.bin" to bob: cancelled: cancelled by the other side',
    ],
  ];
  for (const [name, event, expected] of cases) eql(renderEvent(event, plain), [expected], name);
});
