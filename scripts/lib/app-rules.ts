/**
 * The rules an app's name, hostname and port obey: pure, shared by the app
 * registry (scripts/lib/apps.ts validates envs/apps.yaml with them) and the
 * onboarding planner (scripts/lib/onboard/plan.ts).
 */
import type { AppEntry } from "./apps";
import type { Config } from "./config";
import { SUPABASE_RESERVED_ROLES } from "./supabase-db";

export const APP_NAME_RE = /^[a-z][a-z0-9_]{1,30}$/;

/** Roles the platform itself runs on (Patroni's users and Postgres' own). */
const PLATFORM_ROLES = ["postgres", "replicator", "rewind_user", "patroni", "admin"];
/** Words Postgres reserves as role specifiers, or that mean something special in pg_hba.conf. */
const POSTGRES_RESERVED = [
  "public",
  "none",
  "current_role",
  "current_user",
  "session_user",
  "all",
  "template0",
  "template1",
  "samerole",
  "samegroup",
  "replication",
];

export const NAME_RULE =
  "lowercase letter first, then 1-30 lowercase letters, digits or underscores (^[a-z][a-z0-9_]{1,30}$)";

/** Why `name` cannot be an app name, or undefined when it can. */
export function appNameProblem(name: string, cfg: Pick<Config, "databases">): string | undefined {
  if (!APP_NAME_RE.test(name)) return `${JSON.stringify(name)} is not a valid app name: ${NAME_RULE}`;
  if (name.startsWith("pg_")) return `${name} is reserved: role names starting with pg_ belong to Postgres`;
  if (PLATFORM_ROLES.includes(name) || POSTGRES_RESERVED.includes(name))
    return `${name} is reserved by Postgres or the platform`;
  if (SUPABASE_RESERVED_ROLES.includes(name)) return `${name} is reserved: it is one of Supabase's roles`;
  const db = appDatabase(name);
  if (cfg.databases.includes(name) || cfg.databases.includes(db))
    return `${name} is reserved: it is an environment database (DATABASES in the env file)`;
  return undefined;
}

export const appDatabase = (name: string) => `${name}_db`;

const LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
const HOSTNAME_RE = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

/** A hostname nginx can use as server_name; anything that could break out of the config is refused. */
export function domainProblem(domain: string): string | undefined {
  if (domain.length > 253 || !HOSTNAME_RE.test(domain)) {
    return `${JSON.stringify(domain)} is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`;
  }
  // A numeric last label is an address (no top-level domain is all digits); nginx would give the app the
  // stack's own plain-HTTP server (reached by address: /healthz, /cluster, dev-up's readiness check).
  if (domain === "localhost" || /(^|\.)[0-9]+$/.test(domain)) {
    return `${JSON.stringify(domain)} is an address or the machine's own name, not an app's hostname: the stack's own server answers to it (/healthz, /cluster); use a name such as app.localhost`;
  }
  return undefined;
}

export const defaultDomain = (name: string) => `${name.replace(/_/g, "-")}.localhost`;

/** Ports the stack itself listens on; an app must not take one. */
export function stackPorts(cfg: Config): number[] {
  const m = cfg.members[0]!;
  return [
    cfg.haproxy.rwPort,
    cfg.haproxy.roPort,
    cfg.haproxy.statsPort,
    cfg.api.port,
    m.pgPort,
    m.restPort,
    m.etcdClientPort,
    m.etcdPeerPort,
  ];
}

export function portProblem(port: number, name: string, apps: AppEntry[], cfg: Config): string | undefined {
  if (!Number.isInteger(port) || port < 1024 || port > 65535) return `port ${port} must be a whole number 1024-65535`;
  const owner = apps.find((a) => a.port === port && a.name !== name);
  if (owner) return `port ${port} is already used by app ${owner.name}`;
  if (stackPorts(cfg).includes(port)) return `port ${port} is used by the stack itself (see ${cfg.file})`;
  return undefined;
}
