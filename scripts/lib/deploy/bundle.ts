/**
 * Render a customer's release: the toolkit itself, the stack env file the
 * target's dev-up reads, and the bundle (per-environment env files, nginx
 * sites, TLS files, manifest). Pure functions produce the file list; one
 * function writes it into a staging dir and another validates it (config
 * loader, Compose schema with the environment's variables, real nginx -t).
 */
import { createHash } from "node:crypto";
import { envPorts } from "./client-api";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { ToolkitError } from "../errors";
import { CLIENT_POOL_PORT } from "../pool-client";
import { validateCompose } from "../compose-schema";
import { SECRET_KEYS, jwtSecretKey } from "../secrets";
import type { ClientSecrets } from "./client-secrets";
import { CLIENT_SECRET_KEYS, anonKeyOf, jwtSecretOf, serviceKeyOf } from "./client-secrets";
import { nginxTest, renderSites, type SitePaths } from "./nginx";
import {
  ENVIRONMENTS,
  SIZE_PROFILES,
  clientStack,
  databaseFor,
  remoteLayout,
  renderClientEnv,
  renderStackEnv,
  roleFor,
  stackConfig,
  type ClientSettings,
  type EnvName,
} from "./settings";
import { ensureBootstrapCert, hostnameFor, type TlsPaths } from "./tls";

export interface BundleFile {
  /** path inside the release */
  path: string;
  content: string;
  mode: number;
}

/** What of the toolkit a release carries (node_modules travels separately, once per lockfile). */
// Every top-level folder of templates the stack renders must ship (tests/unit/deploy-client.test.ts checks).
export const TOOLKIT_PATHS = [
  "Makefile",
  "package.json",
  "package-lock.json",
  "bunfig.toml",
  "tsconfig.json",
  "scripts",
  "patroni",
  "etcd",
  "haproxy",
  "nginx",
  "pgbouncer",
  "access",
  "monitoring",
  "supabase",
  "compose",
];

/** The remote paths nginx and the environments use on the target (stable across releases). */
export function targetPaths(s: ClientSettings): SitePaths & { tlsDir: string; letsencrypt: string } {
  const l = remoteLayout(s);
  const nginxDir = join(l.stateDir, "nginx");
  if (s.access === "internal") {
    const tlsDir = join(nginxDir, "client-tls");
    return {
      tlsDir,
      tlsCert: join(tlsDir, "server.crt"),
      tlsKey: join(tlsDir, "server.key"),
      webroot: join(l.stateDir, "acme-webroot"),
      letsencrypt: join(l.stateDir, "letsencrypt"),
    };
  }
  const live = join(l.stateDir, "letsencrypt", "live", s.domain);
  return {
    tlsDir: live,
    tlsCert: join(live, "fullchain.pem"),
    tlsKey: join(live, "privkey.pem"),
    webroot: join(l.stateDir, "acme-webroot"),
    letsencrypt: join(l.stateDir, "letsencrypt"),
  };
}

export const publicUrl = (s: ClientSettings, env: EnvName) => `https://${hostnameFor(s.domain, env)}:${s.ports[env]}`;

