/** Shared by the off-site tests (S3 and ssh): SQL against the stack, and a byte grep of stored files. */
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
