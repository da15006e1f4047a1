/**
 * An app's role owns its database (and, in Postgres 15, that database's
 * `public` schema). With nothing but its own password it can set the
 * database's search_path and create functions there. The toolkit's backup,
 * verification and restore open superuser sessions in that database: if one
 * of them resolves an unqualified function through the app's search_path, the
 * app's code runs as the superuser (COPY ... TO PROGRAM: a shell as the
 * postgres OS user; ALTER ROLE ... SUPERUSER). Every such session must resolve
 * names in pg_catalog only, so the app's functions never run there, and the
 * backup still verifies.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { connect, quoteIdent } from "../../scripts/lib/pg";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const APP = "pgp_brk_evil";
const DB = `${APP}_db`;
const COPY = "pgp_brk_evil_copy";
const MARKER = `/tmp/pgp-breaker-app-owner-${process.pid}`;
const created: string[] = [];
let appPassword = "";

async function superuser<T = any>(query: string, params: unknown[] = [], database = "postgres"): Promise<T[]> {
  const c = await connect(cfg, { database });
  try {
    return (await c.query(query, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** Plant the trap as the app role, with its own password only. */
async function asApp(query: string): Promise<void> {
  const c = await connect(cfg, { user: APP, password: appPassword, database: DB });
  try {
    await c.query(query);
  } finally {
    await c.end().catch(() => {});
  }
}

const TRAP_BODY = `
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'COPY (SELECT 1) TO PROGRAM ' || pg_catalog.quote_literal('id > ${MARKER}');
    EXECUTE 'ALTER ROLE ${APP} SUPERUSER';
  END IF;`;

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  rmSync(MARKER, { force: true });
  const r = runScript("new-app.ts", [APP, "--yes"]);
  expect(r.code).toBe(0);
  const envFile = join(cfg.rootDir, "envs", cfg.stack === "dev" ? `.env.${APP}` : `.env.${cfg.stack}.${APP}`);
  appPassword = decodeURIComponent(
    /^DATABASE_URL=postgresql:\/\/[^:]+:([^@]+)@/m.exec(readFileSync(envFile, "utf8"))![1]!,
  );
  await superuser(
    `CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 10) g; ALTER TABLE public.t OWNER TO ${quoteIdent(APP)}`,
    [],
    DB,
  );
  // The app puts its own schema before pg_catalog and shadows functions the toolkit calls.
  await asApp(`ALTER DATABASE ${quoteIdent(DB)} SET search_path = public, pg_catalog`);
  await asApp(
    `CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN ${TRAP_BODY} RETURN pg_catalog.set_config($1, $2, $3); END $f$`,
  );
  await asApp(
    `CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN ${TRAP_BODY} RETURN pg_catalog.hashtextextended($1, $2); END $f$`,
  );
  await asApp(`CREATE FUNCTION public.array_agg_sfunc(text[], text) RETURNS text[] LANGUAGE plpgsql AS $f$ BEGIN ${TRAP_BODY} RETURN pg_catalog.array_append($1, $2); END $f$;
               CREATE AGGREGATE public.array_agg(text) (SFUNC = public.array_agg_sfunc, STYPE = text[])`);
}, 120_000);

afterAll(async () => {
  await superuser(`ALTER ROLE ${quoteIdent(APP)} NOSUPERUSER`).catch(() => {});
  await superuser(`DROP DATABASE IF EXISTS ${quoteIdent(COPY)} WITH (FORCE)`).catch(() => {});
  await superuser(`DROP DATABASE IF EXISTS ${quoteIdent(`${COPY}2`)} WITH (FORCE)`).catch(() => {});
  runScript("new-app.ts", [APP, "--remove", "--yes"]);
  await superuser(`DROP DATABASE IF EXISTS ${quoteIdent(DB)} WITH (FORCE)`).catch(() => {});
  await superuser(`DROP ROLE IF EXISTS ${quoteIdent(APP)}`).catch(() => {});
  for (const b of created) rmSync(join(cfg.backup.dir, b), { recursive: true, force: true });
  rmSync(MARKER, { force: true });
});

const appIsSuperuser = async () =>
  (await superuser("SELECT rolsuper FROM pg_roles WHERE rolname = $1", [APP]))[0].rolsuper as boolean;

