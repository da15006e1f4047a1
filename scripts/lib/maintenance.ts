/**
 * Planned switchovers and member restarts with no failed client statement:
 * pgbouncer is PAUSEd (in-flight transactions finish, new ones wait in the
 * pooler), Patroni switches the leader, we wait until HAProxy routes
 * read-write to the new leader, then RESUME. The steps are data (planned from
 * the cluster view, unit-tested); the runner always RESUMEs a pooler it paused,
 * whatever fails, and the error names the step.
 */
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { haproxyBackends } from "./haproxy";
import { probeRoute } from "./cluster-ops";
import { assessCluster, clusterView, restSend } from "./patroni";
import { connect, withClient } from "./pg";
import { pooledDatabases, poolAdmin, withPoolAdmin } from "./pool";
import { loadApps } from "./apps";

export { planRestart, planSwitchover, type MaintPlan, type MaintStep } from "./maintenance-plan";
import type { MaintPlan, MaintStep } from "./maintenance-plan";

export interface BlockingSession {
  pid: number;
  user: string;
  database: string;
  state: string;
  xactStart: string | null;
  queryStart: string | null;
}

export interface MaintResult {
  plan: MaintPlan;
  steps: { step: MaintStep; ms: number }[];
  /** PAUSE issued to RESUME answered: how long new statements waited in the pooler */
  pausedMs: number;
  ms: number;
}

export interface MaintOptions {
  progress?: (step: MaintStep, message: string) => void;
  /** Tests throw here to prove a failure mid-way leaves the pooler resumed. */
  beforeStep?: (step: MaintStep) => void | Promise<void>;
  signal?: AbortSignal;
  pauseTimeoutS?: number;
  routeTimeoutMs?: number;
  /** how long preflight waits for a healthy cluster (default 30 s) */
  healthWaitMs?: number;
}

const sleep = (ms: number) => new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms));

/** Sessions in pooled databases holding a transaction open since before `since`: what a PAUSE waits for. */
export async function blockingSessions(cfg: Config, since: Date): Promise<BlockingSession[]> {
  const c = await connect(cfg, { timeoutMs: 3000 });
  try {
    const r = await c.query(
      `SELECT pid, usename, datname, state, xact_start::text AS xact_start, query_start::text AS query_start
         FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = ANY($1::text[])
          AND state <> 'idle' AND xact_start < $2
        ORDER BY xact_start`,
      [pooledDatabases(cfg, loadApps(cfg)), since.toISOString()],
    );
    return r.rows.map((x) => ({
      pid: x.pid,
      user: x.usename,
      database: x.datname,
      state: x.state,
      xactStart: x.xact_start,
      queryStart: x.query_start,
    }));
  } finally {
    await c.end().catch(() => {});
  }
}

/** RESUME, retried for a few seconds; "not paused" counts as done. */
export async function resumePool(cfg: Config, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await withPoolAdmin(cfg, async (c) => {
        await c.query("RESUME").catch((e) => {
          if (!/not paused/.test((e as Error).message)) throw e;
        });
      });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await Bun.sleep(250);
    }
  }
}

