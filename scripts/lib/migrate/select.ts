/**
 * What moves from a Supabase project, decided by pure functions over catalog
 * rows: which schemas, which roles, which extensions, and which statements of
 * pg_dump's output survive on a target that lacks Supabase's platform roles.
 * Follows Supabase's documented dump/restore (roles, schema, data with
 * session_replication_role = replica), adapted to a target without GoTrue.
 */
import { isSupabaseReservedRole } from "../supabase-db";
import { scramVerifier } from "../scram";
import type { PublicationRow } from "./definitions";

/**
 * Schemas Supabase (or its extensions) creates and maintains. Their contents
 * are not the user's and are never copied, with two exceptions below.
 */
export const MANAGED_SCHEMAS = [
  "auth",
  "storage",
  "extensions",
  "graphql",
  "graphql_public",
  "realtime",
  "_realtime",
  "_analytics",
  "_supavisor",
  "supabase_functions",
  "supabase_migrations",
  "vault",
  "pgsodium",
  "pgsodium_masks",
  "pgbouncer",
  "net",
  "cron",
  "pgtle",
  "pgmq",
  "dbdev",
  "repack",
  "topology",
  "tiger",
  "tiger_data",
] as const;

/**
 * Managed schemas whose rows are the user's: auth (users keep their logins and
 * ids) and storage (bucket and object metadata). A native target runs no
 * GoTrue/Storage migrations, so their structure comes from the source too,
 * together with what the user added there (triggers on auth.users, policies on
 * storage.objects). The GoTrue/Storage versions pointed at the target later
 * must be at least the source's (auth.schema_migrations / storage.migrations move with it).
 */
export const CARRIED_SCHEMAS = ["auth", "storage"] as const;

/** Tables whose data Supabase's own guide leaves out of a data dump. */
export const EXCLUDED_TABLE_DATA = ["storage.buckets_vectors", "storage.vector_indexes"];

/** Extensions every Supabase project has; when the target cannot provide them they are skipped with a warning, not a blocker. */
export const PLATFORM_EXTENSIONS = [
  "pg_graphql",
  "supabase_vault",
  "pgsodium",
  "pg_net",
  "pgjwt",
  "pg_stat_monitor",
  "pg_cron",
  "pg_stat_statements",
  "index_advisor",
  "hypopg",
  "wrappers",
];

const SYSTEM_SCHEMA = (s: string) =>
  s === "pg_catalog" || s === "information_schema" || s.startsWith("pg_toast") || s.startsWith("pg_temp");

export interface SchemaRow {
  name: string;
  /** created by an extension (pg_depend deptype e) */
  extensionOwned?: boolean;
}

export interface SchemaSelection {
  migrated: string[];
  excluded: string[];
}

/** User schemas plus auth/storage; everything Supabase manages is left behind. */
export function selectSchemas(rows: SchemaRow[]): SchemaSelection {
  const migrated: string[] = [];
  const excluded: string[] = [];
  for (const r of rows) {
    if (SYSTEM_SCHEMA(r.name)) continue;
    const managed = (MANAGED_SCHEMAS as readonly string[]).includes(r.name) || r.extensionOwned;
    if (!managed || (CARRIED_SCHEMAS as readonly string[]).includes(r.name)) migrated.push(r.name);
    else excluded.push(r.name);
  }
  return { migrated: migrated.sort(), excluded: excluded.sort() };
}

export interface RoleRow {
  name: string;
  login: boolean;
  inherit: boolean;
  createdb: boolean;
  createrole: boolean;
  bypassrls: boolean;
  superuser: boolean;
  replication: boolean;
  connlimit: number;
  validUntil: string | null;
}

/** Roles the user created: not Supabase's, not Postgres's own, not a superuser (the platform never lets a user make one). */
export function customRoles(rows: RoleRow[]): RoleRow[] {
  return rows
    .filter((r) => !isSupabaseReservedRole(r.name) && r.name !== "postgres" && !r.superuser)
    .sort((a, b) => a.name.localeCompare(b.name));
}

