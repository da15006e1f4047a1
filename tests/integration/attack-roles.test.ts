/**
 * Supabase's service roles log in with passwords that ship in every
 * environment's env file. Each tries, with its own password, to become
 * postgres or superuser: grant itself a predefined role that reads/writes
 * server files or runs programs, create or become a superuser, give itself
 * CREATEROLE, run COPY ... TO PROGRAM. Every attempt must be refused with
 * Postgres' own error; whatever an attempt changed (before the fix) is undone.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import type pg from "pg";
import { connect, quoteIdent } from "../../scripts/lib/pg";
import { ensureDatabases } from "../../scripts/lib/cluster-ops";
import { SERVICE_LOGIN_ROLES } from "../../scripts/lib/supabase-db";
import { testConfig } from "./stack";

const cfg = testConfig();
const ATTACKER = "pgp_rolesec_attacker";
const MARKER = `/tmp/pgp-rolesec-copy-program-${process.pid}`;

async function asPostgres<T>(f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(cfg);
  try {
    return await f(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Run `sql` as `role` (its own password); the error message, or "succeeded". */
async function attempt(role: (typeof SERVICE_LOGIN_ROLES)[number], sql: string): Promise<string> {
  const c = await connect(cfg, { user: role.name, password: cfg.secrets[role.secret], database: cfg.databases[0] });
  try {
    await c.query(sql);
    return "succeeded";
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => {});
  }
}

// Undo what a successful attack (before the fix) left behind, so the shared test stack stays clean.
afterAll(() =>
  asPostgres(async (c) => {
    for (const r of SERVICE_LOGIN_ROLES) {
      for (const p of ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"])
        await c.query(`REVOKE ${p} FROM ${quoteIdent(r.name)}`);
      await c.query(`ALTER ROLE ${quoteIdent(r.name)} NOSUPERUSER NOCREATEROLE NOCREATEDB`);
    }
    await c.query(`DROP ROLE IF EXISTS ${ATTACKER}`);
    await c.query("DROP ROLE IF EXISTS pgp_rolesec_custom");
    await c.query("REVOKE postgres FROM supabase_auth_admin");
    rmSync(MARKER, { force: true });
  }),
);

const PREDEFINED = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"];

describe("Supabase service roles cannot become postgres or superuser", () => {
  for (const role of SERVICE_LOGIN_ROLES) {
    for (const p of PREDEFINED) {
      test(`attack: ${role.name} grants itself ${p}`, async () => {
        expect(await attempt(role, `GRANT ${p} TO ${role.name}`)).toBe(`must have admin option on role "${p}"`);
        const member = await asPostgres(
          async (c) => (await c.query("SELECT pg_has_role($1, $2, 'MEMBER') AS m", [role.name, p])).rows[0].m,
        );
        expect(member).toBe(false);
      });
    }
    test(`attack: ${role.name} creates a superuser role`, async () => {
      expect(await attempt(role, `CREATE ROLE ${ATTACKER} LOGIN SUPERUSER`)).toBe(
        "must be superuser to create superusers",
      );
      expect(await attempt(role, `CREATE ROLE ${ATTACKER} LOGIN`)).toBe("permission denied to create role");
      expect(
        await asPostgres(
          async (c) =>
            (await c.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1", [ATTACKER])).rows[0].n,
        ),
      ).toBe(0);
    });
    test(`attack: ${role.name} makes itself SUPERUSER or CREATEROLE`, async () => {
      expect(await attempt(role, `ALTER ROLE ${role.name} SUPERUSER`)).toBe(
        "must be superuser to alter superuser roles or change superuser attribute",
      );
      expect(await attempt(role, `ALTER ROLE ${role.name} CREATEROLE`)).toBe("permission denied");
      expect(await attempt(role, `ALTER ROLE ${role.name} CREATEDB`)).toBe("permission denied");
      const a = await asPostgres(
        async (c) =>
          (await c.query("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1", [role.name]))
            .rows[0],
      );
      expect(a).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false });
    });
    test(`attack: ${role.name} runs a shell as postgres with COPY ... TO PROGRAM`, async () => {
      // The whole chain in one session: grant, switch into the role (the service roles are NOINHERIT), run a program.
      const c = await connect(cfg, { user: role.name, password: cfg.secrets[role.secret], database: cfg.databases[0] });
      const step = (sql: string) =>
        c.query(sql).then(
          () => "succeeded",
          (e: Error) => e.message,
        );
      let results: string[];
      try {
        results = [
          await step(`GRANT pg_execute_server_program TO ${role.name}`),
          await step("SET ROLE pg_execute_server_program"),
          await step(`COPY (SELECT 1) TO PROGRAM 'touch ${MARKER}'`),
        ];
      } finally {
        await c.end().catch(() => {});
      }
      expect({ results, ranAsPostgres: existsSync(MARKER) }).toEqual({
        results: [
          'must have admin option on role "pg_execute_server_program"',
          'permission denied to set role "pg_execute_server_program"',
          "must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program",
        ],
        ranAsPostgres: false,
      });
    });
  }
});

