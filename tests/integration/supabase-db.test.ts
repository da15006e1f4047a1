/**
 * Supabase's database side as dev-up leaves it on every environment database,
 * checked fact by fact with the exact catalog values (owners, ACL entries,
 * role settings, memberships, default privileges, the publication, wal_level
 * on every member), then: a re-run changes nothing, and each fact taken away
 * is put back and named. The env files: mode 0600, exact keys, the
 * environment's own role confined to its own database, keys signed with that
 * database's secret.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import type pg from "pg";
import { verifyApiKey } from "../../scripts/lib/jwt";
import { clusterView, restGet, restSend } from "../../scripts/lib/patroni";
import { restartPending } from "../../scripts/lib/dcs-params";
import { connect } from "../../scripts/lib/pg";
import { jwtSecretFor } from "../../scripts/lib/secrets";
import { envFilePath, prepareSupabaseStack } from "../../scripts/lib/supabase/environments";
import { runScript, testConfig } from "./stack";

const cfg = testConfig();
const [DEV, STAGING] = cfg.databases as [string, string, string];

async function q<T = Record<string, unknown>>(
  sql: string,
  params: unknown[] = [],
  database = "postgres",
): Promise<T[]> {
  const c = await connect(cfg, { database });
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** SHOW wal_level on one member, straight to its Postgres (not through HAProxy). */
async function walLevelOn(m: (typeof cfg.members)[number]) {
  const c = await connect(cfg, { target: { host: m.address, port: m.pgPort } });
  try {
    return { member: m.name, wal_level: (await c.query("SHOW wal_level")).rows[0].wal_level as string };
  } finally {
    await c.end().catch(() => {});
  }
}

const schemaAcl = (owner: string, o: string) =>
  `{${owner}=UC/${owner},anon=U/${o},authenticated=U/${o},service_role=U/${o}}`;

