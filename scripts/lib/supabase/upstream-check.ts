/**
 * A development check, not a runtime path: apply upstream's own migrations
 * (supabase/auth's migrations/*.up.sql, supabase/storage's migrations/tenant/*.sql,
 * from a checkout the developer exported) to a database our preparation made,
 * as the role each service connects with, the way each service runs them:
 * - GoTrue (supabase/auth@a6164519c2f8 cmd/migrate_cmd.go): gobuffalo/pop's file
 *   migrator, a schema_migrations table in the connection's search_path, each
 *   file rendered with Options.Namespace = "auth" and run in a transaction.
 * - Storage (supabase/storage@c8f93e5164ba src/internal/database/migrations/migrate.ts):
 *   postgres-migrations, search_path storage,public,extensions, the
 *   storage.install_roles/anon_role/... session settings set first, files
 *   ordered by their numeric prefix, each in a transaction unless it says
 *   "postgres-migrations disable-transaction".
 * Upstream's SQL is read from the checkout at run time and never committed here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";

export interface MigrationOutcome {
  service: "auth" | "storage";
  file: string;
  ok: boolean;
  error?: string;
}

/** GoTrue's files in pop's order (by name: the version prefix), rendered as pop renders them. */
export function authMigrations(checkout: string): { file: string; version: string; sql: string }[] {
  const dir = join(checkout, "migrations");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".up.sql"))
    .sort()
    .map((f) => ({
      file: f,
      version: f.split("_")[0]!,
      sql: readFileSync(join(dir, f), "utf8").replaceAll(/\{\{\s*index \.Options "Namespace"\s*\}\}/g, "auth"),
    }));
}

/** Storage's tenant files in postgres-migrations' order (numeric id prefix). */
export function storageMigrations(checkout: string): { file: string; id: number; sql: string; transaction: boolean }[] {
  const dir = join(checkout, "migrations", "tenant");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .map((f) => {
      const sql = readFileSync(join(dir, f), "utf8");
      return {
        file: f,
        id: Number.parseInt(f.split("-")[0]!, 10),
        sql,
        transaction: !/postgres-migrations disable-transaction/.test(sql.split("\n")[0] ?? ""),
      };
    })
    .sort((a, b) => a.id - b.id);
}

async function inTransaction(c: pg.Client, transaction: boolean, fn: () => Promise<void>): Promise<string | undefined> {
  try {
    if (transaction) await c.query("BEGIN");
    await fn();
    if (transaction) await c.query("COMMIT");
    return undefined;
  } catch (e) {
    if (transaction) await c.query("ROLLBACK").catch(() => {});
    const err = e as Error & { detail?: string; hint?: string };
    return [err.message, err.detail, err.hint].filter(Boolean).join(" | ");
  }
}

/** Run GoTrue's migrations on a connection made as supabase_auth_admin. Stops at the first failure (as pop does). */
export async function applyAuthMigrations(c: pg.Client, checkout: string): Promise<MigrationOutcome[]> {
  const out: MigrationOutcome[] = [];
  const setup = await inTransaction(
    c,
    false,
    async () =>
      void (await c.query("CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(14) NOT NULL PRIMARY KEY)")),
  );
  if (setup) return [{ service: "auth", file: "(pop: schema_migrations table)", ok: false, error: setup }];
  const done = new Set((await c.query("SELECT version FROM schema_migrations")).rows.map((r) => r.version as string));
  for (const m of authMigrations(checkout)) {
    if (done.has(m.version)) continue;
    const error = await inTransaction(c, true, async () => {
      await c.query(m.sql);
      await c.query("INSERT INTO schema_migrations (version) VALUES ($1)", [m.version]);
    });
    out.push({ service: "auth", file: m.file, ok: !error, error });
    if (error) break;
  }
  return out;
}

/** Run Storage's tenant migrations on a connection made as supabase_storage_admin. Stops at the first failure. */
export async function applyStorageMigrations(c: pg.Client, checkout: string): Promise<MigrationOutcome[]> {
  const out: MigrationOutcome[] = [];
  await c.query("SET search_path TO storage, public, extensions");
  // DB_INSTALL_ROLES unset -> 'false' (supabase/storage@c8f93e5164ba src/config.ts dbInstallRoles), DB_SUPER_USER -> postgres.
  await c.query(
    "SELECT set_config('storage.install_roles', 'false', false), set_config('storage.anon_role', 'anon', false), set_config('storage.authenticated_role', 'authenticated', false), set_config('storage.service_role', 'service_role', false), set_config('storage.super_user', 'postgres', false)",
  );
  const applied = async () =>
    (await c.query("SELECT to_regclass('storage.migrations') IS NOT NULL AS t")).rows[0].t
      ? new Set((await c.query("SELECT id FROM storage.migrations")).rows.map((r) => Number(r.id)))
      : new Set<number>();
  const done = await applied();
  for (const m of storageMigrations(checkout)) {
    if (done.has(m.id)) continue;
    const error = await inTransaction(c, m.transaction, async () => {
      await c.query(m.sql);
      if ((await c.query("SELECT to_regclass('storage.migrations') IS NOT NULL AS t")).rows[0].t) {
        await c.query(
          "INSERT INTO storage.migrations (id, name, hash) VALUES ($1, $2, md5($3)) ON CONFLICT DO NOTHING",
          [m.id, m.file.replace(/\.sql$/, ""), m.sql],
        );
      }
    });
    out.push({ service: "storage", file: m.file, ok: !error, error });
    if (error) break;
  }
  return out;
}
