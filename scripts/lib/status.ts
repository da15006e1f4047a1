/** One snapshot of the stack: processes, Patroni members, HAProxy backends. */
import type { Config } from "./config";
import { haproxyBackends, type BackendServer } from "./haproxy";
import { etcdHealthy } from "./cluster-ops";
import { assessCluster, clusterView, type ClusterMember, type Health } from "./patroni";
import type { ProcessState, Runtime } from "./runtime";
import { stackHttpAddress } from "./stack-files";
import { formatBytes } from "./ui";
import { poolSnapshot, type PoolUsage } from "./pool";
import { firingAlerts } from "./monitoring";

export interface StackStatus {
  stack: string;
  processes: ProcessState[];
  members: (ClusterMember & { address: string })[];
  health: Health;
  haproxy: BackendServer[] | null;
  /** each etcd member's /health, asked over mutual TLS with the toolkit's client certificate */
  etcd: { name: string; healthy: boolean }[];
  /** pgbouncer's pools, summed per database; null (and the stack unhealthy) when it does not answer */
  pool: PoolDatabase[] | null;
  endpoints: { readWrite: string; readOnly: string; api: string; pooled: string };
  /** firing alerts from Prometheus (MONITORING=true); null when monitoring is off or does not answer */
  alerts: string[] | null;
}

export interface PoolDatabase {
  database: string;
  clientsActive: number;
  clientsWaiting: number;
  /** server connections: active + idle + used (all users of the database) */
  servers: number;
  maxWaitS: number;
}

/** One row per configured database (zeros until used); SHOW POOLS' rows (per database and user) summed into it. */
export function poolByDatabase(databases: string[], rows: PoolUsage[]): PoolDatabase[] {
  const out = new Map<string, PoolDatabase>(
    databases.map((database) => [database, { database, clientsActive: 0, clientsWaiting: 0, servers: 0, maxWaitS: 0 }]),
  );
  for (const r of rows) {
    const d = out.get(r.database) ?? {
      database: r.database,
      clientsActive: 0,
      clientsWaiting: 0,
      servers: 0,
      maxWaitS: 0,
    };
    d.clientsActive += r.clientsActive;
    d.clientsWaiting += r.clientsWaiting;
    d.servers += r.serversActive + r.serversIdle + r.serversUsed;
    d.maxWaitS = Math.max(d.maxWaitS, r.maxWaitS);
    out.set(r.database, d);
  }
  return [...out.values()];
}

/** The runtime's processes, and what the network shows of the cluster (Patroni, etcd, HAProxy, pgbouncer). */
export async function stackStatus(cfg: Config, rt: Runtime): Promise<StackStatus> {
  const processes = await rt.status();
  const view = await clusterView(cfg);
  const members = cfg.members.map((m) => {
    const v = view?.members.find((x) => x.name === m.name);
    return {
      ...(v ?? { name: m.name, role: "-", state: "unreachable", host: m.address, port: m.pgPort }),
      address: m.address,
    };
  });
  const etcd = await Promise.all(
    cfg.members.map(async (m) => ({ name: m.etcdName, healthy: await etcdHealthy(cfg, m) })),
  );
  const health = assessCluster(cfg, view);
  const sick = etcd.filter((e) => !e.healthy).map((e) => e.name);
  if (sick.length)
    Object.assign(health, { ok: false, problems: [...health.problems, `etcd not healthy: ${sick.join(", ")}`] });
  // containers (docker runtime): one that is not running, or whose healthcheck fails
  const notReady = processes.filter((p) => p.ready === false).map((p) => `${p.name} ${p.state}`);
  if (notReady.length)
    Object.assign(health, {
      ok: false,
      problems: [...health.problems, `containers not ready: ${notReady.join(", ")}`],
    });
  let pool: PoolDatabase[] | null = null;
  try {
    const snap = await poolSnapshot(cfg);
    pool = poolByDatabase(snap.databases, snap.pools);
  } catch (e) {
    health.ok = false;
    health.problems.push(`pgbouncer down (${(e as Error).message})`);
  }
  return {
    stack: cfg.stack,
    processes,
    members,
    health,
    haproxy: (await haproxyBackends(cfg)) ?? null,
    etcd,
    pool,
    endpoints: {
      pooled: `${cfg.pool.address}:${cfg.pool.port}`,
      readWrite: `${cfg.haproxy.address}:${cfg.haproxy.rwPort}`,
      readOnly: `${cfg.haproxy.address}:${cfg.haproxy.roPort}`,
      api: `http://${stackHttpAddress(cfg)}:${cfg.api.port}`,
    },
    alerts: await firingAlerts(cfg),
  };
}

/** Patroni reports replication lag in bytes of WAL (or "unknown"); the table says so. */
export function formatLag(role: string, lag: number | string | undefined): string {
  if (role === "leader") return "";
  if (typeof lag === "number") return `${formatBytes(lag)}`;
  return lag === undefined ? "-" : String(lag);
}

/**
 * One HAProxy cell: HAProxy marks the read-write backend of every replica DOWN
 * (its /primary check answers 503) and the read-only backend of the leader DOWN
 * on purpose. That is routing, not a fault: say "not routed (replica)" then,
 * and keep DOWN for a member the proxy should route to but cannot.
 */
export function routeCell(role: string, proxy: "postgres_rw" | "postgres_ro", status: string | undefined): string {
  if (!status) return "-";
  const shouldRoute = proxy === "postgres_rw" ? role === "leader" : role !== "leader" && role !== "-";
  if (shouldRoute) return status;
  if (status === "UP") return "UP (unexpected)";
  return `not routed (${role === "leader" ? "leader" : role === "-" ? "unreachable" : "replica"})`;
}