describe("every environment database is prepared for Supabase", () => {
  for (const db of cfg.databases) {
    test(`${db}: schemas, owners and USAGE are exactly upstream's`, async () => {
      const rows = await q<{ nspname: string; owner: string; acl: string | null }>(
        "SELECT nspname, pg_get_userbyid(nspowner) AS owner, nspacl::text AS acl FROM pg_namespace WHERE nspname IN ('auth','storage','extensions','graphql_public','_realtime','public') ORDER BY 1",
        [],
        db,
      );
      expect(rows).toEqual([
        { nspname: "_realtime", owner: "postgres", acl: null },
        { nspname: "auth", owner: "supabase_auth_admin", acl: schemaAcl("supabase_auth_admin", "supabase_auth_admin") },
        { nspname: "extensions", owner: db, acl: schemaAcl(db, db) },
        { nspname: "graphql_public", owner: db, acl: schemaAcl(db, db) },
        {
          nspname: "public",
          owner: "pg_database_owner",
          acl: "{pg_database_owner=UC/pg_database_owner,=U/pg_database_owner,anon=U/pg_database_owner,authenticated=U/pg_database_owner,service_role=U/pg_database_owner}",
        },
        {
          nspname: "storage",
          owner: "supabase_storage_admin",
          acl: schemaAcl("supabase_storage_admin", "supabase_storage_admin"),
        },
      ]);
    });

    test(`${db}: owned by its own role; CONNECT for it and the services, CREATE for GoTrue and Storage, none for PUBLIC`, async () => {
      // The ACL's entries as a set: their order depends on the grant history (earlier tests restore and re-grant).
      const [row] = await q<{ owner: string; acl: string[] }>(
        "SELECT pg_get_userbyid(datdba) AS owner, datacl::text[] AS acl FROM pg_database WHERE datname = $1",
        [db],
      );
      expect({ owner: row!.owner, acl: [...row!.acl].sort() }).toEqual({
        owner: db,
        acl: [
          `=T/${db}`,
          `${db}=CTc/${db}`,
          `authenticator=c/${db}`,
          `supabase_auth_admin=Cc/${db}`,
          `supabase_storage_admin=Cc/${db}`,
        ].sort(),
      });
    });

    test(`${db}: default privileges for the API roles on the owner's objects in public and storage_admin's in storage`, async () => {
      const rows = await q<{ role: string; schema: string; type: string; acl: string }>(
        "SELECT pg_get_userbyid(defaclrole) AS role, defaclnamespace::regnamespace::text AS schema, defaclobjtype::text AS type, defaclacl::text AS acl FROM pg_default_acl ORDER BY 1, 2, 3",
        [],
        db,
      );
      const all = (grantor: string, p: string) =>
        `{anon=${p}/${grantor},authenticated=${p}/${grantor},service_role=${p}/${grantor}}`;
      expect(rows).toEqual(
        [
          { role: db, schema: "public", type: "S", acl: all(db, "rwU") },
          { role: db, schema: "public", type: "f", acl: all(db, "X") },
          { role: db, schema: "public", type: "r", acl: all(db, "arwdDxt") },
          { role: "supabase_storage_admin", schema: "storage", type: "S", acl: all("supabase_storage_admin", "rwU") },
          { role: "supabase_storage_admin", schema: "storage", type: "f", acl: all("supabase_storage_admin", "X") },
          {
            role: "supabase_storage_admin",
            schema: "storage",
            type: "r",
            acl: all("supabase_storage_admin", "arwdDxt"),
          },
        ].sort((a, b) => (a.role + a.schema + a.type < b.role + b.schema + b.type ? -1 : 1)),
      );
    });

    test(`${db}: the supabase_realtime publication exists, empty, for all operations`, async () => {
      const rows = await q(
        "SELECT pubname, pg_get_userbyid(pubowner) AS owner, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, (SELECT count(*)::int FROM pg_publication_tables t WHERE t.pubname = p.pubname) AS tables FROM pg_publication p",
        [],
        db,
      );
      expect(rows).toEqual([
        {
          pubname: "supabase_realtime",
          owner: "postgres",
          puballtables: false,
          pubinsert: true,
          pubupdate: true,
          pubdelete: true,
          pubtruncate: true,
          tables: 0,
        },
      ]);
    });
  }

  test("role settings: search_path of the services, storage.install_roles, the API roles' statement timeouts", async () => {
    const rows = await q(
      "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = 0 AND r.rolname IN ('anon','authenticated','service_role','authenticator','supabase_auth_admin','supabase_storage_admin') ORDER BY 1",
    );
    expect(rows).toEqual([
      { rolname: "anon", setconfig: ["statement_timeout=3s"] },
      { rolname: "authenticated", setconfig: ["statement_timeout=8s"] },
      { rolname: "supabase_auth_admin", setconfig: ["search_path=auth"] },
      { rolname: "supabase_storage_admin", setconfig: ["search_path=storage", "storage.install_roles=false"] },
    ]);
  });

  test("memberships: authenticator in the three API roles, supabase_storage_admin in authenticator, nothing else", async () => {
    const rows = await q(
      "SELECT m.rolname AS member, r.rolname AS role FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE m.rolname IN ('authenticator','supabase_auth_admin','supabase_storage_admin','anon','authenticated','service_role') ORDER BY 1, 2",
    );
    expect(rows).toEqual([
      { member: "authenticator", role: "anon" },
      { member: "authenticator", role: "authenticated" },
      { member: "authenticator", role: "service_role" },
      { member: "supabase_storage_admin", role: "authenticator" },
    ]);
  });

  test("wal_level is logical in the DCS and on every running member, with no restart pending", async () => {
    const conf = await restGet(cfg.members[0]!, "/config");
    expect(conf?.body?.postgresql?.parameters?.wal_level).toBe("logical");
    for (const m of cfg.members) {
      expect(await walLevelOn(m)).toEqual({ member: m.name, wal_level: "logical" });
      expect({ member: m.name, pending: Boolean((await restGet(m, "/patroni"))?.body?.pending_restart) }).toEqual({
        member: m.name,
        pending: false,
      });
    }
  });

  test("a re-run changes nothing", async () => {
    expect(await prepareSupabaseStack(cfg)).toEqual([]);
  });
});