/** One environment's env file: what its app and (staging/production) its compose services read. */
export function renderEnvFile(s: ClientSettings, secrets: ClientSecrets, env: EnvName): string {
  const profile = SIZE_PROFILES[s.profile];
  const db = databaseFor(env);
  const user = roleFor(env);
  const pw = secrets[`DB_PASSWORD_${env.toUpperCase()}` as keyof ClientSecrets];
  const url = publicUrl(s, env);
  const lines: [string, string | number][] = [
    ["CLIENT_NAME", s.name],
    ["ENVIRONMENT", env],
    ["COMPOSE_PROJECT_NAME", `${s.name}-${env}`],
    ["NODE_ENV", env === "dev" ? "development" : "production"],
    ["PUBLIC_URL", url],
    ["SITE_URL", url],
    ["API_EXTERNAL_URL", url],
    ["SUPABASE_URL", url],
    ...Object.entries(envPorts(s, env)),
    ["DB_NAME", db],
    ["DB_USER", user],
    ["DB_PASSWORD", pw],
    // Pooled through the stack's pgbouncer (transaction mode); DIRECT_URL for migrations and session-level work.
    ["DATABASE_URL", `postgresql://${user}:${pw}@${s.haproxy.address}:${CLIENT_POOL_PORT}/${db}`],
    ["DIRECT_URL", `postgresql://${user}:${pw}@${s.haproxy.address}:${s.haproxy.rwPort}/${db}`],
    ["DATABASE_READ_URL", `postgresql://${user}:${pw}@${s.haproxy.address}:${s.haproxy.roPort}/${db}`],
    ["POSTGRES_HOST", s.haproxy.address],
    ["POSTGRES_PORT", s.haproxy.rwPort],
    // This environment's own secret and keys (JWT_SECRET_<ENV>...) under the names Supabase's services read.
    ["JWT_SECRET", secrets[jwtSecretOf(env)]],
    ["JWT_EXPIRY", 3600],
    ["ANON_KEY", secrets[anonKeyOf(env)]],
    ["SERVICE_ROLE_KEY", secrets[serviceKeyOf(env)]],
    ["WORKERS", profile.workers],
    ["LOCAL_MODELS", profile.localModels],
    ["COMPOSE_PROFILES", profile.composeProfiles.join(",")],
  ];
  if (env !== "dev") {
    // Only the compose services (staging, production) need the service-side passwords.
    lines.push(
      ["POSTGRES_PASSWORD", secrets.POSTGRES_PASSWORD],
      ["AUTHENTICATOR_PASSWORD", secrets.AUTHENTICATOR_PASSWORD],
      ["SUPABASE_AUTH_ADMIN_PASSWORD", secrets.SUPABASE_AUTH_ADMIN_PASSWORD],
      ["DASHBOARD_USERNAME", "supabase"],
      ["DASHBOARD_PASSWORD", secrets.DASHBOARD_PASSWORD],
      ["MONITORING_PASSWORD", secrets.MONITORING_PASSWORD],
    );
  }
  const header = [
    `# ${s.name} / ${env}: generated by make deploy-client from clients/${s.name}/ (mode 0600, never commit).`,
    `# App: listen on 127.0.0.1:${s.ports[env] + 1}; users reach it through nginx at ${url}.`,
  ];
  return header.join("\n") + "\n" + lines.map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

/** The stack's secrets file: its fixed keys, and each environment database's JWT secret (JWT_SECRET_<DATABASE>) = that environment's JWT_SECRET_<ENV>. */
export function renderStackSecrets(secrets: ClientSecrets): string {
  const jwt = ENVIRONMENTS.map((e) => `${jwtSecretKey(databaseFor(e))}=${secrets[jwtSecretOf(e)]}`);
  return (
    "# Generated by make deploy-client (0600).\n" +
    [...SECRET_KEYS.map((k) => `${k}=${secrets[k]}`), ...jwt].join("\n") +
    "\n"
  );
}

export interface Manifest {
  client: string;
  stack: string;
  domain: string;
  access: string;
  profile: ClientSettings["profile"];
  sizeProfile: (typeof SIZE_PROFILES)["16"];
  environments: { name: EnvName; port: number; url: string; database: string; role: string }[];
}

export function manifest(s: ClientSettings): Manifest {
  return {
    client: s.name,
    stack: clientStack(s.name),
    domain: s.domain,
    access: s.access,
    profile: s.profile,
    sizeProfile: SIZE_PROFILES[s.profile],
    environments: ENVIRONMENTS.map((e) => ({
      name: e,
      port: s.ports[e],
      url: publicUrl(s, e),
      database: databaseFor(e),
      role: roleFor(e),
    })),
  };
}

/** The bundle part of a release (everything derived from the client's settings and secrets). Pure. */
export function renderBundleFiles(
  rootDir: string,
  s: ClientSettings,
  secrets: ClientSecrets,
  tls?: { cert: string; key: string; ca: string },
): BundleFile[] {
  const files: BundleFile[] = [];
  const stack = clientStack(s.name);
  files.push({ path: `envs/${stack}.env`, content: renderStackEnv(s), mode: 0o644 });
  files.push({ path: `envs/.secrets.${stack}.env`, content: renderStackSecrets(secrets), mode: 0o600 });
  files.push({ path: "client/client.env", content: renderClientEnv(s.raw), mode: 0o644 });
  files.push({ path: "client/manifest.json", content: JSON.stringify(manifest(s), null, 2) + "\n", mode: 0o644 });
  files.push({
    path: "client/.secrets.env",
    content: CLIENT_SECRET_KEYS.map((k) => `${k}=${secrets[k]}`).join("\n") + "\n",
    mode: 0o600,
  });
  for (const env of ENVIRONMENTS)
    files.push({ path: `client/env/${env}.env`, content: renderEnvFile(s, secrets, env), mode: 0o600 });
  for (const site of renderSites(rootDir, s, targetPaths(s)))
    files.push({ path: `client/nginx/${site.name}`, content: site.content, mode: 0o644 });
  if (tls) {
    files.push({ path: "client/tls/ca.crt", content: tls.ca, mode: 0o644 });
    files.push({ path: "client/tls/server.crt", content: tls.cert, mode: 0o644 });
    files.push({ path: "client/tls/server.key", content: tls.key, mode: 0o600 });
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** Toolkit files (relative paths) under rootDir, sorted. */
export function toolkitFiles(rootDir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = join(rootDir, rel);
    if (!existsSync(abs)) return;
    const st = statSync(abs);
    if (st.isDirectory()) for (const e of readdirSync(abs).sort()) walk(join(rel, e));
    else if (st.isFile() && !/\.(tmp-\d+|log)$/.test(rel)) out.push(rel);
  };
  for (const p of TOOLKIT_PATHS) walk(p);
  return out.sort();
}

/** Which node_modules a release needs: the lockfile and the bun version decide it. */
export function nodeModulesKey(rootDir: string): string {
  const lock = readFileSync(join(rootDir, "package-lock.json"));
  return createHash("sha256").update(lock).update(process.arch).update(Bun.version).digest("hex").slice(0, 16);
}

/** A release's identity: same bundle + same toolkit + same node_modules = same digest = nothing to deploy. */
export function releaseDigest(rootDir: string, bundle: BundleFile[], toolkit: string[]): string {
  const h = createHash("sha256");
  for (const f of bundle) h.update(`${f.path}\0${f.mode}\0`).update(f.content).update("\0");
  for (const rel of toolkit)
    h.update(`${rel}\0`)
      .update(readFileSync(join(rootDir, rel)))
      .update("\0");
  h.update(nodeModulesKey(rootDir));
  return h.digest("hex").slice(0, 24);
}

/** Write the release into `dir` (emptied first). */
export function writeRelease(
  dir: string,
  rootDir: string,
  bundle: BundleFile[],
  toolkit: string[],
  digest: string,
): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const rel of toolkit) {
    const dst = join(dir, rel);
    mkdirSync(dirname(dst), { recursive: true });
    writeFileSync(dst, readFileSync(join(rootDir, rel)), { mode: statSync(join(rootDir, rel)).mode & 0o777 });
  }
  for (const f of bundle) {
    const dst = join(dir, f.path);
    mkdirSync(dirname(dst), { recursive: true });
    writeFileSync(dst, f.content, { mode: f.mode });
    chmodSync(dst, f.mode);
  }
  writeFileSync(join(dir, "client", "digest"), digest + "\n");
}

