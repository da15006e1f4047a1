#!/usr/bin/env bun
/** make dev-up: bring the whole local stack up (idempotent). */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { openRuntime, runtimeFor } from "./lib/runtimes/index";
import { ensureSecrets } from "./lib/secrets";
import { intro, note, outro, progressReporter } from "./lib/ui";
import { ensureOsPackages } from "./lib/setup";
import { stackHttpAddress } from "./lib/stack-files";

const USAGE = `usage: make dev-up [STACK=dev] [RUNTIME=auto|native|docker]
       bun scripts/dev-up.ts [--json] [--no-install]

Brings up etcd (3), Patroni + Postgres (3), HAProxy and nginx, creates the
environment databases and Supabase's roles, and prints the endpoints.
Running it again while the stack is up changes nothing.`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean", noInstall: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  let cfg = loadConfig();
  const rt = await openRuntime(cfg, "dev-up");
  const runtime = rt.name;
  if (runtime === "native" && !flags.noInstall)
    await ensureOsPackages({ quiet: !!flags.json, monitoring: cfg.monitoring.enabled });
  const { created } = ensureSecrets(cfg.secretsFile, cfg.databases); // one JWT secret per environment database
  cfg = loadConfig(cfg.stack); // with secrets
  const withSecrets = runtimeFor(cfg, runtime);
  if (!flags.json) intro(`dev-up: stack ${cfg.stack} (${runtime})`);
  if (created.length && !flags.json)
    note(`generated ${created.length} secrets into ${cfg.secretsFile.replace(cfg.rootDir + "/", "")} (mode 0600)`);
  const progress = progressReporter();
  if (!flags.json) progress.start("starting");
  const quiet = () => {};
  const result = await withSecrets.up(flags.json ? quiet : progress.step);
  if (flags.json) {
    console.log(JSON.stringify({ stack: cfg.stack, runtime, ...result }, null, 2));
    return;
  }
  const nothing = result.started.length === 0 && result.restarted.length === 0 && result.changes.length === 0;
  progress.stop(nothing ? "already up: nothing to change" : `up in ${(result.ms / 1000).toFixed(1)} s`);
  const lines = [
    `Postgres read-write  ${cfg.haproxy.address}:${cfg.haproxy.rwPort}  (leader ${result.health.leader})`,
    `Postgres read-only   ${cfg.haproxy.address}:${cfg.haproxy.roPort}`,
    `HAProxy stats        http://${cfg.haproxy.address}:${cfg.haproxy.statsPort}/  (user admin, password in ${cfg.secretsFile.replace(cfg.rootDir + "/", "")})`,
    `API (nginx)          http://${stackHttpAddress(cfg)}:${cfg.api.port}/healthz`,
    `databases            ${cfg.databases.join(", ")}`,
    `connection URL       make -s db-url DB=${cfg.databases[0]}`,
  ];
  if (result.started.length) lines.push(`started              ${result.started.join(", ")}`);
  if (result.restarted.length) lines.push(`restarted            ${result.restarted.join(", ")}`);
  if (result.changes.length) lines.push(`created/changed      ${result.changes.join("; ")}`);
  note(lines.join("\n"), "endpoints");
  outro(nothing ? "nothing to do" : "stack is up");
});
