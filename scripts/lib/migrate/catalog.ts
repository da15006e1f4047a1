/**
 * Catalog reads shared by source and target: what is there, how big, and the
 * fingerprints the verification compares (row counts, a per-table checksum,
 * sequences, object counts). The same queries run on both sides.
 */
import type pg from "pg";
import type { ExtensionRow, Membership, RoleRow, SchemaRow } from "./select";

type Q = Pick<pg.Client, "query">;

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

const NOT_EXTENSION_MEMBER = (alias: string, catalog: string) =>
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
  return r.rows.map((x) => ({ schema: x.schema, name: x.name, kind: kinds[x.kind]!, estRows: Number(x.est), bytes: Number(x.bytes) }));
}

export async function listRoles(c: Q): Promise<RoleRow[]> {
  const r = await c.query(
    `SELECT rolname, rolcanlogin, rolinherit, rolcreatedb, rolcreaterole, rolbypassrls, rolsuper, rolreplication, rolconnlimit,
            to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS valid
       FROM pg_roles ORDER BY 1`,
  );
  return r.rows.map((x) => ({
    name: x.rolname, login: x.rolcanlogin, inherit: x.rolinherit, createdb: x.rolcreatedb, createrole: x.rolcreaterole,
    bypassrls: x.rolbypassrls, superuser: x.rolsuper, replication: x.rolreplication, connlimit: x.rolconnlimit,
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
  const r = await c.query(`SELECT e.extname AS name, n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1`);
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
  const has = await c.query(`SELECT to_regclass('storage.objects') IS NOT NULL AS o, to_regclass('storage.buckets') IS NOT NULL AS b`);
  if (!has.rows[0].o) return undefined;
  const r = await c.query(
    `SELECT (SELECT count(*) FROM storage.objects)::bigint AS objects,
            (SELECT coalesce(sum((metadata->>'size')::bigint), 0) FROM storage.objects WHERE metadata ? 'size')::bigint AS bytes,
            ${has.rows[0].b ? "(SELECT count(*) FROM storage.buckets)::bigint" : "0"} AS buckets`,
  );
  return { buckets: Number(r.rows[0].buckets), objects: Number(r.rows[0].objects), bytes: Number(r.rows[0].bytes) };
}

/**
 * Session settings that make a row's text form identical on both servers, so
 * the checksum compares values rather than display settings.
 */
export const CHECKSUM_SETTINGS = [
  // The platform may time out long statements or idle transactions (our snapshot transaction idles while pg_dump works).
  "SET statement_timeout = 0",
  "SET idle_in_transaction_session_timeout = 0",
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'postgres'",
  "SET extra_float_digits = 1",
  "SET bytea_output = 'hex'",
  // reg* values print as names, schema-qualified the same way on both sides.
  "SET search_path = pg_catalog",
  // Fail instead of silently checksumming only the rows a policy lets us see.
  "SET row_security = off",
];

export interface TableFingerprint {
  rows: number;
  /** sum of a 64-bit hash per row: independent of row order, so no sort and no giant string */
  checksum: string;
}

/**
 * How rows are hashed. `record`: hash_record_extended() over the values with
 * each type's own hash function (about 3x cheaper than going through text).
 * `text`: the row's text form, for tables with a column type that has no hash
 * function (json, point, ...). Decided on the source, reused on the target.
 */
export type HashMode = "record" | "text";

/** A column as the checksum reads it. byText: its type holds an enum or a reg* type somewhere (array, domain, range, composite). */
export interface HashColumn {
  name: string;
  byText: boolean;
}

const qi = (s: string) => `"${s.replace(/"/g, '""')}"`;

/**
 * Columns of each relation, by name (not attnum: pg_dump recreates an
 * inheritance child with the parent's columns first, so positions differ).
 * Enum values hash by their label's OID and reg* values are OIDs: physical
 * identities that differ on the target, so those columns are hashed by their
 * text (the label, the qualified name) instead.
 */
export async function hashColumns(c: Q, tables: { schema: string; name: string }[]): Promise<Map<string, HashColumn[]>> {
  const r = await c.query(
    `WITH RECURSIVE rel AS (
       SELECT c.oid, t.s, t.n FROM unnest($1::text[], $2::text[]) AS t(s, n)
         JOIN pg_namespace ns ON ns.nspname = t.s JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n),
     col AS (SELECT rel.s, rel.n, a.attname, a.atttypid FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped),
     closure(root, typ) AS (
       SELECT DISTINCT atttypid, atttypid FROM col
       UNION
       SELECT cl.root, sub.t FROM closure cl JOIN pg_type ty ON ty.oid = cl.typ,
         LATERAL (SELECT ty.typelem AS t WHERE ty.typelem <> 0
                  UNION ALL SELECT ty.typbasetype WHERE ty.typbasetype <> 0
                  UNION ALL SELECT rg.rngsubtype FROM pg_range rg WHERE rg.rngtypid = ty.oid OR rg.rngmultitypid = ty.oid
                  UNION ALL SELECT a.atttypid FROM pg_attribute a WHERE ty.typrelid <> 0 AND a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped) sub),
     physical AS (
       SELECT DISTINCT cl.root FROM closure cl JOIN pg_type t ON t.oid = cl.typ
        WHERE t.typtype = 'e' OR (t.typnamespace = 'pg_catalog'::regnamespace AND t.typname ~ '^reg'))
     SELECT col.s, col.n, col.attname, col.atttypid IN (SELECT root FROM physical) AS by_text FROM col ORDER BY col.s, col.n, col.attname COLLATE "C"`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  const out = new Map<string, HashColumn[]>();
  for (const x of r.rows) {
    const k = tableKey({ schema: x.s, name: x.n });
    if (!out.has(k)) out.set(k, []);
    out.get(k)!.push({ name: x.attname, byText: x.by_text });
  }
  return out;
}

export interface ChecksumTarget {
  schema: string;
  name: string;
  kind?: TableInfo["kind"];
  columns?: HashColumn[];
}

const rowExpr = (t: ChecksumTarget) => {
  if (!t.columns) return "x";
  if (!t.columns.length) return "ROW(NULL::int)";
  return `ROW(${t.columns.map((col) => `x.${qi(col.name)}${col.byText ? "::text" : ""}`).join(", ")})`;
};

/** A partition root is read as a whole; every other table ONLY itself (inheritance children are checked on their own). */
const fromClause = (t: ChecksumTarget) => `${t.kind === "partitioned" ? "" : "ONLY "}${qi(t.schema)}.${qi(t.name)} AS x`;

export const checksumSql = (t: ChecksumTarget, mode: HashMode = "record") =>
  `SELECT count(*)::bigint AS n, coalesce(sum(${mode === "record" ? `hash_record_extended(${rowExpr(t)}, 0)` : `hashtextextended(${rowExpr(t)}::text, 0)`}), 0)::text AS h FROM ${fromClause(t)}`;

/** Probe one row inside a savepoint (the source session is one long snapshot transaction). */
export async function probeHashMode(c: Q, t: ChecksumTarget): Promise<HashMode> {
  await c.query("SAVEPOINT hash_probe");
  try {
    await c.query(`SELECT hash_record_extended(${rowExpr(t)}, 0) FROM ${fromClause(t)} LIMIT 1`);
    await c.query("RELEASE SAVEPOINT hash_probe");
    return "record";
  } catch {
    await c.query("ROLLBACK TO SAVEPOINT hash_probe");
    return "text";
  }
}

export async function fingerprintTable(c: Q, t: ChecksumTarget, mode: HashMode = "record"): Promise<TableFingerprint> {
  const r = await c.query(checksumSql(t, mode));
  return { rows: Number(r.rows[0].n), checksum: r.rows[0].h as string };
}

export interface ObjectCounts {
  tables: number;
  views: number;
  sequences: number;
  functions: number;
  triggers: number;
  policies: number;
  foreignKeys: number;
  indexes: number;
}

/** leftOutRels: relations left out on purpose (tables the login cannot read): not counted, nor their indexes, triggers, policies. */
export async function objectCounts(c: Q, schemas: string[], leftOutRels: number[] = []): Promise<ObjectCounts> {
  const r = await c.query(
    `WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY($1)),
          rel AS (SELECT c.* FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.oid <> ALL($2::oid[])
                    AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = c.oid AND i.indrelid = ANY($2::oid[])) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")})
     SELECT (SELECT count(*) FROM rel WHERE relkind IN ('r','p'))::int AS tables,
            (SELECT count(*) FROM rel WHERE relkind IN ('v','m'))::int AS views,
            (SELECT count(*) FROM rel WHERE relkind = 'S')::int AS sequences,
            (SELECT count(*) FROM rel WHERE relkind = 'i')::int AS indexes,
            (SELECT count(*) FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) AND ${NOT_EXTENSION_MEMBER("p", "pg_proc")})::int AS functions,
            (SELECT count(*) FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM rel))::int AS triggers,
            (SELECT count(*) FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel))::int AS policies,
            (SELECT count(*) FROM pg_constraint k WHERE k.contype = 'f' AND k.conrelid IN (SELECT oid FROM rel))::int AS "foreignKeys"`,
    [schemas, leftOutRels],
  );
  return r.rows[0] as ObjectCounts;
}

export interface SequenceState {
  lastValue: string | null;
  isCalled: boolean;
  schema?: string;
  name?: string;
}

/** last_value/is_called of every sequence (read from the sequence itself: pg_sequences hides it without privileges). */
export async function sequenceStates(c: Q, schemas: string[]): Promise<Record<string, SequenceState>> {
  const seqs = await c.query(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND n.nspname = ANY($1) AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT') ELSE false END AND ${NOT_EXTENSION_MEMBER("c", "pg_class")} ORDER BY 1, 2`,
    [schemas],
  );
  const out: Record<string, SequenceState> = {};
  for (const s of seqs.rows) {
    const r = await c.query(`SELECT last_value::text AS v, is_called AS c FROM ${qi(s.schema)}.${qi(s.name)}`);
    out[`${s.schema}.${s.name}`] = { lastValue: r.rows[0].v, isCalled: r.rows[0].c, schema: s.schema, name: s.name };
  }
  return out;
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
  const r = await c.query("SELECT current_setting('server_version_num')::int AS n, current_setting('server_version') AS t");
  return { num: r.rows[0].n, text: r.rows[0].t };
}

/**
 * The definitions the migration must carry byte for byte, keyed by
 * pg_describe_object() (the same text on both sides): function bodies (md5 of
 * prosrc) and full definitions, views and materialized views, policies,
 * triggers, constraints, indexes, column defaults and generated expressions,
 * enum labels in order. Read with CHECKSUM_SETTINGS (search_path =
 * pg_catalog), so names print qualified the same way on both sides.
 */
export async function definitions(c: Q, schemas: string[], leftOutRels: number[] = []): Promise<Record<string, string>> {
  const r = await c.query(
    `WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY($1)),
          rel AS (SELECT c.oid, c.relkind FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.oid <> ALL($2::oid[]) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")})
     SELECT pg_describe_object('pg_proc'::regclass, p.oid, 0) AS k,
            'prosrc md5 ' || md5(coalesce(p.prosrc, '')) || CASE WHEN p.prokind IN ('f','p') THEN ', definition md5 ' || md5(pg_get_functiondef(p.oid)) ELSE '' END AS v
       FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) AND ${NOT_EXTENSION_MEMBER("p", "pg_proc")}
     UNION ALL
     SELECT pg_describe_object('pg_class'::regclass, rel.oid, 0), 'definition md5 ' || md5(pg_get_viewdef(rel.oid, false)) FROM rel WHERE relkind IN ('v','m')
     UNION ALL
     SELECT pg_describe_object('pg_policy'::regclass, p.oid, 0),
            format('%s %s to %s using %s check %s', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END, p.polcmd,
                   (SELECT string_agg(g.n, ',' ORDER BY g.n) FROM unnest(p.polroles) o, LATERAL (SELECT CASE WHEN o = 0 THEN 'public' ELSE pg_get_userbyid(o)::text END AS n) g),
                   pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
       FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel)
     UNION ALL
     SELECT pg_describe_object('pg_trigger'::regclass, t.oid, 0), pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
       FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM rel)
     UNION ALL
     SELECT pg_describe_object('pg_constraint'::regclass, k.oid, 0), pg_get_constraintdef(k.oid)
       FROM pg_constraint k WHERE k.conrelid IN (SELECT oid FROM rel) OR k.contypid IN (SELECT oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns))
     UNION ALL
     SELECT pg_describe_object('pg_class'::regclass, i.indexrelid, 0), pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
     UNION ALL
     SELECT pg_describe_object('pg_attrdef'::regclass, d.oid, 0), a.attgenerated::text || ' ' || pg_get_expr(d.adbin, d.adrelid)
       FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid IN (SELECT oid FROM rel)
     UNION ALL
     SELECT pg_describe_object('pg_type'::regclass, t.oid, 0), 'enum ' || (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
       FROM pg_type t WHERE t.typtype = 'e' AND t.typnamespace IN (SELECT oid FROM ns) AND ${NOT_EXTENSION_MEMBER("t", "pg_type")}
     UNION ALL
     SELECT 'materialized view ' || rel.oid::regclass::text || ' populated', (SELECT relispopulated::text FROM pg_class WHERE oid = rel.oid) FROM rel WHERE relkind = 'm'`,
    [schemas, leftOutRels],
  );
  const out: Record<string, string> = {};
  for (const x of r.rows) out[x.k] = x.v ?? "";
  return out;
}

/** Publication membership of migrated tables: `publication p: table s.t` -> row filter and column list. */
export async function publicationMembers(c: Q, schemas: string[]): Promise<Record<string, string>> {
  const r = await c.query(
    `SELECT format('publication %I: table %I.%I', pubname, schemaname, tablename) AS k,
            format('where %s columns %s', coalesce(rowfilter, '-'), array_to_string(attnames, ',')) AS v
       FROM pg_publication_tables WHERE schemaname = ANY($1)`,
    [schemas],
  );
  return Object.fromEntries(r.rows.map((x) => [x.k, x.v]));
}

export interface PublicationRow {
  name: string;
  owner: string;
  allTables: boolean;
  insert: boolean;
  update: boolean;
  delete: boolean;
  truncate: boolean;
  viaRoot: boolean;
  /** tables in migrated schemas, each `ONLY "s"."t" [(cols)] [WHERE (...)]`, built by the server's own quoting */
  tables: string[];
  /** migrated schemas the publication covers as a whole (FOR TABLES IN SCHEMA) */
  schemas: string[];
}

/** Publications that cover a migrated table (Realtime's supabase_realtime above all). */
export async function listPublications(c: Q, schemas: string[]): Promise<PublicationRow[]> {
  const r = await c.query(
    `SELECT p.pubname AS name, pg_get_userbyid(p.pubowner) AS owner, p.puballtables AS "allTables", p.pubinsert AS insert, p.pubupdate AS update,
            p.pubdelete AS delete, p.pubtruncate AS truncate, p.pubviaroot AS "viaRoot",
            coalesce((SELECT array_agg(format('ONLY %I.%I', n.nspname, cl.relname)
                        || coalesce(' (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                                             WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs)) || ')', '')
                        || coalesce(' WHERE (' || pg_get_expr(pr.prqual, pr.prrelid) || ')', '') ORDER BY n.nspname, cl.relname)
                        FROM pg_publication_rel pr JOIN pg_class cl ON cl.oid = pr.prrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
                       WHERE pr.prpubid = p.oid AND n.nspname = ANY($1)), '{}') AS tables,
            coalesce((SELECT array_agg(n.nspname::text ORDER BY 1) FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid
                       WHERE pn.pnpubid = p.oid AND n.nspname = ANY($1)), '{}') AS schemas
       FROM pg_publication p ORDER BY 1`,
    [schemas],
  );
  return (r.rows as PublicationRow[]).filter((p) => p.allTables || p.tables.length || p.schemas.length);
}

const LO_READABLE = `((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR current_setting('lo_compat_privileges')::bool
  OR pg_has_role(m.lomowner, 'USAGE')
  OR EXISTS (SELECT 1 FROM aclexplode(m.lomacl) a WHERE a.privilege_type = 'SELECT' AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE'))))`;

/** Large objects: oid, owner and md5 of the contents (lo_get reads the snapshot); only those the login may read. */
export async function largeObjects(c: Q): Promise<{ oid: number; owner: string; md5: string; bytes: number }[]> {
  const r = await c.query(
    `SELECT m.oid::bigint AS oid, pg_get_userbyid(m.lomowner) AS owner, md5(lo_get(m.oid)) AS md5, length(lo_get(m.oid))::bigint AS bytes
       FROM pg_largeobject_metadata m WHERE ${LO_READABLE} ORDER BY m.oid`,
  );
  return r.rows.map((x) => ({ oid: Number(x.oid), owner: x.owner, md5: x.md5, bytes: Number(x.bytes) }));
}

/** Large objects the login may not read: pg_dump -b would die on them, and they cannot be left out one by one. */
export async function unreadableLargeObjects(c: Q): Promise<number[]> {
  const r = await c.query(`SELECT m.oid::bigint AS oid FROM pg_largeobject_metadata m WHERE NOT ${LO_READABLE} ORDER BY 1`);
  return r.rows.map((x) => Number(x.oid));
}

export interface LeftBehindDependency {
  classid: number;
  objid: number;
  /** e.g. trigger notify-fulfilment on table public.orders */
  object: string;
  /** e.g. function supabase_functions.http_request() */
  needs: string;
  /** the ObjectCounts kind it falls under, if any */
  kind: keyof ObjectCounts | null;
}

const COUNT_KIND = (classid: string, objid: string) => `CASE ${classid}
  WHEN 'pg_trigger'::regclass THEN 'triggers' WHEN 'pg_policy'::regclass THEN 'policies' WHEN 'pg_proc'::regclass THEN 'functions'
  WHEN 'pg_constraint'::regclass THEN (SELECT CASE WHEN contype = 'f' THEN 'foreignKeys' END FROM pg_constraint WHERE oid = ${objid})
  WHEN 'pg_class'::regclass THEN (SELECT CASE WHEN relkind IN ('r','p') THEN 'tables' WHEN relkind IN ('v','m') THEN 'views' WHEN relkind = 'S' THEN 'sequences' WHEN relkind = 'i' THEN 'indexes' END FROM pg_class WHERE oid = ${objid})
  END`;

/** Objects that need one of the given relations (foreign keys to it, views over it): they go when it is left out. */
export async function dependentsOf(c: Q, relOids: number[]): Promise<LeftBehindDependency[]> {
  if (!relOids.length) return [];
  const r = await c.query(
    `WITH d AS (
       SELECT DISTINCT CASE WHEN d.classid = 'pg_rewrite'::regclass THEN 'pg_class'::regclass ELSE d.classid END AS classid,
              CASE WHEN d.classid = 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid) ELSE d.objid END AS objid,
              d.refobjid
         FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY($1::oid[]) AND d.deptype = 'n')
     SELECT d.classid::int AS classid, d.objid::int AS objid, pg_describe_object(d.classid, d.objid, 0) AS object,
            pg_describe_object('pg_class'::regclass, d.refobjid, 0) AS needs, ${COUNT_KIND("d.classid", "d.objid")} AS kind
       FROM d WHERE NOT (d.classid = 'pg_class'::regclass AND d.objid = ANY($1::oid[])) ORDER BY 3`,
    [relOids],
  );
  return r.rows.map((x) => ({ classid: Number(x.classid), objid: Number(x.objid), object: x.object, needs: x.needs, kind: x.kind }));
}

/**
 * Objects in migrated schemas that depend (pg_depend) on an object left
 * behind: in a schema that is not migrated, or a member of an extension the
 * target will not get. E.g. a Database Webhook: a trigger on public.orders
 * calling supabase_functions.http_request(). The restore of such an object
 * would fail mid-way; PLAN names it instead.
 */
export async function leftBehindDependencies(c: Q, migrated: string[], createdExtensions: string[]): Promise<LeftBehindDependency[]> {
  const r = await c.query(
    `WITH d AS (
       SELECT DISTINCT d.classid, d.objid, d.refclassid, d.refobjid, d.refobjsubid,
              coalesce(o.schema, (SELECT n.nspname FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = CASE d.classid
                 WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)
                 WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = d.objid)
                 WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)
                 WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)
                 WHEN 'pg_constraint'::regclass THEN (SELECT conrelid FROM pg_constraint WHERE oid = d.objid) END)) AS home,
              r.schema AS refschema
         FROM pg_depend d, LATERAL pg_identify_object(d.classid, d.objid, 0) o, LATERAL pg_identify_object(d.refclassid, d.refobjid, 0) r
        WHERE d.deptype IN ('n', 'a') AND d.refclassid <> 'pg_namespace'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e'))
     SELECT d.classid::int AS classid, d.objid::int AS objid, pg_describe_object(d.classid, d.objid, 0) AS object,
            pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS needs, ${COUNT_KIND("d.classid", "d.objid")} AS kind
       FROM d
      WHERE d.home = ANY($1) AND d.refschema IS NOT NULL AND d.refschema <> ALL($1) AND d.refschema NOT IN ('pg_catalog', 'information_schema')
        AND NOT EXISTS (SELECT 1 FROM pg_depend e JOIN pg_extension x ON x.oid = e.refobjid
                         WHERE e.classid = d.refclassid AND e.objid = d.refobjid AND e.deptype = 'e' AND x.extname = ANY($2))
      ORDER BY 3, 4`,
    [migrated, createdExtensions],
  );
  return r.rows.map((x) => ({ classid: Number(x.classid), objid: Number(x.objid), object: x.object, needs: x.needs, kind: x.kind }));
}

/**
 * Tables (and sequences) the source login cannot read in full: no SELECT, or
 * row-level security it does not bypass. pg_dump would die on the first one
 * (a non-superuser login, as on Supabase, cannot read storage.migrations).
 */
export async function unreadableRelations(c: Q, schemas: string[]): Promise<{ oid: number; schema: string; name: string; kind: string; reason: string }[]> {
  const r = await c.query(
    `SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind,
            CASE WHEN NOT has_table_privilege(c.oid, 'SELECT') THEN format('the source login %I has no SELECT on it', current_user)
                 ELSE format('row-level security is on and the source login %I neither owns the table nor has BYPASSRLS', current_user) END AS reason
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p','m','S') AND n.nspname = ANY($1) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")}
        AND (NOT has_table_privilege(c.oid, 'SELECT')
             OR (c.relrowsecurity AND NOT pg_has_role(c.relowner, 'USAGE')
                 AND NOT (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user)))
      ORDER BY 1, 2`,
    [schemas],
  );
  return r.rows;
}

/** Per role the target lacks: what it owns or is granted in the migrated schemas (reassigned to the migrating superuser / dropped). */
export async function roleFootprint(c: Q, roles: string[], schemas: string[]): Promise<Record<string, { owns: number; grants: number }>> {
  if (!roles.length) return {};
  const r = await c.query(
    `SELECT a.rolname AS role, count(*) FILTER (WHERE s.deptype = 'o')::int AS owns, count(*) FILTER (WHERE s.deptype IN ('a', 'i'))::int AS grants
       FROM pg_shdepend s JOIN pg_roles a ON a.oid = s.refobjid
       LEFT JOIN LATERAL pg_identify_object(s.classid, s.objid, 0) o ON true
      WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.refclassid = 'pg_authid'::regclass
        AND a.rolname = ANY($1) AND (o.schema = ANY($2) OR (o.type = 'schema' AND o.name = ANY($2)) OR o.type = 'large object')
      GROUP BY 1`,
    [roles, schemas],
  );
  return Object.fromEntries(r.rows.map((x) => [x.role, { owns: x.owns, grants: x.grants }]));
}

/** The columns a COPY carries (stored, not generated), in column order, per table. */
export async function copyColumns(c: Q, tables: { schema: string; name: string }[]): Promise<Map<string, string[]>> {
  const r = await c.query(
    `SELECT t.s, t.n, array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL) AS cols
       FROM unnest($1::text[], $2::text[]) AS t(s, n)
       JOIN pg_namespace ns ON ns.nspname = t.s JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      GROUP BY 1, 2`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return new Map(r.rows.map((x) => [tableKey({ schema: x.s, name: x.n }), (x.cols ?? []) as string[]]));
}

/** Populated materialized views, each after the materialized views it reads (directly or through views). */
export async function matviewRefreshOrder(c: Q, schemas: string[]): Promise<{ schema: string; name: string }[]> {
  const r = await c.query(
    `WITH RECURSIVE mv AS (
       SELECT c.oid, n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'm' AND c.relispopulated AND n.nspname = ANY($1)),
     reads(mv, rel) AS (
       SELECT rw.ev_class, d.refobjid FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
        WHERE rw.ev_class IN (SELECT oid FROM mv) AND d.refobjid <> rw.ev_class
       UNION
       SELECT r.mv, d.refobjid FROM reads r JOIN pg_class v ON v.oid = r.rel AND v.relkind = 'v'
         JOIN pg_rewrite rw ON rw.ev_class = v.oid JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
        WHERE d.refobjid <> v.oid)
     SELECT mv.oid::int AS oid, mv.schema, mv.name, coalesce((SELECT array_agg(DISTINCT r.rel::int) FROM reads r WHERE r.mv = mv.oid AND r.rel IN (SELECT oid FROM mv)), '{}') AS needs
       FROM mv ORDER BY mv.oid`,
    [schemas],
  );
  const rows = r.rows as { oid: number; schema: string; name: string; needs: number[] }[];
  const done = new Set<number>();
  const out: { schema: string; name: string }[] = [];
  for (let progress = true; progress && done.size < rows.length; ) {
    progress = false;
    for (const x of rows) {
      if (done.has(x.oid) || !x.needs.every((n) => done.has(n))) continue;
      done.add(x.oid);
      out.push({ schema: x.schema, name: x.name });
      progress = true;
    }
  }
  for (const x of rows) if (!done.has(x.oid)) out.push({ schema: x.schema, name: x.name }); // a cycle cannot exist; keep them anyway
  return out;
}

export async function schemaOwners(c: Q, schemas: string[]): Promise<Record<string, { owner: string; oid: number }>> {
  const r = await c.query(`SELECT nspname, pg_get_userbyid(nspowner) AS owner, oid::int AS oid FROM pg_namespace WHERE nspname = ANY($1)`, [schemas]);
  return Object.fromEntries(r.rows.map((x) => [x.nspname, { owner: x.owner, oid: x.oid }]));
}

/**
 * pg_dump restores with an empty search_path, and a SQL function without its
 * own `SET search_path` is inlined with the session's: a generated column,
 * index expression or check constraint that calls such a function whose body
 * calls another user function unqualified cannot be created on the target
 * (`function squash_ws(text) does not exist`). Found from the catalog: the
 * expression's dependencies and the bodies' unqualified calls.
 */
export async function unqualifiedCalls(c: Q, schemas: string[]): Promise<{ object: string; fn: string; calls: string[] }[]> {
  const r = await c.query(
    `SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) AS object, p.oid::regprocedure::text AS fn, p.prosrc,
            (SELECT array_agg(DISTINCT q.proname::text) FROM pg_proc q WHERE q.pronamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))) AS names
       FROM pg_depend d JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
       JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'sql'
      WHERE d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass)
        AND p.pronamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))
        AND NOT coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search_path=%'), false)
        AND (d.classid <> 'pg_attrdef'::regclass OR EXISTS (SELECT 1 FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.oid = d.objid AND a.attgenerated <> ''))
        AND (d.classid <> 'pg_class'::regclass OR EXISTS (SELECT 1 FROM pg_class i WHERE i.oid = d.objid AND i.relkind = 'i'))`,
    [schemas],
  );
  const out: { object: string; fn: string; calls: string[] }[] = [];
  for (const x of r.rows) {
    const names = new Set((x.names ?? []) as string[]);
    const calls = [...new Set([...String(x.prosrc).matchAll(/(?<![.\w"$])([A-Za-z_][A-Za-z0-9_$]*)\s*\(/g)].map((m) => m[1]!.toLowerCase()))].filter((n) => names.has(n));
    if (calls.length) out.push({ object: x.object, fn: x.fn, calls });
  }
  return out;
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
  return Object.fromEntries(["owner", "acl", "settings", "connlimit", "comment"].map((k) => [`database ${database}: ${k}`, String(x[k] ?? "")]));
}


/**
 * pg_catalog functions that are marked immutable or stable yet run a query
 * given as text (or write server files): never trusted in code the load runs.
 */
export const SQL_RUNNING_BUILTINS = new Set([
  "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
  "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
  "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema", "ts_stat", "set_config", "lo_export", "lo_import",
]);

/** Functions and operators a stored expression (pg_node_tree text) calls: function calls, aggregates, window functions, operators (incl. row comparisons), sort/group operators. */
export function treeCalls(tree: string): { cat: "pg_proc" | "pg_operator"; oid: number }[] {
  const out: { cat: "pg_proc" | "pg_operator"; oid: number }[] = [];
  for (const m of tree.matchAll(/:(funcid|opfuncid|aggfnoid|winfnoid|opno|sortop|eqop) (\d+)/g)) {
    if (m[2] !== "0") out.push({ cat: m[1] === "opno" || m[1] === "sortop" || m[1] === "eqop" ? "pg_operator" : "pg_proc", oid: Number(m[2]) });
  }
  for (const m of tree.matchAll(/:opnos \(o ([\d ]+)\)/g)) for (const o of m[1]!.trim().split(/\s+/)) out.push({ cat: "pg_operator", oid: Number(o) });
  return out;
}

export interface SourceCodeRun {
  classid: number;
  objid: number;
  /** the object whose load runs the code: a table (generated column, CHECK, partition key), a domain, an index, a constraint, a materialized view */
  object: string;
  /** what would run: a function (regprocedure), an operator's function or an operator class */
  runs: string;
  /** why it is not trusted */
  why: string;
  /** a function the restore itself would create as the superuser (an untrusted language), whether or not the load calls it */
  restored?: boolean;
}

/**
 * Code of the source that the load would run on the target as its superuser
 * (the restore and COPY session logs in as the target's superuser): the
 * expressions evaluated while rows arrive or indexes and constraints are built
 * over them, and the queries of materialized views refreshed at the end.
 *   - generated columns, CHECK constraints, partition keys: evaluated by COPY
 *   - domain CHECK constraints: evaluated by COPY for columns of the domain
 *   - index expressions, predicates, operator classes: by CREATE INDEX (post-data)
 *   - foreign-key and exclusion operators: by ADD CONSTRAINT (post-data)
 *   - materialized view queries (and of the views they read): by REFRESH
 *   - a range type's subtype_diff: by a GiST index build
 * Column DEFAULTs never run (every column is copied) and triggers are created
 * after the data (pg_dump's post-data), so neither fires during the load.
 * Trusted: immutable or stable functions of pg_catalog (except those that run
 * a query given as text) or of an extension the target installs from its own
 * packages, and the source's own SQL functions with a parsed body (BEGIN
 * ATOMIC / RETURN), immutable or stable, no SECURITY DEFINER, no SET clause,
 * that call only trusted code (followed through pg_depend). Anything else
 * (plpgsql, a SQL body kept as text, an untrusted language) is opaque: PLAN
 * names it and the run refuses unless --trust-source-code.
 * Also named: every function of the source in an untrusted language (C,
 * plpython3u...): restored by the superuser, it would run server-side code.
 */
export async function sourceCodeRunByLoad(c: Q, schemas: string[]): Promise<SourceCodeRun[]> {
  const migratedNs = `(SELECT oid FROM pg_namespace WHERE nspname = ANY($1))`;
  // The expressions themselves (pg_node_tree): pg_depend leaves out built-in functions (pinned), so read the trees.
  const trees = (await c.query(
    `WITH r AS (
       SELECT 'pg_class'::regclass AS classid, ad.adrelid AS objid, ad.adbin::text AS tree
         FROM pg_attrdef ad JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum AND a.attgenerated <> ''
       UNION ALL
       SELECT CASE WHEN k.contypid <> 0 THEN 'pg_type'::regclass ELSE 'pg_class'::regclass END, CASE WHEN k.contypid <> 0 THEN k.contypid ELSE k.conrelid END, k.conbin::text
         FROM pg_constraint k WHERE k.contype = 'c'
       UNION ALL
       SELECT 'pg_class'::regclass, i.indexrelid, concat_ws(' ', i.indexprs::text, i.indpred::text) FROM pg_index i
       UNION ALL
       SELECT 'pg_class'::regclass, p.partrelid, p.partexprs::text FROM pg_partitioned_table p
       UNION ALL
       -- a materialized view's query and the queries of the views it reads, however deep (REFRESH runs them all)
       SELECT 'pg_class'::regclass, w.ev_class, w.ev_action::text FROM pg_rewrite w
        WHERE w.ev_class IN (WITH RECURSIVE m(rel) AS (
                               SELECT oid FROM pg_class WHERE relkind = 'm'
                               UNION
                               SELECT v.oid FROM m JOIN pg_rewrite mw ON mw.ev_class = m.rel
                                 JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = mw.oid AND d.refclassid = 'pg_class'::regclass
                                 JOIN pg_class v ON v.oid = d.refobjid AND v.relkind = 'v')
                             SELECT rel FROM m))
     SELECT r.classid::oid::int AS classid, r.objid::int AS objid, pg_describe_object(r.classid, r.objid, 0) AS object, r.tree
       FROM r
      WHERE r.tree <> ''
        AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = r.classid AND e.objid = r.objid AND e.deptype = 'e')
        AND CASE r.classid WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = r.objid)
                           ELSE (SELECT typnamespace FROM pg_type WHERE oid = r.objid) END IN ${migratedNs}
      ORDER BY 3`,
    [schemas],
  )).rows as { classid: number; objid: number; object: string; tree: string }[];
  const roots: { classid: number; objid: number; object: string; refcat: string; refobjid: number }[] = [];
  for (const t of trees) {
    for (const r of treeCalls(t.tree)) roots.push({ classid: t.classid, objid: t.objid, object: t.object, refcat: r.cat, refobjid: r.oid });
  }
  // Operators of foreign keys and exclusion constraints, operator classes of indexes and partition keys: the source's own ones are in pg_depend.
  roots.push(...(await c.query(
    `WITH r AS (
       SELECT 'pg_constraint'::regclass AS classid, k.oid AS objid, d.refclassid, d.refobjid, k.conrelid AS rel
         FROM pg_constraint k JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid AND d.deptype = 'n'
        WHERE k.contype IN ('f', 'x')
       UNION
       SELECT 'pg_class'::regclass, d.objid, d.refclassid, d.refobjid, d.objid
         FROM pg_depend d JOIN pg_class x ON x.oid = d.objid AND x.relkind IN ('i', 'I', 'p')
        WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'n'
       UNION
       -- a range type's subtype_diff runs while a GiST index over it is built
       SELECT 'pg_type'::regclass, g.rngtypid, 'pg_proc'::regclass, g.rngsubdiff, NULL::oid
         FROM pg_range g WHERE g.rngsubdiff <> 0 AND (SELECT typnamespace FROM pg_type WHERE oid = g.rngtypid) IN ${migratedNs})
     SELECT r.classid::oid::int AS classid, r.objid::int AS objid, pg_describe_object(r.classid, r.objid, 0) AS object,
            r.refclassid::regclass::text AS refcat, r.refobjid::int AS refobjid
       FROM r
      WHERE r.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass, 'pg_opclass'::regclass, 'pg_opfamily'::regclass)
        AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = r.classid AND e.objid = r.objid AND e.deptype = 'e')
        AND (r.classid = 'pg_type'::regclass OR (SELECT relnamespace FROM pg_class WHERE oid = r.rel) IN ${migratedNs})
      ORDER BY 3`,
    [schemas],
  )).rows);
  const procs = new Map<number, { sig: string; ns: string; ext: boolean; vol: string; lang: string; trustedLang: boolean; atomic: boolean; secdef: boolean; config: boolean; name: string; migrated: boolean; auto: boolean }>();
  for (const p of (await c.query(
    `SELECT p.oid::int AS oid, p.oid::regprocedure::text AS sig, n.nspname AS ns, p.proname AS name, p.provolatile AS vol, l.lanname AS lang, l.lanpltrusted AS trusted,
            p.prosqlbody IS NOT NULL AS atomic, p.prosecdef AS secdef, p.proconfig IS NOT NULL AS config, n.nspname = ANY($1) AS migrated,
            EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e') AS ext,
            EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'i') AS auto
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang`,
    [schemas],
  )).rows) procs.set(p.oid, { sig: p.sig, ns: p.ns, ext: p.ext, vol: p.vol, lang: p.lang, trustedLang: p.trusted, atomic: p.atomic, secdef: p.secdef, config: p.config, name: p.name, migrated: p.migrated, auto: p.auto });
  const oprcode = new Map<number, { code: number; name: string }>();
  for (const o of (await c.query("SELECT oid::int AS oid, oprcode::oid::int AS code, oid::regoperator::text AS name FROM pg_operator")).rows) oprcode.set(o.oid, { code: o.code, name: o.name });
  const opclass = new Map<number, { name: string; builtin: boolean }>();
  for (const o of (await c.query(
    `SELECT x.oid::int AS oid, x.cat, x.name, (x.ns = 'pg_catalog'::regnamespace OR EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = x.cat::regclass AND e.objid = x.oid AND e.deptype = 'e')) AS builtin
       FROM (SELECT oid, 'pg_opclass' AS cat, opcnamespace AS ns, format('operator class %s', opcname) AS name FROM pg_opclass
             UNION ALL SELECT oid, 'pg_opfamily', opfnamespace, format('operator family %s', opfname) FROM pg_opfamily) x`,
  )).rows) opclass.set(o.oid, { name: o.name, builtin: o.builtin });
  // What the source's own parsed SQL bodies (BEGIN ATOMIC / RETURN) call, read from the body's tree (built-ins are not in pg_depend).
  const calls = new Map<number, { cat: string; oid: number }[]>();
  for (const f of (await c.query(
    `SELECT p.oid::int AS fn, p.prosqlbody::text AS tree FROM pg_proc p WHERE p.prosqlbody IS NOT NULL AND p.pronamespace IN ${migratedNs}`,
    [schemas],
  )).rows) {
    calls.set(f.fn, treeCalls(String(f.tree)));
  }

  // Why a function is not trusted, or undefined when it is (following what a parsed SQL body calls).
  const verdict = new Map<number, string | undefined>();
  const distrust = (oid: number, seen = new Set<number>()): string | undefined => {
    if (verdict.has(oid)) return verdict.get(oid);
    const p = procs.get(oid);
    if (!p) return "not found in the source catalog";
    if (seen.has(oid)) return undefined; // recursion: judged by the rest of the cycle
    seen.add(oid);
    let why: string | undefined;
    // an extension's functions come from the cluster's own packages (CREATE EXTENSION runs there), whichever schema holds them
    if (p.ns === "pg_catalog" || p.ext) {
      if (SQL_RUNNING_BUILTINS.has(p.name)) why = `${p.sig} runs SQL or writes files`;
      else if (p.vol === "v" && p.ns === "pg_catalog") why = `${p.sig} is volatile`;
      else if (p.vol === "v") why = `${p.sig} is volatile`;
    } else if (!p.trustedLang) why = `${p.sig} is written in ${p.lang}, an untrusted language`;
    else if (p.lang !== "sql" || !p.atomic) why = `${p.sig} is ${p.lang === "sql" ? "a SQL function whose body is text" : `written in ${p.lang}`} (opaque: it can run any statement)`;
    else if (p.secdef) why = `${p.sig} is SECURITY DEFINER`;
    else if (p.config) why = `${p.sig} sets configuration parameters`;
    else if (p.vol === "v") why = `${p.sig} is volatile`;
    else {
      for (const x of calls.get(oid) ?? []) {
        const inner = x.cat === "pg_operator" ? distrust(oprcode.get(x.oid)?.code ?? 0, seen) : distrust(x.oid, seen);
        if (inner) { why = `${p.sig} calls ${inner}`; break; }
      }
    }
    verdict.set(oid, why);
    return why;
  };
  const out: SourceCodeRun[] = [];
  const seenPair = new Set<string>();
  for (const r of roots) {
    let runs = "";
    let why: string | undefined;
    if (r.refcat === "pg_proc") {
      runs = procs.get(r.refobjid)?.sig ?? String(r.refobjid);
      why = distrust(r.refobjid);
    } else if (r.refcat === "pg_operator") {
      const o = oprcode.get(r.refobjid);
      runs = `operator ${o?.name ?? r.refobjid}`;
      why = distrust(o?.code ?? 0);
    } else {
      const o = opclass.get(r.refobjid);
      runs = o?.name ?? String(r.refobjid);
      if (o && !o.builtin) why = `${o.name} is the source's own: its support functions run while the index is built`;
    }
    const key = `${r.classid}/${r.objid}/${runs}`;
    if (why && !seenPair.has(key)) {
      seenPair.add(key);
      out.push({ classid: r.classid, objid: r.objid, object: r.object, runs, why });
    }
  }
  // Functions in untrusted languages, whether or not the load calls them.
  for (const [oid, p] of procs) {
    // (a range type's constructors are made by CREATE TYPE itself, not restored: deptype i)
    if (p.migrated && !p.ext && !p.auto && !p.trustedLang && !out.some((o) => o.classid === 1255 && o.objid === oid)) {
      out.push({ classid: 1255, objid: oid, object: `function ${p.sig}`, runs: p.sig, why: `it is written in ${p.lang}, an untrusted language: restored by the superuser, it would run code of the source's choosing on the server`, restored: true });
    }
  }
  return out;
}
