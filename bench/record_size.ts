/**
 * Record size benchmark: seal and open 64 MiB through `RecordProtection` with 16 KiB records (the
 * chat size, baseline) and with the larger pipe-mode sizes, and print each as a ratio of the
 * baseline measured in the same run. It justifies PROTOCOL.md section 8.3's pipe record size.
 *
 * @module
 */

import { CONTENT_TYPE } from "../lib/protocol/record.ts";
import { RecordProtection } from "../lib/protocol/record_protection.ts";
import { printHeading, printRow, type Row, type Section } from "./_report.ts";

const TOTAL = 64 * 1024 * 1024;

async function throughput(recordSize: number): Promise<number> {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const sender = await RecordProtection.create(secret);
  const receiver = await RecordProtection.create(secret);
  const chunk = crypto.getRandomValues(new Uint8Array(Math.min(recordSize, 65536)));
  const data = new Uint8Array(recordSize);
  for (let i = 0; i < recordSize; i += chunk.length) data.set(chunk.subarray(0, recordSize - i), i);
  const start = performance.now();
  for (let moved = 0; moved < TOTAL; moved += recordSize) {
    const frame = await sender.seal(CONTENT_TYPE.applicationData, data);
    await receiver.open(frame.subarray(0, 5), frame.subarray(5));
  }
  const seconds = (performance.now() - start) / 1000;
  return TOTAL / 1e6 / seconds;
}

/**
 * Runs the benchmark, printing one line per record size.
 *
 * @returns the section: MB/s per record size, each against 16 KiB records
 */
export async function benchRecordSize(): Promise<Section> {
  const section: Section = {
    title: "Record size",
    notes: [
      "Seal then open 64 MiB through `RecordProtection` in one process (no I/O), per record size; ratios against 16 KiB records (the chat size). MB = 10^6 bytes.",
    ],
    rows: [],
  };
  printHeading(section);
  await throughput(16384); // warm-up
  const baseline = await throughput(16384);
  const add = (row: Row) => {
    section.rows.push(row);
    printRow(row);
  };
  add({ name: "16 KiB records", value: baseline, unit: "MB/s", note: "baseline" });
  for (const size of [65536, 262144, 1048576]) {
    const rate = await throughput(size);
    add({
      name: `${size / 1024} KiB records`,
      value: rate,
      unit: "MB/s",
      ratio: rate / baseline,
      baseline: "16 KiB records",
    });
  }
  return section;
}

if (import.meta.main) await benchRecordSize();
