/**
 * The verbs as functions, for scripts of your own (a zx script, a cron job, a
 * test): each takes the stack by name (default: $STACK, else dev), returns
 * data and prints nothing. Errors are ToolkitErrors (code, message, fix), the
 * same the make targets print. The process runner is exported too: `$` is
 * zx's, for argument arrays, never a shell.
 *
 *   import { backup, devUp, status } from "./scripts/api";
 *   await devUp({ stack: "dev" });
 *   if ((await status()).health.ok) await backup({ verify: true });
 *
 * examples/nightly.ts is one such script (README: "Your own scripts").
 */
import { listApps, removeApp as removeAppLib } from "./lib/onboard/api-apps";
import { withBackupCommand } from "./lib/backup/cli";
import type { BackupProgress } from "./lib/backup/common";
import { restoreDatabase, type RestoreOptions } from "./lib/backup/restore";
import { runBackup, type BackupOptions } from "./lib/backup/run";
import { loadConfig, stackName, type Config } from "./lib/config";
import { ToolkitError } from "./lib/errors";
import { planRestart, planSwitchover, runMaintenance } from "./lib/maintenance";
import { planMigration } from "./lib/migrate/plan";
import type { MigrateOptions } from "./lib/migrate/types";
import type { Progress } from "./lib/runtime";
import { openRuntime, runtimeFor } from "./lib/runtimes/index";
import { requireClusterView } from "./lib/patroni";
import { ensureSecrets } from "./lib/secrets";
import { ensureOsPackages } from "./lib/setup";
import { stackStatus } from "./lib/status";

export { $, run, start, within, type Cmd, type RunOptions, type RunResult } from "./lib/exec";
export { ToolkitError } from "./lib/errors";
export { listApps };

export interface StackOption {
  /** envs/<stack>.env; default $STACK, else dev */
  stack?: string;
}

const config = (o: StackOption = {}): Config => loadConfig(o.stack ?? stackName());
const silent = () => {};

/** `make dev-up`: bring the stack up (idempotent); what started, restarted or changed, and the cluster's health. */
export async function devUp(o: StackOption & { install?: boolean; progress?: Progress } = {}) {
  let cfg = config(o);
  const runtime = (await openRuntime(cfg, "dev-up")).name;
  if (runtime === "native" && o.install !== false)
    await ensureOsPackages({ quiet: true, monitoring: cfg.monitoring.enabled });
  ensureSecrets(cfg.secretsFile, cfg.databases);
  cfg = loadConfig(cfg.stack); // with its secrets
  const up = await runtimeFor(cfg, runtime).up(o.progress ?? silent);
  return { stack: cfg.stack, runtime, ...up };
}

/** `make dev-down`: stop the stack, keep the data. */
export async function devDown(o: StackOption & { progress?: Progress } = {}): Promise<{ stopped: string[] }> {
  const cfg = config(o);
  const { stopped } = await (await openRuntime(cfg, "dev-down")).down(o.progress ?? silent);
  return { stopped };
}

/** `make status --json`: members, routing, etcd, pool, endpoints and `health.ok`. */
export async function status(o: StackOption = {}) {
  const cfg = config(o);
  return stackStatus(cfg, await openRuntime(cfg, "status"));
}

const backupConfig = (o: StackOption) => {
  const cfg = config(o);
  if (!cfg.secrets?.POSTGRES_PASSWORD)
    throw new ToolkitError(
      "NO_SECRETS",
      `${cfg.secretsFile} has no POSTGRES_PASSWORD`,
      "bring the stack up first: `make dev-up`",
    );
  return cfg;
};

/**
 * `make backup`: logical + pgBackRest backup, verified by restore, then
 * retention (locked, logged, alerting on failure).
 */
export async function backup(o: StackOption & BackupOptions & { alertUrl?: string; progress?: BackupProgress } = {}) {
  const cfg = backupConfig(o);
  await openRuntime(cfg, "backup");
  return withBackupCommand(cfg, "backup", { alert: { url: o.alertUrl }, silent: true }, ({ progress }) =>
    runBackup(
      cfg,
      { databases: o.databases, verify: o.verify ?? true, physical: o.physical ?? true, physicalType: o.physicalType },
      (s, m, f) => {
        progress(s, m, f);
        o.progress?.(s, m, f);
      },
    ),
  );
}

/**
 * `make restore`: DB from a backup (newest unless `from`), into `to` or in
 * place; replacing a live database needs `confirmed: true`.
 */
export async function restore(o: StackOption & RestoreOptions) {
  const cfg = backupConfig(o);
  await openRuntime(cfg, "restore");
  return withBackupCommand(cfg, "restore", { alert: false, silent: true }, ({ progress }) =>
    restoreDatabase(cfg, o, progress),
  );
}

/** `make switchover [TO=…]`: planned leader change with clients held in pgbouncer. */
export async function switchover(o: StackOption & { to?: string; restartMember?: string; signal?: AbortSignal } = {}) {
  const cfg = config(o);
  await openRuntime(cfg, o.restartMember !== undefined ? "restart-member" : "switchover");
  const view = await requireClusterView(cfg);
  const plan = o.restartMember !== undefined ? planRestart(view, o.restartMember) : planSwitchover(view, o.to);
  return runMaintenance(cfg, plan, { signal: o.signal });
}

/** `make migrate-saas PLAN=1`: what a migration would carry, read from both sides; changes nothing. */
export const migrationPlan = (o: StackOption & MigrateOptions) => planMigration(config(o), o);

/** `make new-app REMOVE=1`: drop an app after a final backup. */
export const removeApp = (name: string, o: StackOption = {}) => removeAppLib(config(o), name);

export { newApp } from "./lib/onboard/api-apps";
