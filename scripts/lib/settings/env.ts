/**
 * Every key an env file (envs/<stack>.env) may hold, declared once: its rule,
 * its hint, and for keys added later a default, so older env files keep
 * loading. envs/README.md is this table (a unit test keeps the two equal).
 */
import { z } from "zod";
import { defineSettings, setting, type Values } from "./engine";
import { RULES } from "./env-rules";
import { OFFSITE_KEYS } from "./offsite-keys";
import {
  bool,
  cidr,
  CLUSTER_NAME_RE,
  DB_NAME_RE,
  dnsName,
  image,
  ipv4,
  list,
  memberAddresses,
  oneOf,
  port,
  seconds,
  tunnelId,
  whole,
} from "./rules";

const imageSetting = () => setting(image(), "empty: the pinned image in compose/*.yml", "");
/** IMAGE_<NAME>: the compose files' `${IMAGE_<NAME>:-<pin>}` (scripts/lib/compose-settings.ts IMAGE_KEYS). */
const IMAGE_SETTINGS = {
  IMAGE_ETCD: imageSetting(),
  IMAGE_PATRONI: imageSetting(),
  IMAGE_HAPROXY: imageSetting(),
  IMAGE_GOTRUE: imageSetting(),
  IMAGE_POSTGREST: imageSetting(),
  IMAGE_REALTIME: imageSetting(),
  IMAGE_STORAGE: imageSetting(),
  IMAGE_POSTGRES_META: imageSetting(),
  IMAGE_STUDIO: imageSetting(),
  IMAGE_KONG: imageSetting(),
  IMAGE_NGINX: imageSetting(),
  IMAGE_CLOUDFLARED: imageSetting(),
  IMAGE_PGBOUNCER: imageSetting(),
  IMAGE_PROMETHEUS: imageSetting(),
  IMAGE_ALERTMANAGER: imageSetting(),
  IMAGE_GRAFANA: imageSetting(),
  IMAGE_POSTGRES_EXPORTER: imageSetting(),
};

