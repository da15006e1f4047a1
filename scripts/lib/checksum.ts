/**
 * Content checksums of tables that do not depend on physical layout: the
 * same rows give the same checksum on any cluster, whatever the OIDs, the
 * column order, the partition a row landed in or the page it sits on.
 *
 * - Each row is hashed from the text output of its columns taken in column
 *   NAME order (ROW(a, b, ...)::text): an enum hashes as its label (not its
 *   OID, as hash_record does), a reg* value as its qualified name, and a
 *   table re-created with another column order (pg_dump does that to
 *   inheritance children) hashes the same.
 * - The per-row hashes are summed: order-independent, no sort needed.
 * - The text output is pinned (time zone, date style, float digits, bytea
 *   format, search_path) so both sides print values the same way.
 * - Tables are counted the way pg_dump loads them: a plain table or an
 *   inheritance parent ONLY itself; a partitioned table as its whole tree
 *   (pg_dump may load it through the root, and rows then land in the leaf
 *   the target's hash picks); each partition is listed but not compared.
 *
 * Shared by backup verification and restore; migrate-saas has its own
 * fingerprint today (scripts/lib/migrate/catalog.ts) and can move to this.
 */
import type pg from "pg";
import { quoteIdent } from "./pg";

export type TableKind = "table" | "partitioned" | "partition" | "matview";

export interface TableChecksum {
  schema: string;
  table: string;
  rows: number;
  /** sum of per-row hashes (decimal text); "unpopulated" for a matview WITH NO DATA */
  checksum?: string;
  /** absent = "table" (manifests written before kinds existed) */
  kind?: TableKind;
  /** a partition: its root table, schema-qualified; compared through the root */
  partitionOf?: string;
  /** UNLOGGED: a replica cannot read it, so its database is dumped from the primary */
  unlogged?: boolean;
}

/** Settings that change how values print; pinned to one value on both sides of a comparison. */
export const PINNED_OUTPUT: [string, string][] = [
  ["TimeZone", "UTC"],
  ["DateStyle", "ISO, YMD"],
  ["IntervalStyle", "postgres"],
  ["extra_float_digits", "1"],
  ["bytea_output", "hex"],
  ["lc_monetary", "C"],
  ["xmloption", "content"],
  // reg* values print schema-qualified whatever the caller's search_path was.
  ["search_path", ""],
];

/** Pin the output settings for this session (or, with local, this transaction). */
export async function pinOutput(c: pg.Client, local = false): Promise<void> {
  for (const [k, v] of PINNED_OUTPUT) await c.query("SELECT pg_catalog.set_config($1, $2, $3)", [k, v, local]);
}

/** Every table whose rows a dump carries, with its kind, root and column names (sorted). */
export const TABLE_LIST_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, c.relkind::text AS relkind, c.relpersistence::text AS persistence,
         c.relispartition AS is_partition, c.relispopulated AS populated,
         CASE WHEN c.relispartition THEN (SELECT rn.nspname || '.' || r.relname FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace WHERE r.oid = pg_partition_root(c.oid)) END AS root,
         coalesce((SELECT array_agg(a.attname::text ORDER BY a.attname COLLATE "C") FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}') AS columns
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'm') AND c.relpersistence IN ('p', 'u')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`;

export interface ListedTable {
  schema: string;
  table: string;
  kind: TableKind;
  unlogged: boolean;
  populated: boolean;
  root?: string;
  columns: string[];
}

export async function listTables(c: pg.Client): Promise<ListedTable[]> {
  const rows = (await c.query(TABLE_LIST_SQL)).rows as {
    schema: string;
    table: string;
    relkind: string;
    persistence: string;
    is_partition: boolean;
    populated: boolean;
    root: string | null;
    columns: string[];
  }[];
  return rows.map((r) => ({
    schema: r.schema,
    table: r.table,
    kind: r.is_partition ? "partition" : r.relkind === "p" ? "partitioned" : r.relkind === "m" ? "matview" : "table",
    unlogged: r.persistence === "u",
    populated: r.populated,
    ...(r.root ? { root: r.root } : {}),
    columns: r.columns,
  }));
}

/**
 * Pure: the query giving one table's row count and content checksum. A
 * partitioned table is read as its whole tree, anything else ONLY itself.
 */
export function tableChecksumSql(t: Pick<ListedTable, "schema" | "table" | "kind" | "columns">): string {
  const rel = `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
  const from = t.kind === "partitioned" ? rel : `ONLY ${rel}`;
  const row = `ROW(${t.columns.map((col) => `x.${quoteIdent(col)}`).join(", ")})::text`;
  return `SELECT count(*)::bigint AS n, coalesce(sum(hashtextextended(${row}, 0)), 0)::text AS h FROM ${from} AS x`;
}

