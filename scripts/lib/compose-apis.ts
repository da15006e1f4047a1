/**
 * One API per Supabase-enabled database in the docker runtime, as natively
 * (scripts/lib/supabase/routes.ts): every database of the environment ladder
 * and every app onboarded with --supabase gets its own GoTrue (auth-<slug>),
 * PostgREST (rest-<slug>), Storage (storage-<slug>) and Realtime
 * (realtime-<slug>), and Kong routes by PATH exactly as the native nginx does:
 * SUPABASE_URL = http://<api>:<API_PORT>/<database>, /<database>/auth/v1/ -> that
 * database's GoTrue, and so on (supabase-js resolves "auth/v1" etc. against the
 * URL with a trailing slash, so the prefix survives).
 *
 * The set of databases changes (new-app --supabase), so the services live in a
 * generated override, <rendered-docker>/compose.apis.yml, passed with a second -f
 * (compose-files.ts), and Kong's declarative config is rendered beside it
 * (kong/kong.yml). Secrets stay in compose.env: the override names variables only.
 *
 * Storage: single-tenant per service (TENANT_ID), one per database, each with its
 * own volume. Realtime: v2.33.58 seeds exactly one tenant, "realtime-dev", from its
 * own DB_* and API_JWT_SECRET (priv/repo/seeds.exs), and otherwise needs tenants made
 * through its admin API after boot; one Realtime per database seeds the right tenant
 * with no extra step. Kong reaches each one by the alias realtime-dev.<service>, whose
 * first label is the tenant (lib/realtime/database.ex get_external_id).
 */
import YAML from "yaml";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { appEnvPath, type AppEntry } from "./apps";
import { envFilePath, readEnvFile } from "./supabase/environments";
import { apiKeysFor } from "./supabase/keys";
import { supabaseRoutes } from "./supabase/routes";
import { jwtSecretFor } from "./secrets";

export interface ApiDatabase {
  database: string;
  /** service-name part: the database with _ as - (host names) */
  slug: string;
  /** the env file holding its anon/service_role keys (the ladder's, or the app's) */
  envFile: string;
}

export const apiSlug = (database: string) => database.replace(/_/g, "-");
/** compose.env variable of one database: ANON_KEY_ORCHESTRATOR_AI_DEV */
export const apiVar = (prefix: "JWT_SECRET" | "ANON_KEY" | "SERVICE_KEY", database: string) =>
  `${prefix}_${database.toUpperCase()}`;

type AppLike = Pick<AppEntry, "name" | "database" | "port" | "supabase">;

/** Realtime's network alias realtime-dev.realtime-<slug>: each DNS label is at most 63 characters. */
const MAX_SLUG = 63 - "realtime-".length;

/** The databases that get an API: the same list, in the same order, as the native nginx routes. */
export function apiDatabases(cfg: Config, apps: AppLike[]): ApiDatabase[] {
  return supabaseRoutes(cfg, apps).map((r) => {
    if (r.database.length > MAX_SLUG)
      throw new ToolkitError(
        "API_NAME_TOO_LONG",
        `database ${r.database} (${r.database.length} characters) is too long for the docker runtime's service host names`,
        `use a Supabase-enabled database name of at most ${MAX_SLUG} characters, or RUNTIME=native`,
      );
    const app = apps.find((a) => a.supabase && a.database === r.database);
    return {
      database: r.database,
      slug: apiSlug(r.database),
      envFile: app ? appEnvPath(cfg, app.name) : envFilePath(cfg, r.database),
    };
  });
}

/** PostgREST's exposed schemas: every one exists in a prepared database (scripts/lib/supabase/requirements.ts). */
export const PGRST_SCHEMAS = "public,storage,graphql_public";
const HAPROXY_RW = "haproxy:5000";

