/**
 * One loader, one validation: envs/<stack>.env (committed settings) and
 * envs/.secrets.<stack>.env (generated, 0600) become a typed Config. Nothing
 * else parses env files; scripts ask the Config for ports, passwords, paths.
 * The keys, their rules and hints are one table: scripts/lib/settings/env.ts.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { AccessSettings, Config, Member, ParseOptions } from "./config-types";
import { ToolkitError } from "./errors";
import { assertStackOwnership } from "./ownership";
import { runtimeDirFor } from "./rundir";
import { readSecrets, type Secrets } from "./secrets";
import { SettingsError, parseSettings } from "./settings/engine";
import { ENV_SETTINGS, originPort, type EnvValues } from "./settings/env";
import { offsiteSettings } from "./settings/offsite";
import { dockerSettings } from "./compose-settings";

export type * from "./config-types";
export { PG_CONNECTIONS_OUTSIDE_POOL, PG_MAX_CONNECTIONS, poolProblem, timingProblem } from "./settings/env";
/** Every refusal of an env file: code BAD_CONFIG, naming the file, the key, the value and the fix. */
export { SettingsError as ConfigError } from "./settings/engine";

export const ROOT_DIR = resolve(import.meta.dir, "../..");

/** Validate the settings text of one env file. Pure apart from the member-root reachability probe. */
export function parseConfig(text: string, opts: ParseOptions): Config {
  const file = opts.file;
  const { values: v } = parseSettings(ENV_SETTINGS, text, file);
  const rootDir = opts.rootDir ?? ROOT_DIR;
  const stateDir = join(isAbsolute(v.STATE_DIR) ? v.STATE_DIR : join(rootDir, v.STATE_DIR), opts.stack);
  const root = opts.isRoot ?? process.getuid?.() === 0;
  const memberRoot = v.MEMBER_ROOT || defaultMemberRoot(stateDir, opts.stack, root, rootDir);
  const runtimeDir = runtimeDirFor(opts.stack, root);
  const members: Member[] = v.MEMBER_ADDRESSES.map((address, i) => {
    const name = `pg${i + 1}`;
    const dir = join(memberRoot, name);
    return {
      name,
      index: i,
      address,
      pgPort: v.PG_PORT,
      restPort: v.PATRONI_PORT,
      etcdName: `etcd${i + 1}`,
      etcdClientPort: v.ETCD_CLIENT_PORT,
      etcdPeerPort: v.ETCD_PEER_PORT,
      dir,
      dataDir: join(dir, "data"),
      socketDir: join(runtimeDir, name),
    };
  });
  const secrets: Partial<Secrets> = opts.secrets ?? {};
  return {
    stack: opts.stack,
    file,
    rootDir,
    clusterName: v.CLUSTER_NAME,
    namespace: "/pgplatform/",
    members,
    haproxy: {
      address: v.HAPROXY_ADDRESS,
      rwPort: v.HAPROXY_RW_PORT,
      roPort: v.HAPROXY_RO_PORT,
      statsPort: v.HAPROXY_STATS_PORT,
      interMs: v.HAPROXY_CHECK_INTER_MS,
      fall: v.HAPROXY_CHECK_FALL,
      rise: v.HAPROXY_CHECK_RISE,
    },
    api: { address: v.API_ADDRESS, port: v.API_PORT },
    timing: {
      ttl: v.PATRONI_TTL,
      loopWait: v.PATRONI_LOOP_WAIT,
      retryTimeout: v.PATRONI_RETRY_TIMEOUT,
      maximumLagOnFailover: v.PATRONI_MAX_LAG_ON_FAILOVER,
      synchronousMode: v.SYNCHRONOUS_MODE,
      failsafeMode: v.FAILSAFE_MODE,
    },
    pgHbaCidr: v.PG_HBA_CIDR,
    pgBinDir: v.PG_BIN_DIR,
    sharedBuffers: v.PG_SHARED_BUFFERS,
    databases: v.DATABASES,
    appPortPlan: v.APP_PORT_PLAN,
    runtime: v.RUNTIME,
    stateDir,
    memberRoot,
    runtimeDir,
    logsDir: join(stateDir, "logs"),
    reportsDir: join(stateDir, "reports"),
    renderedDir: join(stateDir, "rendered"),
    secretsFile: join(rootDir, "envs", `.secrets.${opts.stack}.env`),
    pgOsUser: root ? "postgres" : undefined,
    // The Config promises every secret; until the secrets file exists (dev-up writes it) some are absent.
    secrets: secrets as Secrets,
    apiKeyTtlDays: v.API_KEY_TTL_DAYS,
    backup: {
      dir: v.BACKUP_DIR ? resolve(rootDir, v.BACKUP_DIR) : join(stateDir, "backups"),
      pgbackrestHome: join(memberRoot, "pgbackrest"),
      repoDir: v.BACKUP_REPO_DIR ? resolve(rootDir, v.BACKUP_REPO_DIR) : join(memberRoot, "pgbackrest", "repo"),
      stanza: v.CLUSTER_NAME,
      retentionDaily: v.BACKUP_RETENTION_DAILY,
      retentionWeekly: v.BACKUP_RETENTION_WEEKLY,
      fullEveryDays: v.BACKUP_FULL_EVERY_DAYS,
      jobs: v.BACKUP_JOBS,
      lockWaitSeconds: v.BACKUP_LOCK_WAIT_SECONDS,
      offsite: offsiteSettings(v.CLUSTER_NAME, v),
      alertUrl: v.BACKUP_ALERT_URL,
      alertCommand: v.BACKUP_ALERT_COMMAND,
      schedule: v.BACKUP_SCHEDULE,
      archiveTimeout: v.BACKUP_ARCHIVE_TIMEOUT,
      scratchAddress: v.BACKUP_SCRATCH_ADDRESS || v.HAPROXY_ADDRESS.split(".").slice(0, 3).join(".") + ".21",
    },
    access: accessSettings(file, opts.stack, v),
    docker: dockerSettings(v),
    logs: { maxSizeKb: v.LOG_MAX_SIZE_KB, keep: v.LOG_KEEP },
    pool: {
      address: v.HAPROXY_ADDRESS,
      port: v.POOL_PORT,
      maxClientConn: v.POOL_MAX_CLIENT_CONN,
      defaultPoolSize: v.POOL_DEFAULT_POOL_SIZE,
      reservePoolSize: v.POOL_RESERVE_POOL_SIZE,
      maxDbConnections: v.POOL_MAX_DB_CONNECTIONS,
      pauseTimeoutS: v.POOL_PAUSE_TIMEOUT,
    },
    monitoring: {
      enabled: v.MONITORING,
      address: v.HAPROXY_ADDRESS,
      prometheusPort: v.PROMETHEUS_PORT,
      alertmanagerPort: v.ALERTMANAGER_PORT,
      nodeExporterPort: v.NODE_EXPORTER_PORT,
      postgresExporterPort: v.POSTGRES_EXPORTER_PORT,
      intervalSeconds: v.MONITORING_INTERVAL,
    },
  };
}

