/**
 * What `make -s db-url` prints: a URL through HAProxy for a database the stack
 * knows (the environment ladder, a registered app, or one that exists on the
 * running cluster, e.g. a restore's TO=), on the read-write or read-only port.
 */
import { existsSync, readFileSync } from "node:fs";
import { parse } from "dotenv";
import { appEnvPath, registeredDatabases } from "./apps";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { envFilePath, readEnvFile } from "./supabase/environments";
import { connect, dbUrl, poolTarget, roTarget, rwTarget, type Target } from "./pg";

const SERVICE_ROLES: Record<
  string,
  "AUTHENTICATOR_PASSWORD" | "SUPABASE_AUTH_ADMIN_PASSWORD" | "SUPABASE_STORAGE_ADMIN_PASSWORD"
> = {
  authenticator: "AUTHENTICATOR_PASSWORD",
  supabase_auth_admin: "SUPABASE_AUTH_ADMIN_PASSWORD",
  supabase_storage_admin: "SUPABASE_STORAGE_ADMIN_PASSWORD",
};

/** rw (the leader) or ro (the replicas); anything else is refused, naming the value. */
export function portTarget(cfg: Config, kind: string): Target {
  if (kind === "rw") return rwTarget(cfg);
  if (kind === "ro") return roTarget(cfg);
  throw new ToolkitError(
    "BAD_PORT",
    `PORT=${JSON.stringify(kind)} is not a route: use rw (read-write, the leader, ${cfg.haproxy.rwPort}) or ro (read-only, the replicas, ${cfg.haproxy.roPort})`,
    "e.g. make -s db-url DB=<database> PORT=ro",
  );
}

/** Databases the stack knows without asking the cluster: the ladder, postgres, and registered apps. */
export const knownDatabases = (cfg: Config) => [...new Set(["postgres", ...registeredDatabases(cfg)])];

/** Throw unless `db` is known (registry first; then the running cluster, for databases made outside the registry). */
export async function requireKnownDatabase(cfg: Config, db: string): Promise<void> {
  const known = knownDatabases(cfg);
  if (known.includes(db)) return;
  let onCluster: string[] | undefined;
  try {
    const c = await connect(cfg, { timeoutMs: 3000 });
    try {
      onCluster = (await c.query("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")).rows.map(
        (r) => r.datname as string,
      );
    } finally {
      await c.end().catch(() => {});
    }
  } catch {
    // the cluster is down: the registry is all we can go by
  }
  if (onCluster?.includes(db)) return;
  const list = [...new Set([...known, ...(onCluster ?? [])])].join(", ");
  throw new ToolkitError(
    "UNKNOWN_DATABASE",
    `database ${JSON.stringify(db)} is not on stack ${cfg.stack}${onCluster ? "" : " (the cluster did not answer; checked the env file and app registry)"}`,
    `pick one of: ${list}; or create an app with \`make new-app NAME=<app>\``,
  );
}

/** The role's password: the superuser's and Supabase's from the secrets file, an app's from its env file. */
export function rolePassword(cfg: Config, role: string): string {
  let password: string | undefined;
  if (role === "postgres") password = cfg.secrets.POSTGRES_PASSWORD;
  else if (SERVICE_ROLES[role]) password = cfg.secrets[SERVICE_ROLES[role]];
  else if (cfg.databases.includes(role))
    password = readEnvFile(envFilePath(cfg, role)).password; // an environment's own role
  else {
    const appEnv = appEnvPath(cfg, role);
    if (existsSync(appEnv)) {
      const url = parse(readFileSync(appEnv)).DATABASE_URL;
      if (url) password = decodeURIComponent(new URL(url).password);
    }
  }
  if (!password)
    throw new ToolkitError(
      "UNKNOWN_ROLE",
      `no password known for role ${role}`,
      "use postgres, authenticator, supabase_auth_admin, supabase_storage_admin, an environment's role (its database's name; run `make dev-up` if its env file is missing), or an app created with `make new-app`",
    );
  return password;
}

export async function connectionUrl(
  cfg: Config,
  o: { db: string; role: string; port: string; pool?: boolean },
): Promise<string> {
  if (o.pool && o.port === "ro")
    throw new ToolkitError(
      "BAD_INPUT",
      "POOL=1 and PORT=ro together: pgbouncer pools the read-write port only",
      "drop one of them",
    );
  const target = o.pool ? poolTarget(cfg) : portTarget(cfg, o.port);
  const password = rolePassword(cfg, o.role);
  await requireKnownDatabase(cfg, o.db);
  return dbUrl(cfg, o.db, o.role, password, target);
}
