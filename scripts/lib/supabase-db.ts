/**
 * Supabase's database side: API roles (anon, authenticated, service_role),
 * the login roles its services use, and the JWT settings, on every
 * environment database. Creates what is missing and reports it; never
 * re-sets a password that is already there.
 */
import { readFileSync } from "node:fs";
import type pg from "pg";
import type { Config } from "./config";
import { quoteIdent, quoteLiteral } from "./pg";

export const SUPABASE_RESERVED_ROLES = [
  "anon", "authenticated", "service_role", "authenticator", "supabase_auth_admin", "supabase_storage_admin",
  "supabase_admin", "supabase_realtime_admin", "supabase_functions_admin", "supabase_replication_admin",
  "supabase_read_only_user", "dashboard_user", "pgbouncer", "pgsodium_keyholder", "pgsodium_keyiduser", "pgsodium_keymaker",
  "supabase_etl_admin", "supabase_privileged_role",
];

/** Reserved by name or by the prefixes Supabase (and Postgres) use for their own roles, e.g. cli_login_postgres from `supabase db dump`. */
export const isSupabaseReservedRole = (name: string): boolean =>
  SUPABASE_RESERVED_ROLES.includes(name) || /^(supabase_|pgsodium_|pg_|cli_login_)/.test(name);

const LOGIN_ROLES = [
  { name: "authenticator", secret: "AUTHENTICATOR_PASSWORD", extra: "NOINHERIT" },
  { name: "supabase_auth_admin", secret: "SUPABASE_AUTH_ADMIN_PASSWORD", extra: "NOINHERIT CREATEROLE" },
  { name: "supabase_storage_admin", secret: "SUPABASE_STORAGE_ADMIN_PASSWORD", extra: "NOINHERIT CREATEROLE" },
] as const;

export async function ensureSupabaseRoles(cfg: Config, client: pg.Client): Promise<string[]> {
  const changes: string[] = [];
  const before = new Set((await client.query("SELECT rolname FROM pg_roles")).rows.map((r) => r.rolname as string));
  await client.query(readFileSync(`${cfg.rootDir}/supabase/roles.sql`, "utf8"));
  for (const r of ["anon", "authenticated", "service_role"]) if (!before.has(r)) changes.push(`role ${r}`);
  for (const r of LOGIN_ROLES) {
    if (before.has(r.name)) continue;
    await client.query(`CREATE ROLE ${quoteIdent(r.name)} LOGIN ${r.extra} PASSWORD ${quoteLiteral(cfg.secrets[r.secret])}`);
    changes.push(`role ${r.name}`);
  }
  // authenticator switches into the API roles (PostgREST's SET ROLE).
  const members = await client.query(
    `SELECT r.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles u ON u.oid = am.member WHERE u.rolname = 'authenticator'`,
  );
  const granted = new Set(members.rows.map((x) => x.rolname as string));
  for (const r of ["anon", "authenticated", "service_role"]) {
    if (!granted.has(r)) {
      await client.query(`GRANT ${quoteIdent(r)} TO authenticator`);
      changes.push(`grant ${r} to authenticator`);
    }
  }
  return changes;
}

/** JWT settings read by Supabase's SQL helpers (auth.jwt(), realtime). */
export async function ensureJwtSettings(cfg: Config, client: pg.Client, database: string): Promise<string[]> {
  const want: Record<string, string> = { "app.settings.jwt_secret": cfg.secrets.JWT_SECRET, "app.settings.jwt_exp": "3600" };
  const res = await client.query(
    `SELECT unnest(s.setconfig) AS kv FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1 AND s.setrole = 0`,
    [database],
  );
  const have = new Map(res.rows.map((r) => { const kv = r.kv as string; const i = kv.indexOf("="); return [kv.slice(0, i), kv.slice(i + 1)] as const; }));
  const changes: string[] = [];
  for (const [k, v] of Object.entries(want)) {
    if (have.get(k) === v) continue;
    await client.query(`ALTER DATABASE ${quoteIdent(database)} SET ${quoteIdent(k)} TO ${quoteLiteral(v)}`);
    changes.push(`${database}: ${k}`);
  }
  return changes;
}

/** Roles that serve the environment databases (Supabase's services); app roles are not among them. */
export const ENVIRONMENT_DB_ROLES = ["authenticator", "supabase_auth_admin", "supabase_storage_admin"];
/** pg_rewind connects to the maintenance database as rewind_user. */
export const MAINTENANCE_DB_ROLES = ["rewind_user"];

/**
 * Confine a database: PUBLIC loses CONNECT, the listed roles (those that exist)
 * keep it, superusers are unaffected. Returns a description when it changed
 * anything, so re-runs report nothing.
 */
export async function restrictConnect(client: pg.Client, database: string, allowed: string[]): Promise<string | undefined> {
  const open = (await client.query("SELECT has_database_privilege('public', $1, 'CONNECT') AS open", [database])).rows[0].open as boolean;
  const have = (await client.query("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [allowed])).rows.map((x) => x.rolname as string);
  const missing: string[] = [];
  for (const role of have) {
    const ok = (await client.query("SELECT has_database_privilege($1, $2, 'CONNECT') AS ok", [role, database])).rows[0].ok as boolean;
    if (!ok || open) missing.push(role);
  }
  if (!open && missing.length === 0) return undefined;
  for (const role of missing) await client.query(`GRANT CONNECT ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)}`);
  if (open) await client.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(database)} FROM PUBLIC`);
  return `${database}: CONNECT only for ${have.length ? have.join(", ") : "superusers"}`;
}
