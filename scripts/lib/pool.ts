/**
 * pgbouncer, one per stack, on HAPROXY_ADDRESS:POOL_PORT in front of HAProxy's
 * read-write port. Transaction pooling, one pool per database (the environment
 * ladder and every registered app), SCRAM end to end.
 *
 * Auth: the auth_file holds SCRAM verifiers copied from pg_authid, never a
 * password. A client proves its password to pgbouncer against the verifier,
 * and pgbouncer reuses that proof to log in to Postgres as the same role
 * (SCRAM pass-through; needs identical verifiers, hence the copy). The only
 * entry not taken from Postgres is the admin console's own user, whose verifier
 * is computed from POOL_ADMIN_PASSWORD.
 */
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import pg from "pg";
import { loadApps, type AppEntry } from "./apps";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { osUserIds } from "./exec";
import { runningPid, tailFile, type ProcSpec } from "./procs";
import { readTemplate, renderTemplate, writeIfChanged } from "./render";
import { haproxySocketDir } from "./rundir";
import { scramMatches, scramVerifier } from "./scram";
import { ENVIRONMENT_DB_ROLES } from "./supabase-db";

export const POOL_ADMIN_USER = "pgbouncer_admin";
/** Platform roles that may log in through the pooler besides the app roles. */
export const POOL_PLATFORM_ROLES = ["postgres", ...ENVIRONMENT_DB_ROLES];

/** pgbouncer's files live beside the members (reachable by the postgres OS user it runs as). */
export const poolDir = (cfg: Pick<Config, "memberRoot">) => join(cfg.memberRoot, "pgbouncer");
export const poolIniPath = (cfg: Pick<Config, "memberRoot">) => join(poolDir(cfg), "pgbouncer.ini");
export const poolUserlistPath = (cfg: Pick<Config, "memberRoot">) => join(poolDir(cfg), "userlist.txt");

/** Every database with a pool: the environment ladder, then the apps in registry order. */
export const pooledDatabases = (cfg: Pick<Config, "databases">, apps: Pick<AppEntry, "database">[]) => [
  ...cfg.databases,
  ...apps.map((a) => a.database),
];

/**
 * The roles whose verifiers go into the auth_file; a customer stack's environment roles
 * (`<ladder database>` on a dev stack, `<ladder database>_app` made by deploy-client) too, when `databases` is given and they exist.
 */
export const pooledRoles = (apps: Pick<AppEntry, "role">[], databases: string[] = []) => [
  ...POOL_PLATFORM_ROLES,
  // a dev stack's environment role is named after its database (supabase/environments.ts), a customer stack's `<database>_app`
  ...databases.flatMap((d) => [d, `${d}_app`]),
  ...apps.map((a) => a.role),
];

/** Where pgbouncer listens, what it forwards to and where its auth_file is: the native stack's, or a container's. */
export interface PoolWhere {
  upstreamHost: string;
  upstreamPort: number;
  listenAddr: string;
  listenPort: number;
  userlist: string;
}

/** Natively pgbouncer reaches HAProxy's read-write listener through its Unix socket (stack-files.ts says why). */
export const nativePoolWhere = (cfg: Config): PoolWhere => ({
  upstreamHost: haproxySocketDir(cfg.runtimeDir),
  upstreamPort: cfg.haproxy.rwPort,
  listenAddr: cfg.pool.address,
  listenPort: cfg.pool.port,
  userlist: poolUserlistPath(cfg),
});

/** pgbouncer.ini: a pure function of the config and the registry. */
export function renderPoolIni(
  cfg: Config,
  apps: Pick<AppEntry, "database">[],
  template = readTemplate(cfg.rootDir, "pgbouncer/pgbouncer.ini.tmpl"),
  where = nativePoolWhere(cfg),
): string {
  const target = `host=${where.upstreamHost} port=${where.upstreamPort}`;
  const lines = pooledDatabases(cfg, apps).map((db) => `${db} = ${target} dbname=${db}`);
  return renderTemplate(
    template,
    {
      CLUSTER_NAME: cfg.clusterName,
      STACK: cfg.stack,
      POOL_DATABASES: lines.join("\n"),
      POOL_ADDRESS: where.listenAddr,
      POOL_PORT: where.listenPort,
      POOL_USERLIST: where.userlist,
      POOL_MAX_CLIENT_CONN: cfg.pool.maxClientConn,
      POOL_DEFAULT_POOL_SIZE: cfg.pool.defaultPoolSize,
      POOL_RESERVE_POOL_SIZE: cfg.pool.reservePoolSize,
      POOL_MAX_DB_CONNECTIONS: cfg.pool.maxDbConnections,
    },
    "pgbouncer/pgbouncer.ini.tmpl",
  );
}

