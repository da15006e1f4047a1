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
  spawnSync("userdel", [OS_ATTACKER]);
  const u = spawnSync("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", OS_ATTACKER], { encoding: "utf8" });
  if (u.status !== 0) throw new Error(`useradd ${OS_ATTACKER}: ${u.stderr}`);
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
  spawnSync("userdel", [OS_ATTACKER]);
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

/** Run `make` with these arguments while the unprivileged user reads every process's command line; returns both. */
async function makeWhileWatched(args: string[], env: Record<string, string>) {
  const watcher = spawn("runuser", ["-u", OS_ATTACKER, "--", "sh", "-c", "while :; do ps -e -ww -o args=; done"], { stdio: ["ignore", "pipe", "ignore"] });
  let seen = "";
  watcher.stdout.on("data", (d) => (seen += d));
  await Bun.sleep(300);
  const r = spawnSync("make", ["-s", "migrate-saas", ...args], { cwd: ROOT, env: { ...process.env, STACK: cfg.stack, ...env }, encoding: "utf8", timeout: 300_000 });
  watcher.kill("SIGTERM");
  await new Promise((res) => watcher.on("close", res));
  return { code: r.status, out: (r.stdout ?? "") + (r.stderr ?? ""), seen };
}

test("attack: a local user reads the cloud password from make's command line", async () => {
  // The README's old form: the URL on make's command line, in every process list. Refused before anything runs.
  const url = source.url();
  const refused = spawnSync("make", ["-s", "migrate-saas", `SOURCE_DB_URL=${url}`, `TARGET_DB=${TARGET}`, "PLAN=1"], { cwd: ROOT, env: { ...process.env, STACK: cfg.stack, SOURCE_TLS_INSECURE: "1" }, encoding: "utf8" });
  expect(refused.status).toBe(2);
  expect(refused.stderr).toContain("error [SOURCE_URL_ON_COMMAND_LINE]");
  expect(refused.stderr).toContain("SOURCE_ENV=<file>");
  // The documented form: a 0600 file. The watcher sees the run (so it could look) but never the password.
  const dir = mkdtempSync("/tmp/pgp-migrate-env-");
  const file = join(dir, "source.env");
  writeFileSync(file, `SOURCE_DB_URL=${url}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  try {
    const r = await makeWhileWatched([`SOURCE_ENV=${file}`, `TARGET_DB=${TARGET}`, "PLAN=1", "ARGS=--json"], { SOURCE_TLS_INSECURE: "1" });
    expect(r.out).toContain('"plan"');
    // (booleans: a failure must not print what the watcher saw of other processes)
    expect(r.seen.includes(`migrate-saas SOURCE_ENV=${file}`)).toBe(true);
    expect(r.seen.includes(source.password)).toBe(false);
    expect(r.seen.includes(encodeURIComponent(source.password))).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
