/**
 * make test-failover against the shared test cluster, with real processes:
 * each drill kills or moves the leader under write load and must leave the
 * cluster healthy with 3 members. None assumes which member leads.
 *
 * The books are kept here, not taken from the drill's report: every id the
 * load saw acknowledged is looked up in the drill's table on the leader
 * directly, and the RTO budget comes from the stack's own timing settings.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import type { Scenario } from "../../scripts/lib/failover/analysis";
import { dropDrillTables, type DrillRun } from "../../scripts/lib/failover/drill";
import { defaultDrillOptions } from "../../scripts/lib/failover/options";
import { NativeRuntime } from "../../scripts/lib/runtimes/native";
import { failoverDrill } from "../../scripts/lib/failover/index";
import { DRILL_SCHEMA, tableRef } from "../../scripts/lib/failover/load";
import { assessCluster, clusterView } from "../../scripts/lib/patroni";
import { memberTarget, withClient } from "../../scripts/lib/pg";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
// One drill: warm-up, fault, failover, rejoin (pg_rewind), convergence; well under this on the fast profile.
const DRILL_TIMEOUT_MS = 240_000;

// The RTO budget, from the stack's settings: the dead leader's lock runs out (ttl), a replica notices on its
// next loop (loop_wait), HAProxy marks the new primary up after max(rise, fall) checks of inter ms; the margin
// absorbs the promotion itself and a busy CI box. On envs/test.env: 10 + 1 + 2 + 4 = 17 s (it was a flat 60 s,
// which a 10 s TTL cluster could never miss).
const MARGIN_S = 4;
const BUDGET_MS =
  (cfg.timing.ttl + cfg.timing.loopWait + MARGIN_S) * 1000 +
  Math.max(cfg.haproxy.rise, cfg.haproxy.fall) * cfg.haproxy.interMs;

function drill(scenario: string, extra: string[], expectedCode = 0) {
  const r = runScript("test-failover.ts", ["--scenario", scenario, "--json", ...extra]);
  if (r.code !== expectedCode) console.error(r.out); // the drill's own account of what went wrong
  const j = JSON.parse(r.stdout || "{}");
  return { ...r, report: j };
}

/** Ids in this run's drill table, read on the leader's own Postgres (not through HAProxy), with how often each is there. */
async function rowsOnLeader(scenario: Scenario): Promise<{ leader: string; ids: Map<number, number> }> {
  const leader = assessCluster(cfg, await clusterView(cfg)).leader;
  const m = cfg.members.find((x) => x.name === leader);
  if (!m) throw new Error(`no leader to read the drill table from (${leader})`);
  return withClient(cfg, { target: memberTarget(m), timeoutMs: 10_000 }, async (c) => {
    const t = await c.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE $2 ORDER BY tablename DESC LIMIT 1",
      [DRILL_SCHEMA, `w_${scenario.replace(/-/g, "_")}_r1_%`],
    );
    const table = t.rows[0]?.tablename as string | undefined;
    if (!table) throw new Error(`no drill table for ${scenario} in schema ${DRILL_SCHEMA} on ${m.name}`);
    const r = await c.query(`SELECT id::bigint AS id, count(*)::int AS n FROM ${tableRef(table)} GROUP BY id`);
    return { leader: m.name, ids: new Map(r.rows.map((row) => [Number(row.id), Number(row.n)])) };
  });
}

/** One drill in this process, its table kept, then the books: acknowledged ids against the rows actually there. */
async function drillAndCount(scenario: Scenario) {
  const runs: DrillRun[] = [];
  const log: string[] = [];
  const suite = await failoverDrill(
    cfg,
    new NativeRuntime(cfg),
    [scenario],
    1,
    { ...defaultDrillOptions(cfg), budgetMs: BUDGET_MS, keepData: true },
    (_, m) => log.push(m),
    (r) => runs.push(r),
  );
  if (!suite.passed) console.error(log.join("\n"));
  const acked = runs[0]!.recording.writes.filter((w) => w.ok).map((w) => w.id);
  const { ids } = await rowsOnLeader(scenario);
  return { suite, run: suite.report.results[0]!, acked, ids };
}

