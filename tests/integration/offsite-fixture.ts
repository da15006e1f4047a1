/** Shared by the off-site tests (S3 and ssh): SQL against the stack, WAL archiving as Postgres sees it, and a byte grep of stored files. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../scripts/lib/config";
import { connect } from "../../scripts/lib/pg";

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