/** Count and checksum every table (call pinOutput first, or use checksumDatabase). */
export async function checksumTables(c: pg.Client, opts: { skipUnlogged?: boolean } = {}): Promise<TableChecksum[]> {
  const out: TableChecksum[] = [];
  for (const t of await listTables(c)) {
    const base: TableChecksum = {
      schema: t.schema,
      table: t.table,
      rows: 0,
      kind: t.kind,
      ...(t.root ? { partitionOf: t.root } : {}),
      ...(t.unlogged ? { unlogged: true } : {}),
    };
    if (t.kind === "matview" && !t.populated) {
      out.push({ ...base, checksum: "unpopulated" });
      continue;
    }
    if (t.unlogged && opts.skipUnlogged) {
      out.push(base);
      continue;
    }
    const r = await c.query(tableChecksumSql(t));
    out.push({ ...base, rows: Number(r.rows[0].n), checksum: r.rows[0].h as string });
  }
  return out;
}

/** Large objects: how many, and a checksum over each one's OID and bytes. */
export const LARGE_OBJECTS_SQL = `
  SELECT count(*)::bigint AS n,
         coalesce(sum(hashtextextended(m.oid::text || ':' || coalesce((SELECT md5(string_agg(l.data, ''::bytea ORDER BY l.pageno)) FROM pg_largeobject l WHERE l.loid = m.oid), md5('')), 0)), 0)::text AS h
  FROM pg_largeobject_metadata m`;

export interface LargeObjectsChecksum {
  count: number;
  checksum: string;
}

export async function checksumLargeObjects(c: pg.Client): Promise<LargeObjectsChecksum> {
  const r = await c.query(LARGE_OBJECTS_SQL);
  return { count: Number(r.rows[0].n), checksum: r.rows[0].h as string };
}

/** Pure: every difference between expected and actual tables, naming the table. Partitions are compared through their root. */
export function compareTables(
  db: string,
  expected: TableChecksum[],
  actual: TableChecksum[],
  opts: { extra?: boolean } = {},
): string[] {
  const problems: string[] = [];
  const key = (t: TableChecksum) => `${t.schema}.${t.table}`;
  const have = new Map(actual.map((t) => [key(t), t]));
  for (const e of expected) {
    const a = have.get(key(e));
    have.delete(key(e));
    if (e.kind === "partition") {
      if (!a) problems.push(`${db}: partition ${key(e)} missing after restore`);
      continue;
    }
    if (!a) problems.push(`${db}: table ${key(e)} missing after restore`);
    else if (a.rows !== e.rows)
      problems.push(`${db}: table ${key(e)} has ${a.rows} rows after restore, manifest says ${e.rows}`);
    else if (e.checksum !== undefined && a.checksum !== e.checksum)
      problems.push(
        `${db}: table ${key(e)}: same row count (${e.rows}) but the content differs (checksum ${a.checksum ?? "none"}, manifest says ${e.checksum})`,
      );
  }
  if (opts.extra) for (const k of have.keys()) problems.push(`${db}: table ${k} after restore is not in the manifest`);
  return problems;
}
