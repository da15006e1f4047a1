/**
 * An app onboarded with --supabase gets what an environment gets: Supabase's
 * database side in its database (prepare.ts, the same facts), its own JWT
 * secret (JWT_SECRET_<DATABASE> in the secrets file), its own API at
 * SUPABASE_URL = <api>/<database> (routes.ts), and the anon/service_role keys
 * in its env file.
 */
import type pg from "pg";
import type { AppEntry } from "../apps";
import type { Config } from "../config";
import { connect, quoteIdent } from "../pg";
import { ensureSecrets } from "../secrets";
import { ensureJwtSettings, ensureSupabaseRoles } from "./roles";
import { readEnvFile } from "./environments";
import { apiKeysFor } from "./keys";
import { ensureClusterFacts, ensureDatabaseFacts } from "./prepare";
import { PUBLICATION, SCHEMAS } from "./requirements";
import { supabaseUrlFor } from "./routes";

const appTarget = (app: Pick<AppEntry, "database" | "role">) => ({ database: app.database, owner: app.role });

/** Supabase's side in one app database; reports what it added and how to take it back. */
export async function ensureAppSupabase(
  cfg: Config,
  admin: pg.Client,
  app: AppEntry,
): Promise<{ changes: string[]; undo: () => Promise<void> }> {
  const changes = await ensureSupabaseRoles(cfg, admin);
  changes.push(...(await ensureClusterFacts(admin, appTarget(app))));
  // Names resolve in pg_catalog only: nothing the app created runs as the superuser.
  const c = await connect(cfg, { database: app.database, catalogOnly: true });
  try {
    changes.push(...(await ensureDatabaseFacts(c, appTarget(app))));
  } finally {
    await c.end().catch(() => {});
  }
  changes.push(...(await ensureJwtSettings(cfg, admin, app.database)));
  const undo = async () => {
    const u = await connect(cfg, { database: app.database, catalogOnly: true });
    try {
      // Dropping a schema drops the default privileges kept for it; public's are revoked by hand.
      await u.query(
        `DROP SCHEMA IF EXISTS ${SCHEMAS.filter((s) => s.schema !== "public")
          .map((s) => quoteIdent(s.schema))
          .join(", ")}`,
      );
      await u.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(PUBLICATION)}`);
      for (const objects of ["TABLES", "SEQUENCES", "FUNCTIONS"]) {
        await u.query(
          `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(app.role)} IN SCHEMA public REVOKE ALL ON ${objects} FROM anon, authenticated, service_role`,
        );
      }
      await u.query(
        `REVOKE ALL ON DATABASE ${quoteIdent(app.database)} FROM authenticator, supabase_auth_admin, supabase_storage_admin`,
      );
    } finally {
      await u.end().catch(() => {});
    }
  };
  return { changes, undo };
}

/**
 * The Supabase lines of a --supabase app's env file: its own SUPABASE_URL and
 * keys signed with its own JWT secret (created on first use; keys already in
 * the file are kept while they verify).
 */
export async function appSupabaseEnvLines(
  cfg: Config,
  app: Pick<AppEntry, "database">,
  envPath: string,
): Promise<string[]> {
  const { secrets } = ensureSecrets(cfg.secretsFile, [app.database]);
  const keys = await apiKeysFor(
    { ...cfg, secrets: { ...cfg.secrets, ...secrets } },
    app.database,
    readEnvFile(envPath).keys,
  );
  return [
    `SUPABASE_URL=${supabaseUrlFor(cfg, app.database)}`,
    `SUPABASE_ANON_KEY=${keys.anon}`,
    "# Bypasses row-level security: server-side code only, never in a browser bundle.",
    `SUPABASE_SERVICE_ROLE_KEY=${keys.serviceRole}`,
  ];
}
