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

/** Ordinary tables (and leaf partitions) in the given schemas, extension members excluded. */
export async function listTables(c: Q, schemas: string[]): Promise<TableInfo[]> {
  const r = await c.query(
    `SELECT n.nspname AS schema, c.relname AS name, greatest(c.reltuples, 0)::bigint AS est, pg_total_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname = ANY($1) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")}
      ORDER BY 1, 2`,
    [schemas],
  );
  return r.rows.map((x) => ({ schema: x.schema, name: x.name, estRows: Number(x.est), bytes: Number(x.bytes) }));
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
  // Fail instead of silently checksumming only the rows a policy lets us see.
  "SET row_security = off",
];

export interface TableFingerprint {
  rows: number;
  /** sum of a 64-bit hash per row: independent of row order, so no sort and no giant string */
  checksum: string;
}

/**
 * How rows are hashed. `record`: hash_record_extended() over the stored values
 * with each type's own hash function (about 3x cheaper than going through
 * text). `text`: the row's text form, for tables with a column type that has
 * no hash function (json, point, ...). Decided on the source, reused on the target.
 */
export type HashMode = "record" | "text";

const qi = (s: string) => `"${s.replace(/"/g, '""')}"`;

export const checksumSql = (t: { schema: string; name: string }, mode: HashMode = "record") =>
  `SELECT count(*)::bigint AS n, coalesce(sum(${mode === "record" ? "hash_record_extended(x, 0)" : "hashtextextended(x::text, 0)"}), 0)::text AS h FROM ONLY ${qi(t.schema)}.${qi(t.name)} AS x`;

/** Probe one row inside a savepoint (the source session is one long snapshot transaction). */
export async function probeHashMode(c: Q, t: { schema: string; name: string }): Promise<HashMode> {
  await c.query("SAVEPOINT hash_probe");
  try {
    await c.query(`SELECT hash_record_extended(x, 0) FROM ONLY ${qi(t.schema)}.${qi(t.name)} AS x LIMIT 1`);
    await c.query("RELEASE SAVEPOINT hash_probe");
    return "record";
  } catch {
    await c.query("ROLLBACK TO SAVEPOINT hash_probe");
    return "text";
  }
}

export async function fingerprintTable(c: Q, t: { schema: string; name: string }, mode: HashMode = "record"): Promise<TableFingerprint> {
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

export async function objectCounts(c: Q, schemas: string[]): Promise<ObjectCounts> {
  const r = await c.query(
    `WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY($1)),
          rel AS (SELECT c.* FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")})
     SELECT (SELECT count(*) FROM rel WHERE relkind IN ('r','p'))::int AS tables,
            (SELECT count(*) FROM rel WHERE relkind IN ('v','m'))::int AS views,
            (SELECT count(*) FROM rel WHERE relkind = 'S')::int AS sequences,
            (SELECT count(*) FROM rel WHERE relkind = 'i')::int AS indexes,
            (SELECT count(*) FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) AND ${NOT_EXTENSION_MEMBER("p", "pg_proc")})::int AS functions,
            (SELECT count(*) FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM rel))::int AS triggers,
            (SELECT count(*) FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel))::int AS policies,
            (SELECT count(*) FROM pg_constraint k WHERE k.contype = 'f' AND k.conrelid IN (SELECT oid FROM rel))::int AS "foreignKeys"`,
    [schemas],
  );
  return r.rows[0] as ObjectCounts;
}

export interface SequenceState {
  lastValue: string | null;
  isCalled: boolean;
}

/** last_value/is_called of every sequence (read from the sequence itself: pg_sequences hides it without privileges). */
export async function sequenceStates(c: Q, schemas: string[]): Promise<Record<string, SequenceState>> {
  const seqs = await c.query(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND n.nspname = ANY($1) AND ${NOT_EXTENSION_MEMBER("c", "pg_class")} ORDER BY 1, 2`,
    [schemas],
  );
  const out: Record<string, SequenceState> = {};
  for (const s of seqs.rows) {
    const r = await c.query(`SELECT last_value::text AS v, is_called AS c FROM ${qi(s.schema)}.${qi(s.name)}`);
    out[`${s.schema}.${s.name}`] = { lastValue: r.rows[0].v, isCalled: r.rows[0].c };
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