function accessSettings(file: string, stack: string, v: EnvValues): AccessSettings {
  // Customer servers stay inside their firewall: remote access is an explicit, written decision.
  if (stack.startsWith("client-") && !v.ALLOW_REMOTE_ACCESS) {
    for (const key of ["TUNNEL", "TAILNET"] as const) {
      if (v[key] !== "none") {
        throw new SettingsError(
          "BAD_CONFIG",
          file,
          key,
          `customer stacks stay inside the firewall (got ${JSON.stringify(v[key])})`,
          `set ${key}=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing`,
        );
      }
    }
  }
  return {
    publicDomain: v.PUBLIC_DOMAIN,
    tunnel: v.TUNNEL,
    tailnet: v.TAILNET,
    tailnetHostname: v.TAILNET_HOSTNAME,
    tunnelId: v.CLOUDFLARE_TUNNEL_ID,
    credentialsFile:
      v.CLOUDFLARE_CREDENTIALS_FILE || `/etc/cloudflared/${v.CLOUDFLARE_TUNNEL_ID || "<tunnel-id>"}.json`,
    // The tunnel reaches nginx on loopback only: on a host whose API address is public, 127.0.0.1.
    originAddress: v.API_ADDRESS.startsWith("127.") ? v.API_ADDRESS : "127.0.0.1",
    originPort: originPort(v),
    allowRemote: v.ALLOW_REMOTE_ACCESS,
  };
}

/**
 * Postgres runs as `postgres` when we are root, and that user must reach its
 * data dir. A checkout under a private home (/root is 0700) is not reachable,
 * so member dirs then live under /var/lib/pgplatform/<stack>.
 */
export function defaultMemberRoot(stateDir: string, stack: string, root: boolean, rootDir = ROOT_DIR): string {
  if (!root) return join(stateDir, "members");
  // Only the checkout's ancestors decide (we set the state dir's own mode ourselves),
  // so the answer is the same on every run and pid files keep matching.
  const base = stateDir.startsWith(rootDir + "/") ? rootDir : dirname(stateDir);
  let dir = base;
  while (!existsSync(dir)) dir = dirname(dir);
  for (let d = dir; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return join("/var/lib/pgplatform", stack);
    if (d === "/") break;
  }
  return join(stateDir, "members");
}

export function stackName(): string {
  const s = process.env.STACK ?? "dev";
  if (!/^[a-z][a-z0-9-]{0,30}$/.test(s)) {
    throw new ToolkitError(
      "BAD_STACK",
      `STACK=${JSON.stringify(s)} is not a valid stack name`,
      "use lowercase letters, digits and dashes, e.g. STACK=dev",
    );
  }
  return s;
}

/** Load envs/<stack>.env and its secrets file (if present). */
export function loadConfig(stack = stackName(), rootDir = ROOT_DIR): Config {
  const rel = `envs/${stack}.env`;
  const path = join(rootDir, rel);
  if (!existsSync(path)) {
    throw new ToolkitError(
      "NO_ENV_FILE",
      `${rel} does not exist`,
      `create it from envs/dev.env, or pick an existing stack with STACK=<name>`,
    );
  }
  const cfg = parseConfig(readFileSync(path, "utf8"), { file: rel, stack, rootDir });
  // Before anything acts: a stack (or files) of another user is named, with the repair, not hit with EPERM half-way.
  assertStackOwnership(cfg);
  // Loading registers every value for redaction: no script depends on having called ensureSecrets.
  if (existsSync(cfg.secretsFile)) cfg.secrets = readSecrets(cfg.secretsFile) as Secrets;
  return cfg;
}
