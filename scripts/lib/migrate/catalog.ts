/**
 * Catalog reads shared by source and target: what is there and how big. The
 * same queries run on both sides. The verification's fingerprints are in
 * fingerprint.ts, definitions and large objects in definitions.ts, what is left
 * out in dependencies.ts, source code the load would run in source-code.ts.
 */
import type pg from "pg";
import type { ExtensionRow, Membership, RoleRow, SchemaRow } from "./select";

export type Q = Pick<pg.Client, "query">;

export interface TableInfo {
  schema: string;
  name: string;
  /**
   * table: a plain table (incl. unlogged and inheritance parents/children: each
   * holds its own rows); partitioned: a partition root, loaded and checked as a
   * whole (a hash partition on an enum routes rows by the enum's OID, which
   * differs on the target, so leaves are not comparable one by one);
   * matview: checked only (it is refreshed on the target, not loaded).
   */
  kind: "table" | "partitioned" | "matview";
  /** estimate from pg_class.reltuples (plan only) */
  estRows: number;
  bytes: number;
}

export const tableKey = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;

export const NOT_EXTENSION_MEMBER = (alias: string, catalog: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${alias}.oid AND d.deptype = 'e')`;

export async function listSchemas(c: Q): Promise<SchemaRow[]> {
  const r = await c.query(
    `SELECT n.nspname AS name, ${NOT_EXTENSION_MEMBER("n", "pg_namespace")} IS FALSE AS ext FROM pg_namespace n ORDER BY 1`,
  );
  return r.rows.map((x) => ({ name: x.name, extensionOwned: x.ext }));
}

/** Tables (plain, partition roots; leaves are counted in their root) and materialized views in the given schemas, extension members excluded. */
export async function listTables(c: Q, schemas: string[]): Promise<TableInfo[]> {
  const r = await c.query(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, greatest(c.reltuples, 0)::bigint AS est,
            CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)
                 ELSE pg_total_relation_size(c.oid) END AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p','m') AND NOT c.relispartition AND (c.relkind <> 'm' OR c.relispopulated) AND n.nspname = ANY($1) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")}
      ORDER BY 1, 2`,
    [schemas],
  );
  const kinds: Record<string, TableInfo["kind"]> = { r: "table", p: "partitioned", m: "matview" };
  return r.rows.map((x) => ({
    schema: x.schema,
    name: x.name,
    kind: kinds[x.kind]!,
    estRows: Number(x.est),
    bytes: Number(x.bytes),
  }));
}

export async function listRoles(c: Q): Promise<RoleRow[]> {
  const r = await c.query(
    `SELECT rolname, rolcanlogin, rolinherit, rolcreatedb, rolcreaterole, rolbypassrls, rolsuper, rolreplication, rolconnlimit,
            to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS valid
       FROM pg_roles ORDER BY 1`,
  );
  return r.rows.map((x) => ({
    name: x.rolname,
    login: x.rolcanlogin,
    inherit: x.rolinherit,
    createdb: x.rolcreatedb,
    createrole: x.rolcreaterole,
    bypassrls: x.rolbypassrls,
    superuser: x.rolsuper,
    replication: x.rolreplication,
    connlimit: x.rolconnlimit,
    validUntil: x.valid && !String(x.valid).startsWith("infinity") ? x.valid : null,
  }));
}

export async function listMemberships(c: Q): Promise<Membership[]> {
  const r = await c.query(
    `SELECT g.rolname AS role, m.rolname AS member, am.admin_option AS admin
       FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member ORDER BY 1, 2`,
  );
  return r.rows as Membership[];
}

export async function listExtensions(c: Q): Promise<ExtensionRow[]> {
  const r = await c.query(
    `SELECT e.extname AS name, n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1`,
  );
  return r.rows as ExtensionRow[];
}

export async function availableExtensions(c: Q): Promise<Set<string>> {
  return new Set((await c.query("SELECT name FROM pg_available_extensions")).rows.map((x) => x.name as string));
}

