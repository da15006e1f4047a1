/**
 * The docker runtime's compose side: compose/dev.yml runs the same rendered
 * templates inside pinned images. Reached through scripts/lib/runtimes/docker.ts
 * when RUNTIME resolves to docker (forced, or auto where the native runtime cannot run).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { isRoot } from "./exec";
import { ensureEtcdTls, etcdTlsFiles } from "./etcd-tls";
import { writeFileNoFollow } from "./safe-fs";
import type { Progress, UpResult } from "./runtime";
import { composeUpInOrder } from "./compose-up";
import { dockerSettingsEnv } from "./compose-settings";
import { dockerPgbackrestConf, dockerPgbackrestFile } from "./compose-pgbackrest";
import { validateCompose } from "./compose-schema";
import { apiComposeVars, apiComposeYaml, apiDatabases, apiVar } from "./compose-apis";
import { renderKongYaml } from "./compose-kong";
import { composeFileArgs } from "./compose-files";
import { apiKeyLifetimeS, signApiKey } from "./jwt";
import { cloudflaredYaml, renderCloudflared } from "./access";
import { loadApps } from "./apps";
import { writeIfChanged } from "./render";
import { dockerRenderedDir, renderStack } from "./stack-files";
import { jwtSecretFor, SECRET_KEYS } from "./secrets";
import { dockerPoolUp, writeDockerPoolFiles } from "./pool-docker";
import { renderedOwner } from "./compose-owners";
import { ensureStackDirs } from "./state-dir";

export { dockerRenderedDir };

/** The values compose/dev.yml interpolates: ports, the main database, secrets and signed API keys. */
export async function composeEnv(
  cfg: Config,
  dir = dockerRenderedDir(cfg),
  apps: Parameters<typeof apiDatabases>[1] = loadApps(cfg),
): Promise<Record<string, string>> {
  const main = cfg.databases[0]!;
  const jwt = jwtSecretFor(cfg, main);
  // each Supabase-enabled database's JWT secret and the keys its env file holds (compose.apis.yml, Kong)
  const api = await apiComposeVars(cfg, apiDatabases(cfg, apps));
  const life = apiKeyLifetimeS(cfg.apiKeyTtlDays);
  return {
    RENDERED_DIR: dir,
    HAPROXY_RW_PORT: String(cfg.haproxy.rwPort),
    HAPROXY_RO_PORT: String(cfg.haproxy.roPort),
    HAPROXY_STATS_PORT: String(cfg.haproxy.statsPort),
    POOL_PORT: String(cfg.pool.port),
    API_PORT: String(cfg.api.port),
    // the cloudflared service (profile tunnel); compose interpolates it even when the profile is off
    CLOUDFLARED_CREDENTIALS_FILE: cfg.access.credentialsFile,
    MAIN_DB: cfg.databases[0]!,
    ...Object.fromEntries(SECRET_KEYS.map((k) => [k, cfg.secrets[k]])),
    // Studio and postgres-meta serve MAIN_DB: that environment's secret and keys (Kong's /pg/ takes its service key).
    JWT_SECRET: jwt,
    SUPABASE_ANON_KEY: api[apiVar("ANON_KEY", main)] ?? (await signApiKey(jwt, "anon", undefined, life)),
    SUPABASE_SERVICE_KEY: api[apiVar("SERVICE_KEY", main)] ?? (await signApiKey(jwt, "service_role", undefined, life)),
    ...api,
    ...dockerSettingsEnv(cfg),
  };
}

/** uid/gid of `postgres` in the official postgres image (pinned there); Patroni runs as it and reads its client key. */
export const IMAGE_POSTGRES_IDS = { uid: 999, gid: 999 };

/**
 * etcd's mutual TLS for compose: the CA and certificates under <rendered-docker>/tls, mounted by
 * compose/dev.yml. The etcd image runs as root (the member keys stay root's, 0600); Patroni's copy
 * of the client key is the image's postgres user's (0600).
 */
