/**
 * The environment ladder's databases as the main app sees them: each has its
 * own login role (named after the database, owner of it, confined to it:
 * PUBLIC has no CONNECT, so it cannot reach another environment's database),
 * Supabase's database side (prepare.ts), and an env file per environment:
 *
 *   envs/app/.env.dev, .env.staging, .env.production        (stack dev)
 *   envs/app.<stack>/.env.dev, ...                           (any other stack)
 *
 * mode 0600, gitignored, with DATABASE_URL (the environment's role, through
 * pgbouncer), DIRECT_URL (HAProxy, the leader), SUPABASE_URL (that
 * database's own API, routes.ts), SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY
 * (signed with that database's JWT secret) and API_PORT (port plan).
 * The role's password lives only in that file; the server holds its SCRAM verifier.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import type pg from "pg";
import type { Config } from "../config";
import { connect, dbUrl, poolTarget, quoteIdent, quoteLiteral, rwTarget } from "../pg";
import { registerSecret } from "../redact";
import { writeIfChanged } from "../render";
import { generateSecret } from "../secrets";
import { scramMatches, scramVerifier } from "../scram";
import { apiKeysFor, type ApiKeys } from "./keys";
import { ensureDcsParameters } from "../dcs-params";
import { ensureClusterFacts, ensureDatabaseFacts } from "./prepare";
import { SERVER_SETTINGS } from "./requirements";
import { ENV_APP_PORTS, envNameOf, supabaseUrlFor } from "./routes";

/** The environment's own login role: named after its database. */
export const environmentRole = (database: string) => database;

/** The one place the main app's env files live (gitignored: envs/app/ and envs/app.*). */
export const envFilesDir = (cfg: Pick<Config, "rootDir" | "stack">) =>
  join(cfg.rootDir, "envs", cfg.stack === "dev" ? "app" : `app.${cfg.stack}`);
/** envs/app/.env.<env> (the environment's name, or the database's when it names none). */
export const envFilePath = (cfg: Pick<Config, "rootDir" | "stack">, database: string) =>
  join(envFilesDir(cfg), `.env.${envNameOf(database) ?? database}`);

export interface EnvFileValues {
  database: string;
  role: string;
  password: string;
  keys: ApiKeys;
}

/** The file's text: a pure function, so a re-run with the same values rewrites nothing. */
export function renderEnvFile(cfg: Config, v: EnvFileValues): string {
  const env = envNameOf(v.database);
  const port = env ? ENV_APP_PORTS[env] : undefined;
  return [
    `# ${env ?? v.database} (database ${v.database}) on stack ${cfg.stack}: written by \`make dev-up\`. Private: mode 0600, gitignored.`,
    `# DATABASE_URL: the environment's own role ${v.role} through pgbouncer (transaction pooling);`,
    "# DIRECT_URL: the same role straight to the leader through HAProxy (migrations, LISTEN, advisory locks).",
    `DATABASE_URL=${dbUrl(cfg, v.database, v.role, v.password, poolTarget(cfg))}`,
    `DIRECT_URL=${dbUrl(cfg, v.database, v.role, v.password, rwTarget(cfg))}`,
    `# This database's own Supabase API (auth, rest, storage, realtime under the path; see the README, "One API per environment").`,
    `SUPABASE_URL=${supabaseUrlFor(cfg, v.database)}`,
    `SUPABASE_ANON_KEY=${v.keys.anon}`,
    "# Bypasses row-level security: server-side code only, never in a browser bundle.",
    `SUPABASE_SERVICE_ROLE_KEY=${v.keys.serviceRole}`,
    ...(port
      ? [`API_PORT=${port}`]
      : ["# API_PORT: the port plan has none for this database (dev 6100, staging 7100, production 9000)"]),
    "",
  ].join("\n");
}

/** What an existing env file holds (password and keys), to keep them across re-runs. */
export function readEnvFile(path: string): { password?: string; keys: Partial<ApiKeys> } {
  if (!existsSync(path)) return { keys: {} };
  const v = parseDotenv(readFileSync(path));
  let password: string | undefined;
  try {
    password = v.DIRECT_URL ? decodeURIComponent(new URL(v.DIRECT_URL).password) || undefined : undefined;
  } catch {}
  return { password, keys: { anon: v.SUPABASE_ANON_KEY, serviceRole: v.SUPABASE_SERVICE_ROLE_KEY } };
}

const LEAST = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";

/**
 * The role (created, or its password re-set when the file lost it), ownership
 * of the database, and confinement. Returns the password and what changed.
 */
