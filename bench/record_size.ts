/**
 * Record size and record suite benchmark: seal and open 64 MiB through `RecordProtection` with
 * 16 KiB records (the chat size, baseline) and with the larger pipe-mode sizes, with each record
 * suite, and print each as a ratio of a baseline measured in the same run. It justifies PROTOCOL.md
 * section 8.3's pipe record size and section 4.5's default record suite.
 *
 * @module
 */

import { CONTENT_TYPE } from "../lib/protocol/record.ts";
import { RecordProtection, SYNCHRONOUS_AFTER_BYTES } from "../lib/protocol/record_protection.ts";
import type { RecordSuiteName } from "../lib/crypto/record_suites.ts";
import { printHeading, printRow, type Row, type Section } from "./_report.ts";

const TOTAL = 64 * 1024 * 1024;

async function throughput(recordSize: number, suite: RecordSuiteName): Promise<number> {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const sender = await RecordProtection.create(secret, suite);
  const receiver = await RecordProtection.create(secret, suite);
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
 * Runs the benchmark, printing one line per record size and suite.
 *
 * @returns the section: MB/s per record size and suite; AES-256-GCM against its 16 KiB records,
 *   ChaCha20-Poly1305 against AES-256-GCM at the same size
 */
export async function benchRecordSize(): Promise<Section> {
  const section: Section = {
    title: "Record size and record suite",
    notes: [
      "Seal then open 64 MiB through `RecordProtection` in one process (no I/O), per record size and record suite (PROTOCOL.md 4.5); AES-256-GCM against its 16 KiB records (the chat size), ChaCha20-Poly1305 against AES-256-GCM at the same size. MB = 10^6 bytes.",
      `ChaCha20-Poly1305 moves to node:crypto's synchronous implementation after ${
        SYNCHRONOUS_AFTER_BYTES / 2 ** 20
      } MiB under one key, as in a session; AES-256-GCM stays on WebCrypto.`,
    ],
    rows: [],
  };
  printHeading(section);
  await throughput(16384, "aes-256-gcm"); // warm-up
  await throughput(16384, "chacha20-poly1305");
  const baseline = await throughput(16384, "aes-256-gcm");
  const add = (row: Row) => {
    section.rows.push(row);
    printRow(row);
  };
  for (const size of [16384, 65536, 262144, 1048576]) {
    const name = `${size / 1024} KiB records`;
    const aes = size === 16384 ? baseline : await throughput(size, "aes-256-gcm");
    add(
      size === 16384
        ? { name: `${name}, aes-256-gcm`, value: aes, unit: "MB/s", note: "baseline" }
        : {
          name: `${name}, aes-256-gcm`,
          value: aes,
          unit: "MB/s",
          ratio: aes / baseline,
          baseline: "16 KiB records, aes-256-gcm",
        },
    );
    const chacha = await throughput(size, "chacha20-poly1305");
    add({
      name: `${name}, chacha20-poly1305`,
      value: chacha,
      unit: "MB/s",
      ratio: chacha / aes,
      baseline: `${name}, aes-256-gcm`,
    });
  }
  return section;
}

if (import.meta.main) await benchRecordSize();
