/**
 * make test-failover: run the chosen scenarios for N rounds, one after the
 * other on the same cluster (each starts from, and must return to, a healthy
 * cluster), then write the JSON report, the SVG timelines and an HTML page.
 */
import { recordDrill } from "../monitoring";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { tryPidLock } from "../pidlock";
import type { Runtime } from "../runtime";
import { summarize, type RunResult, type Scenario } from "./analysis";
import { dropDrillTables, runDrill, type DrillRun } from "./drill";
import { waitConverged } from "./monitor";
import type { DrillOptions } from "./options";
import { binSeries, reportHtml, timelineSvg, type DrillReport } from "./report";

export interface DrillSuiteResult {
  report: DrillReport;
  files: { json: string; html: string; svgs: string[] };
  passed: boolean;
}

/** One drill at a time per stack: two would fight over the same leader. */
function takeLock(cfg: Config): () => void {
  const lock = tryPidLock(join(cfg.stateDir, "failover.lock"), "failover drill");
  if ("holder" in lock) {
    const pid = lock.holder.pid;
    throw new ToolkitError(
      "DRILL_RUNNING",
      `another failover drill is running on stack ${cfg.stack} (pid ${pid})`,
      `wait for it, or stop it (kill ${pid})`,
    );
  }
  return lock.release;
}

const stamp = (d: Date) => d.toISOString().replace(/[:.]/g, "-").replace(/Z$/, "");

export async function failoverDrill(
  cfg: Config,
  rt: Runtime,
  scenarios: Scenario[],
  rounds: number,
  opts: DrillOptions,
  progress: (scenario: string, message: string) => void,
  /** each run's raw recording (the load's own write log), e.g. for a test that counts rows itself */
  onRun?: (run: DrillRun) => void,
): Promise<DrillSuiteResult> {
  const release = takeLock(cfg);
  const started = new Date();
  const runs: DrillReport["results"] = [];
  const svgs: { name: string; svg: string }[] = [];
  try {
    if (!opts.keepData && (await waitConverged(cfg, rt, 60_000)).ok) await dropDrillTables(cfg);
    for (let round = 1; round <= rounds; round++) {
      for (const scenario of scenarios) {
        const label = rounds > 1 ? `${scenario} #${round}` : scenario;
        const run = await runDrill(cfg, rt, scenario, round, opts, (m) => progress(label, m));
        onRun?.(run);
        const { result, recording } = run;
        const series = binSeries(recording);
        const restoreMs = recording.restoreAt !== undefined ? recording.restoreAt - recording.faultAt : null;
        runs.push({ ...result, series, restoreMs });
        svgs.push({ name: `${scenario}-r${round}`, svg: timelineSvg(result, series, { restoreMs }) });
        // node_exporter's textfile (MONITORING=true): the last drill's RTO for Prometheus.
        if (result.passed && result.metrics.rtoMs !== null) recordDrill(cfg, result.metrics.rtoMs / 1000);
        progress(
          label,
          result.passed
            ? `PASS: RTO ${((result.metrics.rtoMs ?? 0) / 1000).toFixed(1)} s, 0 writes lost`
            : `FAIL: ${result.failures.join("; ")}`,
        );
      }
    }
  } finally {
    release();
  }
  const results: RunResult[] = runs;
  const report: DrillReport = {
    stack: cfg.stack,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    timing: cfg.timing,
    haproxyCheck: { interMs: cfg.haproxy.interMs, fall: cfg.haproxy.fall, rise: cfg.haproxy.rise },
    budgetMs: opts.budgetMs ?? null,
    options: {
      scenarios,
      rounds,
      writers: opts.writers,
      ratePerWriter: opts.ratePerWriter,
      hangMs: opts.hangMs,
      holdMs: opts.holdMs,
      candidate: opts.candidate ?? null,
    },
    summary: summarize(results),
    passed: results.every((r) => r.passed),
    results: runs,
  };
  mkdirSync(cfg.reportsDir, { recursive: true });
  const base = join(cfg.reportsDir, `failover-${stamp(started)}`);
  const json = `${base}.json`;
  writeFileSync(json, JSON.stringify(report, null, 2) + "\n");
  const svgFiles = svgs.map(({ name, svg }) => {
    const f = `${base}-${name}.svg`;
    writeFileSync(f, svg + "\n");
    return f;
  });
  const html = `${base}.html`;
  writeFileSync(
    html,
    reportHtml(
      `Failover drill, stack ${cfg.stack}, ${started.toISOString()}`,
      results,
      svgs.map((s) => s.svg),
      json.split("/").pop()!,
    ),
  );
  return { report, files: { json, html, svgs: svgFiles }, passed: report.passed };
}
