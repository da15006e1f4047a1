/**
 * Shared by the off-site tests (S3 and ssh): SQL against the stack, WAL archiving as Postgres sees it, a byte
 * grep of stored files, and the PITR round trip from the far copy alone.
 */
import { expect } from "bun:test";
import { existsSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../scripts/lib/config";
import { connect, quoteIdent } from "../../scripts/lib/pg";
import { runScript } from "./stack";

/** A script's --json answer, after any progress lines before it. */
export const jsonOf = (out: string) => JSON.parse(out.slice(out.indexOf("{")));

export async function sqlIn<T = any>(
  cfg: Config,
  database: string,
  query: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = await connect(cfg, { database });
  try {
    return (await c.query(query, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** Every file below `dir` whose bytes contain `needle`. */
export function grepBytes(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const want = Buffer.from(needle);
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(want)) hits.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return hits;
}

/** The primary's pg_stat_archiver: the last segment archived and how many attempts failed. */
export const archiver = async (cfg: Config) =>
  (
    await sqlIn<{ wal: string | null; failed: number }>(
      cfg,
      "postgres",
      "SELECT last_archived_wal AS wal, failed_count::int AS failed FROM pg_stat_archiver",
    )
  )[0]!;

/** A WAL record and a switch on the primary; returns the segment it closed once archived (or when timeoutMs is up). */
export async function switchArchived(cfg: Config, timeoutMs: number): Promise<string> {
  await sqlIn(cfg, "postgres", "SELECT pg_logical_emit_message(false, 'pgplatform-test', 'switch')");
  const seg = (await sqlIn<{ w: string }>(cfg, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS w"))[0]!.w;
  const until = Date.now() + timeoutMs;
  while (((await archiver(cfg)).wal ?? "") < seg && Date.now() < until) await Bun.sleep(500);
  return seg;
}

/**
 * PITR from the far copy alone: `table` (in `database`) holds row 1 = `marker`, already in an off-site
 * backup; row 2 is written before AT and row 3 after it. With the local repository moved aside,
 * `make restore-pitr SOURCE=offsite` must bring back rows 1 and 2 exactly, promoted, its restore_command
 * naming the off-site config only. The scratch instance is removed afterwards.
 */
export async function pitrFromFarCopyAlone(cfg: Config, database: string, table: string, marker: string) {
  const sql = (q: string) => sqlIn(cfg, database, q);
  await sql(`INSERT INTO ${quoteIdent(table)} VALUES (2, 'after the backup, before AT')`);
  await Bun.sleep(1100);
  const at = (await sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS at"))[0]
    .at as string;
  await Bun.sleep(1100);
  await sql(`INSERT INTO ${quoteIdent(table)} VALUES (3, 'after AT')`);
  const aside = `${cfg.backup.repoDir}.aside`;
  renameSync(cfg.backup.repoDir, aside);
  let r: ReturnType<typeof runScript>;
  try {
    r = runScript("restore-pitr.ts", ["--at", at, "--keep", "--json"], { SOURCE: "offsite" });
  } finally {
    renameSync(aside, cfg.backup.repoDir);
  }
  expect(r.code === 0 ? "" : r.stderr).toBe("");
  const res = jsonOf(r.stdout);
  const c = await connect(cfg, { target: { host: res.scratch.address, port: res.scratch.port }, database });
  try {
    expect((await c.query(`SELECT id, v FROM ${quoteIdent(table)} ORDER BY id`)).rows).toEqual([
      { id: 1, v: marker },
      { id: 2, v: "after the backup, before AT" },
    ]);
    expect((await c.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(false);
  } finally {
    await c.end();
  }
  // pgBackRest's restore_command in the restored instance names the off-site config only.
  expect(readFileSync(join(res.scratch.dir, "data", "postgresql.auto.conf"), "utf8")).toContain(
    "pgbackrest-offsite.conf",
  );
  expect(runScript("restore-pitr.ts", ["--remove"]).code).toBe(0);
}
