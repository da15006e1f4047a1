#!/usr/bin/env bun
/** make status: members, roles, timelines, lag, HAProxy backends. --json for scripts. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { openRuntime } from "./lib/runtimes/index";
import { formatLag, routeCell, stackStatus } from "./lib/status";
import { table } from "./lib/ui";

const USAGE = "usage: make status [STACK=dev]   (bun scripts/status.ts [--json])\nexit 0 when healthy, 1 when not";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const s = await stackStatus(cfg, await openRuntime(cfg, "status"));
  if (flags.json) {
    console.log(JSON.stringify(s, null, 2));
    return s.health.ok ? 0 : 1;
  }
  const hp = (server: string, proxy: "postgres_rw" | "postgres_ro", role: string) =>
    routeCell(role, proxy, s.haproxy?.find((b) => b.server === server && b.proxy === proxy)?.status);
  const rows = [["member", "address", "role", "state", "timeline", "lag (WAL)", "haproxy rw", "haproxy ro"]];
  for (const m of s.members) {
    rows.push([
      m.name,
      m.address,
      m.role,
      m.state,
      String(m.timeline ?? "-"),
      formatLag(m.role, m.lag),
      hp(m.name, "postgres_rw", m.role),
      hp(m.name, "postgres_ro", m.role),
    ]);
  }
  console.log(`stack ${s.stack}: ${s.health.ok ? "healthy" : "NOT healthy: " + s.health.problems.join(", ")}`);
  console.log(table(rows));
  console.log("");
  // containers (docker runtime) show compose's state and health instead of a pid
  console.log(
    table([
      ["process", "pid / state"],
      ...s.processes.map((p) => [p.name, p.state ?? (p.pid ? String(p.pid) : "stopped")]),
    ]),
  );
  if (s.pool) {
    console.log("");
    console.log(
      table([
        ["pool (pgbouncer)", "clients active", "waiting", "server conns", "max wait s"],
        ...s.pool.map((p) => [
          p.database,
          String(p.clientsActive),
          String(p.clientsWaiting),
          String(p.servers),
          String(p.maxWaitS),
        ]),
      ]),
    );
  }
  console.log(
    `etcd (mutual TLS): ${s.etcd.map((e) => `${e.name} ${e.healthy ? "healthy" : "NOT healthy"}`).join(", ")}`,
  );
  if (cfg.monitoring.enabled)
    console.log(
      s.alerts === null
        ? "alerts: Prometheus does not answer (make logs SVC=prometheus)"
        : `alerts firing: ${s.alerts.length ? s.alerts.join("; ") : "none"}  (make alerts)`,
    );
  console.log(
    `\nread-write ${s.endpoints.readWrite}   pooled ${s.endpoints.pooled}   read-only ${s.endpoints.readOnly}   api ${s.endpoints.api}`,
  );
  return s.health.ok ? 0 : 1;
});
