/**
 * What must arrive byte for byte: object definitions, publication membership
 * and large objects, read the same way on source and target.
 */
import { NOT_EXTENSION_MEMBER, type Q } from "./catalog";

/**
 * The definitions the migration must carry byte for byte, keyed by
 * pg_describe_object() (the same text on both sides): function bodies (md5 of
 * prosrc) and full definitions, views and materialized views, policies,
 * triggers, constraints, indexes, column defaults and generated expressions,
 * enum labels in order. Read with CHECKSUM_SETTINGS (search_path =
 * pg_catalog), so names print qualified the same way on both sides.
 */
export async function definitions(
  c: Q,
  schemas: string[],
  leftOutRels: number[] = [],
): Promise<Record<string, string>> {
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
  const r = await c.query(
    `SELECT m.oid::bigint AS oid FROM pg_largeobject_metadata m WHERE NOT ${LO_READABLE} ORDER BY 1`,
  );
  return r.rows.map((x) => Number(x.oid));
}
