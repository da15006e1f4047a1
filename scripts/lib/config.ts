/**
 * One loader, one validation: envs/<stack>.env (committed settings) and
 * envs/.secrets.<stack>.env (generated, 0600) become a typed Config. Nothing
 * else parses env files; scripts ask the Config for ports, passwords, paths.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { ToolkitError } from "./errors";
import { readSecrets, type Secrets } from "./secrets";
import { runtimeDirFor } from "./rundir";
import { assertStackOwnership } from "./ownership";
import { dockerSettings, IMAGE_RE, type DockerSettings } from "./compose-settings";
import { offsiteSettings, type OffsiteSettings } from "./backup/offsite-settings";

export const ROOT_DIR = resolve(import.meta.dir, "../..");

const NAME_RE = /^[a-z][a-z0-9_]{1,30}$/;
const ipv4 = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, "must be an IPv4 address like 127.0.0.11")
  .refine((s) => s.split(".").every((o) => Number(o) <= 255), "each part of an IPv4 address must be 0-255");
const port = z.coerce
  .number({ message: "must be a number" })
  .int("must be a whole number")
  .min(1, "must be 1-65535")
  .max(65535, "must be 1-65535");
const bool = z.enum(["true", "false"], { message: "must be true or false" }).transform((v) => v === "true");
const seconds = (min: number) =>
  z.coerce.number({ message: "must be a number of seconds" }).int("must be a whole number of seconds").min(min, `must be at least ${min}`);
const list = (item: z.ZodType<string, string>) =>
  z.string().transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean)).pipe(z.array(item));

/** Every key an env file may hold, with its rule, a hint for the fix, and (for optional keys) a default. */
/** IMAGE_<NAME> (scripts/lib/compose-settings.ts IMAGE_KEYS): empty, or an image reference. */
const image = { schema: z.string().regex(IMAGE_RE, "must be an image reference like registry/name:tag"), hint: "empty: the pinned image in compose/*.yml", default: "" };

