/**
 * The fingerprints the verification compares, read the same way on source and
 * target: a per-table checksum (with the session settings that make a row's
 * text identical on both servers), object counts and sequence states.
 */
import { NOT_EXTENSION_MEMBER, type Q, type TableInfo, tableKey } from "./catalog";

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
export async function hashColumns(
  c: Q,
  tables: { schema: string; name: string }[],
): Promise<Map<string, HashColumn[]>> {
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
const fromClause = (t: ChecksumTarget) =>
  `${t.kind === "partitioned" ? "" : "ONLY "}${qi(t.schema)}.${qi(t.name)} AS x`;

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
