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

export const APP_NAME_RE = /^[a-z][a-z0-9_]{1,30}$/;

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
  created: z.string(),
});
export type AppEntry = z.infer<typeof AppEntry>;
export const ACCESS_LEVELS = ["private", "public", "none"] as const;
export type AccessLevel = (typeof ACCESS_LEVELS)[number];
export const appAccess = (a: Pick<AppEntry, "access">): AccessLevel => a.access ?? "private";
const Registry = z.object({ apps: z.array(AppEntry).default([]) });

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
    throw new ToolkitError("BAD_REGISTRY", `${rel}: not valid YAML: ${(e as Error).message}`, "fix the file by hand or restore it from git");
  }
  const r = Registry.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ToolkitError("BAD_REGISTRY", `${rel}: ${i.path.join(".")}: ${i.message}`, "fix the entry by hand or restore the file from git");
  }
  return r.data.apps;
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
