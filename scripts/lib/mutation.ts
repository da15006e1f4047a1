/**
 * make mutation's arithmetic: a module's score from a StrykerJS JSON report
 * (mutation-testing-report-schema), and the survivors explained as equivalent
 * in mutation/equivalent.md. Pure, so it is unit-tested.
 */

export type MutantStatus =
  | "Killed"
  | "Survived"
  | "NoCoverage"
  | "Timeout"
  | "CompileError"
  | "RuntimeError"
  | "Ignored"
  | "Pending";

export interface ReportMutant {
  id: string;
  mutatorName: string;
  replacement?: string;
  location: { start: { line: number; column: number }; end: { line: number; column: number } };
  status: MutantStatus;
}

export interface StrykerReport {
  files: Record<string, { source: string; mutants: ReportMutant[] }>;
}

export interface Survivor {
  file: string;
  line: number;
  column: number;
  mutator: string;
  replacement: string;
}

export interface ModuleScore {
  file: string;
  total: number;
  killed: number;
  survived: number;
  /** survivors with a line in mutation/equivalent.md */
  explained: number;
  /** Stryker's own score: (killed + timeout) / (killed + timeout + survived + no coverage) */
  score: number;
  /** the same with explained equivalents left out of the denominator */
  adjustedScore: number;
  unexplained: Survivor[];
}

/** The key a line of mutation/equivalent.md starts with: file:line:column Mutator. */
export const explainedKey = (s: Pick<Survivor, "file" | "line" | "column" | "mutator">) =>
  `${s.file}:${s.line}:${s.column} ${s.mutator}`;

/** Lines like "- scripts/lib/x.ts:12:5 ConditionalExpression `a > b` → `true`: why" (anything after the key is prose). */
export function parseEquivalents(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const line of markdown.split("\n")) {
    const m = /^- `?([\w./-]+\.ts):(\d+):(\d+) (\w+)/.exec(line);
    if (m) out.add(`${m[1]}:${m[2]}:${m[3]} ${m[4]}`);
  }
  return out;
}

export function scoreModule(report: StrykerReport, file: string, equivalents: Set<string>): ModuleScore {
  const entry = Object.entries(report.files).find(([p]) => p === file || p.endsWith(`/${file}`))?.[1];
  if (!entry)
    throw new Error(`the report has no file ${file} (it has ${Object.keys(report.files).join(", ") || "none"})`);
  const counted = entry.mutants.filter((m) => ["Killed", "Timeout", "Survived", "NoCoverage"].includes(m.status));
  const killed = counted.filter((m) => m.status === "Killed" || m.status === "Timeout").length;
  const survivors: Survivor[] = counted
    .filter((m) => m.status === "Survived" || m.status === "NoCoverage")
    .map((m) => ({
      file,
      line: m.location.start.line,
      column: m.location.start.column,
      mutator: m.mutatorName,
      replacement: m.replacement ?? "",
    }))
    .sort((a, b) => a.line - b.line || a.column - b.column);
  const unexplained = survivors.filter((s) => !equivalents.has(explainedKey(s)));
  const explained = survivors.length - unexplained.length;
  const pct = (n: number, d: number) => (d === 0 ? 100 : (100 * n) / d);
  return {
    file,
    total: counted.length,
    killed,
    survived: survivors.length,
    explained,
    score: pct(killed, counted.length),
    adjustedScore: pct(killed, counted.length - explained),
    unexplained,
  };
}