export interface Validation {
  check: string;
  ok: boolean;
  detail: string;
}

/** Validate a rendered bundle: stack env through the config loader, compose files with each environment's variables, nginx -t. */
export async function validateBundle(
  rootDir: string,
  s: ClientSettings,
  bundle: BundleFile[],
  tls: TlsPaths | undefined,
): Promise<Validation[]> {
  const out: Validation[] = [];
  const cfg = stackConfig(s, rootDir);
  out.push({
    check: "stack env",
    ok: true,
    detail: `envs/${cfg.stack}.env: ${cfg.members.length} members, HAProxy ${cfg.haproxy.address}:${cfg.haproxy.rwPort}, databases ${cfg.databases.join(", ")}`,
  });
  for (const env of ["staging", "production"] as const) {
    const envFile = bundle.find((f) => f.path === `client/env/${env}.env`)!;
    const vars = parseDotenv(Buffer.from(envFile.content));
    const problems = validateCompose(readFileSync(join(rootDir, `compose/client-${env}.yml`), "utf8"), vars);
    if (problems.length)
      throw new ToolkitError(
        "COMPOSE_INVALID",
        `compose/client-${env}.yml: ${problems.join("; ")}`,
        "fix the compose file or the variables in scripts/lib/deploy/bundle.ts renderEnvFile",
      );
    out.push({
      check: `compose ${env}`,
      ok: true,
      detail: `compose/client-${env}.yml valid (Compose spec) with ${env}.env`,
    });
  }
  // nginx -t on the same templates rendered with local certificate paths (the target's paths do not exist here).
  const tmp = mkdtempSync(join(tmpdir(), "pgp-site-"));
  try {
    let paths: SitePaths;
    if (tls) paths = { tlsCert: tls.cert, tlsKey: tls.key, webroot: join(tmp, "webroot") };
    else {
      const live = join(tmp, "live", s.domain);
      await ensureBootstrapCert(live, s.domain);
      paths = {
        tlsCert: join(live, "fullchain.pem"),
        tlsKey: join(live, "privkey.pem"),
        webroot: join(tmp, "webroot"),
      };
    }
    const sites = renderSites(rootDir, s, paths);
    await nginxTest(sites);
    out.push({
      check: "nginx -t",
      ok: true,
      detail: `${sites.map((x) => x.name).join(", ")} (${s.access === "internal" ? "private CA certificate" : "certbot webroot, bootstrap certificate"})`,
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

export const relativeTo = (root: string, p: string) => relative(root, p) || ".";

export { envPorts };
