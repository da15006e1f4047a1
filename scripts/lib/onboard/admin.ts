/**
 * What onboarding and removal need around the cluster: the stack's secrets,
 * a superuser connection, the state of an app's role and database, and the
 * app's env file. Moved out of onboard.ts.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import type pg from "pg";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { connect } from "../pg";
import { registerSecret } from "../redact";
import { writeIfChanged } from "../render";

export function requireSecrets(cfg: Config): void {
  if (!cfg.secrets.POSTGRES_PASSWORD) {
    throw new ToolkitError(
      "NO_SECRETS",
      `${cfg.secretsFile.replace(cfg.rootDir + "/", "")} does not exist yet: the stack ${cfg.stack} has never been brought up`,
      `run \`make dev-up STACK=${cfg.stack}\` first`,
    );
  }
  for (const v of Object.values(cfg.secrets)) registerSecret(v);
}

/**
 * A superuser connection through HAProxy's read-write port, or a clear error when the cluster is down.
 * In an app's database (which the app owns, with its public schema and its search_path setting)
 * names resolve in pg_catalog only, so nothing the app created runs as the superuser.
 */
export async function connectAdmin(cfg: Config, database = "postgres"): Promise<pg.Client> {
  try {
    return await connect(cfg, { database, timeoutMs: 3000, catalogOnly: database !== "postgres" });
  } catch (e) {
    throw new ToolkitError(
      "CLUSTER_DOWN",
      `cannot reach Postgres through HAProxy at ${cfg.haproxy.address}:${cfg.haproxy.rwPort} (stack ${cfg.stack}): ${(e as Error).message}`,
      `start the stack with \`make dev-up STACK=${cfg.stack}\`, then check \`make status STACK=${cfg.stack}\``,
    );
  }
}

export interface AppState {
  roleExists: boolean;
  verifier: string | null;
  dbOwner: string | null;
  publicCanConnect: boolean | null;
  supabaseSchema: boolean | null;
}

export async function inspectApp(admin: pg.Client, role: string, database: string): Promise<AppState> {
  const r = await admin.query(
    `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS role_exists,
            (SELECT rolpassword FROM pg_authid WHERE rolname = $1) AS verifier,
            (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $2) AS db_owner,
            (SELECT has_database_privilege('public', oid, 'CONNECT') FROM pg_database WHERE datname = $2) AS public_connect`,
    [role, database],
  );
  const row = r.rows[0];
  return {
    roleExists: row.role_exists,
    verifier: row.verifier,
    dbOwner: row.db_owner,
    publicCanConnect: row.public_connect,
    supabaseSchema: null,
  };
}

/** The password in an app's env file, if the file is there. */
export function readEnvPassword(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const url = parseDotenv(readFileSync(path)).DATABASE_URL;
  if (!url) return undefined;
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}

export const readIfExists = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : undefined);

/** Restore a file to what it was (undefined: it did not exist). */
export function restoreFile(path: string, old: string | undefined, mode: number): void {
  if (old === undefined) rmSync(path, { force: true });
  else writeIfChanged(path, old, { mode });
}