describe("the service roles hold exactly what their services need", () => {
  test("attributes: login, noinherit, nothing else", async () => {
    const rows = await asPostgres(
      async (c) =>
        (
          await c.query(
            "SELECT rolname, rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname",
            [SERVICE_LOGIN_ROLES.map((r) => r.name)],
          )
        ).rows,
    );
    const least = {
      rolcanlogin: true,
      rolinherit: false,
      rolsuper: false,
      rolcreaterole: false,
      rolcreatedb: false,
      rolreplication: false,
      rolbypassrls: false,
    };
    expect(rows).toEqual(
      ["authenticator", "supabase_auth_admin", "supabase_storage_admin"].map((rolname) => ({ rolname, ...least })),
    );
  });
  test("memberships: authenticator switches into the API roles, storage through authenticator, auth none", async () => {
    const rows = await asPostgres(
      async (c) =>
        (
          await c.query(
            `SELECT u.rolname AS member, array_agg(r.rolname::text ORDER BY r.rolname) AS roles FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles u ON u.oid = am.member
          WHERE u.rolname = ANY($1) GROUP BY u.rolname ORDER BY u.rolname`,
            [SERVICE_LOGIN_ROLES.map((r) => r.name)],
          )
        ).rows,
    );
    expect(rows).toEqual([
      { member: "authenticator", roles: ["anon", "authenticated", "service_role"] },
      { member: "supabase_storage_admin", roles: ["authenticator"] },
    ]);
  });
});

describe("dev-up repairs a stack set up before the fix", () => {
  test("roles brought back to the least, foreign memberships revoked, stored JWT secrets removed; a re-run changes nothing", async () => {
    const [dev, staging] = [cfg.databases[0]!, cfg.databases[1]!];
    await asPostgres(async (c) => {
      await c.query("ALTER ROLE supabase_auth_admin INHERIT CREATEROLE CREATEDB");
      await c.query("GRANT pg_read_server_files TO supabase_storage_admin");
      await c.query("GRANT postgres TO supabase_auth_admin");
      // An app's own role granted to authenticator (PostgREST switches into it) is the user's choice: kept.
      await c.query("DROP ROLE IF EXISTS pgp_rolesec_custom");
      await c.query("CREATE ROLE pgp_rolesec_custom NOLOGIN");
      await c.query("GRANT pgp_rolesec_custom TO authenticator");
      await c.query("REVOKE authenticator FROM supabase_storage_admin");
      await c.query("ALTER ROLE supabase_storage_admin RESET ALL");
      await c.query(
        `ALTER DATABASE ${quoteIdent(dev)} SET "app.settings.jwt_secret" TO 'old-shared-secret-0123456789abcdef'`,
      );
      await c.query(
        `ALTER ROLE authenticator IN DATABASE ${quoteIdent(staging)} SET "app.settings.jwt_secret" TO 'old-shared-secret-0123456789abcdef'`,
      );
      await c.query(`ALTER ROLE authenticator SET "app.settings.jwt_secret" TO 'old-shared-secret-0123456789abcdef'`);
      await c.query(`ALTER ROLE ALL SET "app.settings.jwt_secret" TO 'old-shared-secret-0123456789abcdef'`);
    });
    const removed = "app.settings.jwt_secret removed (readable by every login role)";
    expect((await ensureDatabases(cfg)).sort()).toEqual(
      [
        "role supabase_auth_admin: NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
        "grant authenticator to supabase_storage_admin",
        "revoke pg_read_server_files from supabase_storage_admin",
        "revoke postgres from supabase_auth_admin",
        "role supabase_storage_admin: search_path = storage",
        "role supabase_storage_admin: storage.install_roles = false",
        `${dev}: ${removed}`,
        `${staging} (role authenticator): ${removed}`,
        `all databases (role authenticator): ${removed}`,
        `all databases: ${removed}`,
      ].sort(),
    );
    const left = await asPostgres(
      async (c) =>
        (
          await c.query(
            "SELECT count(*)::int AS n FROM pg_db_role_setting s, unnest(s.setconfig) kv WHERE kv LIKE 'app.settings.jwt_secret=%'",
          )
        ).rows[0].n,
    );
    expect(left).toBe(0);
    expect(await ensureDatabases(cfg)).toEqual([]);
    const kept = await asPostgres(async (c) => {
      const k = (await c.query("SELECT pg_has_role('authenticator', 'pgp_rolesec_custom', 'MEMBER') AS m")).rows[0].m;
      await c.query("DROP ROLE pgp_rolesec_custom");
      return k;
    });
    expect(kept).toBe(true);
  });
});
