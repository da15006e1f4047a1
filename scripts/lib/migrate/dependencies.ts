/**
 * What a migration leaves out or must order: objects that need a relation left
 * behind, relations the login cannot read, what roles the target lacks own,
 * COPY columns and the refresh order of materialized views.
 */
import { NOT_EXTENSION_MEMBER, type Q, tableKey } from "./catalog";
import type { ObjectCounts } from "./fingerprint";

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
  return r.rows.map((x) => ({
    classid: Number(x.classid),
    objid: Number(x.objid),
    object: x.object,
    needs: x.needs,
    kind: x.kind,
  }));
}

/**
 * Objects in migrated schemas that depend (pg_depend) on an object left
 * behind: in a schema that is not migrated, or a member of an extension the
 * target will not get. E.g. a Database Webhook: a trigger on public.orders
 * calling supabase_functions.http_request(). The restore of such an object
 * would fail mid-way; PLAN names it instead.
 */
export async function leftBehindDependencies(
  c: Q,
  migrated: string[],
  createdExtensions: string[],
): Promise<LeftBehindDependency[]> {
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
  return r.rows.map((x) => ({
    classid: Number(x.classid),
    objid: Number(x.objid),
    object: x.object,
    needs: x.needs,
    kind: x.kind,
  }));
}

/**
 * Tables (and sequences) the source login cannot read in full: no SELECT, or
 * row-level security it does not bypass. pg_dump would die on the first one
 * (a non-superuser login, as on Supabase, cannot read storage.migrations).
 */
export async function unreadableRelations(
  c: Q,
  schemas: string[],
): Promise<{ oid: number; schema: string; name: string; kind: string; reason: string }[]> {
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
export async function roleFootprint(
  c: Q,
  roles: string[],
  schemas: string[],
): Promise<Record<string, { owns: number; grants: number }>> {
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
