/**
 * A database's own properties, which live in the shared catalogs rather than
 * in the database: owner, access rules (pg_database.datacl), connection
 * limit, comment, `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE
 * ... SET`. A backup records them in its manifest; every restore path puts
 * them back and then checks the result against that record, so a restored
 * database is as closed to other apps' roles as the original was.
 */
import type pg from "pg";
import { quoteIdent, quoteLiteral } from "../pg";

export interface AclEntry {
  /** role name, or "PUBLIC" */
  grantee: string;
  grantor: string;
  privilege: string;
  grantable: boolean;
}

export interface DatabaseProps {
  owner: string;
  /** the effective ACL (the default one spelled out when datacl is NULL), one privilege per entry, sorted */
  acl: AclEntry[];
  connLimit: number;
  allowConnections: boolean;
  comment: string | null;
  /** ALTER DATABASE ... SET, as "name=value", sorted */
  settings: string[];
  /** ALTER ROLE ... IN DATABASE ... SET, sorted by role */
  roleSettings: { role: string; settings: string[] }[];
  /** how CREATE DATABASE must make it (fixed at creation) */
  create: {
    encoding: string;
    collate: string;
    ctype: string;
    localeProvider: "libc" | "icu";
    iculocale: string | null;
  };
}

const PROPS_SQL = `
  SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype,
         CASE d.datlocprovider WHEN 'i' THEN 'icu' ELSE 'libc' END AS locale_provider, d.daticulocale AS iculocale, d.datconnlimit AS conn_limit, d.datallowconn AS allow_connections,
         shobj_description(d.oid, 'pg_database') AS comment,
         coalesce((SELECT array_agg(s ORDER BY s COLLATE "C") FROM pg_db_role_setting r, unnest(r.setconfig) s WHERE r.setdatabase = d.oid AND r.setrole = 0), '{}') AS settings,
         coalesce((SELECT json_agg(json_build_object('role', pg_get_userbyid(r.setrole), 'settings', (SELECT array_agg(s ORDER BY s COLLATE "C") FROM unnest(r.setconfig) s)) ORDER BY pg_get_userbyid(r.setrole) COLLATE "C")
                   FROM pg_db_role_setting r WHERE r.setdatabase = d.oid AND r.setrole <> 0), '[]') AS role_settings,
         coalesce((SELECT json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, 'grantor', pg_get_userbyid(a.grantor), 'privilege', a.privilege_type, 'grantable', a.is_grantable)
                                   ORDER BY CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END COLLATE "C", a.privilege_type COLLATE "C", pg_get_userbyid(a.grantor) COLLATE "C")
                   FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a), '[]') AS acl
  FROM pg_database d WHERE d.datname = $1`;

export async function readDatabaseProps(c: pg.Client, db: string): Promise<DatabaseProps | undefined> {
  const r = (await c.query(PROPS_SQL, [db])).rows[0];
  if (!r) return undefined;
  return {
    owner: r.owner,
    acl: r.acl,
    connLimit: r.conn_limit,
    allowConnections: r.allow_connections,
    comment: r.comment,
    settings: r.settings,
    roleSettings: r.role_settings,
    create: {
      encoding: r.encoding,
      collate: r.collate,
      ctype: r.ctype,
      localeProvider: r.locale_provider,
      iculocale: r.iculocale,
    },
  };
}

const aclText = (a: AclEntry) => `${a.grantee}:${a.privilege}${a.grantable ? "*" : ""} by ${a.grantor}`;

