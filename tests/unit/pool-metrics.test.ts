/** pgbouncer's metrics (job pgbouncer) from a SHOW POOLS / SHOW DATABASES snapshot. */
import { describe, expect, test } from "bun:test";
import { poolMetricsText } from "../../scripts/lib/monitoring";

describe("pgbouncer exporter", () => {
  test("a snapshot: up, per pool (database, user) clients and servers, paused per database", () => {
    const pool = {
      database: "hyperarchy_db",
      user: "hyperarchy",
      clientsActive: 3,
      clientsWaiting: 1,
      serversActive: 2,
      serversIdle: 4,
      serversUsed: 0,
      maxWaitS: 2,
      paused: true,
    };
    const text = poolMetricsText({ databases: ["hyperarchy_db", "orchestrator_ai_dev"], pools: [pool] });
    expect(text.split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([
      "pgbouncer_up 1",
      'pgbouncer_pools_client_active_connections{database="hyperarchy_db",user="hyperarchy"} 3',
      'pgbouncer_pools_client_waiting_connections{database="hyperarchy_db",user="hyperarchy"} 1',
      'pgbouncer_pools_server_active_connections{database="hyperarchy_db",user="hyperarchy"} 2',
      'pgbouncer_pools_server_idle_connections{database="hyperarchy_db",user="hyperarchy"} 4',
      'pgbouncer_pools_server_used_connections{database="hyperarchy_db",user="hyperarchy"} 0',
      'pgbouncer_pools_client_maxwait_seconds{database="hyperarchy_db",user="hyperarchy"} 2',
      'pgbouncer_databases_paused{database="hyperarchy_db"} 1',
      'pgbouncer_databases_paused{database="orchestrator_ai_dev"} 0',
    ]);
  });
  test("pgbouncer down: pgbouncer_up 0 and nothing else", () => {
    expect(poolMetricsText(undefined)).toBe(
      "# HELP pgbouncer_up 1 if pgbouncer's admin console answered.\n# TYPE pgbouncer_up gauge\npgbouncer_up 0\n",
    );
  });
});
