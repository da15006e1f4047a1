/**
 * What a database must hold before Supabase's services can start on it, as
 * data: schemas and their owners, USAGE, role settings, memberships, database
 * grants, default privileges, the publication and server settings. Each fact
 * names the upstream file (and commit) it comes from. scripts/lib/supabase/prepare.ts
 * applies these facts; its integration test and the compose contract test
 * read them from here, so the three can never disagree.
 *
 * Upstream versions: the images compose/dev.yml pins.
 * - supabase/gotrue:v2.164.0      -> supabase/auth tag v2.164.0 (commit a6164519c2f8)
 * - supabase/storage-api:v1.11.13 -> supabase/storage tag v1.11.13 (commit c8f93e5164ba)
 * - the database side those images expect is supabase/postgres's init scripts
 *   (migrations/db/init-scripts/*.sql, read at 09a4e4e31828, 6f95ea3ea684,
 *   1921aa387cc9, 96d8873887e1) and supabase/supabase docker/volumes/db/*.sql
 *   (00-initial-schema.sql at 21d523a9fe84, realtime.sql).
 */

/** The API roles PostgREST switches into (supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql). */
export const API_ROLES = ["anon", "authenticated", "service_role"] as const;

/** Placeholder for "the database's own role": the environment's or the app's owner role. */
export const DB_OWNER = "$owner";
/** Placeholder for the cluster superuser Realtime connects as (compose/dev.yml realtime DB_USER). */
export const SUPERUSER = "postgres";

export interface SchemaFact {
  schema: string;
  /** a role name, or DB_OWNER */
  owner: string;
  /** roles with USAGE (owners have it implicitly) */
  usage: readonly string[];
  why: string;
}

export const SCHEMAS: readonly SchemaFact[] = [
  // GoTrue runs its migrations as supabase_auth_admin into `auth` and needs to own it:
  // supabase/postgres@6f95ea3ea684 00000000000001-auth-schema.sql (GRANT ALL ON SCHEMA auth, tables owned by
  // supabase_auth_admin); supabase/auth@a6164519c2f8 migrations/*.up.sql create every table there.
  {
    schema: "auth",
    owner: "supabase_auth_admin",
    usage: API_ROLES,
    why: "GoTrue's migrations (as supabase_auth_admin)",
  },
  // Storage runs its tenant migrations as supabase_storage_admin into `storage`:
  // supabase/postgres@1921aa387cc9 00000000000002-storage-schema.sql (GRANT ALL ON SCHEMA storage TO supabase_storage_admin,
  // USAGE for the API roles); supabase/storage@c8f93e5164ba migrations/tenant/0002-storage-schema.sql.
  {
    schema: "storage",
    owner: "supabase_storage_admin",
    usage: API_ROLES,
    why: "Storage's tenant migrations (as supabase_storage_admin); exposed by PostgREST",
  },
  // supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql: "Allow Extensions to be used in the API".
  {
    schema: "extensions",
    owner: DB_OWNER,
    usage: API_ROLES,
    why: "extensions (uuid-ossp, pgcrypto) usable through the API",
  },
  // PostgREST is told PGRST_DB_SCHEMAS=public,storage,graphql_public (compose/dev.yml, and
  // supabase/supabase docker/docker-compose.yml); PostgREST >= 12 fails every request with
  // PGRST002 when a listed schema does not exist. supabase/supabase docker/volumes/db/init/04-pg-graphql.sql
  // creates graphql_public with USAGE for the API roles.
  { schema: "graphql_public", owner: DB_OWNER, usage: API_ROLES, why: "listed in PostgREST's db-schemas" },
  // Realtime keeps its own tables in _realtime (DB_AFTER_CONNECT_QUERY 'SET search_path TO _realtime' in compose/dev.yml;
  // supabase/supabase docker/volumes/db/realtime.sql: create schema _realtime, owned by the role realtime connects as).
  {
    schema: "_realtime",
    owner: SUPERUSER,
    usage: [],
    why: "Realtime's own tables (it connects as the superuser: it needs REPLICATION)",
  },
  // supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql: grant usage on schema public to anon, authenticated, service_role.
  { schema: "public", owner: "pg_database_owner", usage: API_ROLES, why: "the app's tables through PostgREST" },
];

export interface RoleSettingFact {
  role: string;
  setting: string;
  value: string;
  why: string;
}

/** ALTER ROLE ... SET (all databases). */
export const ROLE_SETTINGS: readonly RoleSettingFact[] = [
  // supabase/postgres@6f95ea3ea684 00000000000001-auth-schema.sql: ALTER USER supabase_auth_admin SET search_path = "auth".
  {
    role: "supabase_auth_admin",
    setting: "search_path",
    value: "auth",
    why: "GoTrue's unqualified names resolve in auth",
  },
  // supabase/postgres@1921aa387cc9 00000000000002-storage-schema.sql: ALTER USER supabase_storage_admin SET search_path = "storage".
  {
    role: "supabase_storage_admin",
    setting: "search_path",
    value: "storage",
    why: "Storage's unqualified names resolve in storage",
  },
  // We create the API roles and their grants ourselves; storage's 0002-storage-schema.sql skips that when
  // storage.install_roles is 'false' (supabase/storage@c8f93e5164ba migrations/tenant/0002-storage-schema.sql).
  {
    role: "supabase_storage_admin",
    setting: "storage.install_roles",
    value: "false",
    why: "storage does not try to CREATE ROLE (it is NOCREATEROLE)",
  },
  // supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql: short timeouts for API roles.
  { role: "anon", setting: "statement_timeout", value: "3s", why: "an anonymous request cannot hold a backend" },
  {
    role: "authenticated",
    setting: "statement_timeout",
    value: "8s",
    why: "a signed-in request cannot hold a backend",
  },
];

