/**
 * Code of the source that would run on the target: SQL functions calling
 * others unqualified (pg_dump's empty search_path breaks them) and what the
 * load itself would execute as the target's superuser.
 */
import type { Q } from "./catalog";

/**
 * pg_dump restores with an empty search_path, and a SQL function without its
 * own `SET search_path` is inlined with the session's: a generated column,
 * index expression or check constraint that calls such a function whose body
 * calls another user function unqualified cannot be created on the target
 * (`function squash_ws(text) does not exist`). Found from the catalog: the
 * expression's dependencies and the bodies' unqualified calls.
 */
export async function unqualifiedCalls(
  c: Q,
  schemas: string[],
): Promise<{ object: string; fn: string; calls: string[] }[]> {
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
    const calls = [
      ...new Set(
        [...String(x.prosrc).matchAll(/(?<![.\w"$])([A-Za-z_][A-Za-z0-9_$]*)\s*\(/g)].map((m) => m[1]!.toLowerCase()),
      ),
    ].filter((n) => names.has(n));
    if (calls.length) out.push({ object: x.object, fn: x.fn, calls });
  }
  return out;
}

/**
 * pg_catalog functions that are marked immutable or stable yet run a query
 * given as text (or write server files): never trusted in code the load runs.
 */
export const SQL_RUNNING_BUILTINS = new Set([
  "query_to_xml",
  "query_to_xmlschema",
  "query_to_xml_and_xmlschema",
  "cursor_to_xml",
  "cursor_to_xmlschema",
  "table_to_xml",
  "table_to_xmlschema",
  "table_to_xml_and_xmlschema",
  "schema_to_xml",
  "schema_to_xmlschema",
  "schema_to_xml_and_xmlschema",
  "database_to_xml",
  "database_to_xmlschema",
  "database_to_xml_and_xmlschema",
  "ts_stat",
  "set_config",
  "lo_export",
  "lo_import",
]);

/** Functions and operators a stored expression (pg_node_tree text) calls: function calls, aggregates, window functions, operators (incl. row comparisons), sort/group operators. */
export function treeCalls(tree: string): { cat: "pg_proc" | "pg_operator"; oid: number }[] {
  const out: { cat: "pg_proc" | "pg_operator"; oid: number }[] = [];
  for (const m of tree.matchAll(/:(funcid|opfuncid|aggfnoid|winfnoid|opno|sortop|eqop) (\d+)/g)) {
    if (m[2] !== "0")
      out.push({
        cat: m[1] === "opno" || m[1] === "sortop" || m[1] === "eqop" ? "pg_operator" : "pg_proc",
        oid: Number(m[2]),
      });
  }
  for (const m of tree.matchAll(/:opnos \(o ([\d ]+)\)/g))
    for (const o of m[1]!.trim().split(/\s+/)) out.push({ cat: "pg_operator", oid: Number(o) });
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
  const trees = (
    await c.query(
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
    )
  ).rows as { classid: number; objid: number; object: string; tree: string }[];
  const roots: { classid: number; objid: number; object: string; refcat: string; refobjid: number }[] = [];
  for (const t of trees) {
    for (const r of treeCalls(t.tree))
      roots.push({ classid: t.classid, objid: t.objid, object: t.object, refcat: r.cat, refobjid: r.oid });
  }
  // Operators of foreign keys and exclusion constraints, operator classes of indexes and partition keys: the source's own ones are in pg_depend.
  roots.push(
    ...(
      await c.query(
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
      )
    ).rows,
  );
  const procs = new Map<
    number,
    {
      sig: string;
      ns: string;
      ext: boolean;
      vol: string;
      lang: string;
      trustedLang: boolean;
      atomic: boolean;
      secdef: boolean;
      config: boolean;
      name: string;
      migrated: boolean;
      auto: boolean;
    }
  >();
  for (const p of (
    await c.query(
      `SELECT p.oid::int AS oid, p.oid::regprocedure::text AS sig, n.nspname AS ns, p.proname AS name, p.provolatile AS vol, l.lanname AS lang, l.lanpltrusted AS trusted,
            p.prosqlbody IS NOT NULL AS atomic, p.prosecdef AS secdef, p.proconfig IS NOT NULL AS config, n.nspname = ANY($1) AS migrated,
            EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e') AS ext,
            EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'i') AS auto
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang`,
      [schemas],
    )
  ).rows)
    procs.set(p.oid, {
      sig: p.sig,
      ns: p.ns,
      ext: p.ext,
      vol: p.vol,
      lang: p.lang,
      trustedLang: p.trusted,
      atomic: p.atomic,
      secdef: p.secdef,
      config: p.config,
      name: p.name,
      migrated: p.migrated,
      auto: p.auto,
    });
  const oprcode = new Map<number, { code: number; name: string }>();
  for (const o of (
    await c.query("SELECT oid::int AS oid, oprcode::oid::int AS code, oid::regoperator::text AS name FROM pg_operator")
  ).rows)
    oprcode.set(o.oid, { code: o.code, name: o.name });
  const opclass = new Map<number, { name: string; builtin: boolean }>();
  for (const o of (
    await c.query(
      `SELECT x.oid::int AS oid, x.cat, x.name, (x.ns = 'pg_catalog'::regnamespace OR EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = x.cat::regclass AND e.objid = x.oid AND e.deptype = 'e')) AS builtin
       FROM (SELECT oid, 'pg_opclass' AS cat, opcnamespace AS ns, format('operator class %s', opcname) AS name FROM pg_opclass
             UNION ALL SELECT oid, 'pg_opfamily', opfnamespace, format('operator family %s', opfname) FROM pg_opfamily) x`,
    )
  ).rows)
    opclass.set(o.oid, { name: o.name, builtin: o.builtin });
  // What the source's own parsed SQL bodies (BEGIN ATOMIC / RETURN) call, read from the body's tree (built-ins are not in pg_depend).
  const calls = new Map<number, { cat: string; oid: number }[]>();
  for (const f of (
    await c.query(
      `SELECT p.oid::int AS fn, p.prosqlbody::text AS tree FROM pg_proc p WHERE p.prosqlbody IS NOT NULL AND p.pronamespace IN ${migratedNs}`,
      [schemas],
    )
  ).rows) {
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
    else if (p.lang !== "sql" || !p.atomic)
      why = `${p.sig} is ${p.lang === "sql" ? "a SQL function whose body is text" : `written in ${p.lang}`} (opaque: it can run any statement)`;
    else if (p.secdef) why = `${p.sig} is SECURITY DEFINER`;
    else if (p.config) why = `${p.sig} sets configuration parameters`;
    else if (p.vol === "v") why = `${p.sig} is volatile`;
    else {
      for (const x of calls.get(oid) ?? []) {
        const inner = x.cat === "pg_operator" ? distrust(oprcode.get(x.oid)?.code ?? 0, seen) : distrust(x.oid, seen);
        if (inner) {
          why = `${p.sig} calls ${inner}`;
          break;
        }
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
      out.push({
        classid: 1255,
        objid: oid,
        object: `function ${p.sig}`,
        runs: p.sig,
        why: `it is written in ${p.lang}, an untrusted language: restored by the superuser, it would run code of the source's choosing on the server`,
        restored: true,
      });
    }
  }
  return out;
}