export const SETTINGS = {
  CLUSTER_NAME: { schema: z.string().regex(/^[a-z][a-z0-9-]{1,40}$/, "must be lowercase letters, digits and dashes"), hint: "e.g. CLUSTER_NAME=pgplatform-dev" },
  MEMBER_ADDRESSES: { schema: list(ipv4).refine((a) => a.length === 3, "must list exactly 3 addresses").refine((a) => new Set(a).size === a.length, "addresses must differ"), hint: "three loopback or host addresses, e.g. 127.0.0.11,127.0.0.12,127.0.0.13" },
  PG_PORT: { schema: port, hint: "Postgres port on every member, e.g. 5432" },
  PATRONI_PORT: { schema: port, hint: "Patroni REST API port on every member, e.g. 8008" },
  ETCD_CLIENT_PORT: { schema: port, hint: "e.g. 2379" },
  ETCD_PEER_PORT: { schema: port, hint: "e.g. 2380" },
  HAPROXY_ADDRESS: { schema: ipv4, hint: "where HAProxy listens, e.g. 127.0.0.1" },
  HAPROXY_RW_PORT: { schema: port, hint: "read-write port (routes to the leader), e.g. 6012" },
  HAPROXY_RO_PORT: { schema: port, hint: "read-only port (routes to replicas), e.g. 6013" },
  HAPROXY_STATS_PORT: { schema: port, hint: "HAProxy stats page, e.g. 6014" },
  HAPROXY_CHECK_INTER_MS: { schema: z.coerce.number().int().min(100, "must be at least 100"), hint: "health-check interval in ms, e.g. 1000" },
  HAPROXY_CHECK_FALL: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "failed checks before a server is down, e.g. 2" },
  HAPROXY_CHECK_RISE: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "passed checks before a server is up, e.g. 2" },
  API_ADDRESS: { schema: ipv4, hint: "where nginx listens, e.g. 127.0.0.1" },
  API_PORT: { schema: port, hint: "nginx / Supabase API port, e.g. 6010" },
  PATRONI_TTL: { schema: seconds(5), hint: "leader lock TTL in seconds, e.g. 10" },
  PATRONI_LOOP_WAIT: { schema: seconds(1), hint: "e.g. 1" },
  PATRONI_RETRY_TIMEOUT: { schema: seconds(1), hint: "e.g. 3" },
  PATRONI_MAX_LAG_ON_FAILOVER: { schema: z.coerce.number().int().min(0, "must be 0 or more"), hint: "bytes, e.g. 1048576" },
  SYNCHRONOUS_MODE: { schema: bool, hint: "true or false" },
  FAILSAFE_MODE: { schema: bool, hint: "true or false" },
  PG_HBA_CIDR: { schema: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "must be an IPv4 CIDR like 127.0.0.0/8"), hint: "network allowed to connect (password required), e.g. 127.0.0.0/8" },
  PG_BIN_DIR: { schema: z.string().min(1), hint: "e.g. /usr/lib/postgresql/15/bin" },
  PG_SHARED_BUFFERS: { schema: z.string().regex(/^\d+(kB|MB|GB)$/, "must be a size like 128MB"), hint: "e.g. 128MB" },
  DATABASES: { schema: list(z.string().regex(NAME_RE, "database names must match ^[a-z][a-z0-9_]{1,30}$")).refine((a) => a.length > 0, "must list at least one database"), hint: "comma-separated, e.g. orchestrator_ai_dev,orchestrator_ai_staging" },
  RUNTIME: { schema: z.enum(["auto", "native", "docker"], { message: "must be auto, native or docker" }), hint: "auto is native where its packages are present or apt can install them, else docker when an engine answers" },
  STATE_DIR: { schema: z.string().min(1), hint: "folder for rendered files, data, logs, e.g. .state" },
  MEMBER_ROOT: { schema: z.string(), hint: "leave empty to derive; where member data dirs live", default: "" },
  // Backups (scripts/lib/backup): every key has a default so older env files keep loading.
  BACKUP_DIR: { schema: z.string(), hint: "where logical backups go; empty: $STATE_DIR/<stack>/backups", default: "" },
  BACKUP_REPO_DIR: { schema: z.string(), hint: "pgBackRest repository; empty: <member root>/pgbackrest/repo (must be writable by postgres)", default: "" },
  BACKUP_RETENTION_DAILY: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "daily backups to keep, e.g. 7", default: "7" },
  BACKUP_RETENTION_WEEKLY: { schema: z.coerce.number().int().min(0, "must be 0 or more"), hint: "weekly backups to keep, e.g. 4", default: "4" },
  BACKUP_FULL_EVERY_DAYS: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "physical full backup at most this many days apart (differential otherwise), e.g. 7", default: "7" },
  BACKUP_LOCK_WAIT_SECONDS: { schema: z.coerce.number().int().min(1, "must be at least 1").max(86400, "must be at most 86400"), hint: "seconds pg_dump waits for a table an app holds locked (ACCESS EXCLUSIVE) before the backup fails naming the holder, e.g. 300", default: "300" },
  BACKUP_JOBS: { schema: z.coerce.number().int().min(1, "must be at least 1").max(64, "must be at most 64"), hint: "parallel jobs for pg_dump/pg_restore/pgBackRest, e.g. 2", default: "2" },
  BACKUP_ALERT_URL: { schema: z.string().regex(/^(https?:\/\/\S+)?$/, "must be an http(s) URL or empty"), hint: "webhook POSTed a JSON body when a backup fails", default: "" },
  BACKUP_ALERT_COMMAND: { schema: z.string(), hint: "command run (no shell; split on spaces) with the failure on stdin, e.g. /usr/local/bin/notify-ops", default: "" },
  BACKUP_SCHEDULE: { schema: z.string().regex(/^\S+ \S+ \S+ \S+ \S+$/, "must be a 5-field cron schedule"), hint: "cron schedule for make backup-cron, e.g. 15 2 * * *", default: "15 2 * * *" },
  BACKUP_ARCHIVE_TIMEOUT: { schema: seconds(0), hint: "force a WAL segment switch after this many seconds (bounds PITR data loss), e.g. 60", default: "60" },
  API_KEY_TTL_DAYS: { schema: z.coerce.number({ message: "must be a number of days" }).int("must be a whole number of days").min(1, "must be at least 1 day").max(1825, "must be at most 1825 days (5 years)"), hint: "lifetime of the Supabase anon/service API keys in days (re-issued on rotation), e.g. 365", default: "365" },
  BACKUP_SCRATCH_ADDRESS: { schema: z.union([z.literal(""), ipv4]), hint: "where restore-pitr's scratch instance listens; empty: <HAPROXY_ADDRESS block>.21", default: "" },
  // Off-site backups (scripts/lib/backup/offsite*.ts, issue 17): a second pgBackRest repository. Key, secret and cipher passphrase live in the secrets file.
  BACKUP_OFFSITE: { schema: z.enum(["s3", "ssh", "none"], { message: "must be s3, ssh or none" }), hint: "s3: an S3-compatible object store; none: local backups only", default: "none" },
  BACKUP_OFFSITE_PATH: { schema: z.string().regex(/^$|^\/[A-Za-z0-9._\/-]*$/, "must be an absolute path like /pgplatform/prod, or empty"), hint: "the repository's path on the target (S3: the prefix in the bucket); empty: /pgplatform/<CLUSTER_NAME>", default: "" },
  BACKUP_OFFSITE_S3_BUCKET: { schema: z.string().regex(/^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name (3-63 lowercase letters, digits, dots, dashes)"), hint: "e.g. acme-backups", default: "" },
  BACKUP_OFFSITE_S3_REGION: { schema: z.string().regex(/^$|^[a-z0-9-]{2,32}$/, "must be a region name like eu-central or fsn1"), hint: "e.g. fsn1 (Hetzner) or eu-central-1", default: "" },
  BACKUP_OFFSITE_S3_ENDPOINT: { schema: z.string().regex(/^$|^[A-Za-z0-9.-]+(:\d{1,5})?$/, "must be host or host:port, without https://"), hint: "e.g. fsn1.your-objectstorage.com (TLS always; :port when not 443)", default: "" },
  BACKUP_OFFSITE_S3_URI_STYLE: { schema: z.enum(["host", "path"], { message: "must be host or path" }), hint: "host: bucket.endpoint (AWS, Hetzner); path: endpoint/bucket (most self-hosted stores)", default: "host" },
  BACKUP_OFFSITE_S3_CA_FILE: { schema: z.string().regex(/^$|^\/\S+$/, "must be an absolute path or empty"), hint: "PEM CA bundle the endpoint's certificate is verified against; empty: the system store", default: "" },
  BACKUP_OFFSITE_CIPHER: { schema: z.enum(["aes-256-cbc", "none"], { message: "must be aes-256-cbc or none" }), hint: "encryption of the off-site repository (passphrase generated into the secrets file)", default: "aes-256-cbc" },
  BACKUP_OFFSITE_RETENTION_FULL: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "full backups the off-site repository keeps (may be more than the local one), e.g. 8", default: "8" },
  BACKUP_OFFSITE_RETENTION_DIFF: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "differential backups the off-site repository keeps, e.g. 7", default: "7" },
  BACKUP_OFFSITE_DRILL_SCHEDULE: { schema: z.string().regex(/^\S+ \S+ \S+ \S+ \S+$/, "must be a 5-field cron schedule"), hint: "cron schedule of make backup-drill (restore from off-site into a scratch instance), e.g. 45 3 * * 0", default: "45 3 * * 0" },
  // Access per app (scripts/lib/access.ts, `make access-plan`): defaults keep older env files loading and change nothing.
  PUBLIC_DOMAIN: { schema: z.string().regex(/^$|^(?=.{1,200}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, "must be a DNS name like example.com, or empty"), hint: "public apps get https://<app>.<PUBLIC_DOMAIN> through the tunnel, e.g. example.com", default: "" },
  TUNNEL: { schema: z.enum(["cloudflare", "none"], { message: "must be cloudflare or none" }), hint: "cloudflare: public apps through a Cloudflare Tunnel; none: nothing public", default: "none" },
  TAILNET: { schema: z.enum(["tailscale", "none"], { message: "must be tailscale or none" }), hint: "tailscale: private apps on the tailnet with `tailscale serve`; none: loopback only", default: "none" },
  TAILNET_HOSTNAME: { schema: z.string().regex(/^$|^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, "must be a hostname like server.tail1234.ts.net, or empty"), hint: "this server's MagicDNS name; empty: ${TS_CERT_DOMAIN} (filled in by tailscale)", default: "" },
  CLOUDFLARE_TUNNEL_ID: { schema: z.string().regex(/^$|^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "must be the tunnel's UUID or name"), hint: "from `cloudflared tunnel create <name>`", default: "" },
  CLOUDFLARE_CREDENTIALS_FILE: { schema: z.string().regex(/^$|^\/\S+\.json$/, "must be an absolute path to the tunnel's .json credentials"), hint: "empty: /etc/cloudflared/<CLOUDFLARE_TUNNEL_ID>.json", default: "" },
  TUNNEL_ORIGIN_PORT: { schema: z.union([z.literal(""), port]), hint: "nginx's loopback listener the tunnel forwards to; empty: API_PORT + 6 (API_PORT + 5 is the pooler's in the port plan)", default: "" },
  ALLOW_REMOTE_ACCESS: { schema: bool, hint: "customer stacks (client-*) refuse TUNNEL/TAILNET unless true", default: "false" },
  // Pooling (pgbouncer on HAPROXY_ADDRESS, in front of HAProxy's read-write port): defaults so older env files keep loading.
  POOL_PORT: { schema: port, hint: "pgbouncer's port on HAPROXY_ADDRESS (port plan: 6015)", default: "6015" },
  POOL_MAX_CLIENT_CONN: { schema: z.coerce.number().int().min(10, "must be at least 10").max(100000, "must be at most 100000"), hint: "client connections pgbouncer accepts, e.g. 1000", default: "1000" },
  POOL_DEFAULT_POOL_SIZE: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "server connections per database and user, e.g. 20", default: "20" },
  POOL_RESERVE_POOL_SIZE: { schema: z.coerce.number().int().min(0, "must be 0 or more"), hint: "extra server connections a waiting pool may borrow, e.g. 5", default: "5" },
  POOL_MAX_DB_CONNECTIONS: { schema: z.coerce.number().int().min(1, "must be at least 1"), hint: "server connections per database, all users together, e.g. 50", default: "50" },
  POOL_PAUSE_TIMEOUT: { schema: seconds(1), hint: "seconds a PAUSE may wait for in-flight transactions before a switchover aborts, e.g. 10", default: "10" },
  // Monitoring (scripts/lib/monitoring.ts): Prometheus, Alertmanager and exporters on HAPROXY_ADDRESS.
  MONITORING: { schema: bool, hint: "true: dev-up also runs Prometheus, Alertmanager, postgres_exporter and node_exporter", default: "false" },
  PROMETHEUS_PORT: { schema: port, hint: "Prometheus on HAPROXY_ADDRESS, e.g. 9090", default: "9090" },
  ALERTMANAGER_PORT: { schema: port, hint: "Alertmanager on HAPROXY_ADDRESS, e.g. 9093", default: "9093" },
  NODE_EXPORTER_PORT: { schema: port, hint: "node_exporter on HAPROXY_ADDRESS, e.g. 9110 (its usual 9100 is hyperarchy's in the app port plan)", default: "9110" },
  POSTGRES_EXPORTER_PORT: { schema: port, hint: "postgres_exporter on HAPROXY_ADDRESS, e.g. 9187", default: "9187" },
  MONITORING_INTERVAL: { schema: seconds(1), hint: "seconds between scrapes and rule evaluations, e.g. 15", default: "15" },
  // Docker runtime (scripts/lib/compose-settings.ts): GoTrue's site URL and SMTP, and image overrides (`image`: empty keeps the compose file's pinned upstream image).
  SUPABASE_SITE_URL: { schema: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, "must be an http(s) URL"), hint: "where GoTrue's e-mail links send users back to (the main app), e.g. http://127.0.0.1:6100", default: "http://127.0.0.1:6100" },
  SMTP_HOST: { schema: z.string().regex(/^$|^[A-Za-z0-9.-]+$/, "must be a host name or empty"), hint: "mail server GoTrue sends through; empty: no mail, sign-ups confirmed at once", default: "" },
  SMTP_PORT: { schema: port, hint: "e.g. 587", default: "587" },
  SMTP_USER: { schema: z.string(), hint: "SMTP login (its password: SMTP_PASS in envs/.secrets.<stack>.env)", default: "" },
  SMTP_ADMIN_EMAIL: { schema: z.string().regex(/^[^\s@]+@[^\s@]+$/, "must be an e-mail address"), hint: "sender address of GoTrue's mail, e.g. admin@example.com", default: "admin@example.com" },
  SMTP_SENDER_NAME: { schema: z.string(), hint: "sender name of GoTrue's mail", default: "pgplatform" },
  IMAGE_ETCD: image,
  IMAGE_PATRONI: image,
  IMAGE_HAPROXY: image,
  IMAGE_GOTRUE: image,
  IMAGE_POSTGREST: image,
  IMAGE_REALTIME: image,
  IMAGE_STORAGE: image,
  IMAGE_POSTGRES_META: image,
  IMAGE_STUDIO: image,
  IMAGE_KONG: image,
  IMAGE_NGINX: image,
  IMAGE_CLOUDFLARED: image,
  IMAGE_PGBOUNCER: image,
  // Log rotation (scripts/lib/logrotate.ts): every component's log in the stack's log folder is capped.
  LOG_MAX_SIZE_KB: { schema: z.coerce.number().int().min(64, "must be at least 64").max(1048576, "must be at most 1048576 (1 GB)"), hint: "a component's log is rotated (copy, then truncate) once it is bigger than this, e.g. 10240", default: "10240" },
  LOG_KEEP: { schema: z.coerce.number().int().min(1, "must be at least 1").max(20, "must be at most 20"), hint: "rotated copies kept per component (<name>.log.1 newest), e.g. 2", default: "2" },
} as const satisfies Record<string, Setting>;