describe("a fact taken away is put back, and named", () => {
  afterAll(() => prepareSupabaseStack(cfg));
  test("search_path, CREATE for storage, graphql_public, a default privilege and the publication", async () => {
    await q("ALTER ROLE supabase_auth_admin RESET search_path");
    await q(`REVOKE CREATE ON DATABASE ${STAGING} FROM supabase_storage_admin`);
    await q("DROP SCHEMA graphql_public", [], STAGING);
    await q(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${STAGING} IN SCHEMA public REVOKE ALL ON TABLES FROM anon`,
      [],
      STAGING,
    );
    await q("DROP PUBLICATION supabase_realtime", [], STAGING);
    expect(await prepareSupabaseStack(cfg)).toEqual([
      "role supabase_auth_admin: search_path = auth",
      `${STAGING}: CREATE for supabase_storage_admin`,
      `${STAGING}: schema graphql_public (owner ${STAGING})`,
      `${STAGING}: USAGE on graphql_public for anon, authenticated, service_role`,
      `${STAGING}: default privileges on tables of ${STAGING} in public for anon`,
      `${STAGING}: publication supabase_realtime`,
    ]);
    expect(await prepareSupabaseStack(cfg)).toEqual([]);
  });
});

describe("the main app's env files, one per environment", () => {
  const PORTS: Record<string, string> = { dev: "6100", staging: "7100", production: "9000" };
  for (const db of cfg.databases) {
    const env = db.split("_").at(-1)!;
    test(`${db}: ${envFilePath(cfg, db).replace(cfg.rootDir + "/", "")} is 0600 with exactly the documented keys`, () => {
      const path = envFilePath(cfg, db);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const v = parseDotenv(readFileSync(path));
      expect(Object.keys(v)).toEqual([
        "DATABASE_URL",
        "DIRECT_URL",
        "SUPABASE_URL",
        "SUPABASE_ANON_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "API_PORT",
      ]);
      const pooled = new URL(v.DATABASE_URL!);
      const direct = new URL(v.DIRECT_URL!);
      expect([pooled.username, pooled.host, pooled.pathname]).toEqual([
        db,
        `${cfg.pool.address}:${cfg.pool.port}`,
        `/${db}`,
      ]);
      expect([direct.username, direct.host, direct.pathname]).toEqual([
        db,
        `${cfg.haproxy.address}:${cfg.haproxy.rwPort}`,
        `/${db}`,
      ]);
      expect(v.SUPABASE_URL).toBe(`http://${cfg.api.address}:${cfg.api.port}/${db}`);
      expect(v.API_PORT).toBe(PORTS[env]);
    });

    test(`${db}: the keys are signed with ${db}'s own secret (anon, service_role) and not with another's`, async () => {
      const v = parseDotenv(readFileSync(envFilePath(cfg, db)));
      expect((await verifyApiKey(v.SUPABASE_ANON_KEY!, jwtSecretFor(cfg, db), "anon")).ok).toBe(true);
      expect((await verifyApiKey(v.SUPABASE_SERVICE_ROLE_KEY!, jwtSecretFor(cfg, db), "service_role")).ok).toBe(true);
      const other = cfg.databases.find((d) => d !== db)!;
      expect((await verifyApiKey(v.SUPABASE_ANON_KEY!, jwtSecretFor(cfg, other), "anon")).problem).toBe(
        "signature does not verify against JWT_SECRET",
      );
    });

    test(`${db}: its role is no superuser, reaches its database through pgbouncer and HAProxy, and cannot connect to any other`, async () => {
      const v = parseDotenv(readFileSync(envFilePath(cfg, db)));
      const who = async (url: string, database?: string): Promise<string> => {
        const u = new URL(url);
        let c: pg.Client | undefined;
        try {
          c = await connect(cfg, {
            target: { host: u.hostname, port: Number(u.port) },
            user: decodeURIComponent(u.username),
            password: decodeURIComponent(u.password),
            database: database ?? u.pathname.slice(1),
          });
          const r = (
            await c.query(
              "SELECT current_user AS u, current_database() AS d, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su",
            )
          ).rows[0];
          return `${r.u}@${r.d} super=${r.su}`;
        } catch (e) {
          return (e as Error).message;
        } finally {
          await c?.end().catch(() => {});
        }
      };
      expect(await who(v.DATABASE_URL!)).toBe(`${db}@${db} super=false`);
      expect(await who(v.DIRECT_URL!)).toBe(`${db}@${db} super=false`);
      for (const other of [...cfg.databases.filter((d) => d !== db), "postgres"]) {
        expect(await who(v.DIRECT_URL!, other)).toContain(`permission denied for database "${other}"`);
      }
    });
  }

  test(`the files are not rewritten by a re-run (${DEV})`, async () => {
    const before = readFileSync(envFilePath(cfg, DEV), "utf8");
    const mtime = statSync(envFilePath(cfg, DEV)).mtimeMs;
    expect(await prepareSupabaseStack(cfg)).toEqual([]);
    expect(readFileSync(envFilePath(cfg, DEV), "utf8")).toBe(before);
    expect(statSync(envFilePath(cfg, DEV)).mtimeMs).toBe(mtime);
  });
});