const quoteUserlist = (s: string) => `"${s.replace(/"/g, '""')}"`;

/**
 * The auth_file: `"role" "SCRAM-SHA-256$..."` lines, sorted by role. Only SCRAM
 * verifiers are accepted: a plain or md5 entry would be a password on disk.
 */
export function renderUserlist(entries: { role: string; verifier: string }[]): string {
  const bad = entries.find(
    (e) => !/^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/.test(e.verifier),
  );
  if (bad)
    throw new ToolkitError(
      "POOL_NOT_SCRAM",
      `role ${bad.role} has no SCRAM-SHA-256 verifier`,
      `set its password again with password_encryption = scram-sha-256 (\`ALTER ROLE ${bad.role} PASSWORD ...\`)`,
    );
  const sorted = [...entries].sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : 0));
  return sorted.map((e) => `${quoteUserlist(e.role)} ${quoteUserlist(e.verifier)}`).join("\n") + "\n";
}

/** The auth_file's entries: the server's own verifiers for `roles` (those that exist), plus the admin user. */
export async function userlistEntries(
  cfg: Config,
  admin: pg.Client,
  roles: string[],
  adminSalt?: Buffer,
): Promise<{ role: string; verifier: string }[]> {
  const r = await admin.query(
    "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1::text[]) AND rolcanlogin AND rolpassword IS NOT NULL",
    [roles],
  );
  const entries = r.rows.map((x) => ({ role: x.rolname as string, verifier: x.rolpassword as string }));
  entries.push({ role: POOL_ADMIN_USER, verifier: scramVerifier(cfg.secrets.POOL_ADMIN_PASSWORD, adminSalt) });
  return entries;
}

/** A connection to pgbouncer's admin console (simple-query protocol only: no parameters). */
export async function poolAdmin(cfg: Config, timeoutMs = 3000): Promise<pg.Client> {
  const c = new pg.Client({
    host: cfg.pool.address,
    port: cfg.pool.port,
    user: POOL_ADMIN_USER,
    password: cfg.secrets.POOL_ADMIN_PASSWORD,
    database: "pgbouncer",
    connectionTimeoutMillis: timeoutMs,
  });
  c.on("error", () => {});
  await c.connect();
  return c;
}

