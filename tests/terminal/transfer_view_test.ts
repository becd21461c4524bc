import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import { charWidth } from "../../lib/terminal/line_editor.ts";
import { MAX_STATUS_TRANSFERS, renderTransferStatus } from "../../lib/terminal/transfer_view.ts";
import { carol, MIB, SGR, transferWithRate } from "../_helpers/chat_fixtures.ts";

/** Display width of a rendered line: SGR codes take no columns. */
function columnsOf(line: string): number {
  return [...line.replaceAll(SGR, "")].reduce((sum, char) => sum + charWidth(char), 0);
}

Deno.test("`renderTransferStatus()` renders one line per transfer: direction, name, peer, bar, percent, bytes, rate, ETA", () => {
  const send = transferWithRate("a.bin", 1.5 * MIB);
  const receive = transferWithRate("b.txt", 0, {
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
  const event = transferWithRate("holiday-photos-2024.tar", 1.5 * MIB);
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
  const wide = transferWithRate("中文文件名字很长的文件.pdf", MIB, {
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
    renderTransferStatus([transferWithRate("a\x1b]0;x\x07\nb", 0)], {
      colors: false,
      columns: 80,
    })[0],
    '"a]0;x b" to bob: [....................] 0% 0 B of 4.0 MiB 800.0 KiB/s ETA 0:03',
  );
});

Deno.test("`renderTransferStatus()` shows at most MAX_STATUS_TRANSFERS lines, then +N more", () => {
  const events = ["a", "b", "c", "d", "e"].map((name) => transferWithRate(name, 0, { id: name }));
  const lines = renderTransferStatus(events, { colors: false, columns: 80 });
  equal(MAX_STATUS_TRANSFERS, 3);
  equal(lines.length, 4);
  eql(lines.slice(0, 3).map((line) => line.slice(0, 3)), ['"a"', '"b"', '"c"']);
  equal(lines[3], "+2 more");
  equal(renderTransferStatus(events.slice(0, 4), { colors: false, columns: 80 })[3], "+1 more");
  equal(renderTransferStatus(events.slice(0, 3), { colors: false, columns: 80 }).length, 3);
});
