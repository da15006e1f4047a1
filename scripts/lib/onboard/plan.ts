/**
 * What onboarding an app means, decided before anything changes: the name
 * rules, the port plan, the hostname, and the exact files and SQL. Pure: no
 * I/O here, so every rule is unit-tested and a bad input never reaches the
 * cluster.
 */
import type { Config } from "../config";
import type { AccessLevel, AppEntry } from "../apps";
import {
  appDatabase,
  appNameProblem,
  defaultDomain,
  domainProblem,
  NAME_RULE,
  portProblem,
  stackPorts,
} from "../app-rules";
import { dbUrl, poolTarget, quoteIdent, quoteLiteral, roTarget, rwTarget } from "../pg";
import { renderTemplate } from "../render";
import { stackHttpAddress } from "../stack-files";
import { ToolkitError } from "../errors";

/** The name, hostname and port rules live in scripts/lib/app-rules.ts (the registry validates with them too). */
export { appDatabase, appNameProblem, defaultDomain, domainProblem, NAME_RULE, portProblem, stackPorts };

/** An app in the stack's APP_PORT_PLAN gets its planned port; any other the next free one from FIRST_FREE_PORT in steps of PORT_STEP. */
export const FIRST_FREE_PORT = 9400;
export const PORT_STEP = 100;

/** The port plan: a seed app gets its planned port, any other the next free one (9400, 9500, ...). */
export function nextAppPort(
  name: string,
  apps: AppEntry[],
  reserved: number[] = [],
  plan: Readonly<Record<string, number>> = {},
): number {
  const used = new Set([...apps.filter((a) => a.name !== name).map((a) => a.port), ...reserved]);
  const planned = plan[name];
  if (planned !== undefined && !used.has(planned)) return planned;
  const seedPorts = new Set(Object.values(plan));
  for (let p = FIRST_FREE_PORT; p <= 65535; p += PORT_STEP) if (!used.has(p) && !seedPorts.has(p)) return p;
  throw new Error("no free port left in the plan");
}

export interface AppRequest {
  name: string;
  port?: number;
  domain?: string;
  supabase?: boolean;
  /** private (default), public or none: scripts/lib/access.ts */
  access?: AccessLevel;
}

