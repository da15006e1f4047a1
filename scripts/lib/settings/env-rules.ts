/**
 * The env file's rules across keys (envs/<stack>.env), checked in order once
 * every key passed its own rule (env.ts declares the keys): off-site backup
 * targets, Patroni's timing, port clashes among the listeners on one address
 * (HAProxy, pgbouncer, nginx's tunnel origin, monitoring), and pool sizes the
 * cluster's max_connections can serve. timingProblem and poolProblem are pure,
 * for config.ts and the tests.
 */
import { keyedPorts, portClash, type Problem } from "./engine";
import type { EnvValues } from "./env";

/** max_connections in patroni/patroni.yml.tmpl (a unit test keeps the two equal). */
export const PG_MAX_CONNECTIONS = 200;
/** Connections kept outside the pooler: superuser_reserved_connections (3), Patroni, replication, pg_rewind, backups, direct URLs. */
export const PG_CONNECTIONS_OUTSIDE_POOL = 20;

/** Pure timing rule Patroni 3.0 does not enforce: a leader must be able to renew before its lock expires. */
export function timingProblem(t: { ttl: number; loopWait: number; retryTimeout: number }): string | undefined {
  const need = t.loopWait + 2 * t.retryTimeout;
  if (need > t.ttl)
    return `loop_wait + 2*retry_timeout must be <= ttl (${t.loopWait} + 2*${t.retryTimeout} = ${need} > ${t.ttl})`;
  return undefined;
}

/**
 * Pool sizes the cluster can serve: one database's pools (all users) are capped at
 * max_db_connections, and the environment ladder's databases together must fit in
 * max_connections less what stays outside the pooler.
 */
export function poolProblem(
  p: { defaultPoolSize: number; reservePoolSize: number; maxDbConnections: number },
  databases: number,
  maxConnections = PG_MAX_CONNECTIONS,
): Problem | undefined {
  const budget = maxConnections - PG_CONNECTIONS_OUTSIDE_POOL;
  if (p.defaultPoolSize + p.reservePoolSize > p.maxDbConnections) {
    return {
      key: "POOL_DEFAULT_POOL_SIZE",
      message: `POOL_DEFAULT_POOL_SIZE + POOL_RESERVE_POOL_SIZE (${p.defaultPoolSize} + ${p.reservePoolSize}) exceeds POOL_MAX_DB_CONNECTIONS (${p.maxDbConnections})`,
      fix: "lower the pool sizes or raise POOL_MAX_DB_CONNECTIONS",
    };
  }
  if (p.maxDbConnections * databases > budget) {
    return {
      key: "POOL_MAX_DB_CONNECTIONS",
      message: `${databases} databases x POOL_MAX_DB_CONNECTIONS ${p.maxDbConnections} = ${p.maxDbConnections * databases} server connections exceed max_connections ${maxConnections} less ${PG_CONNECTIONS_OUTSIDE_POOL} kept outside the pooler (${budget})`,
      fix: `lower POOL_MAX_DB_CONNECTIONS to at most ${Math.floor(budget / databases)}`,
    };
  }
  return undefined;
}

/** nginx's tunnel-origin listener: TUNNEL_ORIGIN_PORT, else API_PORT + 6. */
export const originPort = (v: EnvValues): number => v.TUNNEL_ORIGIN_PORT || v.API_PORT + 6;

const haproxyPorts = (v: EnvValues) => keyedPorts(v, ["HAPROXY_RW_PORT", "HAPROXY_RO_PORT", "HAPROXY_STATS_PORT"]);

/** The keys each off-site kind needs, with an example value for the fix. */
const OFFSITE_REQUIRED = {
  s3: {
    BACKUP_OFFSITE_S3_BUCKET: "acme-backups",
    BACKUP_OFFSITE_S3_REGION: "fsn1",
    BACKUP_OFFSITE_S3_ENDPOINT: "fsn1.your-objectstorage.com",
  },
  ssh: {
    BACKUP_OFFSITE_SSH_HOST: "backup1.example.com",
    BACKUP_OFFSITE_SSH_HOST_KEY: "ssh-ed25519 AAAA... (the backup host's /etc/ssh/ssh_host_ed25519_key.pub)",
  },
} as const;