const KEYS = {
  CLUSTER_NAME: setting(
    z.string().regex(CLUSTER_NAME_RE, "must be lowercase letters, digits and dashes"),
    "e.g. CLUSTER_NAME=pgplatform-dev",
  ),
  MEMBER_ADDRESSES: setting(
    memberAddresses(),
    "three loopback or host addresses, e.g. 127.0.0.11,127.0.0.12,127.0.0.13",
  ),
  PG_PORT: setting(port(), "Postgres port on every member, e.g. 5432"),
  PATRONI_PORT: setting(port(), "Patroni REST API port on every member, e.g. 8008"),
  ETCD_CLIENT_PORT: setting(port(), "e.g. 2379"),
  ETCD_PEER_PORT: setting(port(), "e.g. 2380"),
  HAPROXY_ADDRESS: setting(ipv4(), "where HAProxy listens, e.g. 127.0.0.1"),
  HAPROXY_RW_PORT: setting(port(), "read-write port (routes to the leader), e.g. 6012"),
  HAPROXY_RO_PORT: setting(port(), "read-only port (routes to replicas), e.g. 6013"),
  HAPROXY_STATS_PORT: setting(port(), "HAProxy stats page, e.g. 6014"),
  HAPROXY_CHECK_INTER_MS: setting(whole(100), "health-check interval in ms, e.g. 1000"),
  HAPROXY_CHECK_FALL: setting(whole(1), "failed checks before a server is down, e.g. 2"),
  HAPROXY_CHECK_RISE: setting(whole(1), "passed checks before a server is up, e.g. 2"),
  API_ADDRESS: setting(ipv4(), "where nginx listens, e.g. 127.0.0.1"),
  API_PORT: setting(port(), "nginx / Supabase API port, e.g. 6010"),
  PATRONI_TTL: setting(seconds(5), "leader lock TTL in seconds, e.g. 10"),
  PATRONI_LOOP_WAIT: setting(seconds(1), "e.g. 1"),
  PATRONI_RETRY_TIMEOUT: setting(seconds(1), "e.g. 3"),
  PATRONI_MAX_LAG_ON_FAILOVER: setting(whole(0), "bytes, e.g. 1048576"),
  SYNCHRONOUS_MODE: setting(bool(), "true or false"),
  FAILSAFE_MODE: setting(bool(), "true or false"),
  PG_HBA_CIDR: setting(cidr(), "network allowed to connect (password required), e.g. 127.0.0.0/8"),
  PG_BIN_DIR: setting(z.string().min(1, "must not be empty"), "e.g. /usr/lib/postgresql/15/bin"),
  PG_SHARED_BUFFERS: setting(z.string().regex(/^\d+(kB|MB|GB)$/, "must be a size like 128MB"), "e.g. 128MB"),
  DATABASES: setting(
    list(z.string().regex(DB_NAME_RE, "database names must match ^[a-z][a-z0-9_]{1,30}$")).refine(
      (a) => a.length > 0,
      "must list at least one database",
    ),
    "comma-separated, e.g. orchestrator_ai_dev,orchestrator_ai_staging",
  ),
  RUNTIME: setting(
    oneOf(["auto", "native", "docker"]),
    "auto is native where its packages are present or apt can install them, else docker when an engine answers",
  ),
  STATE_DIR: setting(z.string().min(1, "must not be empty"), "folder for rendered files, data, logs, e.g. .state"),
  MEMBER_ROOT: setting(z.string(), "leave empty to derive; where member data dirs live", ""),
  // Backups (scripts/lib/backup): every key has a default so older env files keep loading.
  BACKUP_DIR: setting(z.string(), "where logical backups go; empty: $STATE_DIR/<stack>/backups", ""),
  BACKUP_REPO_DIR: setting(
    z.string(),
    "pgBackRest repository; empty: <member root>/pgbackrest/repo (must be writable by postgres)",
    "",
  ),
  BACKUP_RETENTION_DAILY: setting(whole(1), "daily backups to keep, e.g. 7", "7"),
  BACKUP_RETENTION_WEEKLY: setting(whole(0), "weekly backups to keep, e.g. 4", "4"),
  BACKUP_FULL_EVERY_DAYS: setting(
    whole(1),
    "physical full backup at most this many days apart (differential otherwise), e.g. 7",
    "7",
  ),
  BACKUP_LOCK_WAIT_SECONDS: setting(
    whole(1, { max: 86400 }),
    "seconds pg_dump waits for a table an app holds locked (ACCESS EXCLUSIVE) before the backup fails naming the holder, e.g. 300",
    "300",
  ),
  BACKUP_JOBS: setting(whole(1, { max: 64 }), "parallel jobs for pg_dump/pg_restore/pgBackRest, e.g. 2", "2"),
  BACKUP_ALERT_URL: setting(
    z.string().regex(/^(https?:\/\/\S+)?$/, "must be an http(s) URL or empty"),
    "webhook POSTed a JSON body when a backup fails",
    "",
  ),
  BACKUP_ALERT_COMMAND: setting(
    z.string(),
    "command run (no shell; split on spaces) with the failure on stdin, e.g. /usr/local/bin/notify-ops",
    "",
  ),
  BACKUP_SCHEDULE: setting(
    z.string().regex(/^\S+ \S+ \S+ \S+ \S+$/, "must be a 5-field cron schedule"),
    "cron schedule for make backup-cron, e.g. 15 2 * * *",
    "15 2 * * *",
  ),
  BACKUP_ARCHIVE_TIMEOUT: setting(
    seconds(0),
    "force a WAL segment switch after this many seconds (bounds PITR data loss), e.g. 60",
    "60",
  ),
  API_KEY_TTL_DAYS: setting(
    whole(1, {
      unit: "days",
      max: 1825,
      minMessage: "must be at least 1 day",
      maxMessage: "must be at most 1825 days (5 years)",
    }),
    "lifetime of the Supabase anon/service API keys in days (re-issued on rotation), e.g. 365",
    "365",
  ),
  BACKUP_SCRATCH_ADDRESS: setting(
    z.union([z.literal(""), ipv4()]),
    "where restore-pitr's scratch instance listens; empty: <HAPROXY_ADDRESS block>.21",
    "",
  ),
  // Access per app (scripts/lib/access.ts, `make access-plan`): defaults keep older env files loading and change nothing.
  PUBLIC_DOMAIN: setting(
    dnsName("example.com", true),
    "public apps get https://<app>.<PUBLIC_DOMAIN> through the tunnel, e.g. example.com",
    "",
  ),
  TUNNEL: setting(
    oneOf(["cloudflare", "none"]),
    "cloudflare: public apps through a Cloudflare Tunnel; none: nothing public",
    "none",
  ),
  TAILNET: setting(
    oneOf(["tailscale", "none"]),
    "tailscale: private apps on the tailnet with `tailscale serve`; none: loopback only",
    "none",
  ),
  TAILNET_HOSTNAME: setting(
    z
      .string()
      .regex(
        /^$|^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
        "must be a hostname like server.tail1234.ts.net, or empty",
      ),
    "this server's MagicDNS name; empty: ${TS_CERT_DOMAIN} (filled in by tailscale)",
    "",
  ),
  CLOUDFLARE_TUNNEL_ID: setting(tunnelId(), "from `cloudflared tunnel create <name>`", ""),
  CLOUDFLARE_CREDENTIALS_FILE: setting(
    z.string().regex(/^$|^\/\S+\.json$/, "must be an absolute path to the tunnel's .json credentials"),
    "empty: /etc/cloudflared/<CLOUDFLARE_TUNNEL_ID>.json",
    "",
  ),
  TUNNEL_ORIGIN_PORT: setting(
    z.union([z.literal(""), port()]),
    "nginx's loopback listener the tunnel forwards to; empty: API_PORT + 6 (API_PORT + 5 is the pooler's in the port plan)",
    "",
  ),
  ALLOW_REMOTE_ACCESS: setting(bool(), "customer stacks (client-*) refuse TUNNEL/TAILNET unless true", "false"),
  // Pooling (pgbouncer on HAPROXY_ADDRESS, in front of HAProxy's read-write port): defaults so older env files keep loading.
  POOL_PORT: setting(port(), "pgbouncer's port on HAPROXY_ADDRESS (port plan: 6015)", "6015"),
  POOL_MAX_CLIENT_CONN: setting(whole(10, { max: 100000 }), "client connections pgbouncer accepts, e.g. 1000", "1000"),
  POOL_DEFAULT_POOL_SIZE: setting(whole(1), "server connections per database and user, e.g. 20", "20"),
  POOL_RESERVE_POOL_SIZE: setting(whole(0), "extra server connections a waiting pool may borrow, e.g. 5", "5"),
  POOL_MAX_DB_CONNECTIONS: setting(whole(1), "server connections per database, all users together, e.g. 50", "50"),
  POOL_PAUSE_TIMEOUT: setting(
    seconds(1),
    "seconds a PAUSE may wait for in-flight transactions before a switchover aborts, e.g. 10",
    "10",
  ),
  // Monitoring (scripts/lib/monitoring.ts): Prometheus, Alertmanager and exporters on HAPROXY_ADDRESS.
  MONITORING: setting(
    bool(),
    "true: dev-up also runs Prometheus, Alertmanager, postgres_exporter and node_exporter",
    "false",
  ),
  PROMETHEUS_PORT: setting(port(), "Prometheus on HAPROXY_ADDRESS, e.g. 9090", "9090"),
  ALERTMANAGER_PORT: setting(port(), "Alertmanager on HAPROXY_ADDRESS, e.g. 9093", "9093"),
  NODE_EXPORTER_PORT: setting(
    port(),
    "node_exporter on HAPROXY_ADDRESS, e.g. 9110 (its usual 9100 is the first internal app's in the app port plan)",
    "9110",
  ),
  POSTGRES_EXPORTER_PORT: setting(port(), "postgres_exporter on HAPROXY_ADDRESS, e.g. 9187", "9187"),
  MONITORING_INTERVAL: setting(seconds(1), "seconds between scrapes and rule evaluations, e.g. 15", "15"),
  // Off-site backups (scripts/lib/backup/offsite*.ts; declared in offsite-keys.ts).
  ...OFFSITE_KEYS,
  // Docker runtime (scripts/lib/compose-settings.ts): GoTrue's site URL and SMTP, and image overrides (empty keeps the compose file's pinned upstream image).
  SUPABASE_SITE_URL: setting(
    z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, "must be an http(s) URL"),
    "where GoTrue's e-mail links send users back to (the main app), e.g. http://127.0.0.1:6100",
    "http://127.0.0.1:6100",
  ),
  SMTP_HOST: setting(
    z.string().regex(/^$|^[A-Za-z0-9.-]+$/, "must be a host name or empty"),
    "mail server GoTrue sends through; empty: no mail, sign-ups confirmed at once",
    "",
  ),
  SMTP_PORT: setting(port(), "e.g. 587", "587"),
  SMTP_USER: setting(z.string(), "SMTP login (its password: SMTP_PASS in envs/.secrets.<stack>.env)", ""),
  SMTP_ADMIN_EMAIL: setting(
    z.string().regex(/^[^\s@]+@[^\s@]+$/, "must be an e-mail address"),
    "sender address of GoTrue's mail, e.g. admin@example.com",
    "admin@example.com",
  ),
  SMTP_SENDER_NAME: setting(z.string(), "sender name of GoTrue's mail", "pgplatform"),
  ...IMAGE_SETTINGS,
  DOCKER_SERVICES: setting(
    oneOf(["all", "cluster", "cluster+nginx"]),
    "docker runtime: all (cluster, then Supabase's services, Kong, nginx), cluster (etcd, Patroni, HAProxy, pgbouncer only; where Supabase's images cannot be had) or cluster+nginx (the cluster part and nginx: /healthz, /cluster; / answers 502 without Kong)",
    "all",
  ),
  DOCKER_PUBLISH_MEMBERS: setting(
    oneOf(["auto", "true", "false"]),
    "docker runtime: publish each member's Postgres, Patroni REST and etcd client port on its MEMBER_ADDRESSES entry (compose/dev-members.yml), which make status, backup and restore need; auto: true except on macOS, where those addresses exist only once aliased on lo0",
    "auto",
  ),
  // Log rotation (scripts/lib/logrotate.ts): every component's log in the stack's log folder is capped.
  LOG_MAX_SIZE_KB: setting(
    whole(64, { max: 1048576, maxMessage: "must be at most 1048576 (1 GB)" }),
    "a component's log is rotated (copy, then truncate) once it is bigger than this, e.g. 10240",
    "10240",
  ),
  LOG_KEEP: setting(whole(1, { max: 20 }), "rotated copies kept per component (<name>.log.1 newest), e.g. 2", "2"),
  // Onboarding (scripts/lib/onboard/plan.ts): the operator's own apps, kept out of library code.
  APP_PORT_PLAN: setting(
    list(
      z.string().regex(/^[a-z][a-z0-9_]{1,30}:\d{1,5}$/, "each entry must be app:port, e.g. hyperarchy:9100"),
    ).transform((a) =>
      Object.fromEntries(a.map((e) => [e.slice(0, e.indexOf(":")), Number(e.slice(e.indexOf(":") + 1))])),
    ),
    "internal apps' planned ports (app:port, comma-separated); an app not listed gets the next free port from 9400 in steps of 100",
    "",
  ),
};

export type EnvValues = Values<typeof KEYS>;

// The rules across keys (env-rules.ts); callers of env.ts import these here.
export { originPort, PG_CONNECTIONS_OUTSIDE_POOL, PG_MAX_CONNECTIONS, poolProblem, timingProblem } from "./env-rules";

export const ENV_SETTINGS = defineSettings({ code: "BAD_CONFIG", doc: "envs/README.md", keys: KEYS, rules: RULES });
