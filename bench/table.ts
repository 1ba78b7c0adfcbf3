/**
 * Benchmark results: one row per figure, printed as a table and kept in `bench/RESULTS.md` (each benchmark's
 * section is replaced by its latest run, so the file always holds the newest figures of every benchmark).
 *
 * @example
 * ```ts
 * import { formatTable } from "./table.ts";
 * console.log(formatTable([{ bench: "source", metric: "ratio", value: 1.05, unit: "×", goal: "≤ 1.15", pass: true }]));
 * ```
 * @module
 */

/** One measured figure. */
export interface BenchRow {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  goal?: string;
  pass?: boolean;
  note?: string;
  /** Fault-suite rows (`deno task bench faults`): what should happen, and what did. */
  expected?: string;
  observed?: string;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(3);
}

/** Table cells cannot hold `|` or line breaks. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replace(/\s*\n\s*/g, " ");
}

/** Fault rows: `fault | expected | observed | pass`. */
function formatFaultTable(rows: BenchRow[]): string {
  const lines = ["| fault | expected | observed | pass |", "|---|---|---|---|"];
  for (const r of rows) {
    const pass = r.pass === undefined ? "" : r.pass ? "yes" : "**no**";
    lines.push(`| ${cell(r.metric)} | ${cell(r.expected ?? "")} | ${cell(r.observed ?? "")} | ${pass} |`);
  }
  return lines.join("\n");
}

/** A Markdown table of the rows (the fault shape when every row has `observed`). */
export function formatTable(rows: BenchRow[]): string {
  if (rows.length > 0 && rows.every((r) => r.observed !== undefined)) return formatFaultTable(rows);
  const lines = ["| benchmark | figure | value | goal | met | note |", "|---|---|---|---|---|---|"];
  for (const r of rows) {
    const met = r.pass === undefined ? "" : r.pass ? "yes" : "**no**";
    lines.push(
      `| ${r.bench} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.goal ?? ""} | ${met} | ${r.note ?? ""} |`,
    );
  }
  return lines.join("\n");
}

/** Replaces (or appends) the section `## <name>` of RESULTS.md with the new table. */
export async function recordResults(
  path: string,
  name: string,
  rows: BenchRow[],
  context: string,
): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    // No results file yet: start one.
    text =
      "# Benchmark results\n\nLatest run of each benchmark (`deno task bench <name>`); each section is replaced " +
      "by its newest run. Machines are shared and noisy: compare ratios within a run, not absolute figures across runs.\n";
  }
  const section = `## ${name}\n\n${context}\n\n${formatTable(rows)}\n`;
  const re = new RegExp(`## ${name}\\n[\\s\\S]*?(?=\\n## |$)`);
  text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}`;
  await Deno.writeTextFile(path, text.trimEnd() + "\n");
}