/** Rules across keys, checked in this order after every key passed its own. */
export const RULES: ((v: EnvValues) => Problem | undefined)[] = [
  (v) => {
    if (v.BACKUP_OFFSITE === "none") return undefined;
    const example: Partial<Record<keyof EnvValues, string>> = OFFSITE_REQUIRED[v.BACKUP_OFFSITE];
    const missing = (Object.keys(example) as (keyof EnvValues)[]).find((k) => !v[k]);
    return missing
      ? {
          key: missing,
          message: `is required with BACKUP_OFFSITE=${v.BACKUP_OFFSITE}`,
          fix: `set it (e.g. ${missing}=${example[missing]}), or BACKUP_OFFSITE=none`,
        }
      : undefined;
  },
  (v) => {
    const message = timingProblem({
      ttl: v.PATRONI_TTL,
      loopWait: v.PATRONI_LOOP_WAIT,
      retryTimeout: v.PATRONI_RETRY_TIMEOUT,
    });
    return message
      ? { key: "PATRONI_TTL", message, fix: "raise PATRONI_TTL or lower PATRONI_LOOP_WAIT / PATRONI_RETRY_TIMEOUT" }
      : undefined;
  },
  (v) => portClash(haproxyPorts(v), "give each HAProxy listener its own port"),
  (v) =>
    portClash(
      keyedPorts(v, ["PG_PORT", "PATRONI_PORT", "ETCD_CLIENT_PORT", "ETCD_PEER_PORT"]),
      "each member service needs its own port",
    ),
  (v) => portClash([...haproxyPorts(v), ["POOL_PORT", v.POOL_PORT]], "give pgbouncer its own port on HAPROXY_ADDRESS"),
  (v) =>
    poolProblem(
      {
        defaultPoolSize: v.POOL_DEFAULT_POOL_SIZE,
        reservePoolSize: v.POOL_RESERVE_POOL_SIZE,
        maxDbConnections: v.POOL_MAX_DB_CONNECTIONS,
      },
      v.DATABASES.length,
    ),
  (v) => {
    if (v.TUNNEL !== "cloudflare") return undefined;
    if (!v.PUBLIC_DOMAIN)
      return {
        key: "PUBLIC_DOMAIN",
        message: "is required with TUNNEL=cloudflare",
        fix: "set PUBLIC_DOMAIN=example.com (public apps get <app>.example.com), or TUNNEL=none",
      };
    if (!v.CLOUDFLARE_TUNNEL_ID)
      return {
        key: "CLOUDFLARE_TUNNEL_ID",
        message: "is required with TUNNEL=cloudflare",
        fix: "create the tunnel with `cloudflared tunnel create <name>` and set its UUID here",
      };
    return undefined;
  },
  (v) => {
    const taken: [string, number][] = [["API_PORT", v.API_PORT], ...haproxyPorts(v), ["POOL_PORT", v.POOL_PORT]];
    const clash = taken.find(([, p]) => p === originPort(v));
    return clash
      ? {
          key: "TUNNEL_ORIGIN_PORT",
          message: `port ${originPort(v)} is also used by ${clash[0]}`,
          fix: "set TUNNEL_ORIGIN_PORT to a free port",
        }
      : undefined;
  },
  (v) => {
    if (!v.MONITORING) return undefined;
    // They share HAPROXY_ADDRESS with HAProxy (and nginx when API_ADDRESS is the same).
    const api: [string, number][] = v.API_ADDRESS === v.HAPROXY_ADDRESS ? [["API_PORT", v.API_PORT]] : [];
    const relay: [string, number][] = v.BACKUP_ALERT_COMMAND
      ? [["ALERTMANAGER_PORT+1 (the alert relay for BACKUP_ALERT_COMMAND)", v.ALERTMANAGER_PORT + 1]]
      : [];
    const own = keyedPorts(v, ["PROMETHEUS_PORT", "ALERTMANAGER_PORT", "NODE_EXPORTER_PORT", "POSTGRES_EXPORTER_PORT"]);
    return portClash([...haproxyPorts(v), ...api, ...own, ...relay], "give each monitoring listener its own port");
  },
];