/** The full entry an app gets: what was asked, the rest inferred. Throws nothing; call the *Problem checks first. */
export function planApp(cfg: Config, req: AppRequest, apps: AppEntry[], now = new Date()): AppEntry {
  const existing = apps.find((a) => a.name === req.name);
  return {
    name: req.name,
    database: existing?.database ?? appDatabase(req.name),
    role: existing?.role ?? req.name,
    port: req.port ?? existing?.port ?? nextAppPort(req.name, apps, stackPorts(cfg), cfg.appPortPlan),
    domain: req.domain ?? existing?.domain ?? defaultDomain(req.name),
    supabase: Boolean(req.supabase || existing?.supabase),
    // Written only when chosen, so entries without it (private) stay as they were.
    ...((req.access ?? existing?.access) ? { access: req.access ?? existing?.access } : {}),
    created: existing?.created ?? now.toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
}

/** One thing wrong with a request, and the fix for exactly that. */
export interface RequestIssue {
  problem: string;
  fix: string;
}

/** Every problem with a request against the current registry, before any change, each with its own fix. */
export function requestIssues(cfg: Config, req: AppRequest, apps: AppEntry[]): RequestIssue[] {
  const issues: RequestIssue[] = [];
  const np = appNameProblem(req.name, cfg);
  if (np) return [{ problem: np, fix: `app names: ${NAME_RULE}, not a reserved name` }];
  if (req.domain !== undefined) {
    const dp = domainProblem(req.domain);
    if (dp)
      issues.push({ problem: dp, fix: `pass a hostname like --domain ${defaultDomain(req.name)} (make: DOMAIN=...)` });
  }
  const existing = apps.find((a) => a.name === req.name);
  if (req.port !== undefined) {
    const pp = portProblem(req.port, req.name, apps, cfg);
    const free = nextAppPort(req.name, apps, stackPorts(cfg), cfg.appPortPlan);
    if (pp)
      issues.push({
        problem: pp,
        fix: `pick another port, e.g. --port ${existing?.port ?? free} (make: PORT=...), or leave it out to get the next free one from the plan`,
      });
  }
  if (existing) {
    // Re-running must not silently move an app: changing its port or host is a remove + create.
    const move = `re-run without it to keep the app as it is, or move it: \`bun scripts/new-app.ts ${req.name} --remove\` (takes a final backup) and create it again`;
    if (req.port !== undefined && req.port !== existing.port)
      issues.push({ problem: `${req.name} already has port ${existing.port} (asked for ${req.port})`, fix: move });
    if (req.domain !== undefined && req.domain !== existing.domain)
      issues.push({
        problem: `${req.name} already has hostname ${existing.domain} (asked for ${req.domain})`,
        fix: move,
      });
  }
  const domain = req.domain ?? existing?.domain ?? defaultDomain(req.name);
  const clash = apps.find((a) => a.domain === domain && a.name !== req.name);
  if (clash)
    issues.push({
      problem: `hostname ${domain} is already used by app ${clash.name}`,
      fix: `give ${req.name} its own hostname with --domain (make: DOMAIN=...), e.g. ${defaultDomain(req.name)}`,
    });
  return issues;
}

export const requestProblems = (cfg: Config, req: AppRequest, apps: AppEntry[]): string[] =>
  requestIssues(cfg, req, apps).map((i) => i.problem);

/** The BAD_INPUT error for a request: every problem, and the fix of each (never one generic rule). */
export function badInputError(issues: RequestIssue[]): ToolkitError {
  const fixes = [...new Set(issues.map((i) => i.fix))];
  return new ToolkitError(
    "BAD_INPUT",
    issues.map((i) => i.problem).join("; "),
    `${fixes.join("; ")}; nothing was changed`,
  );
}

/**
 * A port another program already listens on (TCP, any local address) is refused:
 * the app could not start there. `holder` names the listener when `ss` can tell.
 */
export const portHeldIssue = (port: number, holder: string): RequestIssue => ({
  problem: `port ${port} is already in use by ${holder}`,
  fix: "stop that program, or pick another port with --port (make: PORT=...), or leave it out to get the next free one from the plan",
});

// --- SQL, built as exact strings from checked names (identifiers always quoted) ---

export const sql = {
  createRole: (role: string, verifier: string) =>
    `CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD ${quoteLiteral(verifier)}`,
  setPassword: (role: string, verifier: string) => `ALTER ROLE ${quoteIdent(role)} PASSWORD ${quoteLiteral(verifier)}`,
  createDatabase: (db: string, owner: string) => `CREATE DATABASE ${quoteIdent(db)} OWNER ${quoteIdent(owner)}`,
  revokePublic: (db: string) => `REVOKE ALL ON DATABASE ${quoteIdent(db)} FROM PUBLIC`,
  dropDatabase: (db: string) => `DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`,
  dropRole: (role: string) => `DROP ROLE IF EXISTS ${quoteIdent(role)}`,
};

// --- files ---

export const supabaseUrl = (cfg: Config) => `http://${stackHttpAddress(cfg)}:${cfg.api.port}`;

/** The app's env file: what a developer needs, nothing more. Mode 0600 (holds the password). */
export function appEnvFile(
  cfg: Config,
  app: AppEntry,
  password: string,
  supabaseLines = [`SUPABASE_URL=${supabaseUrl(cfg)}`],
): string {
  return [
    `# ${app.name} on stack ${cfg.stack}: written by scripts/new-app.ts. Private: mode 0600, gitignored.`,
    `# Re-run \`bun scripts/new-app.ts ${app.name} --rotate-password\` to replace the password.`,
    "# DATABASE_URL goes through pgbouncer (transaction pooling: no session state between transactions,",
    "# see the README on prepared statements); DIRECT_URL goes to the leader through HAProxy, for",
    "# migrations and session-level work (Prisma's directUrl, LISTEN, advisory locks, SET).",
    `DATABASE_URL=${dbUrl(cfg, app.database, app.role, password, poolTarget(cfg))}`,
    `DIRECT_URL=${dbUrl(cfg, app.database, app.role, password, rwTarget(cfg))}`,
    `DATABASE_READONLY_URL=${dbUrl(cfg, app.database, app.role, password, roTarget(cfg))}`,
    ...supabaseLines,
    `PORT=${app.port}`,
    `APP_DOMAIN=${app.domain}`,
    "",
  ].join("\n");
}

/** Apps run on the host and listen on their port on loopback. */
export const appUpstream = (app: AppEntry) => `127.0.0.1:${app.port}`;

export function renderAppNginx(cfg: Config, template: string, app: AppEntry): string {
  return renderTemplate(
    template,
    {
      STACK: cfg.stack,
      APP_NAME: app.name,
      APP_DOMAIN: app.domain,
      APP_PORT: app.port,
      APP_UPSTREAM: appUpstream(app),
      API_ADDRESS: cfg.api.address,
      NGINX_HTTP_ADDRESS: stackHttpAddress(cfg),
      API_PORT: cfg.api.port,
    },
    "nginx/app.conf.tmpl",
  );
}

// --- commands ---

export const nginxTestCmd = (cfg: Config) => [
  "nginx",
  "-t",
  "-q",
  "-p",
  `${cfg.stateDir}/nginx`,
  "-c",
  `${cfg.renderedDir}/nginx/nginx.conf`,
];

export const pgDumpCmd = (cfg: Config, db: string, file: string) => [
  `${cfg.pgBinDir}/pg_dump`,
  "--format=custom",
  "--no-password",
  "--host",
  cfg.haproxy.address,
  "--port",
  String(cfg.haproxy.rwPort),
  "--username",
  "postgres",
  "--dbname",
  db,
  "--file",
  file,
];

export const pgRestoreListCmd = (cfg: Config, file: string) => [`${cfg.pgBinDir}/pg_restore`, "--list", file];

/** 20261121T214500Z: sorts by time, safe in a file name. */
export const utcStamp = (d = new Date()) =>
  d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
