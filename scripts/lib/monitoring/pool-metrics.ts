/**
 * pgbouncer's metrics for Prometheus (job pgbouncer), served by scripts/pool-exporter.ts.
 * Debian 12's prometheus-pgbouncer-exporter (1.7) cannot be used: it reads SHOW STATS columns
 * pgbouncer removed in 1.8 (`KeyError: 'total_requests'` against Debian's own pgbouncer 1.18, at
 * start-up). This one reads SHOW DATABASES / SHOW POOLS through the toolkit's admin connection.
 */
import type { Config } from "../config";
import type { PoolUsage } from "../pool";
import { formatSamples, type Sample } from "./textfile";

/** Pure: the exposition text for one snapshot (undefined: pgbouncer did not answer). */
export function poolMetricsText(snapshot: { databases: string[]; pools: PoolUsage[] } | undefined): string {
  const samples: Sample[] = [
    { name: "pgbouncer_up", help: "1 if pgbouncer's admin console answered.", value: snapshot ? 1 : 0 },
  ];
  if (snapshot) {
    const per: [string, string, (p: PoolUsage) => number][] = [
      [
        "pgbouncer_pools_client_active_connections",
        "Client connections linked to a server connection or idle.",
        (p) => p.clientsActive,
      ],
      [
        "pgbouncer_pools_client_waiting_connections",
        "Client connections waiting for a server connection.",
        (p) => p.clientsWaiting,
      ],
      ["pgbouncer_pools_server_active_connections", "Server connections linked to a client.", (p) => p.serversActive],
      ["pgbouncer_pools_server_idle_connections", "Server connections idle and ready.", (p) => p.serversIdle],
      [
        "pgbouncer_pools_server_used_connections",
        "Server connections idle, to be checked before reuse.",
        (p) => p.serversUsed,
      ],
      ["pgbouncer_pools_client_maxwait_seconds", "Longest wait of a client in the queue.", (p) => p.maxWaitS],
    ];
    for (const [name, help, get] of per)
      for (const p of snapshot.pools)
        samples.push({ name, help, labels: { database: p.database, user: p.user }, value: get(p) });
    const paused = new Map(snapshot.pools.map((p) => [p.database, p.paused]));
    for (const d of snapshot.databases)
      samples.push({
        name: "pgbouncer_databases_paused",
        help: "1 while the database is PAUSEd (a switchover).",
        labels: { database: d },
        value: paused.get(d) ? 1 : 0,
      });
  }
  return formatSamples(samples);
}

/** One scrape: a snapshot from the admin console, or pgbouncer_up 0. */
export async function scrapePool(cfg: Config): Promise<string> {
  const { poolSnapshot } = await import("../pool");
  return poolMetricsText(await poolSnapshot(cfg).catch(() => undefined));
}