export async function runMaintenance(cfg: Config, plan: MaintPlan, opts: MaintOptions = {}): Promise<MaintResult> {
  const t0 = Date.now();
  const progress = opts.progress ?? (() => {});
  const pauseTimeoutS = opts.pauseTimeoutS ?? cfg.pool.pauseTimeoutS;
  const routeTimeoutMs = opts.routeTimeoutMs ?? 30_000;
  const steps: MaintResult["steps"] = [];
  let step: MaintStep = "preflight";
  let paused = false;
  let pausedAt = 0;
  let pausedMs = 0;
  const member = (name: string) => cfg.members.find((m) => m.name === name)!;
  try {
    for (const s of plan.steps) {
      step = s;
      if (opts.signal?.aborted) throw new ToolkitError("INTERRUPTED", "interrupted (Ctrl-C)", "re-run when ready");
      await opts.beforeStep?.(s);
      const ts = Date.now();
      switch (s) {
        case "preflight": {
          // A member that just rejoined (e.g. right after the previous switchover) gets a moment to stream again.
          let h = assessCluster(cfg, await clusterView(cfg));
          for (const deadline = Date.now() + (opts.healthWaitMs ?? 30_000); !h.ok && Date.now() < deadline; ) {
            await Bun.sleep(250);
            h = assessCluster(cfg, await clusterView(cfg));
          }
          if (!h.ok)
            throw new ToolkitError(
              "CLUSTER_UNHEALTHY",
              `cluster not healthy: ${h.problems.join(", ")}`,
              "see `make status`; a planned switchover needs 3 running members",
            );
          if (h.leader !== plan.leader)
            throw new ToolkitError("LEADER_CHANGED", `the leader is now ${h.leader}, not ${plan.leader}`, "re-run");
          if (plan.steps.includes("pause")) await withPoolAdmin(cfg, async (c) => void (await c.query("SHOW VERSION")));
          progress(
            s,
            `leader ${plan.leader}${plan.candidate ? `, candidate ${plan.candidate}` : ""}${plan.member ? `, restart ${plan.member}` : ""}`,
          );
          break;
        }
        case "checkpoint": {
          // Through HAProxy's read-write port: the leader, which preflight has just confirmed.
          await withClient(cfg, { timeoutMs: 5000 }, (c) => c.query("CHECKPOINT"));
          progress(s, `${plan.leader}: dirty pages flushed before the pause`);
          break;
        }
        case "pause": {
          const since = new Date();
          const admin = await poolAdmin(cfg);
          paused = true; // from here on a RESUME is owed, even if PAUSE never completes
          pausedAt = Date.now();
          try {
            const done = admin.query("PAUSE").then(() => "done" as const);
            const r = await Promise.race([done, sleep(pauseTimeoutS * 1000)]);
            if (r === "timeout") {
              const blockers = await blockingSessions(cfg, since).catch(() => []);
              const who = blockers.length
                ? blockers
                    .map(
                      (b) =>
                        `pid ${b.pid} (${b.user}@${b.database}, ${b.state}, transaction since ${b.xactStart}, query since ${b.queryStart})`,
                    )
                    .join("; ")
                : "no session found in pg_stat_activity";
              throw new ToolkitError(
                "PAUSE_TIMEOUT",
                `in-flight transactions did not finish within ${pauseTimeoutS} s (POOL_PAUSE_TIMEOUT): blocked by ${who}`,
                "end or wait for that transaction (pg_terminate_backend(pid) if it is stuck), then re-run",
              );
            }
          } finally {
            await admin.end().catch(() => {});
          }
          progress(s, `pgbouncer paused (in-flight transactions finished, server connections closed)`);
          break;
        }
        case "switchover": {
          const res = await restSend(
            cfg,
            member(plan.leader),
            "POST",
            "/switchover",
            { leader: plan.leader, candidate: plan.candidate },
            60_000,
          );
          if (res.status !== 200)
            throw new ToolkitError(
              "SWITCHOVER_REFUSED",
              `Patroni refused the switchover ${plan.leader} -> ${plan.candidate}: ${res.status} ${res.text.trim()}`,
              "the candidate must be a running replica (the sync standby in synchronous mode); see `make status`",
            );
          progress(s, `${plan.leader} -> ${plan.candidate}: ${res.text.trim().slice(0, 80)}`);
          break;
        }
        case "wait-route": {
          const want = member(plan.candidate!);
          const deadline = Date.now() + routeTimeoutMs;
          for (;;) {
            const b = await haproxyBackends(cfg);
            const up = b?.filter((x) => x.proxy === "postgres_rw" && x.status === "UP").map((x) => x.server) ?? [];
            if (up.length === 1 && up[0] === want.name) {
              const r = await probeRoute(cfg, "rw");
              if (r && r.addr === want.address && !r.inRecovery) break;
            }
            if (Date.now() > deadline)
              throw new ToolkitError(
                "ROUTE_TIMEOUT",
                `HAProxy did not route read-write to ${want.name} within ${routeTimeoutMs / 1000} s (read-write UP: ${up.join(", ") || "none"})`,
                "see `make status` and `make logs SVC=haproxy`",
              );
            await Bun.sleep(100);
          }
          progress(s, `HAProxy read-write -> ${want.name} (${want.address}), primary`);
          break;
        }
        case "resume": {
          await resumePool(cfg);
          paused = false;
          pausedMs = Date.now() - pausedAt;
          progress(s, `pgbouncer resumed after ${(pausedMs / 1000).toFixed(1)} s`);
          break;
        }
        case "restart": {
          const res = await restSend(cfg, member(plan.member!), "POST", "/restart", {}, 120_000);
          if (res.status !== 200)
            throw new ToolkitError(
              "RESTART_REFUSED",
              `Patroni refused to restart ${plan.member}: ${res.status} ${res.text.trim()}`,
              "see `make logs SVC=" + plan.member + "`",
            );
          progress(s, `${plan.member}: ${res.text.trim().slice(0, 80)}`);
          break;
        }
        case "wait-member": {
          const deadline = Date.now() + 90_000;
          for (;;) {
            const h = assessCluster(cfg, await clusterView(cfg));
            if (h.ok) break;
            if (Date.now() > deadline)
              throw new ToolkitError(
                "MEMBER_NOT_BACK",
                `${plan.member} not back after 90 s: ${h.problems.join(", ")}`,
                `see \`make logs SVC=${plan.member}\``,
              );
            await Bun.sleep(250);
          }
          progress(s, `cluster healthy (${plan.member} running)`);
          break;
        }
      }
      steps.push({ step: s, ms: Date.now() - ts });
    }
    return { plan, steps, pausedMs, ms: Date.now() - t0 };
  } catch (err) {
    let after = "";
    if (paused) {
      try {
        await resumePool(cfg);
        after = "; pgbouncer resumed";
      } catch (e) {
        after = `; COULD NOT RESUME pgbouncer: ${(e as Error).message} (run RESUME on its admin console)`;
      }
    }
    const e = err instanceof ToolkitError ? err : undefined;
    throw new ToolkitError(
      e && e.code !== "COMMAND_FAILED" ? e.code : "MAINTENANCE_FAILED",
      `${plan.op}: step ${step} failed: ${(err as Error).message}${after}`,
      e?.fix ?? "see `make status`",
      e?.detail,
    );
  }
}