export async function writeDockerTls(cfg: Config, dir = dockerRenderedDir(cfg)): Promise<string[]> {
  const files = etcdTlsFiles(join(dir, "tls"));
  const made = await ensureEtcdTls(cfg, files);
  writeFileNoFollow(join(files.dir, "patroni-client.key"), readFileSync(files.client.key), {
    mode: 0o600,
    owner: isRoot() ? IMAGE_POSTGRES_IDS : undefined,
  });
  return made;
}

export async function writeDockerFiles(cfg: Config): Promise<string> {
  const dir = dockerRenderedDir(cfg);
  // make backup verifies in a scratch instance run as postgres below the member root
  ensureStackDirs(cfg);
  await writeDockerTls(cfg, dir);
  for (const f of renderStack(cfg, "docker"))
    writeIfChanged(join(dir, f.path), f.content, { mode: f.secret ? 0o600 : 0o644, ...renderedOwner(f.path) });
  writeIfChanged(dockerPgbackrestFile(dir), dockerPgbackrestConf(cfg));
  await writeDockerPoolFiles(cfg, dir);
  if (cfg.access.tunnel === "cloudflare")
    writeIfChanged(
      join(dir, "cloudflared", "config.yml"),
      cloudflaredYaml(cfg, renderCloudflared(cfg, loadApps(cfg), "docker")),
    );
  const env = await writeComposeEnv(cfg, dir);
  // one API per Supabase-enabled database: the override and Kong's routes (compose-apis.ts, compose-kong.ts)
  const apis = apiDatabases(cfg, loadApps(cfg));
  writeIfChanged(join(dir, "compose.apis.yml"), apiComposeYaml(apis));
  writeIfChanged(join(dir, "kong", "kong.yml"), renderKongYaml(apis, cfg.databases[0]!));
  // every file compose is given: compose/dev.yml, compose/dev-members.yml (DOCKER_PUBLISH_MEMBERS), the API override
  const given = ["compose/dev.yml", ...(cfg.docker.publishMembers ? ["compose/dev-members.yml"] : [])];
  for (const [file, text] of [
    ...given.map((f) => [f, readFileSync(join(cfg.rootDir, f), "utf8")] as const),
    ["compose.apis.yml", apiComposeYaml(apis)] as const,
  ]) {
    const problems = validateCompose(text, env);
    if (problems.length)
      throw new ToolkitError(
        "BAD_COMPOSE",
        `${file}: ${problems[0]}`,
        "fix the compose file (checked against the Compose spec schema)",
      );
  }
  return dir;
}

/** compose reads ports, the database names and secrets from one env file (0600); rewritten once the env files exist. */
export async function writeComposeEnv(cfg: Config, dir = dockerRenderedDir(cfg)): Promise<Record<string, string>> {
  const env = await composeEnv(cfg, dir);
  const text = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  writeIfChanged(join(dir, "compose.env"), text + "\n", { mode: 0o600 });
  return env;
}

export const composeCmd = (cfg: Config, ...args: string[]) => [
  "docker",
  "compose",
  "-p",
  cfg.clusterName,
  ...composeFileArgs(cfg, dockerRenderedDir(cfg)),
  "--env-file",
  join(dockerRenderedDir(cfg), "compose.env"),
  ...args,
];

export async function dockerUp(
  cfg: Config,
  progress: Progress,
  prepare?: (cfg: Config) => Promise<string[]>,
): Promise<UpResult> {
  const t0 = Date.now();
  await writeDockerFiles(cfg);
  // Kong must know the very keys the env files hold: compose.env is written again once prepare made them.
  const prepareThenKeys = async (c: Config) => {
    const changes = prepare ? await prepare(c) : [];
    await writeComposeEnv(c);
    return changes;
  };
  const up = await composeUpInOrder(cfg, join(dockerRenderedDir(cfg), "compose.env"), progress, t0, prepareThenKeys);
  // pgbouncer's auth_file needs the roles' verifiers, which exist only once the databases are prepared.
  up.changes.push(...(await dockerPoolUp(cfg, dockerRenderedDir(cfg))));
  return up;
}