/** RPO = 0 by our own count, convergence, and the RTO within the stack-derived budget. */
function expectNothingLostAndConverged(d: Awaited<ReturnType<typeof drillAndCount>>, scenario: Scenario) {
  const { suite, run, acked, ids } = d;
  expect(suite.report.results).toHaveLength(1);
  expect(run.scenario).toBe(scenario);
  expect(acked.length).toBeGreaterThan(100);
  expect(acked.filter((id) => !ids.has(id))).toEqual([]); // every acknowledged write is on the leader
  expect([...ids].filter(([, n]) => n > 1).map(([id]) => id)).toEqual([]); // and only once
  // The drill's own books must agree with ours.
  expect(run.metrics.writesAcked).toBe(acked.length);
  expect(run.metrics.lost).toEqual([]);
  expect(run.metrics.duplicates).toEqual([]);
  expect(run.metrics.maxPrimaries).toBeLessThanOrEqual(1);
  expect(run.budgetMs).toBe(BUDGET_MS);
  expect(run.metrics.rtoMs).not.toBeNull();
  expect(run.metrics.rtoMs!).toBeLessThanOrEqual(BUDGET_MS);
  expect(run.metrics.healthyMs).not.toBeNull();
  expect(run.failures).toEqual([]);
  expect(run.passed).toBe(true);
  return run;
}

describe("test-failover: drills on a real cluster", () => {
  afterAll(async () => {
    await waitClusterHealthy(cfg, 120_000);
    await dropDrillTables(cfg); // the drills here keep their tables for counting
  }, 150_000);

  test("an unknown scenario is refused before anything is touched", async () => {
    const before = assessCluster(cfg, await clusterView(cfg));
    const r = runScript("test-failover.ts", ["--scenario", "kill-primary,meteor"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("BAD_SCENARIO");
    expect(r.stderr).toContain("meteor");
    expect(r.stderr).toContain("etcd-quorum-loss");
    expect(assessCluster(cfg, await clusterView(cfg)).leader).toBe(before.leader!);
    const bad = runScript("test-failover.ts", ["--rounds", "0"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--rounds");
  });

  test(
    "kill-primary: the leader dies under load, a replica takes over, no acknowledged write is lost, the old leader rejoins",
    async () => {
      const d = await drillAndCount("kill-primary");
      const run = expectNothingLostAndConverged(d, "kill-primary");
      expect(run.leaderAfter).not.toBe(run.leaderBefore);
      expect(run.timelineAfter).toBeGreaterThan(run.timelineBefore!);
      expect(run.metrics.promotionMs).toBeGreaterThan(0);
      // the killed leader held its lock: nobody may take over before the ttl ran out (minus a loop)
      expect(run.metrics.rtoMs!).toBeGreaterThan((cfg.timing.ttl - cfg.timing.loopWait - 1) * 1000);
      // reports: JSON with the same verdict, and a picture
      const files = d.suite.files;
      expect(existsSync(files.json)).toBe(true);
      const onDisk = JSON.parse(readFileSync(files.json, "utf8"));
      expect(onDisk.results[0].metrics.lost).toEqual([]);
      expect(onDisk.results[0].series.acked.reduce((a: number, b: number) => a + b, 0)).toBe(d.acked.length);
      const html = readFileSync(files.html, "utf8");
      expect(html).toContain("<svg");
      expect(html).toContain("kill-primary round 1: PASS");
      expect(readFileSync(files.svgs[0]!, "utf8")).toContain("promoted");
    },
    DRILL_TIMEOUT_MS,
  );

  test(
    "switchover: planned move to the sync standby, fast, no write lost",
    async () => {
      const run = expectNothingLostAndConverged(await drillAndCount("switchover"), "switchover");
      expect(run.leaderAfter).not.toBe(run.leaderBefore);
      expect(run.metrics.rtoMs!).toBeLessThan(cfg.timing.ttl * 1000);
    },
    DRILL_TIMEOUT_MS,
  );

  test(
    "crash-postgres: the postmaster dies while Patroni lives; writes come back, nothing lost",
    async () => {
      expectNothingLostAndConverged(await drillAndCount("crash-postgres"), "crash-postgres");
    },
    DRILL_TIMEOUT_MS,
  );

  test(
    "a budget below what the drill measures makes it fail loudly (exit 1)",
    () => {
      const r = drill("switchover", ["--rto-budget", "0.001"], 1);
      expect(r.code).toBe(1);
      const run = r.report.results[0];
      expect(run.passed).toBe(false);
      expect(run.metrics.lost).toEqual([]);
      expect(run.failures.join(" ")).toMatch(/exceeds the budget/);
    },
    DRILL_TIMEOUT_MS,
  );
});