/** Pure: what differs between the recorded properties and a restored database's, in words. */
export function compareDatabaseProps(db: string, want: DatabaseProps, got: DatabaseProps | undefined): string[] {
  if (!got) return [`${db}: database missing after restore`];
  const out: string[] = [];
  if (got.owner !== want.owner) out.push(`${db}: owner is ${got.owner}, the backup says ${want.owner}`);
  const w = want.acl.map(aclText);
  const g = got.acl.map(aclText);
  const extra = g.filter((x) => !w.includes(x));
  const missing = w.filter((x) => !g.includes(x));
  if (extra.length || missing.length)
    out.push(
      `${db}: access rules differ from the backup's${extra.length ? `; extra: ${extra.join(", ")}` : ""}${missing.length ? `; missing: ${missing.join(", ")}` : ""}`,
    );
  if (got.connLimit !== want.connLimit)
    out.push(`${db}: connection limit ${got.connLimit}, the backup says ${want.connLimit}`);
  if (got.allowConnections !== want.allowConnections)
    out.push(`${db}: allow connections ${got.allowConnections}, the backup says ${want.allowConnections}`);
  if (got.comment !== want.comment)
    out.push(`${db}: comment ${JSON.stringify(got.comment)}, the backup says ${JSON.stringify(want.comment)}`);
  // Setting values can be secrets (the JWT secret): name the settings, never print values.
  const names = (s: string[]) => s.map((x) => x.slice(0, x.indexOf("=")));
  if (JSON.stringify(got.settings) !== JSON.stringify(want.settings))
    out.push(
      `${db}: database settings differ from the backup's (restored: ${names(got.settings).join(", ") || "none"}; backup: ${names(want.settings).join(", ") || "none"})`,
    );
  const rs = (x: DatabaseProps) => JSON.stringify(x.roleSettings);
  if (rs(got) !== rs(want))
    out.push(
      `${db}: per-role settings in the database differ from the backup's (restored: ${got.roleSettings.map((r) => `${r.role}: ${names(r.settings).join(", ")}`).join("; ") || "none"}; backup: ${want.roleSettings.map((r) => `${r.role}: ${names(r.settings).join(", ")}`).join("; ") || "none"})`,
    );
  return out;
}

/**
 * Pure: statements that give database `db` exactly the recorded ACL and
 * comment (pg_restore only emits those with --create, which cannot target
 * another name). Every grantee present now is revoked first; each grant is
 * made as its recorded grantor (a superuser granting acts as the owner).
 */
export function aclAndCommentSql(db: string, want: DatabaseProps, current: AclEntry[]): string[] {
  const d = quoteIdent(db);
  const role = (r: string) => (r === "PUBLIC" ? "PUBLIC" : quoteIdent(r));
  const sql: string[] = [];
  for (const g of [...new Set(current.map((a) => a.grantee))])
    sql.push(`REVOKE ALL ON DATABASE ${d} FROM ${role(g)} CASCADE`);
  for (const a of want.acl) {
    const grant = `GRANT ${a.privilege} ON DATABASE ${d} TO ${role(a.grantee)}${a.grantable ? " WITH GRANT OPTION" : ""}`;
    sql.push(a.grantor === want.owner ? grant : `SET ROLE ${quoteIdent(a.grantor)}; ${grant}; RESET ROLE`);
  }
  sql.push(`COMMENT ON DATABASE ${d} IS ${want.comment === null ? "NULL" : quoteLiteral(want.comment)}`);
  return sql;
}

export async function applyAclAndComment(c: pg.Client, db: string, want: DatabaseProps): Promise<void> {
  const now = await readDatabaseProps(c, db);
  for (const s of aclAndCommentSql(db, want, now?.acl ?? [])) await c.query(s);
}

/** Pure: CREATE DATABASE for `db` with the recorded encoding, locale, owner and connection limit. */
export function createDatabaseSql(db: string, p: DatabaseProps): string {
  const c = p.create;
  return [
    `CREATE DATABASE ${quoteIdent(db)} WITH TEMPLATE = template0 ENCODING = ${quoteLiteral(c.encoding)}`,
    `LOCALE_PROVIDER = ${c.localeProvider} LC_COLLATE = ${quoteLiteral(c.collate)} LC_CTYPE = ${quoteLiteral(c.ctype)}`,
    ...(c.iculocale ? [`ICU_LOCALE = ${quoteLiteral(c.iculocale)}`] : []),
    `OWNER = ${quoteIdent(p.owner)} CONNECTION LIMIT = ${p.connLimit}`,
  ].join(" ");
}

/**
 * Put the recorded `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE
 * ... SET` back on `db`, value for value. Each value is set in a throwaway
 * transaction with set_config() and stored with SET ... FROM CURRENT: the
 * server stores exactly the text it had, where re-quoting "name=value" into
 * SQL would get list settings (search_path with odd schema names) wrong.
 */
export async function applySettings(c: pg.Client, db: string, p: DatabaseProps): Promise<void> {
  const one = async (target: string, entry: string) => {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq);
    await c.query("BEGIN");
    try {
      await c.query("SELECT set_config($1, $2, true)", [name, entry.slice(eq + 1)]);
      await c.query(`${target} SET ${quoteIdent(name)} FROM CURRENT`);
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    }
  };
  for (const s of p.settings) await one(`ALTER DATABASE ${quoteIdent(db)}`, s);
  for (const r of p.roleSettings)
    for (const s of r.settings) await one(`ALTER ROLE ${quoteIdent(r.role)} IN DATABASE ${quoteIdent(db)}`, s);
}
