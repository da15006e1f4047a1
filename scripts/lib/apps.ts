/**
 * The app registry: one committed YAML file per stack listing the internal
 * apps (envs/apps.yaml for the dev stack, envs/apps.<stack>.yaml otherwise).
 * new-app writes it; backup and status read it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { z } from "zod";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { writeIfChanged } from "./render";
import { APP_NAME_RE, appDatabase, appNameProblem, domainProblem, portProblem } from "./app-rules";

export { APP_NAME_RE };

export const AppEntry = z.object({
  name: z.string().regex(APP_NAME_RE),
  database: z.string().regex(/^[a-z][a-z0-9_]{1,62}$/),
  role: z.string().regex(APP_NAME_RE),
  port: z.number().int().min(1024).max(65535),
  domain: z.string().min(1),
  supabase: z.boolean().default(false),
  /** who may reach the app: private (tailnet), public (tailnet + tunnel) or none (this machine only); see access.ts */
  // Optional so entries written before it still load and compare equal; absent means private (appAccess).
  access: z.enum(["private", "public", "none"]).optional(),
  created: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "must be a UTC time like 2026-11-21T21:45:00Z"),
});
export type AppEntry = z.infer<typeof AppEntry>;
export const ACCESS_LEVELS = ["private", "public", "none"] as const;
export type AccessLevel = (typeof ACCESS_LEVELS)[number];
export const appAccess = (a: Pick<AppEntry, "access">): AccessLevel => a.access ?? "private";
const Registry = z.object({ apps: z.array(z.unknown()).default([]) });

export function registryPath(cfg: Config): string {
  return join(cfg.rootDir, "envs", cfg.stack === "dev" ? "apps.yaml" : `apps.${cfg.stack}.yaml`);
}

/**
 * An app's env file (DATABASE_URL etc., mode 0600, gitignored): envs/.env.<name>
 * on the dev stack, envs/.env.<stack>.<name> on any other, so a test stack never
 * clobbers a developer's file. db-url reads app passwords from here.
 */
export function appEnvPath(cfg: Pick<Config, "rootDir" | "stack">, name: string): string {
  return join(cfg.rootDir, "envs", cfg.stack === "dev" ? `.env.${name}` : `.env.${cfg.stack}.${name}`);
}

/** The app's nginx server block; the main nginx.conf includes this folder. */
export function appNginxPath(cfg: Pick<Config, "stateDir">, name: string): string {
  return join(cfg.stateDir, "nginx", "apps", `${name}.conf`);
}

export const findApp = (cfg: Config, name: string): AppEntry | undefined => loadApps(cfg).find((a) => a.name === name);

export function loadApps(cfg: Config): AppEntry[] {
  const path = registryPath(cfg);
  if (!existsSync(path)) return [];
  const rel = path.replace(cfg.rootDir + "/", "");
  let raw: unknown;
  try {
    raw = YAML.parse(readFileSync(path, "utf8")) ?? {};
  } catch (e) {
    throw new ToolkitError(
      "BAD_REGISTRY",
      `${rel}: not valid YAML: ${(e as Error).message}`,
      "fix the file by hand or restore it from git",
    );
  }
  return validateApps(cfg, rel, raw);
}

/**
 * Every field of every entry, checked on every load with the rules new-app
 * applies when it writes one: the registry is a hand-editable file, and its
 * values reach nginx (domain), SQL (database, role) and the port plan. The
 * error names the file, the app, the key, the value and the fix.
 */
export function validateApps(cfg: Config, rel: string, raw: unknown): AppEntry[] {
  const fix = `fix the entry in ${rel} by hand (the rules new-app applies) or restore the file from git`;
  const bad = (who: string, key: string, msg: string) =>
    new ToolkitError("BAD_REGISTRY", `${rel}: ${who}: ${key}: ${msg}`, fix);
  const top = Registry.safeParse(raw);
  if (!top.success) {
    const i = top.error.issues[0]!;
    throw new ToolkitError("BAD_REGISTRY", `${rel}: ${i.path.join(".") || "(top)"}: ${i.message}`, fix);
  }
  const entries = (raw as { apps?: unknown[] }).apps ?? [];
  const apps: AppEntry[] = [];
  entries.forEach((e, i) => {
    const rec = (e ?? {}) as Record<string, unknown>;
    const who = typeof rec.name === "string" ? `app ${JSON.stringify(rec.name)}` : `apps[${i}]`;
    const r = AppEntry.strict().safeParse(e);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const key = issue.code === "unrecognized_keys" ? issue.keys.join(", ") : String(issue.path[0] ?? "(entry)");
      const got = issue.code === "unrecognized_keys" ? "" : ` (got ${JSON.stringify(rec[key])})`;
      throw bad(who, key, `${issue.code === "unrecognized_keys" ? "unknown key" : issue.message}${got}`);
    }
    apps.push(r.data);
  });
  for (const a of apps) {
    const who = `app ${JSON.stringify(a.name)}`;
    const np = appNameProblem(a.name, cfg);
    if (np) throw bad(who, "name", np);
    if (a.database !== appDatabase(a.name))
      throw bad(who, "database", `must be ${appDatabase(a.name)} (got ${JSON.stringify(a.database)})`);
    if (a.role !== a.name) throw bad(who, "role", `must be ${a.name} (got ${JSON.stringify(a.role)})`);
    const dp = domainProblem(a.domain);
    if (dp) throw bad(who, "domain", dp);
    const pp = portProblem(a.port, a.name, apps, cfg);
    if (pp) throw bad(who, "port", pp);
    if (apps.filter((b) => b.name === a.name).length > 1) throw bad(who, "name", `${a.name} is listed twice`);
    const clash = apps.find((b) => b.domain === a.domain && b.name !== a.name);
    if (clash) throw bad(who, "domain", `hostname ${a.domain} is also used by app ${clash.name}`);
  }
  return apps;
}

export function saveApps(cfg: Config, apps: AppEntry[]): void {
  const header =
    "# Internal apps on this stack, written by scripts/new-app.ts (edit with care).\n" +
    "# Each app: its own database and role; port and domain from the port plan.\n";
  writeIfChanged(registryPath(cfg), header + YAML.stringify({ apps }));
}

/** Every database `make backup` must dump: the environment ladder plus every app's. */
export function registeredDatabases(cfg: Config): string[] {
  return [...cfg.databases, ...loadApps(cfg).map((a) => a.database)];
}