export interface RolePlan {
  create: RoleRow[];
  /** custom roles already on the target (a role is cluster-wide): kept as they are, password untouched */
  existing: string[];
  reservedSkipped: string[];
}

export function planRoles(source: RoleRow[], targetRoles: Set<string>): RolePlan {
  const custom = customRoles(source);
  const customNames = new Set(custom.map((r) => r.name));
  return {
    create: custom.filter((r) => !targetRoles.has(r.name)),
    existing: custom.filter((r) => targetRoles.has(r.name)).map((r) => r.name),
    reservedSkipped: source
      .filter((r) => !customNames.has(r.name) && r.name !== "postgres" && !r.name.startsWith("pg_"))
      .map((r) => r.name)
      .sort(),
  };
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`;

/** CREATE ROLE for one custom role; login roles get the generated password (the platform never reveals the old one). */
export function createRoleSql(r: RoleRow, password?: string): string {
  const parts = [`CREATE ROLE ${quoteIdent(r.name)}`];
  parts.push(r.login ? "LOGIN" : "NOLOGIN", r.inherit ? "INHERIT" : "NOINHERIT");
  if (r.createdb) parts.push("CREATEDB");
  if (r.createrole) parts.push("CREATEROLE");
  if (r.bypassrls) parts.push("BYPASSRLS");
  if (r.connlimit >= 0) parts.push(`CONNECTION LIMIT ${r.connlimit}`);
  if (r.validUntil) parts.push(`VALID UNTIL ${quoteLiteral(r.validUntil)}`);
  // A SCRAM verifier, never the password: a failed restore logs the statement on the server.
  if (r.login && password) parts.push(`PASSWORD ${quoteLiteral(scramVerifier(password))}`);
  return parts.join(" ") + ";";
}

export interface Membership {
  role: string; // granted role
  member: string;
  admin: boolean;
}

/** Memberships that touch a custom role and whose both ends will exist on the target. */
export function membershipSql(
  edges: Membership[],
  custom: Set<string>,
  willExist: Set<string>,
  skip: Membership[] = [],
): string[] {
  return edges
    .filter((e) => (custom.has(e.role) || custom.has(e.member)) && willExist.has(e.role) && willExist.has(e.member))
    .filter((e) => !skip.some((x) => x.role === e.role && x.member === e.member))
    .map((e) => `GRANT ${quoteIdent(e.role)} TO ${quoteIdent(e.member)}${e.admin ? " WITH ADMIN OPTION" : ""};`);
}

/** Predefined roles that reach outside the database: a member runs programs or reads and writes files on the server as postgres. */
export const SERVER_ACCESS_ROLES = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"];

/**
 * What the source's roles would be handed on the cluster beyond their own
 * database: membership in a role that is a superuser or CREATEROLE here (a
 * source can hold `GRANT postgres TO app`: on Supabase postgres is no
 * superuser, here it is), in a server-access predefined role, or the
 * CREATEROLE attribute itself (on PostgreSQL 15 a CREATEROLE role can grant
 * itself pg_execute_server_program). Blockers; left out with --accept-left-out.
 */
export function privilegedGrants(
  edges: Membership[],
  custom: RoleRow[],
  target: RoleRow[],
): { grant?: Membership; role?: string; reason: string }[] {
  const names = new Set(custom.map((r) => r.name));
  const here = new Map(target.map((r) => [r.name, r]));
  const out: { grant?: Membership; role?: string; reason: string }[] = [];
  for (const r of custom)
    if (r.createrole)
      out.push({
        role: r.name,
        reason: `role ${r.name} has CREATEROLE on the source: on the cluster it could grant itself ${SERVER_ACCESS_ROLES[0]} (a shell as postgres)`,
      });
  for (const e of edges) {
    if (!names.has(e.member) || names.has(e.role)) continue;
    const t = here.get(e.role);
    const why = SERVER_ACCESS_ROLES.includes(e.role)
      ? "runs programs or reads and writes files on the server"
      : t?.superuser
        ? "is a superuser on the cluster"
        : t?.createrole
          ? "has CREATEROLE on the cluster"
          : undefined;
    if (why)
      out.push({ grant: e, reason: `role ${e.member} is a member of ${e.role} on the source, and ${e.role} ${why}` });
  }
  return out;
}

export interface ExtensionRow {
  name: string;
  schema: string;
}

export interface ExtensionPlan {
  create: ExtensionRow[];
  /** platform extensions the target cannot provide: skipped, with a warning */
  skipped: string[];
  /** user extensions the target cannot provide: the migration cannot run */
  blocked: string[];
}

export function planExtensions(source: ExtensionRow[], targetAvailable: Set<string>): ExtensionPlan {
  const out: ExtensionPlan = { create: [], skipped: [], blocked: [] };
  for (const e of source) {
    if (e.name === "plpgsql") continue;
    if (targetAvailable.has(e.name)) out.create.push(e);
    else if (PLATFORM_EXTENSIONS.includes(e.name)) out.skipped.push(e.name);
    else out.blocked.push(e.name);
  }
  return out;
}

/** Extensions first, in their source schema (so `extensions.citext` columns resolve). */
export function extensionSql(plan: ExtensionPlan): string[] {
  const schemas = [...new Set(plan.create.map((e) => e.schema))].filter((s) => s !== "public" && s !== "pg_catalog");
  return [
    ...schemas.map((s) => `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(s)};`),
    ...plan.create.map(
      (e) => `CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e.name)} WITH SCHEMA ${quoteIdent(e.schema)};`,
    ),
  ];
}

/**
 * Roles the archive names (owners, grantees, default privileges) that the
 * target does not have and that are not created (Supabase's own, e.g.
 * supabase_admin): created as bare NOLOGIN placeholders inside the restore
 * transaction, so pg_restore's output runs unchanged; at the end what they own
 * goes to the migrating superuser, their grants are dropped and they are
 * removed, all before COMMIT: no other session ever sees them.
 */
export function placeholderSql(roles: string[]): { create: string[]; release: string[] } {
  return {
    create: roles.map((r) => `CREATE ROLE ${quoteIdent(r)} NOLOGIN;`),
    release: roles.flatMap((r) => [
      `REASSIGN OWNED BY ${quoteIdent(r)} TO CURRENT_USER;`,
      `DROP OWNED BY ${quoteIdent(r)};`,
      `DROP ROLE ${quoteIdent(r)};`,
    ]),
  };
}

/** A publication as the source catalog lists it (listPublications in catalog.ts). */
export type PublicationSpec = PublicationRow;

/**
 * Publication membership (Realtime's supabase_realtime): pg_dump leaves
 * publications out when schemas are selected, so they are rebuilt from the
 * source catalog. A publication the target already has only gains the tables.
 */
export function publicationSql(
  pubs: PublicationSpec[],
  existing: Set<string>,
  roleExists: (r: string) => boolean,
): string[] {
  const out: string[] = [];
  for (const p of pubs) {
    const publish = (["insert", "update", "delete", "truncate"] as const).filter((k) => p[k]).join(", ");
    const what = p.allTables ? " FOR ALL TABLES" : "";
    if (!existing.has(p.name)) {
      out.push(
        `CREATE PUBLICATION ${quoteIdent(p.name)}${what} WITH (publish = ${quoteLiteral(publish)}, publish_via_partition_root = ${p.viaRoot});`,
      );
      if (roleExists(p.owner)) out.push(`ALTER PUBLICATION ${quoteIdent(p.name)} OWNER TO ${quoteIdent(p.owner)};`);
    }
    if (p.allTables) continue;
    for (const t of p.tables) out.push(`ALTER PUBLICATION ${quoteIdent(p.name)} ADD TABLE ${t};`);
    for (const s of p.schemas)
      out.push(`ALTER PUBLICATION ${quoteIdent(p.name)} ADD TABLES IN SCHEMA ${quoteIdent(s)};`);
  }
  return out;
}

/** pg_dump -n/-t patterns: a double-quoted name is matched literally. */
export const dumpPattern = (name: string) => quoteIdent(name);
