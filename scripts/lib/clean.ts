/**
 * What `make clean` deletes and what it keeps. A clean must leave nothing
 * that refers to what it deleted: the app registry and the apps' env files
 * name databases and roles that die with the data, so they go too (a next
 * `make backup` on a fresh stack would otherwise look for those databases).
 */
import { existsSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { appEnvPath, loadApps, registryPath, saveApps } from "./apps";
import type { Config } from "./config";
import { envFilePath, envFilesDir } from "./supabase/environments";

export interface CleanPlan {
  /** state dir, member root, socket dir: deleted whole */
  dirs: string[];
  /** app env files (DATABASE_URL of roles that will no longer exist) */
  appEnvFiles: string[];
  /** the app registry: deleted (test/local stacks), or emptied when committed (the dev stack's envs/apps.yaml) */
  registry?: { path: string; action: "delete" | "empty"; apps: string[] };
  /** kept, each with the reason */
  kept: { path: string; why: string }[];
}

export function planClean(cfg: Config, opts: { purgeSecrets?: boolean; extraDirs?: string[] } = {}): CleanPlan {
  const all = [cfg.stateDir, cfg.memberRoot, cfg.runtimeDir, ...(opts.extraDirs ?? [])];
  // A folder inside another one on the list goes with it (members under .state/<stack> by default).
  const dirs = all.filter((d, i, a) => existsSync(d) && a.indexOf(d) === i && !a.some((o) => d.startsWith(o + "/")));
  const apps = loadAppsQuietly(cfg);
  const envDir = join(cfg.rootDir, "envs");
  const appEnvFiles = new Set(apps.map((a) => appEnvPath(cfg, a.name)).filter((p) => existsSync(p)));
  // On a non-dev stack the name alone says the file is this stack's (envs/.env.<stack>.<app>), registered or not.
  if (cfg.stack !== "dev" && existsSync(envDir)) {
    for (const f of readdirSync(envDir)) if (f.startsWith(`.env.${cfg.stack}.`)) appEnvFiles.add(join(envDir, f));
  }
  // The environments' env files (scripts/lib/supabase/environments.ts): their roles go with the data too.
  for (const p of cfg.databases.map((db) => envFilePath(cfg, db))) if (existsSync(p)) appEnvFiles.add(p);
  const reg = registryPath(cfg);
  const registry =
    existsSync(reg) && (cfg.stack !== "dev" || apps.length > 0)
      ? {
          path: reg,
          action: cfg.stack === "dev" ? ("empty" as const) : ("delete" as const),
          apps: apps.map((a) => a.name),
        }
      : undefined;
  const kept: CleanPlan["kept"] = [];
  if (existsSync(cfg.secretsFile) && !opts.purgeSecrets)
    kept.push({
      path: cfg.secretsFile,
      why: "the stack's generated passwords, reused by the next dev-up (--purge-secrets deletes it)",
    });
  if (existsSync(cfg.file)) kept.push({ path: join(cfg.rootDir, cfg.file), why: "the stack's settings" });
  return { dirs, appEnvFiles: [...appEnvFiles].sort(), registry, kept };
}

/** A registry that does not parse still belongs to the stack: clean it anyway. */
function loadAppsQuietly(cfg: Config) {
  try {
    return loadApps(cfg);
  } catch {
    return [];
  }
}

export const planIsEmpty = (p: CleanPlan) => p.dirs.length === 0 && p.appEnvFiles.length === 0 && !p.registry;

/** Delete what the plan names (the stack must already be stopped). Returns what was deleted, for the summary. */
export function applyClean(cfg: Config, plan: CleanPlan, opts: { purgeSecrets?: boolean } = {}): string[] {
  const done: string[] = [];
  for (const d of plan.dirs) {
    rmSync(d, { recursive: true, force: true });
    done.push(d);
  }
  for (const f of plan.appEnvFiles) {
    rmSync(f, { force: true });
    done.push(f);
  }
  // The environments' folder (envs/app.<stack>/) goes with its last file; anything else put there keeps it.
  const envDir = envFilesDir(cfg);
  if (plan.appEnvFiles.some((f) => dirname(f) === envDir) && existsSync(envDir) && readdirSync(envDir).length === 0) {
    rmdirSync(envDir);
    done.push(envDir);
  }
  if (plan.registry?.action === "delete") {
    rmSync(plan.registry.path, { force: true });
    done.push(plan.registry.path);
  } else if (plan.registry?.action === "empty") {
    // Committed: emptied, not deleted (`git diff envs/apps.yaml` shows what went; `git checkout` brings the entries back).
    saveApps(cfg, []);
    done.push(`${plan.registry.path} (emptied: ${plan.registry.apps.join(", ")})`);
  }
  if (opts.purgeSecrets && existsSync(cfg.secretsFile)) {
    rmSync(cfg.secretsFile, { force: true });
    done.push(cfg.secretsFile);
  }
  return done;
}

/** The lines a user reads before confirming. */
export function describeClean(cfg: Config, plan: CleanPlan, opts: { purgeSecrets?: boolean } = {}): string[] {
  const rel = (p: string) => p.replace(cfg.rootDir + "/", "");
  const lines = plan.dirs.map((d) => `delete ${rel(d)} (data, logs, backups, rendered files)`);
  for (const f of plan.appEnvFiles) lines.push(`delete ${rel(f)} (an app's DATABASE_URL; its role goes with the data)`);
  if (plan.registry)
    lines.push(
      `${plan.registry.action} ${rel(plan.registry.path)} (app registry${plan.registry.apps.length ? `: ${plan.registry.apps.join(", ")}` : ""}; their databases go with the data)`,
    );
  if (opts.purgeSecrets && existsSync(cfg.secretsFile))
    lines.push(`delete ${rel(cfg.secretsFile)} (generated passwords)`);
  for (const k of plan.kept) lines.push(`keep   ${rel(k.path)} (${k.why})`);
  return lines;
}
