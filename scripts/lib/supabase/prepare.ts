/**
 * Prepare one database for Supabase's services: the facts of requirements.ts
 * applied to it. Each fact is looked up first, so a re-run changes nothing and
 * reports nothing; the schema-level work runs in one transaction, so a failure
 * leaves the database as it was. Works for the environment ladder's databases
 * (dev-up) and for apps onboarded with --supabase (new-app) alike.
 */
import type pg from "pg";
import { quoteIdent, quoteLiteral } from "../pg";
import {
  DATABASE_GRANTS,
  DB_OWNER,
  DEFAULT_PRIVILEGES,
  PUBLICATION,
  ROLE_SETTINGS,
  SCHEMAS,
  type DefaultPrivilegeFact,
} from "./requirements";

export interface PrepareTarget {
  database: string;
  /** the database's own role (the environment's or the app's): owns extensions, graphql_public; its new tables reach the API roles */
  owner: string;
}

/** Every privilege ALTER DEFAULT PRIVILEGES ... GRANT ALL gives, per pg_default_acl.defaclobjtype (PostgreSQL 15). */
export const ALL_PRIVILEGES: Record<DefaultPrivilegeFact["objects"], { objtype: string; privileges: string[] }> = {
  TABLES: { objtype: "r", privileges: ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"] },
  SEQUENCES: { objtype: "S", privileges: ["SELECT", "UPDATE", "USAGE"] },
  FUNCTIONS: { objtype: "f", privileges: ["EXECUTE"] },
};

export const resolveRole = (role: string, t: PrepareTarget) => (role === DB_OWNER ? t.owner : role);

/**
 * Cluster-wide facts (role settings) and the database's own grants, through a
 * superuser connection to any database. ALTER ROLE ... SET applies in every database.
 */
export async function ensureClusterFacts(admin: pg.Client, t: PrepareTarget): Promise<string[]> {
  const changes: string[] = [];
  for (const f of ROLE_SETTINGS) {
    const have = await admin.query(
      "SELECT 1 FROM pg_db_role_setting WHERE setdatabase = 0 AND setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) AND $2 = ANY(setconfig)",
      [f.role, `${f.setting}=${f.value}`],
    );
    if (have.rowCount) continue;
    await admin.query(`ALTER ROLE ${quoteIdent(f.role)} SET ${quoteIdent(f.setting)} TO ${quoteLiteral(f.value)}`);
    changes.push(`role ${f.role}: ${f.setting} = ${f.value}`);
  }
  for (const g of DATABASE_GRANTS) {
    const have = new Set(
      (
        await admin.query(
          `SELECT a.privilege_type FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
          WHERE d.datname = $1 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2)`,
          [t.database, g.role],
        )
      ).rows.map((r) => r.privilege_type as string),
    );
    const missing = g.privileges.filter((p) => !have.has(p));
    if (!missing.length) continue;
    await admin.query(`GRANT ${missing.join(", ")} ON DATABASE ${quoteIdent(t.database)} TO ${quoteIdent(g.role)}`);
    changes.push(`${t.database}: ${missing.join(", ")} for ${g.role}`);
  }
  return changes;
}

/**
 * Schemas, owners, USAGE, default privileges and the publication, through a
 * superuser connection INTO the database (names resolved in pg_catalog only).
 */
export async function ensureDatabaseFacts(db: pg.Client, t: PrepareTarget): Promise<string[]> {
  const changes: string[] = [];
  await db.query("BEGIN");
  try {
    const schemas = new Map(
      (await db.query("SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace")).rows.map((r) => [
        r.nspname as string,
        r.owner as string,
      ]),
    );
    for (const s of SCHEMAS) {
      const owner = resolveRole(s.owner, t);
      const have = schemas.get(s.schema);
      if (have === undefined) {
        await db.query(`CREATE SCHEMA ${quoteIdent(s.schema)} AUTHORIZATION ${quoteIdent(owner)}`);
        changes.push(`${t.database}: schema ${s.schema} (owner ${owner})`);
      } else if (have !== owner && s.schema !== "public") {
        await db.query(`ALTER SCHEMA ${quoteIdent(s.schema)} OWNER TO ${quoteIdent(owner)}`);
        changes.push(`${t.database}: schema ${s.schema} owner ${have} -> ${owner}`);
      }
      const usage = new Set(
        (
          await db.query(
            `SELECT pg_get_userbyid(a.grantee) AS grantee FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
            WHERE n.nspname = $1 AND a.privilege_type = 'USAGE'`,
            [s.schema],
          )
        ).rows.map((r) => r.grantee as string),
      );
      const missing = s.usage.filter((r) => !usage.has(r));
      if (missing.length) {
        await db.query(`GRANT USAGE ON SCHEMA ${quoteIdent(s.schema)} TO ${missing.map(quoteIdent).join(", ")}`);
        changes.push(`${t.database}: USAGE on ${s.schema} for ${missing.join(", ")}`);
      }
    }
    for (const d of DEFAULT_PRIVILEGES) {
      const forRole = resolveRole(d.forRole, t);
      const all = ALL_PRIVILEGES[d.objects];
      const rows = (
        await db.query(
          `SELECT pg_get_userbyid(a.grantee) AS grantee, a.privilege_type FROM pg_default_acl x JOIN pg_namespace n ON n.oid = x.defaclnamespace, aclexplode(x.defaclacl) a
          WHERE x.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1) AND n.nspname = $2 AND x.defaclobjtype = $3`,
          [forRole, d.schema, all.objtype],
        )
      ).rows as { grantee: string; privilege_type: string }[];
      const short = d.grantees.filter((g) =>
        all.privileges.some((p) => !rows.some((r) => r.grantee === g && r.privilege_type === p)),
      );
      if (!short.length) continue;
      await db.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(forRole)} IN SCHEMA ${quoteIdent(d.schema)} GRANT ALL ON ${d.objects} TO ${short.map(quoteIdent).join(", ")}`,
      );
      changes.push(
        `${t.database}: default privileges on ${d.objects.toLowerCase()} of ${forRole} in ${d.schema} for ${short.join(", ")}`,
      );
    }
    if (!(await db.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [PUBLICATION])).rowCount) {
      // Empty, as upstream creates it: tables are added to it by the app (ALTER PUBLICATION ... ADD TABLE).
      await db.query(`CREATE PUBLICATION ${quoteIdent(PUBLICATION)}`);
      changes.push(`${t.database}: publication ${PUBLICATION}`);
    }
    await db.query("COMMIT");
  } catch (e) {
    await db.query("ROLLBACK").catch(() => {});
    throw e;
  }
  return changes;
}
