/**
 * The typed Config an env file becomes (scripts/lib/config.ts builds it from
 * the settings table in scripts/lib/settings/env.ts). Types only.
 */
import type { DockerSettings } from "./compose-settings";
import type { Secrets } from "./secrets";
import type { OffsiteSettings } from "./settings/offsite";

export interface PoolSettings {
  address: string;
  port: number;
  maxClientConn: number;
  defaultPoolSize: number;
  reservePoolSize: number;
  maxDbConnections: number;
  pauseTimeoutS: number;
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
  haproxy: {
    address: string;
    rwPort: number;
    roPort: number;
    statsPort: number;
    interMs: number;
    fall: number;
    rise: number;
  };
  api: { address: string; port: number };
  timing: Timing;
  pgHbaCidr: string;
  pgBinDir: string;
  sharedBuffers: string;
  databases: string[];
  /** APP_PORT_PLAN: internal apps' planned ports (scripts/lib/onboard/plan.ts) */
  appPortPlan: Readonly<Record<string, number>>;
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
  /** the docker runtime's image overrides, GoTrue's site URL and SMTP (compose-settings.ts) */
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
  /** the second, off-site pgBackRest repository (BACKUP_OFFSITE) */
  offsite: OffsiteSettings;
  alertUrl: string;
  alertCommand: string;
  schedule: string;
  archiveTimeout: number;
  scratchAddress: string;
}

export interface ParseOptions {
  file: string; // for messages, relative to the repo
  stack: string;
  rootDir?: string;
  secrets?: Partial<Secrets>;
  isRoot?: boolean;
}