describe("make db-url for an environment's own role", () => {
  test("prints the env file's DIRECT_URL (the password from that file)", () => {
    const v = parseDotenv(readFileSync(envFilePath(cfg, STAGING)));
    const r = runScript("db-url.ts", ["--db", STAGING, "--role", STAGING]);
    expect({ code: r.code, stdout: r.stdout.trim() }).toEqual({ code: 0, stdout: v.DIRECT_URL! });
  });
});

describe("make keys", () => {
  test("ENV=staging prints staging's URL and anon key, names the file of the service key and never prints it", () => {
    const v = parseDotenv(readFileSync(envFilePath(cfg, STAGING)));
    const rel = envFilePath(cfg, STAGING).replace(cfg.rootDir + "/", "");
    const r = runScript("keys.ts", ["--env", "staging"]);
    expect({ code: r.code, stdout: r.stdout }).toEqual({
      code: 0,
      stdout: [
        `environment       staging (database ${STAGING})`,
        `SUPABASE_URL      ${v.SUPABASE_URL}`,
        `SUPABASE_ANON_KEY ${v.SUPABASE_ANON_KEY}`,
        `service_role key  not printed (it bypasses row-level security): SUPABASE_SERVICE_ROLE_KEY in ${rel} (mode 0600)`,
        "",
      ].join("\n"),
    });
    expect(r.out).not.toContain(v.SUPABASE_SERVICE_ROLE_KEY!);
  });

  test("an environment the stack does not have is named, with the ones it has", () => {
    const r = runScript("keys.ts", ["--env", "qa"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ENV="qa" is not an environment of this stack (dev, staging, production)');
  });
});

describe("a cluster bootstrapped with wal_level replica (before this version)", () => {
  test("gets logical through the DCS, and its members restart one at a time, replicas first, the leader last", async () => {
    // Make it the older cluster: replica in the DCS, applied.
    const res = await restSend(cfg, cfg.members[0]!, "PATCH", "/config", {
      postgresql: { parameters: { wal_level: "replica" } },
    });
    expect(res.status).toBe(200);
    await restartPending(cfg, "test set-up: wal_level replica");
    const leader = (await clusterView(cfg))!.members.find((m) => m.role === "leader")!.name;
    const changes = await prepareSupabaseStack(cfg);
    expect(changes[0]).toBe("DCS Supabase settings: wal_level = logical");
    const restarted = /^restarted (.*) \(wal_level logical\)$/.exec(changes[1] ?? "")?.[1]?.split(", ");
    expect(restarted?.length).toBe(3);
    expect(restarted?.at(-1)).toBe(leader);
    expect(changes.slice(2)).toEqual([]);
    for (const m of cfg.members) {
      expect(await walLevelOn(m)).toEqual({ member: m.name, wal_level: "logical" });
    }
    expect(await prepareSupabaseStack(cfg)).toEqual([]);
  }, 300_000);
});
