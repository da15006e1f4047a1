/**
 * Cluster operations that do not depend on how the members run (native
 * processes, containers, or hosts over SSH): they talk to Patroni's REST API,
 * etcd and Postgres over the network only. Every runtime's up uses them.
 */
import type { Config, Member } from "./config";
import { ToolkitError } from "./errors";
import { etcdFetch } from "./etcd-client";
import { assessCluster, clusterView, restGet, restSend, type Health } from "./patroni";
import { connect, quoteIdent, roTarget, rwTarget } from "./pg";
import { runningPid, type ProcSpec } from "./procs";
import {
  ensureJwtSettings,
  ensureSupabaseRoles,
  ENVIRONMENT_DB_ROLES,
  MAINTENANCE_DB_ROLES,
  restrictConnect,
} from "./supabase-db";

/** Poll `probe` every 250 ms until it answers; a plain Error naming `what` after the timeout. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${Math.round(timeoutMs / 1000)} s`);
    await Bun.sleep(250);
  }
}

export async function etcdHealthy(cfg: Config, m: Member): Promise<boolean> {
  try {
    const res = await etcdFetch(cfg, m, "/health", { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

/** Which member the HAProxy port routes to, and whether it is in recovery. */
export async function probeRoute(
  cfg: Config,
  port: "rw" | "ro",
): Promise<{ addr: string; inRecovery: boolean } | undefined> {
  try {
    const c = await connect(cfg, { target: port === "rw" ? rwTarget(cfg) : roTarget(cfg), timeoutMs: 1500 });
    try {
      const r = await c.query("SELECT inet_server_addr()::text AS addr, pg_is_in_recovery() AS rec");
      return { addr: String(r.rows[0].addr).replace(/\/32$/, ""), inRecovery: r.rows[0].rec };
    } finally {
      await c.end().catch(() => {});
    }
  } catch {
    return undefined;
  }
}

/** A process dev-up was waiting on has died; `proc` names it (the member whose log says why). */
export class ProcessDied extends ToolkitError {
  constructor(readonly proc: ProcSpec) {
    super("PROCESS_DIED", `${proc.name} exited during start-up`, `see ${proc.logFile}`);
  }
}

export async function waitHealthy(cfg: Config, timeoutMs: number, watch: ProcSpec[] = []): Promise<Health> {
  let last: Health | undefined;
  let suspect: ProcSpec | undefined;
  try {
    return await waitFor("Patroni cluster", timeoutMs, async () => {
      // Fail fast when a process we are waiting on has died: its log says why.
      // Dead on two polls in a row, so one odd /proc read cannot end a bring-up.
      const dead = watch.find((s) => !runningPid(s));
      if (dead && dead === suspect) throw new ProcessDied(dead);
      suspect = dead;
      last = assessCluster(cfg, await clusterView(cfg));
      return last.ok ? last : undefined;
    });
  } catch (err) {
    if (err instanceof ToolkitError) throw err;
    throw new ToolkitError(
      "CLUSTER_UNHEALTHY",
      `Patroni cluster not healthy after ${timeoutMs / 1000} s: ${(last?.problems ?? ["no answer"]).join(", ")}`,
      "see `make logs SVC=pg1` (and pg2, pg3) and `make status`",
    );
  }
}

/** Apply the env file's HA timing to the DCS when it differs (Patroni reads bootstrap.dcs only once). */
export async function syncDcsTiming(cfg: Config): Promise<string | undefined> {
  const want: Record<string, unknown> = {
    ttl: cfg.timing.ttl,
    loop_wait: cfg.timing.loopWait,
    retry_timeout: cfg.timing.retryTimeout,
    maximum_lag_on_failover: cfg.timing.maximumLagOnFailover,
    synchronous_mode: cfg.timing.synchronousMode,
    failsafe_mode: cfg.timing.failsafeMode,
    // Same value as patroni/patroni.yml.tmpl: fail over at once on a crash (safe with synchronous mode).
    primary_start_timeout: 0,
  };
  for (const m of cfg.members) {
    const r = await restGet(m, "/config");
    if (!r || r.status !== 200) continue;
    const diff = Object.fromEntries(Object.entries(want).filter(([k, v]) => r.body[k] !== v));
    if (Object.keys(diff).length === 0) return undefined;
    const res = await restSend(cfg, m, "PATCH", "/config", diff);
    if (res.status !== 200)
      throw new ToolkitError("DCS_PATCH_FAILED", `PATCH /config answered ${res.status}: ${res.text}`);
    return `DCS settings updated: ${Object.keys(diff).join(", ")}`;
  }
  return undefined;
}

export async function ensureDatabases(cfg: Config): Promise<string[]> {
  const changes: string[] = [];
  const c = await connect(cfg);
  try {
    const have = new Set((await c.query("SELECT datname FROM pg_database")).rows.map((r) => r.datname as string));
    changes.push(...(await ensureSupabaseRoles(cfg, c)));
    for (const db of cfg.databases) {
      if (!have.has(db)) {
        await c.query(`CREATE DATABASE ${quoteIdent(db)}`);
        changes.push(`database ${db}`);
      }
      changes.push(...(await ensureJwtSettings(cfg, c, db)));
      // Each role confined to its own database: app roles cannot even connect here.
      const confined = await restrictConnect(c, db, ENVIRONMENT_DB_ROLES);
      if (confined) changes.push(confined);
    }
    const maintenance = await restrictConnect(c, "postgres", MAINTENANCE_DB_ROLES);
    if (maintenance) changes.push(maintenance);
    // template1 too: no role needs it, and from it an app's role could ALTER its own database
    // (ALLOW_CONNECTIONS false), which no session inside that database may do, and stop every backup.
    const template = await restrictConnect(c, "template1", []);
    if (template) changes.push(template);
  } finally {
    await c.end().catch(() => {});
  }
  return changes;
}