/** Roles named by policies on migrated tables (a policy for a role the target lacks cannot be restored). */
export async function policyRoles(c: Q, schemas: string[]): Promise<string[]> {
  const r = await c.query(
    `SELECT DISTINCT r.rolname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL unnest(p.polroles) AS pr(oid) JOIN pg_roles r ON r.oid = pr.oid
      WHERE n.nspname = ANY($1) ORDER BY 1`,
    [schemas],
  );
  return r.rows.map((x) => x.rolname as string);
}

export interface StorageSummary {
  buckets: number;
  objects: number;
  bytes: number;
}

export async function storageSummary(c: Q): Promise<StorageSummary | undefined> {
  const has = await c.query(
    `SELECT to_regclass('storage.objects') IS NOT NULL AS o, to_regclass('storage.buckets') IS NOT NULL AS b`,
  );
  if (!has.rows[0].o) return undefined;
  const r = await c.query(
    `SELECT (SELECT count(*) FROM storage.objects)::bigint AS objects,
            (SELECT coalesce(sum((metadata->>'size')::bigint), 0) FROM storage.objects WHERE metadata ? 'size')::bigint AS bytes,
            ${has.rows[0].b ? "(SELECT count(*) FROM storage.buckets)::bigint" : "0"} AS buckets`,
  );
  return { buckets: Number(r.rows[0].buckets), objects: Number(r.rows[0].objects), bytes: Number(r.rows[0].bytes) };
}

/** A target is empty when nothing but extension members lives outside the system schemas (and public has nothing). */
export async function targetContents(c: Q): Promise<string[]> {
  const r = await c.query(
    `SELECT format('%s %I.%I', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view'
                                   WHEN 'S' THEN 'sequence' ELSE 'relation' END, n.nspname, c.relname) AS what
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
        AND n.nspname NOT LIKE 'pg_temp%' AND ${NOT_EXTENSION_MEMBER("c", "pg_class")}
     UNION ALL
     SELECT format('function %I.%I', n.nspname, p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND ${NOT_EXTENSION_MEMBER("p", "pg_proc")}
     ORDER BY 1`,
  );
  return r.rows.map((x) => x.what as string);
}

export async function serverVersion(c: Q): Promise<{ num: number; text: string }> {
  const r = await c.query(
    "SELECT current_setting('server_version_num')::int AS n, current_setting('server_version') AS t",
  );
  return { num: r.rows[0].n, text: r.rows[0].t };
}

export async function schemaOwners(c: Q, schemas: string[]): Promise<Record<string, { owner: string; oid: number }>> {
  const r = await c.query(
    `SELECT nspname, pg_get_userbyid(nspowner) AS owner, oid::int AS oid FROM pg_namespace WHERE nspname = ANY($1)`,
    [schemas],
  );
  return Object.fromEntries(r.rows.map((x) => [x.nspname, { owner: x.owner, oid: x.oid }]));
}

/**
 * The target database's own settings, which a migration must leave as they
 * were (the environment's owner, CONNECT confinement, JWT settings, limit,
 * comment): read before and after, compared by the verification.
 */
export async function databaseState(c: Q, database: string): Promise<Record<string, string>> {
  const r = await c.query(
    `SELECT pg_get_userbyid(d.datdba) AS owner, d.datconnlimit::text AS connlimit, coalesce(shobj_description(d.oid, 'pg_database'), '') AS comment,
            coalesce((SELECT string_agg(g.v, ',' ORDER BY g.v) FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a,
                        LATERAL (SELECT format('%s=%s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type) AS v) g), '') AS acl,
            coalesce((SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), '') AS settings
       FROM pg_database d WHERE d.datname = $1`,
    [database],
  );
  const x = r.rows[0] ?? {};
  return Object.fromEntries(
    ["owner", "acl", "settings", "connlimit", "comment"].map((k) => [`database ${database}: ${k}`, String(x[k] ?? "")]),
  );
}
