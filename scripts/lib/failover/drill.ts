/**
 * One failover drill run: a healthy cluster, load through HAProxy, a fault,
 * recovery, convergence, then the books are checked. Returns the recording
 * and its analysis; never prints (progress goes through a callback). The
 * member processes are reached through the stack's runtime (pids, start, stop, logs).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { assessCluster, clusterView, restGet } from "../patroni";
import { connect, quoteIdent, rwTarget } from "../pg";
import type { Runtime } from "../runtime";
import { analyze, defaultBudgetMs, parsePatroniTime, type Recording, type RunResult, type Scenario } from "./analysis";
import { dealFault } from "./deal";
import { createTableSql, DRILL_SCHEMA, Load, tableRef } from "./load";
import { leaderOf, Monitor, waitConverged, type Converged } from "./monitor";
import type { DrillOptions, DrillProgress } from "./options";

export interface DrillRun {
  result: RunResult;
  recording: Recording & { connectFailures: number[] };
}

const sleep = (ms: number) => Bun.sleep(ms);
const byName = (cfg: Config, name: string): Member => cfg.members.find((m) => m.name === name)!;

/** Tables left by earlier drills (--keep-data, or an interrupted run) go before a new one starts. */
export async function dropDrillTables(cfg: Config): Promise<void> {
  const c = await connect(cfg, { target: rwTarget(cfg) });
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(DRILL_SCHEMA)} CASCADE`);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Did the old leader's Patroni run pg_rewind after `offset` bytes of its log? */
function rewoundSince(path: string | undefined, offset: number): boolean {
  if (!path || !existsSync(path)) return false;
  const text = readFileSync(path, "utf8").slice(offset);
  return /pg_rewind/i.test(text);
}

const logSize = (path: string | undefined) => (path && existsSync(path) ? statSync(path).size : 0);

export async function runDrill(
  cfg: Config,
  rt: Runtime,
  scenario: Scenario,
  round: number,
  opts: DrillOptions,
  progress: DrillProgress,
): Promise<DrillRun> {
  // 1. A healthy starting point: nothing to measure on a cluster that is already broken.
  const start = await waitConverged(cfg, rt, 60_000);
  if (!start.ok)
    throw new ToolkitError(
      "CLUSTER_UNHEALTHY",
      `cluster is not healthy before ${scenario}: ${start.problems.join(", ")}`,
      "run `make status`; `make dev-up` repairs a stopped member",
    );
  const before = assessCluster(cfg, start.view);
  const leaderBefore = before.leader!;
  const syncBefore = before.syncStandby ?? cfg.members.find((m) => m.name !== leaderBefore)!.name;
  const timelineBefore = start.view?.members.find((m) => m.name === leaderBefore)?.timeline;
  if (scenario === "switchover" && opts.candidate && !cfg.members.some((m) => m.name === opts.candidate)) {
    throw new ToolkitError(
      "BAD_CANDIDATE",
      `no member named ${opts.candidate}`,
      `pick one of ${cfg.members.map((m) => m.name).join(", ")}`,
    );
  }
  let candidate = opts.candidate;
  if (scenario === "switchover" && candidate === leaderBefore) {
    // With ROUNDS > 1 the named replica leads after round 1: move back to the sync standby instead.
    progress(`${candidate} already leads: switching over to the sync standby ${syncBefore} this round`);
    candidate = syncBefore;
  }
  const target = scenario === "kill-sync-standby" ? syncBefore : leaderBefore;
  const budgetMs = opts.budgetMs ?? defaultBudgetMs(cfg, scenario);
  progress(`leader ${leaderBefore}, sync standby ${syncBefore}, timeline ${timelineBefore ?? "?"}`);

  // 2. A fresh table per run.
  const table = `w_${scenario.replace(/-/g, "_")}_r${round}_${Date.now()}`;
  const c = await connect(cfg, { target: rwTarget(cfg) });
  try {
    for (const sql of createTableSql(table)) await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }

  const oldLeaderLog = rt.logs().find((l) => l.name === leaderBefore)?.path;
  const logOffset = logSize(oldLeaderLog);
  const monitor = new Monitor(cfg, target);
  const load = new Load(cfg, table, opts);
  monitor.start();
  const loadStartAt = Date.now();
  load.start();
  const marks: { faultAt?: number; restoreAt?: number } = {};
  let converged: Converged;
  try {
    await sleep(opts.warmupMs);
    progress(
      `load: ${opts.writers} writers x ${opts.ratePerWriter}/s, ${load.writes.filter((w) => w.ok).length} writes acknowledged in warm-up`,
    );
    await dealFault(scenario, {
      cfg,
      rt,
      opts: { ...opts, candidate },
      budgetMs,
      leader: leaderBefore,
      sync: syncBefore,
      progress,
      marks,
    });
    converged = await waitConverged(cfg, rt, opts.convergeTimeoutMs);
    progress(
      converged.ok
        ? `converged ${(((converged.at ?? 0) - marks.faultAt!) / 1000).toFixed(1)} s after the fault`
        : `did not converge: ${converged.problems.join(", ")}`,
    );
    // A little load after convergence, so "writes came back" is not decided by the last millisecond.
    await sleep(1000);
  } finally {
    await load.stop();
    await monitor.stop();
  }
  const loadEndAt = load.stoppedAt ?? Date.now();
  if (marks.faultAt === undefined) throw new ToolkitError("NO_FAULT", `${scenario}: the fault was never dealt`);

  // 3. The books: every acknowledged id on the (new) primary.
  const found = new Map<number, number>();
  const v = await connect(cfg, { target: rwTarget(cfg), timeoutMs: 10_000 });
  try {
    const r = await v.query(`SELECT id, count(*)::int AS n FROM ${tableRef(table)} GROUP BY id`);
    for (const row of r.rows) found.set(Number(row.id), row.n);
    if (!opts.keepData) await v.query(`DROP TABLE ${tableRef(table)}`);
  } finally {
    await v.end().catch(() => {});
  }

  const after = await clusterView(cfg);
  const leaderAfter = leaderOf(after)?.name;
  const timelineAfter = after?.members.find((m) => m.name === leaderAfter)?.timeline;
  let promotedAt: number | undefined;
  if (leaderAfter && timelineAfter !== undefined && timelineAfter !== timelineBefore) {
    const h = await restGet(byName(cfg, leaderAfter), "/history", 2000);
    const last = Array.isArray(h?.body) ? h!.body[h!.body.length - 1] : undefined;
    promotedAt = Array.isArray(last) ? parsePatroniTime(String(last[3])) : undefined;
  }
  const recording = {
    scenario,
    round,
    target,
    leaderBefore,
    syncBefore,
    timelineBefore,
    loadStartAt,
    faultAt: marks.faultAt,
    restoreAt: marks.restoreAt,
    loadEndAt,
    writes: load.writes,
    reads: load.reads,
    connectFailures: load.connectFailures,
    samples: monitor.samples,
    found,
    promotedAt,
    leaderAfter,
    timelineAfter,
    convergence: { ok: converged.ok, at: converged.at, problems: converged.problems },
    rewound: leaderAfter !== leaderBefore ? rewoundSince(oldLeaderLog, logOffset) : undefined,
    oldLeaderRole: after?.members.find((m) => m.name === leaderBefore)?.role,
  };
  return { result: analyze(recording, budgetMs), recording };
}