/** The services of one database (compose service name -> definition). */
export function apiServicesFor(d: ApiDatabase): Record<string, unknown> {
  const db = d.database;
  const jwt = `\${${apiVar("JWT_SECRET", db)}}`;
  // GoTrue builds mail links with url.ResolveReference: an absolute URL path replaces the base
  // URL's path, so each path carries the database prefix itself.
  const verify = `/${db}/auth/v1/verify`;
  return {
    [`auth-${d.slug}`]: {
      image: "${IMAGE_GOTRUE:-supabase/gotrue:v2.164.0}",
      restart: "unless-stopped",
      networks: ["stack"],
      depends_on: ["haproxy"],
      environment: {
        GOTRUE_API_HOST: "0.0.0.0",
        GOTRUE_API_PORT: "9999",
        API_EXTERNAL_URL: `http://\${API_HTTP_ADDRESS}:\${API_PORT}/${db}/auth/v1`,
        GOTRUE_DB_DRIVER: "postgres",
        GOTRUE_DB_DATABASE_URL: `postgres://supabase_auth_admin:\${SUPABASE_AUTH_ADMIN_PASSWORD}@${HAPROXY_RW}/${db}`,
        GOTRUE_SITE_URL: "${SITE_URL}",
        GOTRUE_JWT_SECRET: jwt,
        GOTRUE_JWT_EXP: "3600",
        GOTRUE_JWT_ADMIN_ROLES: "service_role",
        GOTRUE_JWT_AUD: "authenticated",
        GOTRUE_JWT_DEFAULT_GROUP_NAME: "authenticated",
        GOTRUE_DISABLE_SIGNUP: "false",
        GOTRUE_EXTERNAL_EMAIL_ENABLED: "true",
        GOTRUE_MAILER_AUTOCONFIRM: "${MAILER_AUTOCONFIRM}",
        GOTRUE_SMTP_HOST: "${SMTP_HOST}",
        GOTRUE_SMTP_PORT: "${SMTP_PORT}",
        GOTRUE_SMTP_USER: "${SMTP_USER}",
        GOTRUE_SMTP_PASS: "${SMTP_PASS}",
        GOTRUE_SMTP_ADMIN_EMAIL: "${SMTP_ADMIN_EMAIL}",
        GOTRUE_SMTP_SENDER_NAME: "${SMTP_SENDER_NAME}",
        GOTRUE_MAILER_URLPATHS_INVITE: verify,
        GOTRUE_MAILER_URLPATHS_CONFIRMATION: verify,
        GOTRUE_MAILER_URLPATHS_RECOVERY: verify,
        GOTRUE_MAILER_URLPATHS_EMAIL_CHANGE: verify,
      },
      healthcheck: {
        test: ["CMD", "wget", "--no-verbose", "--tries=1", "--spider", "http://localhost:9999/health"],
        interval: "5s",
        timeout: "5s",
        retries: 20,
      },
    },
    [`rest-${d.slug}`]: {
      image: "${IMAGE_POSTGREST:-postgrest/postgrest:v12.2.3}",
      restart: "unless-stopped",
      networks: ["stack"],
      depends_on: ["haproxy"],
      environment: {
        PGRST_DB_URI: `postgres://authenticator:\${AUTHENTICATOR_PASSWORD}@${HAPROXY_RW}/${db}`,
        PGRST_DB_SCHEMAS: PGRST_SCHEMAS,
        PGRST_DB_ANON_ROLE: "anon",
        PGRST_JWT_SECRET: jwt,
        PGRST_DB_USE_LEGACY_GUCS: "false",
      },
    },
    [`realtime-${d.slug}`]: {
      image: "${IMAGE_REALTIME:-supabase/realtime:v2.33.58}",
      restart: "unless-stopped",
      networks: { stack: { aliases: [`realtime-dev.realtime-${d.slug}`] } },
      depends_on: ["haproxy"],
      environment: {
        PORT: "4000",
        DB_HOST: "haproxy",
        DB_PORT: "5000",
        DB_USER: "postgres",
        DB_PASSWORD: "${POSTGRES_PASSWORD}",
        DB_NAME: db,
        DB_AFTER_CONNECT_QUERY: "SET search_path TO _realtime",
        DB_ENC_KEY: "supabaserealtime",
        API_JWT_SECRET: jwt,
        METRICS_JWT_SECRET: jwt,
        SECRET_KEY_BASE: "${REALTIME_SECRET_KEY_BASE}",
        APP_NAME: "realtime",
        RLIMIT_NOFILE: "10000",
        SEED_SELF_HOST: "true",
        ERL_AFLAGS: "-proto_dist inet_tcp",
        DNS_NODES: "''",
      },
    },
    [`storage-${d.slug}`]: {
      image: "${IMAGE_STORAGE:-supabase/storage-api:v1.11.13}",
      restart: "unless-stopped",
      networks: ["stack"],
      depends_on: ["haproxy", `rest-${d.slug}`],
      volumes: [`storage-${d.slug}:/var/lib/storage`],
      healthcheck: {
        test: ["CMD", "wget", "--no-verbose", "--tries=1", "--spider", "http://localhost:5000/status"],
        interval: "5s",
        timeout: "5s",
        retries: 20,
      },
      environment: {
        ANON_KEY: `\${${apiVar("ANON_KEY", db)}}`,
        SERVICE_KEY: `\${${apiVar("SERVICE_KEY", db)}}`,
        POSTGREST_URL: `http://rest-${d.slug}:3000`,
        PGRST_JWT_SECRET: jwt,
        DATABASE_URL: `postgres://supabase_storage_admin:\${SUPABASE_STORAGE_ADMIN_PASSWORD}@${HAPROXY_RW}/${db}`,
        FILE_SIZE_LIMIT: "52428800",
        STORAGE_BACKEND: "file",
        FILE_STORAGE_BACKEND_PATH: "/var/lib/storage",
        TENANT_ID: "stub",
        REGION: "local",
        GLOBAL_S3_BUCKET: "stub",
      },
    },
  };
}

