/** Postgres access through HAProxy (or a given member), with identifiers and values never spliced raw. */
import pg from "pg";
import type { Config, Member } from "./config";

export type Target = { host: string; port: number };

export const rwTarget = (cfg: Config): Target => ({ host: cfg.haproxy.address, port: cfg.haproxy.rwPort });
export const roTarget = (cfg: Config): Target => ({ host: cfg.haproxy.address, port: cfg.haproxy.roPort });
/** pgbouncer (transaction pooling) in front of the read-write port. */
export const poolTarget = (cfg: Config): Target => ({ host: cfg.pool.address, port: cfg.pool.port });
export const memberTarget = (m: Member): Target => ({ host: m.address, port: m.pgPort });

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  // standard_conforming_strings is on (the default since 9.1): only quotes need doubling.
  return `'${value.replace(/'/g, "''")}'`;
}

export function dbUrl(
  cfg: Config,
  database: string,
  user = "postgres",
  password = cfg.secrets.POSTGRES_PASSWORD,
  target = rwTarget(cfg),
): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${target.host}:${target.port}/${encodeURIComponent(database)}`;
}

/**
 * libpq startup options for a superuser session in a database someone else
 * owns (an app owns its database and its public schema): names resolve in
 * pg_catalog only, so no function or operator the owner created, nor an
 * `ALTER DATABASE ... SET search_path` it chose, runs as the superuser; and
 * the owner's `ALTER DATABASE ... SET statement_timeout` (or idle-in-
 * transaction / lock timeouts) cannot cancel the toolkit's work there (a
 * backup of every database died of one app's 1 ms timeout). Startup options
 * outrank the database's settings.
 */
export const CATALOG_ONLY_OPTIONS =
  "-c search_path=pg_catalog -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=0";

export async function connect(
  cfg: Config,
  opts: {
    database?: string;
    target?: Target;
    user?: string;
    password?: string;
    timeoutMs?: number;
    catalogOnly?: boolean;
  } = {},
): Promise<pg.Client> {
  const t = opts.target ?? rwTarget(cfg);
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: opts.user ?? "postgres",
    password: opts.password ?? cfg.secrets.POSTGRES_PASSWORD,
    database: opts.database ?? "postgres",
    connectionTimeoutMillis: opts.timeoutMs ?? 5000,
    application_name: "pgplatform",
    ...(opts.catalogOnly ? { options: CATALOG_ONLY_OPTIONS } : {}),
  });
  client.on("error", () => {}); // a dropped connection surfaces on the next query instead of crashing us
  await client.connect();
  return client;
}

export async function withClient<T>(
  cfg: Config,
  opts: Parameters<typeof connect>[1],
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const c = await connect(cfg, opts);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}