async function ensureEnvironmentRole(
  admin: pg.Client,
  database: string,
  filePassword: string | undefined,
): Promise<{ password: string; changes: string[] }> {
  const role = environmentRole(database);
  const changes: string[] = [];
  const r = await admin.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role]);
  let password = filePassword;
  if (r.rowCount === 0) {
    password = generateSecret(24);
    await admin.query(
      `CREATE ROLE ${quoteIdent(role)} LOGIN ${LEAST} PASSWORD ${quoteLiteral(scramVerifier(password))}`,
    );
    changes.push(`role ${role}`);
  } else if (!password || !r.rows[0].rolpassword || !scramMatches(password, r.rows[0].rolpassword)) {
    // The platform's own role, and its env file (the only holder of the password) is gone or stale: a new one.
    password = generateSecret(24);
    await admin.query(`ALTER ROLE ${quoteIdent(role)} PASSWORD ${quoteLiteral(scramVerifier(password))}`);
    changes.push(`role ${role}: new password (its env file had none that matched)`);
  }
  registerSecret(password);
  const owner = (
    await admin.query("SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = $1", [database])
  ).rows[0]?.o as string;
  if (owner !== role) {
    await admin.query(`ALTER DATABASE ${quoteIdent(database)} OWNER TO ${quoteIdent(role)}`);
    changes.push(`${database}: owner ${owner} -> ${role}`);
  }
  return { password, changes };
}

/**
 * dev-up's step for the ladder: every environment database gets its role,
 * Supabase's database side and its env file. Idempotent.
 */
export async function ensureEnvironments(cfg: Config): Promise<string[]> {
  if (isCustomerStack(cfg)) return ensureCustomerEnvironments(cfg);
  const changes: string[] = [];
  const admin = await connect(cfg);
  try {
    for (const database of cfg.databases) {
      const path = envFilePath(cfg, database);
      const old = readEnvFile(path);
      const { password, changes: roleChanges } = await ensureEnvironmentRole(admin, database, old.password);
      changes.push(...roleChanges);
      const target = { database, owner: environmentRole(database) };
      changes.push(...(await prepareDatabase(cfg, admin, target)));
      const keys = await apiKeysFor(cfg, database, old.keys);
      if (writeIfChanged(path, renderEnvFile(cfg, { database, role: target.owner, password, keys }), { mode: 0o600 })) {
        changes.push(`${path.replace(cfg.rootDir + "/", "")} (mode 0600)`);
      }
    }
  } finally {
    await admin.end().catch(() => {});
  }
  return changes;
}

/**
 * A customer's stack (`client-*`, made by `make deploy-client`): its environment roles are
 * deploy-client's (`<database>_app`, scripts/lib/deploy/settings.ts roleFor), with the bundle's
 * passwords and env files; taking their databases over here would undo each deploy. Only
 * Supabase's facts are applied, for the owner deploy-client set; a database whose role does not
 * exist yet is left for deploy-client, which calls this right after creating the roles.
 */
/** Supabase's facts for one database: those in the shared catalogs, then those inside it. */
async function prepareDatabase(
  cfg: Config,
  admin: pg.Client,
  target: { database: string; owner: string },
): Promise<string[]> {
  const changes = await ensureClusterFacts(admin, target);
  const db = await connect(cfg, { database: target.database, catalogOnly: true });
  try {
    changes.push(...(await ensureDatabaseFacts(db, target)));
  } finally {
    await db.end().catch(() => {});
  }
  return changes;
}

export const isCustomerStack = (cfg: Pick<Config, "stack">) => cfg.stack.startsWith("client-");

export async function ensureCustomerEnvironments(cfg: Config): Promise<string[]> {
  const changes: string[] = [];
  const admin = await connect(cfg);
  try {
    for (const database of cfg.databases) {
      const target = { database, owner: `${database}_app` };
      if ((await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [target.owner])).rowCount === 0) continue;
      changes.push(...(await prepareDatabase(cfg, admin, target)));
    }
  } finally {
    await admin.end().catch(() => {});
  }
  return changes;
}

/**
 * The server settings Supabase needs (wal_level = logical) in Patroni's DCS;
 * members restart one at a time, replicas first, when it changed. Native
 * dev-up calls it once Patroni is healthy and before any client front door
 * starts; bootstrap.dcs already carries it, so a new cluster never restarts.
 */
export const ensureSupabaseServerSettings = (cfg: Config): Promise<string[]> =>
  ensureDcsParameters(cfg, SERVER_SETTINGS, Object.keys(SERVER_SETTINGS), "Supabase settings");

/** Both, in dev-up's order (tests and scripts that want the whole preparation). */
export async function prepareSupabaseStack(cfg: Config): Promise<string[]> {
  return [...(await ensureSupabaseServerSettings(cfg)), ...(await ensureEnvironments(cfg))];
}