/** The override file: every database's services, their volumes, and the keys Kong's config reads. */
export function apiComposeYaml(dbs: ApiDatabase[]): string {
  const services: Record<string, unknown> = {};
  for (const d of dbs) Object.assign(services, apiServicesFor(d));
  // Kong's entrypoint fills kong.yml's $ANON_KEY_<DB> / $SERVICE_KEY_<DB> from its environment.
  services.kong = {
    environment: Object.fromEntries(
      dbs.flatMap((d) =>
        (["ANON_KEY", "SERVICE_KEY"] as const).map((p) => [apiVar(p, d.database), `\${${apiVar(p, d.database)}}`]),
      ),
    ),
  };
  const head =
    "# Generated by scripts/lib/compose-apis.ts from the stack's Supabase-enabled databases; do not edit.\n" +
    "# Passed after compose/dev.yml with a second -f; secrets come from compose.env.\n";
  return (
    head +
    YAML.stringify(
      { services, volumes: Object.fromEntries(dbs.map((d) => [`storage-${d.slug}`, {}])) },
      // quoted: an empty variable stays an empty string, never YAML's null
      { lineWidth: 0, defaultStringType: "QUOTE_DOUBLE", defaultKeyType: "PLAIN", aliasDuplicateObjects: false },
    )
  );
}

/**
 * compose.env's per-database values: each database's JWT secret and the keys its env file holds
 * (Kong's key-auth compares keys literally, so it must know the very keys the apps were given).
 */
export async function apiComposeVars(cfg: Config, dbs: ApiDatabase[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const d of dbs) {
    const keys = await apiKeysFor(cfg, d.database, readEnvFile(d.envFile).keys);
    out[apiVar("JWT_SECRET", d.database)] = jwtSecretFor(cfg, d.database);
    out[apiVar("ANON_KEY", d.database)] = keys.anon;
    out[apiVar("SERVICE_KEY", d.database)] = keys.serviceRole;
  }
  return out;
}