export async function withPoolAdmin<T>(cfg: Config, fn: (c: pg.Client) => Promise<T>, timeoutMs = 3000): Promise<T> {
  let c: pg.Client;
  try {
    c = await poolAdmin(cfg, timeoutMs);
  } catch (e) {
    throw new ToolkitError(
      "POOL_DOWN",
      `pgbouncer at ${cfg.pool.address}:${cfg.pool.port} does not answer: ${(e as Error).message}`,
      `start it with \`make dev-up STACK=${cfg.stack}\`; its log: \`make logs SVC=pgbouncer\``,
    );
  }
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/** RELOAD: pgbouncer re-reads pgbouncer.ini and the auth_file (new or removed app pools). */
export const reloadPool = (cfg: Config) => withPoolAdmin(cfg, async (c) => void (await c.query("RELOAD")));

export interface PoolUsage {
  database: string;
  user: string;
  clientsActive: number;
  clientsWaiting: number;
  serversActive: number;
  serversIdle: number;
  serversUsed: number;
  maxWaitS: number;
  paused: boolean;
}

/** SHOW DATABASES + SHOW POOLS: every configured database, and clients and server connections per pool (database and user). */
export async function poolSnapshot(cfg: Config): Promise<{ databases: string[]; pools: PoolUsage[] }> {
  return withPoolAdmin(cfg, async (c) => {
    const dbs = (await c.query("SHOW DATABASES")).rows.filter((d) => d.name !== "pgbouncer");
    const paused = new Map(dbs.map((d) => [d.name as string, Number(d.paused) === 1]));
    const pools = (await c.query("SHOW POOLS")).rows.filter((p) => p.database !== "pgbouncer");
    return {
      databases: dbs.map((d) => d.name as string),
      pools: pools.map((p) => ({
        database: p.database,
        user: p.user,
        clientsActive: Number(p.cl_active),
        clientsWaiting: Number(p.cl_waiting),
        serversActive: Number(p.sv_active),
        serversIdle: Number(p.sv_idle),
        serversUsed: Number(p.sv_used),
        maxWaitS: Number(p.maxwait),
        paused: paused.get(p.database) ?? false,
      })),
    };
  });
}

export const poolUsage = async (cfg: Config): Promise<PoolUsage[]> => (await poolSnapshot(cfg)).pools;

/** The admin verifier's salt in an existing auth_file while the password is unchanged, so an unchanged stack rewrites nothing. */
export function keptAdminSalt(cfg: Config, userlist: string): Buffer | undefined {
  const old = existsSync(userlist) ? readFileSync(userlist, "utf8") : "";
  const oldAdmin = old.match(new RegExp(`^"${POOL_ADMIN_USER}" "([^"]+)"$`, "m"))?.[1];
  return oldAdmin && scramMatches(cfg.secrets.POOL_ADMIN_PASSWORD, oldAdmin)
    ? Buffer.from(oldAdmin.split("$")[1]!.split(":")[1]!, "base64")
    : undefined;
}

/** Write pgbouncer.ini and the auth_file (0600, owned by the user pgbouncer runs as); true when either changed. */
export async function writePoolFiles(
  cfg: Config,
  admin: pg.Client,
  apps: Pick<AppEntry, "database" | "role">[] = loadApps(cfg),
): Promise<boolean> {
  const ids = cfg.pgOsUser ? osUserIds(cfg.pgOsUser) : undefined;
  const own = { mode: 0o600, ...(ids ?? {}) };
  mkdirSync(poolDir(cfg), { recursive: true, mode: 0o700 });
  if (ids) chownSync(poolDir(cfg), ids.uid, ids.gid);
  const salt = keptAdminSalt(cfg, poolUserlistPath(cfg));
  const users = renderUserlist(await userlistEntries(cfg, admin, pooledRoles(apps, cfg.databases), salt));
  const a = writeIfChanged(poolUserlistPath(cfg), users, own);
  const b = writeIfChanged(poolIniPath(cfg), renderPoolIni(cfg, apps), own);
  return a || b;
}

/** After the registry or a password changed: re-render, and RELOAD a running pgbouncer. */
export async function syncPool(
  cfg: Config,
  admin: pg.Client,
  spec: Pick<ProcSpec, "pidFile" | "marker">,
  apps?: Pick<AppEntry, "database" | "role">[],
): Promise<"reloaded" | "unchanged" | "not running"> {
  const changed = await writePoolFiles(cfg, admin, apps);
  if (!runningPid(spec)) return "not running";
  if (!changed) return "unchanged";
  await reloadPool(cfg);
  return "reloaded";
}

/** dev-up: files, then start pgbouncer (or RELOAD it when its files changed) and wait for its admin console. */
export async function ensurePool(
  cfg: Config,
  admin: pg.Client,
  spec: ProcSpec,
  startOne: (s: ProcSpec) => void,
): Promise<string> {
  const changed = await writePoolFiles(cfg, admin);
  if (runningPid(spec)) {
    if (!changed) return "running";
    await reloadPool(cfg);
    return "reloaded";
  }
  // The log holds client addresses and errors: 0600 before pgbouncer writes to it.
  mkdirSync(dirname(spec.logFile), { recursive: true });
  closeSync(openSync(spec.logFile, "a", 0o600));
  chmodSync(spec.logFile, 0o600);
  // A start-up that "exited without a word" was runningPid() reading the empty command line of
  // setpriv exec'ing pgbouncer (fixed in procs.ts); the retry that covered it started a second
  // pgbouncer beside the first. One start; an exit is the error, with the log's last lines.
  startOne(spec);
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await withPoolAdmin(cfg, async (c) => void (await c.query("SHOW VERSION")), 1000);
      return "started";
    } catch (e) {
      if (!runningPid(spec))
        throw new ToolkitError(
          "POOL_DIED",
          `pgbouncer exited during start-up: ${tailFile(spec.logFile, 5).replace(/\s*\n\s*/g, " | ")}`,
          `see ${spec.logFile}`,
        );
      if (Date.now() > deadline) throw e;
      await Bun.sleep(200);
    }
  }
}
