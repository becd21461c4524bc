// deno-lint-ignore-file no-console
/**
 * The shape every benchmark section returns, how a figure is printed as it is measured, and the
 * writer of `bench/RESULTS.md`. Each benchmark file exports a function returning a {@linkcode
 * Section}; `bench/main.ts` runs them, prints them and writes the results of the run.
 *
 * A figure's ratio is always against a baseline measured in the same run on the same machine
 * (named in `baseline`), never against a number remembered from another run.
 *
 * @module
 */

/** One measured figure. */
export interface Row {
  /** What was measured, e.g. `"securechat pipe, steady state"`. */
  name: string;
  /** The figure; `null` when it could not be measured (a peer is missing), with a `note`. */
  value: number | null;
  /** Its unit, e.g. `"MB/s"`, `"ms"`, `"handshakes/s"`. */
  unit: string;
  /** value / baseline value, when the row has a baseline. */
  ratio?: number;
  /** The name of the row or program the ratio is against. */
  baseline?: string;
  /** Anything else worth printing beside the figure (CPU per MiB, max RSS, why it is missing). */
  note?: string;
}

/** A target of the issue, judged on figures of the same run. */
export interface Target {
  /** The target in words, e.g. `"pipe throughput >= ssh aes256-gcm"`. */
  text: string;
  /** `true` met, `false` not met, `null` could not be judged (a peer is missing). */
  met: boolean | null;
  /** The figures it was judged on. */
  detail: string;
}

/** One benchmark's results. */
export interface Section {
  /** A heading, e.g. `"Pipe throughput"`. */
  title: string;
  /** What was measured and how, one sentence per entry; printed under the heading. */
  notes: string[];
  rows: Row[];
  targets?: Target[];
}

/** What `bench/main.ts` passes to every benchmark function. */
export interface BenchOptions {
  /** Bytes a throughput run moves (`--size`, default 1 GiB). */
  size: number;
  /** Runs a throughput figure is the median of (`--runs`, default 3). */
  runs: number;
  /** A temporary folder for this run, removed afterwards; make sub-folders in it. */
  tempDir: string;
}

/** The machine and run a results file describes. */
export interface Machine {
  date: string;
  /** `uname -srm`. */
  system: string;
  cpu: string;
  cores: number;
  deno: string;
  /** The command line of the run, e.g. `"deno task bench --size 1GiB"`. */
  command: string;
  /** The git commit the tree was at, and the files changed since when there were some. */
  commit: string;
  /** The load averages when the run started and ended (other work on the machine). */
  load?: string;
}

/**
 * Formats a figure with a precision that fits its size.
 *
 * @param value the figure
 * @returns e.g. `"812"`, `"33.4"`, `"0.512"`
 */
export function formatValue(value: number | null): string {
  if (value === null) return "-";
  const magnitude = Math.abs(value);
  if (magnitude >= 100) return value.toFixed(0);
  if (magnitude >= 10) return value.toFixed(1);
  if (magnitude >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

/**
 * One figure as the bench prints it: `name: value unit (ratio x vs baseline) note`.
 *
 * @param row the figure
 * @returns the line, without indentation
 */
export function formatRow(row: Row): string {
  let line = `${row.name}: ${formatValue(row.value)} ${row.unit}`;
  if (row.value === null) line = `${row.name}: -`;
  if (row.ratio !== undefined && row.baseline !== undefined) {
    line += ` (${row.ratio.toFixed(2)}x vs ${row.baseline})`;
  } else if (row.baseline !== undefined) {
    line += ` (baseline: ${row.baseline})`;
  }
  if (row.note !== undefined) line += `  [${row.note}]`;
  return line;
}

/** Prints a section heading and its notes, before its figures are measured. */
export function printHeading(section: Pick<Section, "title" | "notes">): void {
  console.log(`\n== ${section.title}`);
  for (const note of section.notes) console.log(`   ${note}`);
}

/** Prints one figure as soon as it is measured. */
export function printRow(row: Row): void {
  console.log(`  ${formatRow(row)}`);
}

/** Prints a line of progress or a missing peer, indented like the figures. */
export function printInfo(text: string): void {
  console.log(`  - ${text}`);
}

/** Prints the targets of a section with met / not met. */
export function printTargets(targets: Target[]): void {
  for (const target of targets) {
    console.log(`  target: ${target.text}: ${verdict(target.met)} (${target.detail})`);
  }
}

function verdict(met: boolean | null): string {
  if (met === null) return "not judged";
  return met ? "met" : "NOT MET";
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/**
 * Renders the results of one run as Markdown: the machine, then one table per section with its
 * notes and targets.
 *
 * @param sections the sections of the run, in order
 * @param machine where and when they were measured
 * @returns the text of `bench/RESULTS.md`
 */
export function renderResults(sections: Section[], machine: Machine): string {
  const lines = [
    "# Benchmark results",
    "",
    "Written by `deno task bench` from its last run; do not edit by hand. Every ratio is against a",
    "baseline measured in the same run on the same machine. The machine may have been shared with",
    "other work while it ran, which lowers figures unevenly; compare ratios, not runs.",
    "",
    `- date: ${machine.date}`,
    `- machine: ${machine.system}, ${machine.cpu}, ${machine.cores} cores`,
    `- deno: ${machine.deno}`,
    `- tree: ${machine.commit}`,
    `- command: \`${machine.command}\``,
  ];
  if (machine.load !== undefined) lines.push(`- load: ${machine.load}`);
  const targets = sections.flatMap((section) => section.targets ?? []);
  if (targets.length > 0) {
    lines.push("", "## Targets", "", "| target | result | figures |", "| --- | --- | --- |");
    for (const target of targets) {
      lines.push(`| ${cell(target.text)} | ${verdict(target.met)} | ${cell(target.detail)} |`);
    }
  }
  for (const section of sections) {
    lines.push("", `## ${section.title}`, "");
    for (const note of section.notes) lines.push(`- ${note}`);
    if (section.notes.length > 0) lines.push("");
    lines.push("| figure | value | unit | ratio | baseline | note |");
    lines.push("| --- | ---: | --- | ---: | --- | --- |");
    for (const row of section.rows) {
      const ratio = row.ratio === undefined ? "" : `${row.ratio.toFixed(2)}x`;
      lines.push(
        `| ${cell(row.name)} | ${formatValue(row.value)} | ${cell(row.unit)} | ${ratio} | ${
          cell(row.baseline ?? "")
        } | ${cell(row.note ?? "")} |`,
      );
    }
  }
  lines.push("");
  return lines.join("\n");
}
