/**
 * Supabase's database side: API roles (anon, authenticated, service_role),
 * the login roles its services use, and the JWT settings, on every
 * environment database. Creates what is missing and reports it; never
 * re-sets a password that is already there.
 */
import { readFileSync } from "node:fs";
import type pg from "pg";
import type { Config } from "../config";
import { quoteIdent, quoteLiteral } from "../pg";
import { scramVerifier } from "../scram";
import type { SecretKey } from "../secrets";
import { MEMBERSHIPS, ROLE_SETTINGS } from "./requirements";

export const SUPABASE_RESERVED_ROLES = [
  "anon",
  "authenticated",
  "service_role",
  "authenticator",
  "supabase_auth_admin",
  "supabase_storage_admin",
  "supabase_admin",
  "supabase_realtime_admin",
  "supabase_functions_admin",
  "supabase_replication_admin",
  "supabase_read_only_user",
  "dashboard_user",
  "pgbouncer",
  "pgsodium_keyholder",
  "pgsodium_keyiduser",
  "pgsodium_keymaker",
  "supabase_etl_admin",
  "supabase_privileged_role",
];

/** Reserved by name or by the prefixes Supabase (and Postgres) use for their own roles, e.g. cli_login_postgres from `supabase db dump`. */
export const isSupabaseReservedRole = (name: string): boolean =>
  SUPABASE_RESERVED_ROLES.includes(name) || /^(supabase_|pgsodium_|pg_|cli_login_)/.test(name);

/**
 * The login roles Supabase's services use, each with the least it needs.
 * None is CREATEROLE: with it (Postgres 15) a role may grant itself any
 * non-superuser role, pg_execute_server_program included, and run a shell as
 * postgres. What the services' own migrations need instead:
 * - supabase_auth_admin: GoTrue's migrations only create and alter objects in
 *   its own schema and grant on them (supabase/auth@bc32168e13fd,
 *   migrations/*.up.sql; e.g. 20240612123726_enable_rls_update_grants.up.sql);
 *   no role statements at all. search_path auth, as supabase/postgres sets it
 *   (supabase/postgres@7db7e1a9e34b, migrations/db/init-scripts/00000000000001-auth-schema.sql).
 * - supabase_storage_admin: storage's migrations create the API roles and grant
 *   them to authenticator only when storage.install_roles is not 'false'
 *   (supabase/storage@4fa61fba9371, migrations/tenant/0002-storage-schema.sql);
 *   we create those roles and grants here, so it is 'false'. It switches to the
 *   request's role through authenticator (supabase/postgres@7db7e1a9e34b,
 *   migrations/db/migrations/20231013070755_grant_authenticator_to_supabase_storage_admin.sql).
 * - authenticator: PostgREST's SET ROLE into anon, authenticated, service_role.
 */
const LEAST = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
// Memberships and role settings come from the facts table (scripts/lib/supabase/requirements.ts, cited upstream).
const memberOf = (role: string): readonly string[] => MEMBERSHIPS.filter((m) => m.member === role).map((m) => m.of);
const settingsOf = (role: string): Readonly<Record<string, string>> =>
  Object.fromEntries(ROLE_SETTINGS.filter((f) => f.role === role).map((f) => [f.setting, f.value]));
const serviceRole = <S extends SecretKey>(name: string, secret: S) => ({
  name,
  secret,
  memberOf: memberOf(name),
  settings: settingsOf(name),
});
export const SERVICE_LOGIN_ROLES = [
  serviceRole("authenticator", "AUTHENTICATOR_PASSWORD"),
  serviceRole("supabase_auth_admin", "SUPABASE_AUTH_ADMIN_PASSWORD"),
  serviceRole("supabase_storage_admin", "SUPABASE_STORAGE_ADMIN_PASSWORD"),
] as const;

