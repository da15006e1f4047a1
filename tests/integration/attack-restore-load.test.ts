/**
 * Loading a dump must not run an app's code as the superuser. An app's role
 * may put a CHECK constraint, a domain CHECK or a generated column on its own
 * table that calls a function it wrote: whoever loads the rows runs it. A
 * plain pg_restore loads them as `postgres`, so the function reaches
 * `COPY ... TO PROGRAM` (a shell as the postgres OS user) at the next backup's
 * verification and at every restore. Rows now load as the table's owner
 * (scripts/lib/backup/load.ts); the function checks who runs it, so a load as
 * the superuser fails this test even when it is not malicious.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { connect, quoteIdent } from "../../scripts/lib/pg";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const APP = "pgp_brk_loader";
const DB = `${APP}_db`;
const COPY = "pgp_brk_loader_copy";
const MARKER = `/tmp/pgp-breaker-restore-load-${process.pid}`;
const created: string[] = [];
let appPassword = "";

async function superuser<T = any>(query: string, params: unknown[] = [], database = "postgres"): Promise<T[]> {
  const c = await connect(cfg, { database, catalogOnly: true });
  try {
    return (await c.query(query, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

async function asApp(query: string): Promise<void> {
  const c = await connect(cfg, { user: APP, password: appPassword, database: DB });
  try {
    await c.query(query);
  } finally {
    await c.end().catch(() => {});
  }
}

const noProgram = () => (existsSync(MARKER) ? readFileSync(MARKER, "utf8") : "no program ran");
const appIsSuperuser = async () =>
  (await superuser("SELECT rolsuper FROM pg_roles WHERE rolname = $1", [APP]))[0].rolsuper as boolean;

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  rmSync(MARKER, { force: true });
  const r = runScript("new-app.ts", [APP, "--yes"]);
  expect(r.code).toBe(0);
  const envFile = join(cfg.rootDir, "envs", cfg.stack === "dev" ? `.env.${APP}` : `.env.${cfg.stack}.${APP}`);
  appPassword = decodeURIComponent(
    /^DATABASE_URL=postgresql:\/\/[^:]+:([^@]+)@/m.exec(readFileSync(envFile, "utf8"))![1]!,
  );
  // Everything below is the app's own doing, with its own password only.
  // guard() tries to escape (RESET ROLE, SET ROLE postgres), then, if it runs as a superuser, runs a program.
  await asApp(`
    CREATE FUNCTION public.guard(v text) RETURNS boolean LANGUAGE plpgsql AS $f$
    BEGIN
      BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN others THEN NULL; END;
      BEGIN EXECUTE 'SET ROLE postgres'; EXCEPTION WHEN others THEN NULL; END;
      IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'COPY (SELECT current_user) TO PROGRAM ' || pg_catalog.quote_literal('cat > ${MARKER}');
        RETURN false;
      END IF;
      RETURN v IS NOT NULL;
    END $f$;
    CREATE FUNCTION public.stamp(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
    BEGIN
      IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'COPY (SELECT 1) TO PROGRAM ' || pg_catalog.quote_literal('id > ${MARKER}');
      END IF;
      RETURN upper(v);
    END $f$;
    CREATE DOMAIN public.checked_text AS text CHECK (public.guard(VALUE));
    CREATE TABLE public.t (
      id int PRIMARY KEY,
      v text CHECK (public.guard(v)),
      d public.checked_text,
      g text GENERATED ALWAYS AS (public.stamp(v)) STORED
    );
    INSERT INTO public.t (id, v, d) SELECT i, 'v' || i, 'd' || i FROM generate_series(1, 50) i;`);
}, 120_000);

afterAll(async () => {
  await superuser(`ALTER ROLE ${quoteIdent(APP)} NOSUPERUSER`).catch(() => {});
  await superuser(`DROP DATABASE IF EXISTS ${quoteIdent(COPY)} WITH (FORCE)`).catch(() => {});
  runScript("new-app.ts", [APP, "--remove", "--yes"]);
  await superuser(`DROP DATABASE IF EXISTS ${quoteIdent(DB)} WITH (FORCE)`).catch(() => {});
  await superuser(`DROP ROLE IF EXISTS ${quoteIdent(APP)}`).catch(() => {});
  for (const b of created) rmSync(join(cfg.backup.dir, b), { recursive: true, force: true });
  rmSync(MARKER, { force: true });
});

const rows = async (database: string) =>
  (
    await superuser<{ s: string }>(
      "SELECT string_agg(id || ':' || v || ':' || d || ':' || g, ',' ORDER BY id) AS s FROM public.t",
      [],
      database,
    )
  )[0]!.s;

describe("an app's functions in its table's CHECK, domain and generated column, against the backup's loads", () => {
  test("attack: the backup's verification loads the rows as the table's owner: no program runs, the backup verifies", async () => {
    const b = runScript("backup.ts", ["--db", DB, "--logical-only", "--json"]);
    const id = /"id": "([^"]+)"/.exec(b.stdout)?.[1];
    if (id) created.push(id);
    expect(noProgram()).toBe("no program ran");
    expect(await appIsSuperuser()).toBe(false);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout.slice(b.stdout.indexOf("{"))).manifest.status).toBe("verified");
  }, 300_000);

  test("attack: make restore TO= loads the rows as the owner too: no program runs, every row and column comes back", async () => {
    rmSync(MARKER, { force: true });
    const r = runScript("restore.ts", ["--db", DB, "--from", created[0]!, "--to", COPY, "--json"]);
    expect(noProgram()).toBe("no program ran");
    expect(await appIsSuperuser()).toBe(false);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const want = Array.from({ length: 50 }, (_, i) => `${i + 1}:v${i + 1}:d${i + 1}:V${i + 1}`).join(",");
    expect(await rows(DB)).toBe(want);
    expect(await rows(COPY)).toBe(want);
  }, 300_000);

  test("the throwaway login roles used for the loads are gone afterwards, with their grants", async () => {
    expect(await superuser("SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgp\\_load\\_%'")).toEqual([]);
  });
});
