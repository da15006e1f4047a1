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
import { existsSync, rmSync } from "node:fs";
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

async function dropOurs() {
  const c = await connect(cfg);
  try {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(TARGET)} WITH (FORCE)`);
    await c.query(`DROP ROLE IF EXISTS ${quoteIdent(ATTACKER)}`);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  rmSync(MARKER, { force: true });
  await dropOurs();
  source = await startScratchPg({ host: scratchAddress(cfg).replace(/\.50$/, ".53"), name: "attack-migrate" });
  await source.psql("postgres", `CREATE ROLE ${quoteIdent(ATTACKER)} LOGIN PASSWORD '${attackerPw}'; GRANT CREATE ON SCHEMA public TO ${quoteIdent(ATTACKER)};`);
  // The attack, as the unprivileged source user.
  expect(COLUMN.length).toBeLessThanOrEqual(63);
  const c = new pg.Client({ connectionString: source.url("postgres", ATTACKER, attackerPw) });
  await c.connect();
  await c.query(`CREATE TABLE public.${quoteIdent(TABLE)} (${quoteIdent(COLUMN)} text)`);
  await c.query(`INSERT INTO public.${quoteIdent(TABLE)} VALUES ('row one'), ('row two')`);
  await c.end();
  const t = await connect(cfg);
  await t.query(`CREATE DATABASE ${quoteIdent(TARGET)}`);
  await t.end();
}, 120_000);

afterAll(async () => {
  rmSync(MARKER, { force: true });
  await dropOurs().catch(() => {});
  await source?.stop();
}, 120_000);

test("attack: a source table whose quoted name spans lines runs SQL as the target's superuser", async () => {
  const r = runScript("migrate-saas.ts", ["--target-db", TARGET, "--json"], { SOURCE_DB_URL: source.url(), SOURCE_TLS_INSECURE: "1" });
  // The injected COPY ... TO '<file>' never ran on the target.
  expect(existsSync(MARKER)).toBe(false);
  if (r.code !== 0) console.error(r.out);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout).ok).toBe(true);
  // The table arrived as itself: exact name, exact column name, exact rows.
  const c = await connect(cfg, { database: TARGET });
  try {
    const rel = (await c.query("SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'")).rows;
    expect(rel).toEqual([{ relname: TABLE, attname: COLUMN }]);
    const rows = (await c.query(`SELECT ${quoteIdent(COLUMN)} AS v FROM public.${quoteIdent(TABLE)} ORDER BY 1`)).rows.map((x) => x.v);
    expect(rows).toEqual(["row one", "row two"]);
    expect((await c.query(`SELECT tableowner FROM pg_tables WHERE tablename = $1`, [TABLE])).rows[0].tableowner).toBe(ATTACKER);
  } finally {
    await c.end();
  }
}, 180_000);