export interface MembershipFact {
  member: string;
  of: string;
  why: string;
}

export const MEMBERSHIPS: readonly MembershipFact[] = [
  // supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql: grant anon/authenticated/service_role to authenticator.
  ...API_ROLES.map((r) => ({ member: "authenticator", of: r, why: "PostgREST's SET ROLE into the request's role" })),
  // supabase/postgres migrations/db/migrations/20231013070755_grant_authenticator_to_supabase_storage_admin.sql.
  {
    member: "supabase_storage_admin",
    of: "authenticator",
    why: "Storage switches to the request's role through authenticator",
  },
];

export interface DatabaseGrantFact {
  role: string;
  privileges: readonly ("CONNECT" | "CREATE" | "TEMPORARY")[];
  why: string;
}

/**
 * Privileges on the database itself. CREATE SCHEMA IF NOT EXISTS checks the
 * database's CREATE privilege before it looks for the schema (PostgreSQL 15,
 * schemacmds.c CreateSchemaCommand), so a pre-made schema is not enough:
 * storage's 0001-initialmigration.sql and GoTrue's 20211124214934_update_auth_functions... run it.
 * supabase/postgres@1921aa387cc9 00000000000002-storage-schema.sql: GRANT CREATE ON DATABASE postgres TO supabase_storage_admin.
 */
export const DATABASE_GRANTS: readonly DatabaseGrantFact[] = [
  { role: "authenticator", privileges: ["CONNECT"], why: "PostgREST connects as authenticator" },
  {
    role: "supabase_auth_admin",
    privileges: ["CONNECT", "CREATE"],
    why: "GoTrue connects and runs CREATE SCHEMA IF NOT EXISTS auth",
  },
  {
    role: "supabase_storage_admin",
    privileges: ["CONNECT", "CREATE"],
    why: "Storage connects and runs CREATE SCHEMA IF NOT EXISTS storage",
  },
];

export interface DefaultPrivilegeFact {
  /** the role whose new objects get the grants (DB_OWNER: the database's owner role) */
  forRole: string;
  schema: string;
  objects: "TABLES" | "SEQUENCES" | "FUNCTIONS";
  grantees: readonly string[];
  why: string;
}

const DEFAULTS_FOR = (forRole: string, schema: string, why: string): DefaultPrivilegeFact[] =>
  (["TABLES", "SEQUENCES", "FUNCTIONS"] as const).map((objects) => ({
    forRole,
    schema,
    objects,
    grantees: API_ROLES,
    why,
  }));

export const DEFAULT_PRIVILEGES: readonly DefaultPrivilegeFact[] = [
  // supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql: alter default privileges in schema public grant all
  // on tables/functions/sequences to anon, authenticated, service_role (there for postgres/supabase_admin, here for the owner).
  ...DEFAULTS_FOR(DB_OWNER, "public", "tables the app creates are reachable through the API (RLS decides rows)"),
  // supabase/postgres@1921aa387cc9 00000000000002-storage-schema.sql: alter default privileges for role supabase_storage_admin in schema storage.
  ...DEFAULTS_FOR("supabase_storage_admin", "storage", "storage's tables reachable by the API roles"),
];

/** Realtime listens to this publication (supabase/postgres@09a4e4e31828 00000000000000-initial-schema.sql: create publication supabase_realtime, empty). */
export const PUBLICATION = "supabase_realtime";

/**
 * Server settings. Realtime streams changes over logical replication
 * (supabase/supabase docker/volumes/db/postgresql.conf; the supabase/postgres image sets wal_level = logical).
 * A postmaster setting: set through Patroni's DCS, then every member restarts.
 */
export const SERVER_SETTINGS: Readonly<Record<string, string>> = { wal_level: "logical" };

/**
 * Per service: the role it connects as, the schemas it needs, and the
 * environment values that must agree with the facts above (for the compose
 * contract test). An env value of undefined means "must be unset".
 */
export const SERVICE_NEEDS = {
  // GOTRUE_DB_NAMESPACE defaults to "auth" (supabase/auth@a6164519c2f8 internal/conf/configuration.go: DB_NAMESPACE default auth).
  gotrue: {
    connectsAs: "supabase_auth_admin",
    schemas: ["auth"],
    settings: [] as string[],
    env: { GOTRUE_DB_NAMESPACE: ["auth", undefined] },
  },
  // Every schema in PGRST_DB_SCHEMAS must exist (PostgREST >= 12 answers PGRST002 otherwise).
  postgrest: {
    connectsAs: "authenticator",
    schemas: ["public", "storage", "graphql_public"],
    settings: [] as string[],
    env: { PGRST_DB_ANON_ROLE: ["anon"] },
  },
  // DB_INSTALL_ROLES 'true' makes migration 0002 CREATE ROLE, which supabase_storage_admin (NOCREATEROLE) may not
  // (supabase/storage@c8f93e5164ba src/config.ts: dbInstallRoles = DB_INSTALL_ROLES === 'true'; it overrides the role setting).
  storage: {
    connectsAs: "supabase_storage_admin",
    schemas: ["storage"],
    settings: [] as string[],
    env: { DB_INSTALL_ROLES: ["false", undefined] },
  },
  realtime: {
    connectsAs: SUPERUSER,
    schemas: ["_realtime"],
    settings: ["wal_level"],
    publication: PUBLICATION,
    env: { DB_AFTER_CONNECT_QUERY: ["SET search_path TO _realtime"] },
  },
  meta: { connectsAs: SUPERUSER, schemas: [] as string[], settings: [] as string[], env: {} },
} as const;
