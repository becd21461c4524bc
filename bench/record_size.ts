// deno-lint-ignore-file no-console
/**
 * Record size benchmark: seal and open 64 MiB through `RecordProtection` with 16 KiB records (the
 * chat size, baseline) and with the larger pipe-mode sizes, and print each as a ratio of the
 * baseline measured in the same run. It justifies PROTOCOL.md section 8.3's pipe record size.
 *
 * @module
 */

import { CONTENT_TYPE, RecordProtection } from "../lib/record.ts";

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

/** Runs the benchmark and prints one line per record size. */
export async function benchRecordSize(): Promise<void> {
  console.log("record size: seal+open of 64 MiB in one process (MB/s, ratio to 16 KiB records)");
  await throughput(16384); // warm-up
  const baseline = await throughput(16384);
  console.log(`  16 KiB  ${baseline.toFixed(0).padStart(6)} MB/s  1.00x (baseline)`);
  for (const size of [65536, 262144, 1048576]) {
    const rate = await throughput(size);
    const label = `${size / 1024} KiB`.padEnd(8);
    console.log(`  ${label}${rate.toFixed(0).padStart(6)} MB/s  ${(rate / baseline).toFixed(2)}x`);
  }
}

if (import.meta.main) await benchRecordSize();