export async function ensureSupabaseRoles(cfg: Config, client: pg.Client): Promise<string[]> {
  const changes: string[] = [];
  const before = new Set((await client.query("SELECT rolname FROM pg_roles")).rows.map((r) => r.rolname as string));
  await client.query(readFileSync(`${cfg.rootDir}/supabase/roles.sql`, "utf8"));
  for (const r of ["anon", "authenticated", "service_role"]) if (!before.has(r)) changes.push(`role ${r}`);
  for (const r of SERVICE_LOGIN_ROLES) {
    if (!before.has(r.name)) {
      // A SCRAM verifier, never the password: a failed statement lands in the server log.
      await client.query(
        `CREATE ROLE ${quoteIdent(r.name)} LOGIN NOINHERIT ${LEAST} PASSWORD ${quoteLiteral(scramVerifier(cfg.secrets[r.secret]))}`,
      );
      changes.push(`role ${r.name}`);
    }
    // Roles made by an earlier version (CREATEROLE) or edited by hand are brought back to the least.
    const a = (
      await client.query(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = $1",
        [r.name],
      )
    ).rows[0];
    if (a.rolsuper || a.rolcreatedb || a.rolcreaterole || a.rolreplication || a.rolbypassrls || a.rolinherit) {
      await client.query(`ALTER ROLE ${quoteIdent(r.name)} NOINHERIT ${LEAST}`);
      changes.push(`role ${r.name}: NOINHERIT ${LEAST}`);
    }
    const granted = (
      await client.query(
        `SELECT r.rolname, r.rolname LIKE 'pg\\_%' OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication AS powerful
         FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles u ON u.oid = am.member WHERE u.rolname = $1`,
        [r.name],
      )
    ).rows as { rolname: string; powerful: boolean }[];
    for (const m of r.memberOf as readonly string[]) {
      if (granted.some((g) => g.rolname === m)) continue;
      await client.query(`GRANT ${quoteIdent(m)} TO ${quoteIdent(r.name)}`);
      changes.push(`grant ${m} to ${r.name}`);
    }
    // A membership in a predefined role (pg_execute_server_program, ...) or in a superuser/CREATEROLE/
    // CREATEDB/REPLICATION role was not given by us and hands the service that power: take it back.
    // Other memberships stay (apps grant their own roles to authenticator for PostgREST's SET ROLE).
    for (const m of granted
      .filter((g) => g.powerful && !(r.memberOf as readonly string[]).includes(g.rolname))
      .map((g) => g.rolname)) {
      await client.query(`REVOKE ${quoteIdent(m)} FROM ${quoteIdent(r.name)}`);
      changes.push(`revoke ${m} from ${r.name}`);
    }
    const have = new Map(
      (
        await client.query(
          "SELECT unnest(setconfig) AS kv FROM pg_db_role_setting WHERE setdatabase = 0 AND setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)",
          [r.name],
        )
      ).rows.map((x) => {
        const kv = x.kv as string;
        const i = kv.indexOf("=");
        return [kv.slice(0, i), kv.slice(i + 1)] as const;
      }),
    );
    for (const [k, v] of Object.entries(r.settings as Record<string, string>)) {
      if (have.get(k) === v) continue;
      await client.query(`ALTER ROLE ${quoteIdent(r.name)} SET ${quoteIdent(k)} TO ${quoteLiteral(v)}`);
      changes.push(`role ${r.name}: ${k} = ${v}`);
    }
  }
  return changes;
}

/**
 * The JWT secret is never stored in the database: pg_db_role_setting is a
 * shared catalog every login role can read, so a database-level
 * app.settings.jwt_secret handed every app the key to forge service_role
 * tokens. No service needs it there: GoTrue, PostgREST, storage and realtime
 * read it from their environment (PostgREST exposes it per request with
 * PGRST_APP_SETTINGS_JWT_SECRET where SQL wants it); the migrations of
 * supabase/auth@bc32168e13fd, supabase/storage@4fa61fba9371 and
 * supabase/realtime@833cf36c3a36 never read app.settings.jwt_secret.
 * This removes one left by an earlier version (any database, any role) and
 * keeps the non-secret jwt_exp.
 */
export const JWT_SECRET_SETTING = "app.settings.jwt_secret";

export async function ensureJwtSettings(_cfg: Config, client: pg.Client, database: string): Promise<string[]> {
  const changes: string[] = [];
  const stored = await client.query(
    `SELECT s.setdatabase = 0 AS all_dbs, s.setrole = 0 AS all_roles, d.datname, r.rolname FROM pg_db_role_setting s
       LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
      WHERE EXISTS (SELECT 1 FROM unnest(s.setconfig) kv WHERE kv LIKE $1 || '=%')`,
    [JWT_SECRET_SETTING],
  );
  for (const row of stored.rows) {
    const inDb = row.all_dbs ? "" : ` IN DATABASE ${quoteIdent(row.datname)}`;
    // setrole 0 is ALTER DATABASE (one database) or ALTER ROLE ALL (every database).
    const scope =
      row.all_roles && !row.all_dbs
        ? `ALTER DATABASE ${quoteIdent(row.datname)}`
        : `ALTER ROLE ${row.all_roles ? "ALL" : quoteIdent(row.rolname)}${inDb}`;
    await client.query(`${scope} RESET ${quoteIdent(JWT_SECRET_SETTING)}`);
    changes.push(
      `${row.datname ?? "all databases"}${row.all_roles ? "" : ` (role ${row.rolname})`}: ${JWT_SECRET_SETTING} removed (readable by every login role)`,
    );
  }
  const exp = await client.query(
    `SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1 AND s.setrole = 0 AND 'app.settings.jwt_exp=3600' = ANY(s.setconfig)`,
    [database],
  );
  if (exp.rowCount === 0) {
    await client.query(`ALTER DATABASE ${quoteIdent(database)} SET "app.settings.jwt_exp" TO '3600'`);
    changes.push(`${database}: app.settings.jwt_exp`);
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
export async function restrictConnect(
  client: pg.Client,
  database: string,
  allowed: string[],
): Promise<string | undefined> {
  const open = (await client.query("SELECT has_database_privilege('public', $1, 'CONNECT') AS open", [database]))
    .rows[0].open as boolean;
  const have = (await client.query("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [allowed])).rows.map(
    (x) => x.rolname as string,
  );
  const missing: string[] = [];
  for (const role of have) {
    const ok = (await client.query("SELECT has_database_privilege($1, $2, 'CONNECT') AS ok", [role, database])).rows[0]
      .ok as boolean;
    if (!ok || open) missing.push(role);
  }
  if (!open && missing.length === 0) return undefined;
  for (const role of missing)
    await client.query(`GRANT CONNECT ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)}`);
  if (open) await client.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(database)} FROM PUBLIC`);
  return `${database}: CONNECT only for ${have.length ? have.join(", ") : "superusers"}`;
}