/** A key with a `default` may be left out of an env file (keys added later must have one). */
interface Setting {
  schema: z.ZodTypeAny;
  hint: string;
  default?: string;
}

type Key = keyof typeof SETTINGS;

/** max_connections in patroni/patroni.yml.tmpl (a unit test keeps the two equal). */
export const PG_MAX_CONNECTIONS = 200;
/** Connections kept outside the pooler: superuser_reserved_connections (3), Patroni, replication, pg_rewind, backups, direct URLs. */
export const PG_CONNECTIONS_OUTSIDE_POOL = 20;

export interface PoolSettings {
  address: string;
  port: number;
  maxClientConn: number;
  defaultPoolSize: number;
  reservePoolSize: number;
  maxDbConnections: number;
  pauseTimeoutS: number;
}

/**
 * Pool sizes the cluster can serve: one database's pools (all users) are capped at
 * max_db_connections, and the environment ladder's databases together must fit in
 * max_connections less what stays outside the pooler.
 */
export function poolProblem(p: Pick<PoolSettings, "defaultPoolSize" | "reservePoolSize" | "maxDbConnections">, databases: number, maxConnections = PG_MAX_CONNECTIONS): { key: string; message: string; fix: string } | undefined {
  const budget = maxConnections - PG_CONNECTIONS_OUTSIDE_POOL;
  if (p.defaultPoolSize + p.reservePoolSize > p.maxDbConnections) {
    return { key: "POOL_DEFAULT_POOL_SIZE", message: `POOL_DEFAULT_POOL_SIZE + POOL_RESERVE_POOL_SIZE (${p.defaultPoolSize} + ${p.reservePoolSize}) exceeds POOL_MAX_DB_CONNECTIONS (${p.maxDbConnections})`, fix: "lower the pool sizes or raise POOL_MAX_DB_CONNECTIONS" };
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

export interface Member {
  name: string; // pg1..pg3
  index: number;
  address: string;
  pgPort: number;
  restPort: number;
  etcdName: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  /** Member runtime dir (patroni.yml, data): owned by the postgres OS user. */
  dir: string;
  dataDir: string;
  /** Its Unix socket dir: under the short runtime dir (never the checkout: sun_path is 107 bytes). */
  socketDir: string;
}

export interface Timing {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
  maximumLagOnFailover: number;
  synchronousMode: boolean;
  failsafeMode: boolean;
}

export interface Config {
  stack: string;
  file: string;
  rootDir: string;
  clusterName: string;
  namespace: string;
  members: Member[];
  haproxy: { address: string; rwPort: number; roPort: number; statsPort: number; interMs: number; fall: number; rise: number };
  api: { address: string; port: number };
  timing: Timing;
  pgHbaCidr: string;
  pgBinDir: string;
  sharedBuffers: string;
  databases: string[];
  runtime: "auto" | "native" | "docker";
  stateDir: string; // .state/<stack>
  memberRoot: string;
  /** Short folder for every Unix socket of the stack (scripts/lib/rundir.ts). */
  runtimeDir: string;
  logsDir: string;
  reportsDir: string;
  renderedDir: string;
  secretsFile: string;
  /** The OS user the Postgres side runs as: `postgres` when we are root, else ourselves. */
  pgOsUser: string | undefined;
  secrets: Secrets;
  /** Lifetime of the API keys signed for the Supabase services (API_KEY_TTL_DAYS). */
  apiKeyTtlDays: number;
  backup: BackupSettings;
  pool: PoolSettings;
  access: AccessSettings;
  monitoring: MonitoringSettings;
  docker: DockerSettings;
  /** Size cap per component log and rotated copies kept (scripts/lib/logrotate.ts). */
  logs: { maxSizeKb: number; keep: number };
}

/** Prometheus, Alertmanager and the exporters (scripts/lib/monitoring.ts); they listen on `address` only. */
export interface MonitoringSettings {
  enabled: boolean;
  address: string;
  prometheusPort: number;
  alertmanagerPort: number;
  nodeExporterPort: number;
  postgresExporterPort: number;
  intervalSeconds: number;
}

/** Private and public access per app (scripts/lib/access.ts). */
export interface AccessSettings {
  publicDomain: string;
  tunnel: "cloudflare" | "none";
  tailnet: "tailscale" | "none";
  tailnetHostname: string;
  tunnelId: string;
  credentialsFile: string;
  /** nginx's tunnel-origin listener: always loopback, never a public address */
  originAddress: string;
  originPort: number;
  allowRemote: boolean;
}

export interface BackupSettings {
  /** logical backups: <dir>/<UTC stamp>/ */
  dir: string;
  /** pgBackRest's home (config, log, lock): <memberRoot>/pgbackrest; archive_command finds it relative to each data dir. */
  pgbackrestHome: string;
  repoDir: string;
  stanza: string;
  retentionDaily: number;
  retentionWeekly: number;
  fullEveryDays: number;
  jobs: number;
  /** seconds pg_dump (and the row count beside it) wait for a lock before failing with BACKUP_LOCKED */
  lockWaitSeconds: number;
  alertUrl: string;
  alertCommand: string;
  schedule: string;
  archiveTimeout: number;
  scratchAddress: string;
  offsite: OffsiteSettings;
}

/** Pure timing rule Patroni 3.0 does not enforce: a leader must be able to renew before its lock expires. */
export function timingProblem(t: Pick<Timing, "ttl" | "loopWait" | "retryTimeout">): string | undefined {
  const need = t.loopWait + 2 * t.retryTimeout;
  if (need > t.ttl) {
    return `loop_wait + 2*retry_timeout must be <= ttl (${t.loopWait} + 2*${t.retryTimeout} = ${need} > ${t.ttl})`;
  }
  return undefined;
}

function closestKey(key: string): string | undefined {
  const keys = Object.keys(SETTINGS);
  let best: [string, number] | undefined;
  for (const k of keys) {
    const d = levenshtein(key, k);
    if (!best || d < best[1]) best = [k, d];
  }
  return best && best[1] <= 3 ? best[0] : undefined;
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

export class ConfigError extends ToolkitError {
  constructor(readonly file: string, readonly key: string, message: string, fix: string) {
    super("BAD_CONFIG", `${file}: ${key}: ${message}`, fix);
  }
}

export interface ParseOptions {
  file: string; // for messages, relative to the repo
  stack: string;
  rootDir?: string;
  secrets?: Partial<Secrets>;
  isRoot?: boolean;
}

/** Validate the settings text of one env file. Pure apart from the member-root reachability probe. */
export function parseConfig(text: string, opts: ParseOptions): Config {
  const raw = parseDotenv(Buffer.from(text));
  const file = opts.file;
  for (const key of Object.keys(raw)) {
    if (!(key in SETTINGS)) {
      const near = closestKey(key);
      throw new ConfigError(file, key, "unknown setting", near ? `did you mean ${near}?` : `remove it; known keys are listed in envs/README.md`);
    }
  }
  const v: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [Key, (typeof SETTINGS)[Key]][]) {
    const spec0 = spec as Setting;
    const value = raw[key] ?? spec0.default;
    if (value === undefined) {
      throw new ConfigError(file, key, "is missing", `add a line ${key}=... (${spec.hint})`);
    }
    const r = (spec.schema as z.ZodTypeAny).safeParse(value);
    if (!r.success) {
      const msg = r.error.issues[0]?.message ?? "is invalid";
      throw new ConfigError(file, key, `${msg} (got ${JSON.stringify(value)})`, spec.hint);
    }
    v[key] = r.data;
  }
  const timing: Timing = {
    ttl: v.PATRONI_TTL as number,
    loopWait: v.PATRONI_LOOP_WAIT as number,
    retryTimeout: v.PATRONI_RETRY_TIMEOUT as number,
    maximumLagOnFailover: v.PATRONI_MAX_LAG_ON_FAILOVER as number,
    synchronousMode: v.SYNCHRONOUS_MODE as boolean,
    failsafeMode: v.FAILSAFE_MODE as boolean,
  };
  const tp = timingProblem(timing);
  if (tp) throw new ConfigError(file, "PATRONI_TTL", tp, "raise PATRONI_TTL or lower PATRONI_LOOP_WAIT / PATRONI_RETRY_TIMEOUT");

  const hp = { address: v.HAPROXY_ADDRESS as string, rwPort: v.HAPROXY_RW_PORT as number, roPort: v.HAPROXY_RO_PORT as number, statsPort: v.HAPROXY_STATS_PORT as number };
  uniquePorts(file, [["HAPROXY_RW_PORT", hp.rwPort], ["HAPROXY_RO_PORT", hp.roPort], ["HAPROXY_STATS_PORT", hp.statsPort]], "give each HAProxy listener its own port");
  uniquePorts(file, [["PG_PORT", v.PG_PORT as number], ["PATRONI_PORT", v.PATRONI_PORT as number], ["ETCD_CLIENT_PORT", v.ETCD_CLIENT_PORT as number], ["ETCD_PEER_PORT", v.ETCD_PEER_PORT as number]], "each member service needs its own port");

  const pool: PoolSettings = {
    address: hp.address,
    port: v.POOL_PORT as number,
    maxClientConn: v.POOL_MAX_CLIENT_CONN as number,
    defaultPoolSize: v.POOL_DEFAULT_POOL_SIZE as number,
    reservePoolSize: v.POOL_RESERVE_POOL_SIZE as number,
    maxDbConnections: v.POOL_MAX_DB_CONNECTIONS as number,
    pauseTimeoutS: v.POOL_PAUSE_TIMEOUT as number,
  };
  uniquePorts(file, [["HAPROXY_RW_PORT", hp.rwPort], ["HAPROXY_RO_PORT", hp.roPort], ["HAPROXY_STATS_PORT", hp.statsPort], ["POOL_PORT", pool.port]], "give pgbouncer its own port on HAPROXY_ADDRESS");
  const pp = poolProblem(pool, (v.DATABASES as string[]).length);
  if (pp) throw new ConfigError(file, pp.key, pp.message, pp.fix);

  const rootDir = opts.rootDir ?? ROOT_DIR;
  const stateBase = v.STATE_DIR as string;
  const stateDir = join(isAbsolute(stateBase) ? stateBase : join(rootDir, stateBase), opts.stack);
  const root = opts.isRoot ?? (process.getuid?.() === 0);
  const memberRoot = (v.MEMBER_ROOT as string) || defaultMemberRoot(stateDir, opts.stack, root, rootDir);
  const runtimeDir = runtimeDirFor(opts.stack, root);
  const addresses = v.MEMBER_ADDRESSES as string[];
  const members: Member[] = addresses.map((address, i) => {
    const name = `pg${i + 1}`;
    const dir = join(memberRoot, name);
    return {
      name,
      index: i,
      address,
      pgPort: v.PG_PORT as number,
      restPort: v.PATRONI_PORT as number,
      etcdName: `etcd${i + 1}`,
      etcdClientPort: v.ETCD_CLIENT_PORT as number,
      etcdPeerPort: v.ETCD_PEER_PORT as number,
      dir,
      dataDir: join(dir, "data"),
      socketDir: join(runtimeDir, name),
    };
  });
  const clusterName = v.CLUSTER_NAME as string;
  return {
    stack: opts.stack,
    file,
    rootDir,
    clusterName,
    namespace: "/pgplatform/",
    members,
    haproxy: { ...hp, interMs: v.HAPROXY_CHECK_INTER_MS as number, fall: v.HAPROXY_CHECK_FALL as number, rise: v.HAPROXY_CHECK_RISE as number },
    api: { address: v.API_ADDRESS as string, port: v.API_PORT as number },
    timing,
    pgHbaCidr: v.PG_HBA_CIDR as string,
    pgBinDir: v.PG_BIN_DIR as string,
    sharedBuffers: v.PG_SHARED_BUFFERS as string,
    databases: v.DATABASES as string[],
    runtime: v.RUNTIME as Config["runtime"],
    stateDir,
    memberRoot,
    runtimeDir,
    logsDir: join(stateDir, "logs"),
    reportsDir: join(stateDir, "reports"),
    renderedDir: join(stateDir, "rendered"),
    secretsFile: join(rootDir, "envs", `.secrets.${opts.stack}.env`),
    pgOsUser: root ? "postgres" : undefined,
    secrets: (opts.secrets ?? {}) as Secrets,
    apiKeyTtlDays: v.API_KEY_TTL_DAYS as number,
    backup: {
      dir: (v.BACKUP_DIR as string) ? resolve(rootDir, v.BACKUP_DIR as string) : join(stateDir, "backups"),
      pgbackrestHome: join(memberRoot, "pgbackrest"),
      repoDir: (v.BACKUP_REPO_DIR as string) ? resolve(rootDir, v.BACKUP_REPO_DIR as string) : join(memberRoot, "pgbackrest", "repo"),
      stanza: clusterName,
      retentionDaily: v.BACKUP_RETENTION_DAILY as number,
      retentionWeekly: v.BACKUP_RETENTION_WEEKLY as number,
      fullEveryDays: v.BACKUP_FULL_EVERY_DAYS as number,
      jobs: v.BACKUP_JOBS as number,
      lockWaitSeconds: v.BACKUP_LOCK_WAIT_SECONDS as number,
      alertUrl: v.BACKUP_ALERT_URL as string,
      alertCommand: v.BACKUP_ALERT_COMMAND as string,
      schedule: v.BACKUP_SCHEDULE as string,
      archiveTimeout: v.BACKUP_ARCHIVE_TIMEOUT as number,
      scratchAddress: (v.BACKUP_SCRATCH_ADDRESS as string) || (v.HAPROXY_ADDRESS as string).split(".").slice(0, 3).join(".") + ".21",
      offsite: offsiteSettings(file, clusterName, v),
    },
    access: accessSettings(file, opts.stack, v),
    pool,
    monitoring: monitoringSettings(file, v),
    docker: dockerSettings(v),
    logs: { maxSizeKb: v.LOG_MAX_SIZE_KB as number, keep: v.LOG_KEEP as number },
  };
}

function accessSettings(file: string, stack: string, v: Record<string, unknown>): AccessSettings {
  const api = { address: v.API_ADDRESS as string, port: v.API_PORT as number };
  const a: AccessSettings = {
    publicDomain: v.PUBLIC_DOMAIN as string,
    tunnel: v.TUNNEL as AccessSettings["tunnel"],
    tailnet: v.TAILNET as AccessSettings["tailnet"],
    tailnetHostname: v.TAILNET_HOSTNAME as string,
    tunnelId: v.CLOUDFLARE_TUNNEL_ID as string,
    credentialsFile: (v.CLOUDFLARE_CREDENTIALS_FILE as string) || `/etc/cloudflared/${(v.CLOUDFLARE_TUNNEL_ID as string) || "<tunnel-id>"}.json`,
    // The tunnel reaches nginx on loopback only: on a host whose API address is public, 127.0.0.1.
    originAddress: api.address.startsWith("127.") ? api.address : "127.0.0.1",
    originPort: (v.TUNNEL_ORIGIN_PORT as number | "") || api.port + 6,
    allowRemote: v.ALLOW_REMOTE_ACCESS as boolean,
  };
  if (a.tunnel === "cloudflare") {
    if (!a.publicDomain) throw new ConfigError(file, "PUBLIC_DOMAIN", "is required with TUNNEL=cloudflare", "set PUBLIC_DOMAIN=example.com (public apps get <app>.example.com), or TUNNEL=none");
    if (!a.tunnelId) throw new ConfigError(file, "CLOUDFLARE_TUNNEL_ID", "is required with TUNNEL=cloudflare", "create the tunnel with `cloudflared tunnel create <name>` and set its UUID here");
  }
  // Customer servers stay inside their firewall: remote access is an explicit, written decision.
  if (stack.startsWith("client-") && !a.allowRemote) {
    if (a.tunnel !== "none") throw new ConfigError(file, "TUNNEL", `customer stacks stay inside the firewall (got ${JSON.stringify(a.tunnel)})`, "set TUNNEL=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing");
    if (a.tailnet !== "none") throw new ConfigError(file, "TAILNET", `customer stacks stay inside the firewall (got ${JSON.stringify(a.tailnet)})`, "set TAILNET=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing");
  }
  const taken: [string, number][] = [["API_PORT", api.port], ["HAPROXY_RW_PORT", v.HAPROXY_RW_PORT as number], ["HAPROXY_RO_PORT", v.HAPROXY_RO_PORT as number], ["HAPROXY_STATS_PORT", v.HAPROXY_STATS_PORT as number], ["POOL_PORT", v.POOL_PORT as number]];
  const clash = taken.find(([, p]) => p === a.originPort);
  if (clash) throw new ConfigError(file, "TUNNEL_ORIGIN_PORT", `port ${a.originPort} is also used by ${clash[0]}`, "set TUNNEL_ORIGIN_PORT to a free port");
  return a;
}

function monitoringSettings(file: string, v: Record<string, unknown>): MonitoringSettings {
  const m: MonitoringSettings = {
    enabled: v.MONITORING as boolean,
    address: v.HAPROXY_ADDRESS as string,
    prometheusPort: v.PROMETHEUS_PORT as number,
    alertmanagerPort: v.ALERTMANAGER_PORT as number,
    nodeExporterPort: v.NODE_EXPORTER_PORT as number,
    postgresExporterPort: v.POSTGRES_EXPORTER_PORT as number,
    intervalSeconds: v.MONITORING_INTERVAL as number,
  };
  // They share HAPROXY_ADDRESS with HAProxy (and nginx when API_ADDRESS is the same).
  const onAddress: [string, number][] = [["HAPROXY_RW_PORT", v.HAPROXY_RW_PORT as number], ["HAPROXY_RO_PORT", v.HAPROXY_RO_PORT as number], ["HAPROXY_STATS_PORT", v.HAPROXY_STATS_PORT as number]];
  if (v.API_ADDRESS === v.HAPROXY_ADDRESS) onAddress.push(["API_PORT", v.API_PORT as number]);
  if (m.enabled) uniquePorts(file, [...onAddress, ["PROMETHEUS_PORT", m.prometheusPort], ["ALERTMANAGER_PORT", m.alertmanagerPort], ["NODE_EXPORTER_PORT", m.nodeExporterPort], ["POSTGRES_EXPORTER_PORT", m.postgresExporterPort], ...((v.BACKUP_ALERT_COMMAND as string) ? [["ALERTMANAGER_PORT+1 (the alert relay for BACKUP_ALERT_COMMAND)", m.alertmanagerPort + 1] as [string, number]] : [])], "give each monitoring listener its own port");
  return m;
}

/** Listeners that share an address must not share a port: name the second key that repeats one. */
function uniquePorts(file: string, ports: [key: string, port: number][], fix: string): void {
  const seen = new Map<number, string>();
  for (const [key, port] of ports) {
    if (seen.has(port)) throw new ConfigError(file, key, `port ${port} is also used by ${seen.get(port)}`, fix);
    seen.set(port, key);
  }
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
    throw new ToolkitError("BAD_STACK", `STACK=${JSON.stringify(s)} is not a valid stack name`, "use lowercase letters, digits and dashes, e.g. STACK=dev");
  }
  return s;
}

/** Load envs/<stack>.env and its secrets file (if present). */
export function loadConfig(stack = stackName(), rootDir = ROOT_DIR): Config {
  const rel = `envs/${stack}.env`;
  const path = join(rootDir, rel);
  if (!existsSync(path)) {
    throw new ToolkitError("NO_ENV_FILE", `${rel} does not exist`, `create it from envs/dev.env, or pick an existing stack with STACK=<name>`);
  }
  const cfg = parseConfig(readFileSync(path, "utf8"), { file: rel, stack, rootDir });
  // Before anything acts: a stack (or files) of another user is named, with the repair, not hit with EPERM half-way.
  assertStackOwnership(cfg);
  // Loading registers every value for redaction: no script depends on having called ensureSecrets.
  if (existsSync(cfg.secretsFile)) cfg.secrets = readSecrets(cfg.secretsFile) as Secrets;
  return cfg;
}
