import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import type { MemberInfo } from "../lib/chat_events.ts";
import type { TransferEvent } from "../lib/chat_view.ts";
import { charWidth } from "../lib/line_editor.ts";
import { MAX_STATUS_TRANSFERS, renderTransferStatus } from "../lib/transfer_view.ts";

const bob: MemberInfo = { name: "bob", fingerprint: "SHA256:bbb", host: true };
const carol: MemberInfo = { name: "carol", fingerprint: "SHA256:ccc" };
/** 2024-01-02 09:05 UTC. */
const TIME = Date.UTC(2024, 0, 2, 9, 5);
// deno-lint-ignore no-control-regex
const SGR = /\x1b\[[0-9;]*m/g;

function transfer(
  name: string,
  bytes: number,
  extra: Partial<TransferEvent> = {},
): TransferEvent {
  return {
    type: "transfer",
    time: TIME,
    id: "a1b2c3d4",
    direction: "send",
    peer: bob,
    name,
    state: "sending",
    bytes,
    total: 4 * MIB,
    rate: 800 * KIB,
    eta: 3,
    ...extra,
  };
}

const KIB = 1024;
const MIB = 1024 * KIB;

/** Display width of a rendered line: SGR codes take no columns. */
function columnsOf(line: string): number {
  return [...line.replaceAll(SGR, "")].reduce((sum, char) => sum + charWidth(char), 0);
}

Deno.test("`renderTransferStatus()` renders one line per transfer: direction, name, peer, bar, percent, bytes, rate, ETA", () => {
  const send = transfer("a.bin", 1.5 * MIB);
  const receive = transfer("b.txt", 0, {
    id: "e5f6",
    direction: "receive",
    state: "receiving",
    peer: carol,
    total: 100,
  });
  delete receive.rate;
  delete receive.eta;
  eql(renderTransferStatus([send, receive], { colors: false, columns: 120 }), [
    '"a.bin" to bob: [########............] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03',
    '"b.txt" from carol: [....................] 0% 0 B of 100 B',
  ]);
  eql(renderTransferStatus([send], { colors: true, columns: 120 }), [
    '"a.bin" to \x1b[1mbob\x1b[0m: [########............] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03',
  ]);
  eql(renderTransferStatus([], { colors: false, columns: 80 }), []);
});

Deno.test("`renderTransferStatus()` cuts the name first to fit the width, then the bar, ETA, rate and bytes", () => {
  const event = transfer("holiday-photos-2024.tar", 1.5 * MIB);
  const line = (columns: number) => renderTransferStatus([event], { colors: false, columns })[0];
  const cases: [number, string][] = [
    [
      120,
      '"holiday-photos-2024.tar" to bob: [########............] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03',
    ],
    [
      100,
      '"holiday-photos-2024.t…" to bob: [########............] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03',
    ],
    [
      90,
      '"holiday-pho…" to bob: [########............] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03',
    ],
    [80, '"holiday-pho…" to bob: [####......] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03'],
    [75, '"holiday-pho…" to bob: [#####.........] 37% 1.5 MiB of 4.0 MiB 800.0 KiB/s'],
    [65, '"holiday-pho…" to bob: [######..........] 37% 1.5 MiB of 4.0 MiB'],
    [40, '"holiday-pho…" to bob: [####......] 37%'],
    [30, '"holiday-pho…" to bob: [####…'],
  ];
  for (const [columns, expected] of cases) equal(line(columns), expected, `${columns} columns`);
  for (let columns = 1; columns <= 130; columns++) {
    const shown = line(columns)!;
    ok(columnsOf(shown) <= Math.max(1, columns - 1), `${columns} columns: ${shown}`);
  }
});

Deno.test("`renderTransferStatus()` measures wide characters and colours, and sanitizes names", () => {
  const wide = transfer("中文文件名字很长的文件.pdf", MIB, {
    peer: { name: "x".repeat(40) + "\x1b[2J", fingerprint: "f" },
  });
  for (const colors of [false, true]) {
    for (const columns of [100, 80, 60, 40, 20]) {
      const [shown] = renderTransferStatus([wide], { colors, columns });
      ok(columnsOf(shown!) <= columns - 1, `${columns} columns: ${shown}`);
      ok(!shown!.replaceAll(SGR, "").includes("\x1b"), "no escape from the peer");
    }
  }
  equal(
    renderTransferStatus([wide], { colors: false, columns: 100 })[0],
    `"中文文件名…" to ${
      "x".repeat(15)
    }…: [#####.............] 25% 1.0 MiB of 4.0 MiB 800.0 KiB/s ETA 0:03`,
    "a wide name is cut by columns (to 11 here: 12 would split a character), the peer's at 16",
  );
  equal(
    renderTransferStatus([transfer("a\x1b]0;x\x07\nb", 0)], { colors: false, columns: 80 })[0],
    '"a]0;x b" to bob: [....................] 0% 0 B of 4.0 MiB 800.0 KiB/s ETA 0:03',
  );
});

Deno.test("`renderTransferStatus()` shows at most MAX_STATUS_TRANSFERS lines, then +N more", () => {
  const events = ["a", "b", "c", "d", "e"].map((name) => transfer(name, 0, { id: name }));
  const lines = renderTransferStatus(events, { colors: false, columns: 80 });
  equal(MAX_STATUS_TRANSFERS, 3);
  equal(lines.length, 4);
  eql(lines.slice(0, 3).map((line) => line.slice(0, 3)), ['"a"', '"b"', '"c"']);
  equal(lines[3], "+2 more");
  equal(renderTransferStatus(events.slice(0, 4), { colors: false, columns: 80 })[3], "+1 more");
  equal(renderTransferStatus(events.slice(0, 3), { colors: false, columns: 80 }).length, 3);
});
