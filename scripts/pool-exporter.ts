#!/usr/bin/env bun
/**
 * pgbouncer's Prometheus exporter (job pgbouncer): GET /metrics on the stack's address,
 * PROMETHEUS_PORT-independent port POSTGRES_EXPORTER_PORT - 60 (9127 on dev). Started by dev-up
 * when MONITORING=true; reads pgbouncer's admin console with POOL_ADMIN_PASSWORD from the secrets file.
 */
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { pgbouncerExporterPort, scrapePool } from "./lib/monitoring";

const USAGE = "usage: bun scripts/pool-exporter.ts --stack <stack>   (run by make dev-up)";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { stack: "string" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  if (!flags.stack) throw new ToolkitError("USAGE", "--stack is required", USAGE);
  const cfg = loadConfig(flags.stack);
  Bun.serve({
    hostname: cfg.monitoring.address,
    port: pgbouncerExporterPort(cfg),
    async fetch(req) {
      if (new URL(req.url).pathname !== "/metrics") return new Response("not found\n", { status: 404 });
      return new Response(await scrapePool(cfg), { headers: { "content-type": "text/plain; version=0.0.4" } });
    },
  });
  console.log(
    `${new Date().toISOString()} pgbouncer exporter on http://${cfg.monitoring.address}:${pgbouncerExporterPort(cfg)}/metrics`,
  );
  await new Promise(() => {});
});
