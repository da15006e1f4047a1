/**
 * One API per Supabase-enabled database. GoTrue and PostgREST each serve one
 * database, so every such database (the environment ladder, apps onboarded
 * with --supabase) gets its own auth, rest and storage upstreams, and the
 * gateway routes by PATH: SUPABASE_URL = http://<api>:<API_PORT>/<database>,
 * and nginx sends /<database>/auth/v1/ to that database's GoTrue, and so on.
 *
 * Why a path: supabase-js (2.109.0, dist/index.mjs SupabaseClient constructor)
 * builds its endpoints as new URL("rest/v1", ensureTrailingSlash(supabaseUrl)),
 * likewise auth/v1, storage/v1, realtime/v1 and functions/v1, so a path prefix
 * in SUPABASE_URL survives (tests/unit/supabase-routes.test.ts checks it
 * against the same resolution); one API port per stack stays as the port plan
 * says (6010), and no DNS names are needed on a developer's machine.
 *
 * Upstream ports: the database's app port (port plan: dev 6100, staging 7100,
 * production 9000; apps 9100, 9200, ...) + 51 (auth), + 52 (rest), + 53
 * (storage), on the stack's loopback HTTP address. Realtime is multi-tenant:
 * one upstream (API_PORT + 40) for all, told the tenant (the database) in
 * the Host header it derives its tenant from.
 */
import { join } from "node:path";
import { loadApps, type AppEntry } from "../apps";
import type { Config } from "../config";
import { readTemplate, renderTemplate, writeIfChanged } from "../render";
import { stackHttpAddress } from "../stack-files";

/** Port plan: the app of each environment (DESIGN.md). */
export const ENV_APP_PORTS: Record<string, number> = { dev: 6100, staging: 7100, production: 9000 };
export const UPSTREAM_OFFSETS = { auth: 51, rest: 52, storage: 53 } as const;
export const REALTIME_OFFSET = 40;

/** The environment a ladder database serves (orchestrator_ai_staging -> staging), or undefined. */
export const envNameOf = (database: string): string | undefined => /_(dev|staging|production)$/.exec(database)?.[1];

export interface SupabaseRoute {
  database: string;
  /** path prefix in SUPABASE_URL, "/<database>" */
  prefix: string;
  appPort: number;
  auth: string;
  rest: string;
  storage: string;
  realtime: string;
}

export function routeFor(cfg: Config, database: string, appPort: number): SupabaseRoute {
  const host = stackHttpAddress(cfg);
  return {
    database,
    prefix: `/${database}`,
    appPort,
    auth: `${host}:${appPort + UPSTREAM_OFFSETS.auth}`,
    rest: `${host}:${appPort + UPSTREAM_OFFSETS.rest}`,
    storage: `${host}:${appPort + UPSTREAM_OFFSETS.storage}`,
    realtime: `${host}:${cfg.api.port + REALTIME_OFFSET}`,
  };
}

/** Every Supabase-enabled database with its upstreams: ladder databases named for an environment, then --supabase apps. */
export function supabaseRoutes(cfg: Config, apps: Pick<AppEntry, "database" | "port" | "supabase">[]): SupabaseRoute[] {
  const ladder = cfg.databases.flatMap((db) => {
    const env = envNameOf(db);
    return env ? [routeFor(cfg, db, ENV_APP_PORTS[env]!)] : [];
  });
  return [...ladder, ...apps.filter((a) => a.supabase).map((a) => routeFor(cfg, a.database, a.port))];
}

/** The SUPABASE_URL of one database: the stack's API with the database's prefix. */
export const supabaseUrlFor = (cfg: Config, database: string) =>
  `http://${stackHttpAddress(cfg)}:${cfg.api.port}/${database}`;

/** nginx locations for every route (included inside the stack's API server block). */
export function renderSupabaseRoutes(template: string, routes: SupabaseRoute[]): string {
  return routes
    .map((r) =>
      renderTemplate(
        template,
        {
          PREFIX: r.prefix,
          DATABASE: r.database,
          AUTH_UPSTREAM: r.auth,
          REST_UPSTREAM: r.rest,
          STORAGE_UPSTREAM: r.storage,
          REALTIME_UPSTREAM: r.realtime,
        },
        "nginx/supabase-routes.conf.tmpl",
      ),
    )
    .join("\n");
}

/** Where nginx.conf's API server block includes the routes from (native: the stack's nginx prefix). */
export const supabaseRoutesPath = (cfg: Pick<Config, "stateDir">) =>
  join(cfg.stateDir, "nginx", "supabase-routes", "routes.conf");

/** Render and write the routes file; true when it changed (nginx must then reload). */
export function writeSupabaseRoutes(
  cfg: Config,
  apps: Pick<AppEntry, "database" | "port" | "supabase">[] = loadApps(cfg),
): boolean {
  const body =
    `# Rendered from nginx/supabase-routes.conf.tmpl for stack ${cfg.stack}; edit the template, not this file.\n` +
    renderSupabaseRoutes(readTemplate(cfg.rootDir, "nginx/supabase-routes.conf.tmpl"), supabaseRoutes(cfg, apps));
  return writeIfChanged(supabaseRoutesPath(cfg), body, { mode: 0o644 });
}
