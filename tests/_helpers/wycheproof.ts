/**
 * Loads Project Wycheproof vectors from `tests/vectors/wycheproof/`, the copies the repository
 * carries (see the README.md there for their source). A file that is not there throws, naming its
 * path, so the test file that needs it fails: a vector test is never skipped.
 *
 * Also keeps the score of one file's run: {@linkcode WycheproofTally} compares what our wrapper
 * did with each case against the case's `result`, and prints the one summary line the README
 * quotes.
 *
 * @module
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** The folder the vectors are read from. */
export const WYCHEPROOF_DIR = new URL("../vectors/wycheproof/", import.meta.url);

/** The fields every Wycheproof test case has. */
export interface WycheproofCase {
  tcId: number;
  comment?: string;
  flags: string[];
  result: "valid" | "invalid" | "acceptable";
}

/**
 * Reads every group of one Wycheproof file (with the group's own fields, such as `ivSize` or
 * `publicKeyDer`). Throws when the file is missing.
 */
export async function loadWycheproofGroups<G extends { tests: unknown[] }>(
  file: string,
): Promise<G[]> {
  const url = new URL(file, WYCHEPROOF_DIR);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `Wycheproof vector file ${fileURLToPath(url)} is missing: the tests read ` +
        `the files committed in tests/vectors/wycheproof/ (see the README.md there)`,
    );
  }
  return (JSON.parse(text) as { testGroups: G[] }).testGroups;
}

/** Reads every test of every group of one Wycheproof file. Throws when the file is missing. */
export async function loadWycheproof<T>(file: string): Promise<T[]> {
  const groups = await loadWycheproofGroups<{ tests: T[] }>(file);
  return groups.flatMap((group) => group.tests);
}

/**
 * What our wrapper did with one case: "accepted" (returned the expected output, or a verify
 * function returned true), "rejected" (threw our documented error class, or returned false), or
 * anything else as a description (wrong output, wrong error class), which always fails.
 */
export type Outcome = "accepted" | "rejected" | { unexpected: string };

/**
 * The score of one file: every case is counted once, as run or as skipped with a reason.
 * `finish()` prints the summary line and fails with the list of every mismatching case.
 */
export class WycheproofTally {
  readonly #file: string;
  readonly #total: number;
  readonly #acceptable: "accepted" | "rejected";
  #valid = 0;
  #invalid = 0;
  #acceptableSeen = 0;
  readonly #skipped = new Map<string, number>();
  readonly #failures: string[] = [];

  /**
   * @param file the vector file's name
   * @param groups its groups, to count every case
   * @param options.acceptable what our wrapper must do with `acceptable` cases (documented per
   *   primitive where the tally is made)
   */
  constructor(
    file: string,
    groups: { tests: unknown[] }[],
    options: { acceptable: "accepted" | "rejected" },
  ) {
    this.#file = file;
    this.#total = groups.reduce((sum, group) => sum + group.tests.length, 0);
    this.#acceptable = options.acceptable;
  }

  /** Records the outcome of one case; a mismatch is kept for `finish()`. */
  record(test: WycheproofCase, outcome: Outcome): void {
    const expected = test.result === "valid"
      ? "accepted"
      : test.result === "invalid"
      ? "rejected"
      : this.#acceptable;
    if (outcome === expected) {
      if (test.result === "valid") this.#valid++;
      else if (test.result === "invalid") this.#invalid++;
      else this.#acceptableSeen++;
      return;
    }
    const got = typeof outcome === "string" ? outcome : outcome.unexpected;
    this.#failures.push(
      `tcId ${test.tcId} (${test.result}, ${test.comment || "no comment"}, [${
        test.flags.join(", ")
      }]): expected ${expected}, got ${got}`,
    );
  }

  /** Counts cases not run, with the reason printed in the summary. */
  skip(reason: string, count = 1): void {
    this.#skipped.set(reason, (this.#skipped.get(reason) ?? 0) + count);
  }

  /** The summary line, e.g. "wycheproof x.json: 3 valid accepted, 2 invalid rejected, ...". */
  summary(): string {
    const skipped = [...this.#skipped.values()].reduce((a, b) => a + b, 0);
    const reasons = [...this.#skipped].map(([reason, count]) => `${reason}: ${count}`).join("; ");
    return `wycheproof ${this.#file}: ${this.#valid} valid accepted, ${this.#invalid} invalid ` +
      `rejected, ${this.#acceptableSeen} acceptable (${this.#acceptable}), ${skipped} skipped` +
      (skipped === 0 ? "" : ` (${reasons})`);
  }

  /** Prints the summary line, then fails on any mismatch or on a case neither run nor skipped. */
  finish(): void {
    // deno-lint-ignore no-console
    console.log(this.summary());
    deepStrictEqual(this.#failures, [], `${this.#failures.length} mismatching cases`);
    const skipped = [...this.#skipped.values()].reduce((a, b) => a + b, 0);
    strictEqual(
      this.#valid + this.#invalid + this.#acceptableSeen + skipped,
      this.#total,
      `${this.#file}: every case must be run or skipped with a reason`,
    );
  }
}

/**
 * Runs a wrapper call and says whether it rejected in the documented way: `rejected` when it
 * threw an instance of `errorClass` (and, when given, with `code`), the error otherwise.
 */
export async function rejection(
  run: () => Promise<unknown>,
  errorClass: abstract new (...args: never[]) => Error,
  code?: string,
): Promise<Outcome> {
  try {
    await run();
  } catch (error) {
    if (!(error instanceof errorClass)) return { unexpected: `threw ${error}` };
    const errorCode = (error as { code?: unknown }).code;
    if (code !== undefined && errorCode !== code) {
      return { unexpected: `threw ${error.name} with code ${errorCode}` };
    }
    return "rejected";
  }
  return "accepted";
}

/** A case of Wycheproof's AEAD files (aes_gcm_test.json, chacha20_poly1305_test.json). */
export interface AeadCase extends WycheproofCase {
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
}

/** A group of Wycheproof's AEAD files. */
export interface AeadGroup {
  ivSize: number;
  keySize: number;
  tagSize: number;
  tests: AeadCase[];
}
