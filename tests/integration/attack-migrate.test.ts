/**
 * Attack: SQL injection through migrate-saas (issue 11, item 5). A user of the
 * source project with nothing but CREATE on its public schema (a
 * non-superuser database role the test creates, pgp-migrate-attacker) names
 * a table so that its quoted name spans lines, one of which looks like a
 * statement the old line filter dropped (`CREATE EXTENSION ...`), and gives
 * it a column whose name carries SQL. Dropping that line used to leave the
 * quote open; the column name then closed it and its SQL ran on the target
 * as the superuser the migration loads with (here: a server-side COPY that
 * writes a marker file, which no rollback undoes).
 *
 * Passes when the attack fails: no marker file, the table arrives on the
 * target with its exact name and rows, and the migration verifies.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { connect, quoteIdent } from "../../scripts/lib/pg";
import { generateSecret } from "../../scripts/lib/secrets";
import { registerSecret } from "../../scripts/lib/redact";
import { runScript, testConfig } from "./stack";
import { scratchAddress, startScratchPg, type ScratchPg } from "./scratch-pg";

const cfg = testConfig();
const TARGET = "it_attack_migrate";
const ATTACKER = "pgp-migrate-attacker";
const MARKER = `/tmp/pgpmig-pw${process.pid % 1000}`; // short: the whole payload must fit a 63-byte column name
const TABLE = "a\nCREATE EXTENSION z";
const COLUMN = `(y int); COPY (SELECT 1) TO '${MARKER}'; --`;
let source: ScratchPg;
const attackerPw = generateSecret(20);
registerSecret(attackerPw);
const OS_ATTACKER = "pgp-migrate-attacker"; // an unprivileged local user, created and removed here
const ROOT = join(import.meta.dir, "../..");
// Code of the source that the load would run (issue 11, item 5, "load as a non-superuser"): a function that, run as
// the target's superuser, makes a superuser role and a file through a shell (neither undone by any rollback).
const CODE_TARGET = "it_attack_migrate_code";
const INERT_TARGET = "it_attack_migrate_inert";
const PWNED = "pgp_migrate2_pwned";
const GRANT_TARGET = "it_attack_migrate_grant";
const APP = "pgp_migrate2_app";
const CODE_MARKER = "/tmp/pgp-migrate2-marker";
// (An IMMUTABLE function runs its statements read-only; the VOLATILE one it calls does not.)
const PWN_FN = `CREATE FUNCTION public.pwn_v(t text) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN others THEN NULL; END; -- refused inside REFRESH and index builds (security-restricted)
  PERFORM 1 FROM pg_catalog.pg_roles WHERE rolname = '${PWNED}';
  IF NOT FOUND THEN EXECUTE 'CREATE ROLE ${PWNED} SUPERUSER'; END IF;
  BEGIN -- touch reads no input: the file is made, then COPY reports a broken pipe
    EXECUTE $c$COPY (SELECT 1) TO PROGRAM 'touch ${CODE_MARKER}'$c$;
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN t;
END $f$;
CREATE FUNCTION public.pwn(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN public.pwn_v(t); END $f$;`;
// Each object runs the payload when rows are loaded or indexes built over them.
const CODE_SOURCE = `${PWN_FN}
CREATE TABLE public.gen (id int PRIMARY KEY, t text, g text GENERATED ALWAYS AS (public.pwn(t)) STORED);
CREATE TABLE public.chk (id int PRIMARY KEY, t text CHECK (public.pwn(t) IS NOT NULL));
-- built-in functions only: a server file written as the superuser
SELECT lo_from_bytea(4242, 'x'::bytea);
CREATE TABLE public.chk_builtin (id int PRIMARY KEY, t text CHECK (lo_export(4242, '${CODE_MARKER}') = 1));
CREATE DOMAIN public.pwn_d AS text CHECK (public.pwn(VALUE) IS NOT NULL);
CREATE TABLE public.dom (id int PRIMARY KEY, t public.pwn_d);
-- a parsed SQL body (trusted only when everything it calls is): this one writes a server file
CREATE FUNCTION public.sneaky(t text) RETURNS text LANGUAGE sql IMMUTABLE RETURN t || lo_export(4242, '${CODE_MARKER}')::text;
CREATE TABLE public.gen_sql (id int PRIMARY KEY, t text, g text GENERATED ALWAYS AS (public.sneaky(t)) STORED);
INSERT INTO public.gen_sql (id, t) VALUES (1, 'a');
CREATE TABLE public.idx (id int PRIMARY KEY, t text);
CREATE INDEX idx_pwn ON public.idx (public.pwn(t));
-- a view that a materialized view reads (REFRESH runs it), a range type's subtype_diff (a GiST build runs it)
CREATE VIEW public.v_pwn AS SELECT public.pwn_v('v') AS x;
CREATE MATERIALIZED VIEW public.mv_pwn AS SELECT x FROM public.v_pwn;
CREATE FUNCTION public.diff(a float8, b float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN public.pwn_v('r')::int * 0 + a - b; END $f$;
CREATE TYPE public.frange AS RANGE (subtype = float8, subtype_diff = public.diff);
CREATE TABLE public.rng (id int PRIMARY KEY, r public.frange);
CREATE INDEX rng_r ON public.rng USING gist (r);
INSERT INTO public.rng SELECT g, public.frange(g, g + 1) FROM generate_series(1, 20) g;
-- an alias of a built-in C function, without its privilege check's REVOKE: any app could read the server's files
CREATE FUNCTION public.read_any(text) RETURNS text LANGUAGE internal STRICT AS 'pg_read_file_all';
INSERT INTO public.gen (id, t) VALUES (1, 'a');
INSERT INTO public.chk VALUES (1, 'a');
INSERT INTO public.chk_builtin VALUES (1, 'a');
INSERT INTO public.dom VALUES (1, 'a');
INSERT INTO public.idx VALUES (1, 'a');
DROP ROLE IF EXISTS ${PWNED};`;
// Code the load never runs: a column DEFAULT (every column is copied) and a trigger, even ENABLE ALWAYS
// (pg_dump creates triggers after the data); and a generated column through a parsed SQL body (trusted).
const INERT_SOURCE = `${PWN_FN}
CREATE FUNCTION public.pwn_trg() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN PERFORM public.pwn('x'); RETURN NEW; END $f$;
CREATE FUNCTION public.shout(t text) RETURNS text LANGUAGE sql IMMUTABLE RETURN upper(t) || '!';
-- an extension's function (the cluster's own package code), even in public, is trusted in a CHECK
CREATE EXTENSION pgcrypto WITH SCHEMA public;
CREATE TABLE public.inert (id int PRIMARY KEY, d text DEFAULT public.pwn('d'), t text CHECK (length(public.digest(t, 'sha256')) = 32),
  loud text GENERATED ALWAYS AS (public.shout(t)) STORED);
CREATE TRIGGER inert_pwn BEFORE INSERT ON public.inert FOR EACH ROW EXECUTE FUNCTION public.pwn_trg();
ALTER TABLE public.inert ENABLE ALWAYS TRIGGER inert_pwn;
ALTER TABLE public.inert DISABLE TRIGGER inert_pwn;
INSERT INTO public.inert (id, d, t) VALUES (1, 'kept', 'hi'), (2, 'also', 'yo');
ALTER TABLE public.inert ENABLE ALWAYS TRIGGER inert_pwn;
DROP ROLE IF EXISTS ${PWNED};`;

async function dropOurs() {
  const c = await connect(cfg);
  try {
    // Databases first: a migrated login holds CONNECT on its database.
    for (const db of [TARGET, CODE_TARGET, INERT_TARGET, GRANT_TARGET])
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
    for (const r of [ATTACKER, PWNED, APP]) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  rmSync(MARKER, { force: true });
  rmSync(CODE_MARKER, { force: true });
  spawnSync("userdel", [OS_ATTACKER]);
  const u = spawnSync("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", OS_ATTACKER], {
    encoding: "utf8",
  });
  if (u.status !== 0) throw new Error(`useradd ${OS_ATTACKER}: ${u.stderr}`);
  await dropOurs();
  source = await startScratchPg({ host: scratchAddress(cfg).replace(/\.50$/, ".53"), name: "attack-migrate" });
  await source.psql(
    "postgres",
    `CREATE ROLE ${quoteIdent(ATTACKER)} LOGIN PASSWORD '${attackerPw}'; GRANT CREATE ON SCHEMA public TO ${quoteIdent(ATTACKER)};`,
  );
  // The attack, as the unprivileged source user.
  expect(COLUMN.length).toBeLessThanOrEqual(63);
  const c = new pg.Client({ connectionString: source.url("postgres", ATTACKER, attackerPw) });
  await c.connect();
  await c.query(`CREATE TABLE public.${quoteIdent(TABLE)} (${quoteIdent(COLUMN)} text)`);
  await c.query(`INSERT INTO public.${quoteIdent(TABLE)} VALUES ('row one'), ('row two')`);
  await c.end();
  for (const [db, sql] of [
    ["pwn_code", CODE_SOURCE],
    ["pwn_inert", INERT_SOURCE],
  ] as const) {
    await source.psql("postgres", `CREATE DATABASE ${db}`);
    await source.psql(db, sql);
  }
  rmSync(CODE_MARKER, { force: true }); // the source ran its own payload on itself while the rows went in
  const t = await connect(cfg);
  for (const db of [TARGET, CODE_TARGET, INERT_TARGET]) await t.query(`CREATE DATABASE ${quoteIdent(db)}`);
  await t.end();
}, 120_000);

afterAll(async () => {
  rmSync(MARKER, { force: true });
  rmSync(CODE_MARKER, { force: true });
  spawnSync("userdel", [OS_ATTACKER]);
  await dropOurs().catch(() => {});
  await source?.stop();
}, 120_000);

test("attack: a source table whose quoted name spans lines runs SQL as the target's superuser", async () => {
  const r = runScript("migrate-saas.ts", ["--target-db", TARGET, "--json"], {
    SOURCE_DB_URL: source.url(),
    SOURCE_TLS_INSECURE: "1",
  });
  // The injected COPY ... TO '<file>' never ran on the target.
  expect(existsSync(MARKER)).toBe(false);
  if (r.code !== 0) console.error(r.out);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout).ok).toBe(true);
  // The table arrived as itself: exact name, exact column name, exact rows.
  const c = await connect(cfg, { database: TARGET });
  try {
    const rel = (
      await c.query(
        "SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'",
      )
    ).rows;
    expect(rel).toEqual([{ relname: TABLE, attname: COLUMN }]);
    const rows = (
      await c.query(`SELECT ${quoteIdent(COLUMN)} AS v FROM public.${quoteIdent(TABLE)} ORDER BY 1`)
    ).rows.map((x) => x.v);
    expect(rows).toEqual(["row one", "row two"]);
    expect((await c.query(`SELECT tableowner FROM pg_tables WHERE tablename = $1`, [TABLE])).rows[0].tableowner).toBe(
      ATTACKER,
    );
  } finally {
    await c.end();
  }
}, 180_000);

/** Run `make` with these arguments while the unprivileged user reads every process's command line; returns both. */
async function makeWhileWatched(args: string[], env: Record<string, string>) {
  const watcher = spawn("runuser", ["-u", OS_ATTACKER, "--", "sh", "-c", "while :; do ps -e -ww -o args=; done"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  let seen = "";
  watcher.stdout.on("data", (d) => (seen += d));
  await Bun.sleep(300);
  const r = spawnSync("make", ["-s", "migrate-saas", ...args], {
    cwd: ROOT,
    env: { ...process.env, STACK: cfg.stack, ...env },
    encoding: "utf8",
    timeout: 300_000,
  });
  watcher.kill("SIGTERM");
  await new Promise((res) => watcher.on("close", res));
  return { code: r.status, out: (r.stdout ?? "") + (r.stderr ?? ""), seen };
}

test("attack: a local user reads the cloud password from make's command line", async () => {
  // The README's old form: the URL on make's command line, in every process list. Refused before anything runs.
  const url = source.url();
  const refused = spawnSync("make", ["-s", "migrate-saas", `SOURCE_DB_URL=${url}`, `TARGET_DB=${TARGET}`, "PLAN=1"], {
    cwd: ROOT,
    env: { ...process.env, STACK: cfg.stack, SOURCE_TLS_INSECURE: "1" },
    encoding: "utf8",
  });
  expect(refused.status).toBe(2);
  expect(refused.stderr).toContain("error [SOURCE_URL_ON_COMMAND_LINE]");
  expect(refused.stderr).toContain("SOURCE_ENV=<file>");
  // The documented form: a 0600 file. The watcher sees the run (so it could look) but never the password.
  const dir = mkdtempSync("/tmp/pgp-migrate-env-");
  const file = join(dir, "source.env");
  writeFileSync(file, `SOURCE_DB_URL=${url}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  try {
    const r = await makeWhileWatched([`SOURCE_ENV=${file}`, `TARGET_DB=${TARGET}`, "PLAN=1", "ARGS=--json"], {
      SOURCE_TLS_INSECURE: "1",
    });
    expect(r.out).toContain('"plan"');
    // (booleans: a failure must not print what the watcher saw of other processes)
    expect(r.seen.includes(`migrate-saas SOURCE_ENV=${file}`)).toBe(true);
    expect(r.seen.includes(source.password)).toBe(false);
    expect(r.seen.includes(encodeURIComponent(source.password))).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

async function pwned() {
  const c = await connect(cfg);
  try {
    return {
      role: (await c.query("SELECT rolname FROM pg_roles WHERE rolname = $1", [PWNED])).rows.length > 0,
      marker: existsSync(CODE_MARKER),
    };
  } finally {
    await c.end();
  }
}

test("attack: source code in generated columns, CHECK and domain constraints, index expressions, materialized views and range types runs as the target's superuser; an untrusted-language function is restored by it", async () => {
  const r = runScript("migrate-saas.ts", ["--target-db", CODE_TARGET], {
    SOURCE_DB_URL: source.url("pwn_code"),
    SOURCE_TLS_INSECURE: "1",
    ACCEPT_LEFT_OUT: "1",
  });
  expect(await pwned()).toEqual({ role: false, marker: false });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("error [MIGRATE_BLOCKED]: cannot migrate: 9 blocker(s)");
  const fix = "; read that code on the source, then pass --trust-source-code (TRUST_SOURCE_CODE=1) to run it";
  const opaque = "public.pwn(text) is written in plpgsql (opaque: it can run any statement)";
  for (const line of [
    `view public.v_pwn would run public.pwn_v(text) as the target's superuser during the load: public.pwn_v(text) is written in plpgsql (opaque: it can run any statement)${fix}`,
    `type public.frange would run public.diff(double precision,double precision) as the target's superuser during the load: public.diff(double precision,double precision) is written in plpgsql (opaque: it can run any statement)${fix}`,
    `function public.read_any(text): it is written in internal, an untrusted language: restored by the superuser, it would run code of the source's choosing on the server${fix}`,
    `table public.gen_sql would run public.sneaky(text) as the target's superuser during the load: public.sneaky(text) calls lo_export(oid,text) runs SQL or writes files${fix}`,
    `table public.gen would run public.pwn(text) as the target's superuser during the load: ${opaque}${fix}`,
    `table public.chk would run public.pwn(text) as the target's superuser during the load: ${opaque}${fix}`,
    `table public.chk_builtin would run lo_export(oid,text) as the target's superuser during the load: lo_export(oid,text) runs SQL or writes files${fix}`,
    `type public.pwn_d would run public.pwn(text) as the target's superuser during the load: ${opaque}${fix}`,
    `index public.idx_pwn would run public.pwn(text) as the target's superuser during the load: ${opaque}${fix}`,
  ])
    expect(r.stderr).toContain(line);
  // Refused before the target was touched.
  const c = await connect(cfg, { database: CODE_TARGET });
  try {
    expect(
      (await c.query("SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")).rows[0].n,
    ).toBe(0);
  } finally {
    await c.end();
  }
}, 180_000);

test("attack: a column DEFAULT and an ENABLE ALWAYS trigger calling source code fire while the rows are loaded", async () => {
  const r = runScript("migrate-saas.ts", ["--target-db", INERT_TARGET, "--json"], {
    SOURCE_DB_URL: source.url("pwn_inert"),
    SOURCE_TLS_INSECURE: "1",
  });
  expect(await pwned()).toEqual({ role: false, marker: false });
  if (r.code !== 0) console.error(r.out);
  expect(r.code).toBe(0);
  const report = JSON.parse(r.stdout);
  expect(report.ok).toBe(true);
  expect(report.plan.sourceCode).toEqual([]);
  const c = await connect(cfg, { database: INERT_TARGET });
  try {
    // The rows as on the source (not the DEFAULT, not touched by the trigger), the trigger as it was: ENABLE ALWAYS.
    expect((await c.query("SELECT id, d, t, loud FROM public.inert ORDER BY id")).rows).toEqual([
      { id: 1, d: "kept", t: "hi", loud: "HI!" },
      { id: 2, d: "also", t: "yo", loud: "YO!" },
    ]);
    expect((await c.query("SELECT tgenabled FROM pg_trigger WHERE tgname = 'inert_pwn'")).rows).toEqual([
      { tgenabled: "A" },
    ]);
    expect(
      (
        await c.query(
          "SELECT pg_get_expr(adbin, adrelid) AS d FROM pg_attrdef WHERE adrelid = 'public.inert'::regclass AND adnum = 2",
        )
      ).rows,
    ).toEqual([{ d: "pwn('d'::text)" }]);
  } finally {
    await c.end();
  }
}, 180_000);

test("attack: a source role that is a member of postgres or pg_execute_server_program, or has CREATEROLE, keeps that on the cluster", async () => {
  // On Supabase (PostgreSQL 15) the postgres login holds ADMIN on itself and can run GRANT postgres TO <role>: there postgres
  // is no superuser, on the cluster it is. The migrated login's password goes to the app.
  await source.psql(
    "postgres",
    `CREATE ROLE ${APP} LOGIN CREATEROLE; GRANT postgres TO ${APP}; GRANT pg_execute_server_program TO ${APP};`,
  );
  const t = await connect(cfg);
  await t.query(`CREATE DATABASE ${quoteIdent(GRANT_TARGET)}`);
  await t.end();
  try {
    const env = { SOURCE_DB_URL: source.url("pwn_inert"), SOURCE_TLS_INSECURE: "1" };
    const refused = runScript("migrate-saas.ts", ["--target-db", GRANT_TARGET], env);
    expect(refused.code).toBe(1);
    const fix =
      "; grant it on the cluster by hand if you mean it, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it";
    for (const line of [
      `role ${APP} has CREATEROLE on the source: on the cluster it could grant itself pg_execute_server_program (a shell as postgres)${fix}`,
      `role ${APP} is a member of pg_execute_server_program on the source, and pg_execute_server_program runs programs or reads and writes files on the server${fix}`,
      `role ${APP} is a member of postgres on the source, and postgres is a superuser on the cluster${fix}`,
    ])
      expect(refused.stderr).toContain(line);
    const before = await connect(cfg);
    expect((await before.query("SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1", [APP])).rows[0].n).toBe(0);
    await before.end();
    // Accepted: the role arrives without them, and the migration verifies.
    const r = runScript("migrate-saas.ts", ["--target-db", GRANT_TARGET, "--json"], { ...env, ACCEPT_LEFT_OUT: "1" });
    if (r.code !== 0) console.error(r.out);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(true);
    const c = await connect(cfg);
    try {
      expect(
        (await c.query("SELECT rolcreaterole, rolsuper, rolcanlogin FROM pg_roles WHERE rolname = $1", [APP])).rows,
      ).toEqual([{ rolcreaterole: false, rolsuper: false, rolcanlogin: true }]);
      expect(
        (await c.query("SELECT roleid::regrole::text AS r FROM pg_auth_members WHERE member = $1::regrole", [APP]))
          .rows,
      ).toEqual([]);
    } finally {
      await c.end();
    }
  } finally {
    await source.psql("postgres", `DROP ROLE ${APP};`);
  }
}, 300_000);
