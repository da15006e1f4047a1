/**
 * Pooling on a customer's stack (deploy-client). The target's dev-up runs pgbouncer like on any
 * stack, on HAPROXY_ADDRESS and the default POOL_PORT (the client's stack env file does not set it,
 * so existing customers' stack files stay byte for byte the same). The environment roles
 * (`orchestrator_ai_<env>_app`) are made after dev-up, so their verifiers are copied into
 * pgbouncer's auth_file and it is RELOADed once they exist.
 */
import type { Config } from "./config";
import { keyMeta } from "./settings/engine";
import { ENV_SETTINGS } from "./settings/env";
import { poolTarget, withClient } from "./pg";
import { syncPool } from "./pool";
import { procSpecs } from "./native/specs";

/** The port the client's DATABASE_URL (pooled) points at: the loader's default POOL_PORT. */
export const CLIENT_POOL_PORT = Number(keyMeta(ENV_SETTINGS.keys.POOL_PORT).default);

/** After ensureEnvironmentRoles: the environment roles may log in through the pooler. */
export async function syncClientPool(cfg: Config): Promise<string[]> {
  const r = await withClient(cfg, {}, (c) => syncPool(cfg, c, procSpecs(cfg).pool));
  return r === "reloaded" ? ["pgbouncer: environment roles may log in (auth_file re-copied, RELOAD)"] : [];
}

/** Health: the environment's role reaches its database through the pooler, on the primary. */
export async function pooledCheck(
  cfg: Config,
  env: string,
  role: string,
  password: string,
  database: string,
): Promise<{ check: string; ok: boolean; detail: string }> {
  const check = `${env}: pooled`;
  try {
    const r = await withClient(cfg, { user: role, password, database, target: poolTarget(cfg), timeoutMs: 5000 }, (c) =>
      c.query("SELECT current_database() AS db, pg_is_in_recovery() AS rec"),
    );
    const ok = r.rows[0].db === database && r.rows[0].rec === false;
    return {
      check,
      ok,
      detail: `${role} -> ${r.rows[0].db} through pgbouncer ${cfg.pool.address}:${cfg.pool.port}${r.rows[0].rec ? " (landed on a replica)" : " (primary)"}`,
    };
  } catch (e) {
    return {
      check,
      ok: false,
      detail: `${role} -> ${database} through pgbouncer ${cfg.pool.address}:${cfg.pool.port}: ${(e as Error).message}`,
    };
  }
}