describe("an app's role against the toolkit's superuser sessions in its database", () => {
  test("attack: the app shadows set_config/array_agg/hashtextextended before pg_catalog; backup + verification run none of it", async () => {
    expect(await appIsSuperuser()).toBe(false);
    const b = runScript("backup.ts", ["--db", DB, "--logical-only", "--json"]);
    const id = /"id": "([^"]+)"/.exec(b.stdout)?.[1] ?? /backup (\d{8}T\d{6}Z(?:-\d+)?)/.exec(b.stderr)?.[1];
    if (id) created.push(id);
    expect(existsSync(MARKER) ? readFileSync(MARKER, "utf8") : "no program ran").toBe("no program ran");
    expect(await appIsSuperuser()).toBe(false);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
  }, 300_000);

  test("attack: the same trap restored (database setting and functions carried) runs nothing during restore's checks", async () => {
    rmSync(MARKER, { force: true });
    const r = runScript("restore.ts", ["--db", DB, "--from", created[0]!, "--to", COPY, "--json"]);
    expect(existsSync(MARKER) ? readFileSync(MARKER, "utf8") : "no program ran").toBe("no program ran");
    expect(await appIsSuperuser()).toBe(false);
    expect(r.code).toBe(0);
    // The trap itself came back as it was (restore carries the app's objects and setting unchanged).
    const [x] = await superuser(
      "SELECT (SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND setrole = 0) AS settings, (SELECT count(*)::int FROM pg_catalog.pg_proc WHERE pronamespace = 'public'::regnamespace) AS functions, (SELECT string_agg(v, ',' ORDER BY id) FROM public.t) AS rows",
      [],
      COPY,
    );
    expect(x).toEqual({
      settings: ["search_path=public, pg_catalog"],
      functions: 4,
      rows: Array.from({ length: 10 }, (_, i) => `v${i + 1}`).join(","),
    });
  }, 300_000);

  test("attack: the app shadows count(*) (final function) before pg_catalog; new-app --supabase on it runs none of it", async () => {
    rmSync(MARKER, { force: true });
    await asApp(`CREATE FUNCTION public.cnt_final(bigint) RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN ${TRAP_BODY} RETURN $1; END $f$;
                 CREATE FUNCTION public.cnt_step(bigint) RETURNS bigint LANGUAGE sql AS $f$ SELECT $1 + 1 $f$;
                 CREATE AGGREGATE public.count(*) (SFUNC = public.cnt_step, STYPE = bigint, INITCOND = '0', FINALFUNC = public.cnt_final)`);
    const r = runScript("new-app.ts", [APP, "--supabase", "--yes"]);
    expect(existsSync(MARKER) ? readFileSync(MARKER, "utf8") : "no program ran").toBe("no program ran");
    expect(await appIsSuperuser()).toBe(false);
    expect(r.code).toBe(0);
    expect(
      (
        await superuser(
          "SELECT string_agg(nspname, ',' ORDER BY nspname) AS s FROM pg_catalog.pg_namespace WHERE nspname IN ('auth', 'storage', 'extensions')",
          [],
          DB,
        )
      )[0].s,
    ).toBe("auth,extensions,storage");
  }, 300_000);

  test("attack: the app sets its database's statement_timeout to 1ms; the nightly backup (its database and another) still verifies", async () => {
    // One app's setting made the whole backup run die (error [INTERNAL]: canceling statement due to
    // statement timeout): no database got a backup that night.
    await asApp(`CREATE TABLE public.big AS SELECT g FROM generate_series(1, 200000) g`);
    await asApp(`ALTER DATABASE ${quoteIdent(DB)} SET statement_timeout = '1ms'`);
    try {
      const b = runScript("backup.ts", ["--db", `${cfg.databases[0]},${DB}`, "--logical-only", "--json"]);
      const id = /"id": "([^"]+)"/.exec(b.stdout)?.[1] ?? /backup (\d{8}T\d{6}Z(?:-\d+)?)/.exec(b.stderr)?.[1];
      if (id) created.push(id);
      expect(b.stderr).toBe("");
      expect(b.code).toBe(0);
      const m = JSON.parse(b.stdout.slice(b.stdout.indexOf("{")));
      expect(m.manifest.databases.map((d: any) => d.name)).toEqual([cfg.databases[0], DB]);
      expect(m.manifest.databases[1].tables.find((t: any) => t.table === "big").rows).toBe(200000);
      // And it restores, the setting carried as it was.
      const r = runScript("restore.ts", ["--db", DB, "--from", id!, "--to", `${COPY}2`, "--json"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const settings = async (database: string) => {
        const c = await connect(cfg, { database, catalogOnly: true });
        try {
          const n = (await c.query("SELECT count(*)::int AS n FROM public.big")).rows[0].n;
          return {
            n,
            settings: [
              ...(
                await c.query(
                  "SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND setrole = 0",
                )
              ).rows[0].setconfig,
            ].sort(),
          };
        } finally {
          await c.end();
        }
      };
      const want = await settings(DB);
      expect(want.settings).toContain("statement_timeout=1ms");
      expect(await settings(`${COPY}2`)).toEqual({ n: 200000, settings: want.settings });
    } finally {
      await asApp(`ALTER DATABASE ${quoteIdent(DB)} RESET statement_timeout`);
    }
  }, 300_000);

  test("attack: the app closes its own database to connections (from template1); it cannot, and the nightly backup still runs", async () => {
    // From template1 (open to every role by default) the owner ran ALTER DATABASE <own> ALLOW_CONNECTIONS
    // false: the next backup died for every database (error [INTERNAL]: database ... is not currently accepting connections).
    const attempt = async () => {
      try {
        const c = await connect(cfg, { user: APP, password: appPassword, database: "template1" });
        try {
          await c.query(`ALTER DATABASE ${quoteIdent(DB)} ALLOW_CONNECTIONS false`);
          return "succeeded";
        } finally {
          await c.end().catch(() => {});
        }
      } catch (e) {
        return (e as Error).message;
      }
    };
    try {
      expect(await attempt()).toBe(`permission denied for database "template1"`);
      expect((await superuser("SELECT datallowconn FROM pg_database WHERE datname = $1", [DB]))[0].datallowconn).toBe(
        true,
      );
      const b = runScript("backup.ts", ["--db", `${cfg.databases[0]},${DB}`, "--logical-only"]);
      const id = /backup +(\d{8}T\d{6}Z(?:-\d+)?)/.exec(b.stdout)?.[1];
      if (id) created.push(id);
      expect(b.stderr).toBe("");
      expect(b.code).toBe(0);
    } finally {
      await superuser(`ALTER DATABASE ${quoteIdent(DB)} ALLOW_CONNECTIONS true`);
    }
  }, 300_000);
});
