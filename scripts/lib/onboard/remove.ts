/**
 * Removing an app: a final pg_dump first (verified readable with pg_restore
 * --list), then the database and role, the env file, the nginx block and the
 * registry entry. If the backup cannot be made or read, nothing is dropped.
 */
import { writeSupabaseRoutes } from "../supabase/routes";
import { chmodSync, closeSync, mkdirSync, openSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { appEnvPath, appNginxPath, loadApps, registryPath, saveApps } from "../apps";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { procSpecs } from "../native/specs";
import { withClient } from "../pg";
import { syncPool } from "../pool";
import { runningPid } from "../procs";
import { withAppsLock } from "./lock";
import { connectAdmin, inspectApp, readIfExists, requireSecrets } from "./admin";
import { applyNginx, waitNginxRoute } from "./nginx-apply";
import { appDatabase, appNameProblem, NAME_RULE, pgDumpCmd, pgRestoreListCmd, sql, utcStamp } from "./plan";

export interface RemovalPlan {
  name: string;
  database: string;
  role: string;
  domain?: string;
  registered: boolean;
  databaseExists: boolean;
  roleExists: boolean;
  envFile?: string;
  nginxConf?: string;
  /** nothing of this app exists */
  nothing: boolean;
}

export interface RemoveResult {
  plan: RemovalPlan;
  backup?: { path: string; bytes: number; entries: number };
  removed: string[];
  ms: number;
}

export const removedBackupDir = (cfg: Config) => join(cfg.stateDir, "backups", "removed");

export function checkRemovable(cfg: Config, name: string): void {
  const p = appNameProblem(name, cfg);
  if (p) throw new ToolkitError("BAD_INPUT", p, `app names: ${NAME_RULE}; nothing was changed`);
}

/** What --remove would delete (read-only): shown in the confirmation. */
export async function planRemoval(cfg: Config, name: string): Promise<RemovalPlan> {
  checkRemovable(cfg, name);
  requireSecrets(cfg);
  const entry = loadApps(cfg).find((a) => a.name === name);
  const database = entry?.database ?? appDatabase(name);
  const role = entry?.role ?? name;
  const admin = await connectAdmin(cfg);
  try {
    const s = await inspectApp(admin, role, database);
    const envFile = appEnvPath(cfg, name);
    const nginxConf = appNginxPath(cfg, name);
    const plan: RemovalPlan = {
      name,
      database,
      role,
      domain: entry?.domain,
      registered: Boolean(entry),
      databaseExists: s.dbOwner !== null,
      roleExists: s.roleExists,
      envFile: readIfExists(envFile) !== undefined ? envFile : undefined,
      nginxConf: readIfExists(nginxConf) !== undefined ? nginxConf : undefined,
      nothing: false,
    };
    plan.nothing = !plan.registered && !plan.databaseExists && !plan.roleExists && !plan.envFile && !plan.nginxConf;
    return plan;
  } finally {
    await admin.end().catch(() => {});
  }
}

/** pg_dump -Fc into a 0600 file, then prove it reads back. Returns the entry count of its table of contents. */
export async function finalBackup(
  cfg: Config,
  database: string,
  name: string,
  now = new Date(),
): Promise<{ path: string; bytes: number; entries: number }> {
  const path = join(removedBackupDir(cfg), `${name}-${utcStamp(now)}.dump`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  // Create it 0600 before pg_dump writes, so the data is never readable by others, even briefly.
  closeSync(openSync(path, "w", 0o600));
  chmodSync(path, 0o600);
  const env = { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "5" };
  try {
    await run(pgDumpCmd(cfg, database, path), { env, timeoutMs: 600_000 });
    const list = await run(pgRestoreListCmd(cfg, path), { timeoutMs: 120_000 });
    const entries = list.stdout.split("\n").filter((l) => l.trim() && !l.startsWith(";")).length;
    if (!list.stdout.includes(`dbname: ${database}`))
      throw new Error(`pg_restore --list does not name database ${database}`);
    return { path, bytes: statSync(path).size, entries };
  } catch (e) {
    rmSync(path, { force: true });
    throw new ToolkitError(
      "BACKUP_FAILED",
      `final backup of ${database} failed, so nothing was dropped: ${(e as Error).message}`,
      "check `make status`; fix the cause and re-run --remove",
      e instanceof ToolkitError ? e.detail : undefined,
    );
  }
}

export async function removeApp(
  cfg: Config,
  name: string,
  opts: { progress?: (step: string, message: string) => void; signal?: AbortSignal } = {},
): Promise<RemoveResult> {
  const t0 = Date.now();
  checkRemovable(cfg, name);
  requireSecrets(cfg);
  const progress = opts.progress ?? (() => {});
  return withAppsLock(cfg, async () => {
    const plan = await planRemoval(cfg, name);
    const removed: string[] = [];
    if (plan.nothing) return { plan, removed, ms: Date.now() - t0 };
    let backup: RemoveResult["backup"];
    if (plan.databaseExists) {
      backup = await finalBackup(cfg, plan.database, name);
      progress("backup", `${backup.path} (${backup.bytes} bytes, ${backup.entries} entries)`);
    }
    // Ctrl-C before this point leaves the app as it was (the backup stays); after it, the removal completes.
    if (opts.signal?.aborted)
      throw new ToolkitError(
        "INTERRUPTED",
        `interrupted (Ctrl-C): nothing of ${name} was dropped`,
        backup ? `the backup ${backup.path} is kept` : undefined,
      );
    const admin = await connectAdmin(cfg);
    try {
      if (plan.databaseExists) {
        await admin.query(sql.dropDatabase(plan.database)); // WITH (FORCE): the app's sessions end here
        removed.push(`database ${plan.database}`);
        progress("database", `dropped ${plan.database}`);
      }
      if (plan.roleExists) {
        try {
          await admin.query(sql.dropRole(plan.role));
        } catch (e) {
          throw new ToolkitError(
            "ROLE_IN_USE",
            `database ${plan.database} was dropped (backup ${backup?.path ?? "-"}) but role ${plan.role} could not be: ${(e as Error).message}`,
            `find what it still owns or holds with \`\\dp\` in other databases, then re-run --remove`,
          );
        }
        removed.push(`role ${plan.role}`);
        progress("role", `dropped ${plan.role}`);
      }
    } finally {
      await admin.end().catch(() => {});
    }
    if (plan.envFile) {
      rmSync(plan.envFile, { force: true });
      removed.push(rel(cfg, plan.envFile));
    }
    if (plan.nginxConf) {
      rmSync(plan.nginxConf, { force: true });
      await applyNginx(cfg);
      if (plan.domain && runningPid(procSpecs(cfg).nginx)) await waitNginxRoute(cfg, plan.domain, name, false);
      removed.push(`nginx block ${plan.domain ?? name}`);
    }
    if (plan.registered) {
      saveApps(
        cfg,
        loadApps(cfg).filter((a) => a.name !== name),
      );
      removed.push(`${rel(cfg, registryPath(cfg))} entry`);
    }
    if (writeSupabaseRoutes(cfg)) await applyNginx(cfg), removed.push(`Supabase routes of ${name}`);
    // pgbouncer forgets the app's pool and its role's verifier.
    const pool = await withClient(cfg, {}, (c) => syncPool(cfg, c, procSpecs(cfg).pool));
    if (pool === "reloaded") removed.push(`pgbouncer pool ${plan.database}`);
    return { plan, backup, removed, ms: Date.now() - t0 };
  });
}

const rel = (cfg: Config, path: string) => path.replace(cfg.rootDir + "/", "");
