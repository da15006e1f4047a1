/**
 * The source's schema travels as a pg_dump archive (-Fc) and is selected
 * through its table of contents (`pg_restore -l -v`), never by editing the SQL
 * text: function bodies, string literals and quoted names span lines, so any
 * line filter over pg_dump output can cut a body or, worse, unbalance a quote
 * and turn a table name into statements run as the target's superuser.
 *
 * A TOC line is `<dumpId>; <catalog table oid> <object oid> <TYPE> <schema> <name> <owner>`.
 * pg_restore replaces newlines in names by spaces there, and names may hold
 * spaces, so only the leading numbers and the TYPE (a fixed vocabulary) are
 * read: which object an entry is comes from the source catalog (by oid), and
 * which entry needs which from the `depends on:` lines `-v` adds.
 */

export interface TocEntry {
  id: number;
  /** pg_class oid of the catalog the object lives in (0 for COMMENT, ACL, SEQUENCE SET, ...) */
  classid: number;
  objid: number;
  /** pg_dump's description, e.g. TABLE, TABLE DATA, FK CONSTRAINT, MATERIALIZED VIEW DATA */
  desc: string;
  deps: number[];
  /** the list line itself, handed back to pg_restore -L unchanged */
  line: string;
}

/** pg_dump's entry descriptions (pg_dump.c), longest first so `TABLE DATA` wins over `TABLE`. */
const DESCS = [
  "MATERIALIZED VIEW DATA",
  "PUBLICATION TABLES IN SCHEMA",
  "TEXT SEARCH CONFIGURATION",
  "TEXT SEARCH DICTIONARY",
  "TEXT SEARCH TEMPLATE",
  "TEXT SEARCH PARSER",
  "FOREIGN DATA WRAPPER",
  "SEQUENCE OWNED BY",
  "MATERIALIZED VIEW",
  "PUBLICATION TABLE",
  "DATABASE PROPERTIES",
  "ROW SECURITY",
  "FK CONSTRAINT",
  "CHECK CONSTRAINT",
  "DEFAULT ACL",
  "SECURITY LABEL",
  "EVENT TRIGGER",
  "FOREIGN TABLE",
  "OPERATOR CLASS",
  "OPERATOR FAMILY",
  "PROCEDURAL LANGUAGE",
  "SEQUENCE SET",
  "SHELL TYPE",
  "TABLE ATTACH",
  "INDEX ATTACH",
  "TABLE DATA",
  "USER MAPPING",
  "SUBSCRIPTION TABLE",
  "LARGE OBJECTS",
  "LARGE OBJECT",
  "SERVER",
  "BLOB DATA",
  "BLOBS",
  "BLOB",
  "VIEW",
  "ACCESS METHOD",
  "AGGREGATE",
  "COLLATION",
  "COMMENT",
  "CONSTRAINT",
  "CONVERSION",
  "DATABASE",
  "DEFAULT",
  "DOMAIN",
  "ENCODING",
  "EXTENSION",
  "FUNCTION",
  "INDEX",
  "OPERATOR",
  "POLICY",
  "PROCEDURE",
  "PUBLICATION",
  "RULE",
  "SCHEMA",
  "SEARCHPATH",
  "SEQUENCE",
  "STATISTICS",
  "STDSTRINGS",
  "SUBSCRIPTION",
  "TABLE",
  "TRANSFORM",
  "TRIGGER",
  "TYPE",
  "ACL",
  "CAST",
];

const ENTRY = /^(\d+); (\d+) (\d+) (.*)$/;

/** Parse `pg_restore -l -v` output. Unknown descriptions are kept as "?" so the caller can refuse them by name. */
export function parseToc(list: string): TocEntry[] {
  const out: TocEntry[] = [];
  for (const line of list.split("\n")) {
    const m = line.match(ENTRY);
    if (m) {
      const rest = m[4]!;
      const desc = DESCS.find((d) => rest === d || rest.startsWith(`${d} `)) ?? "?";
      out.push({ id: Number(m[1]), classid: Number(m[2]), objid: Number(m[3]), desc, deps: [], line });
      continue;
    }
    const d = line.match(/^;\s+depends on:([\d ]*)$/);
    if (d && out.length) out[out.length - 1]!.deps.push(...d[1]!.trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

export interface TocRules {
  /** descriptions never restored from the archive (data we stream ourselves, extensions we create ourselves) */
  skipDescs: Set<string>;
  /** objects (by catalog table oid and object oid) left out on purpose; everything that needs them goes too */
  leaveOut: (classid: number, objid: number) => boolean;
  /** objects whose own entry is not restored (a schema that already exists) but whose dependants are */
  replaced: (classid: number, objid: number) => boolean;
}

export interface TocSelection {
  keep: TocEntry[];
  /** entries left out because they need a left-out object, with the id of that object's entry */
  cascaded: { entry: TocEntry; because: number }[];
  skipped: TocEntry[];
}

/** Pick the entries to restore; a left-out object takes every entry that depends on it (comments, grants, triggers, views) with it. */
export function selectToc(entries: TocEntry[], rules: TocRules): TocSelection {
  const out = new Map<number, number>(); // left-out entry id -> root cause id
  for (const e of entries) if (e.classid && rules.leaveOut(e.classid, e.objid)) out.set(e.id, e.id);
  // Dependencies point backwards in dump order, but not always: iterate to a fixed point.
  for (let changed = true; changed; ) {
    changed = false;
    for (const e of entries) {
      if (out.has(e.id)) continue;
      const hit = e.deps.find((d) => out.has(d));
      if (hit !== undefined) {
        out.set(e.id, out.get(hit)!);
        changed = true;
      }
    }
  }
  const keep: TocEntry[] = [];
  const cascaded: TocSelection["cascaded"] = [];
  const skipped: TocEntry[] = [];
  for (const e of entries) {
    if (out.has(e.id)) cascaded.push({ entry: e, because: out.get(e.id)! });
    else if (rules.skipDescs.has(e.desc) || (e.classid && rules.replaced(e.classid, e.objid))) skipped.push(e);
    else keep.push(e);
  }
  return { keep, cascaded, skipped };
}

/** The list file for `pg_restore -L`: the kept lines, in archive order. */
export const tocListFile = (keep: TocEntry[]) => keep.map((e) => e.line).join("\n") + "\n";
