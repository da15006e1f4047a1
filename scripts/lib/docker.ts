/**
 * The docker runtime's compose side: compose/dev.yml runs the same rendered
 * templates inside pinned images. Reached through scripts/lib/runtimes/docker.ts
 * when RUNTIME resolves to docker (forced, or auto where the native runtime cannot run).
 */
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { isRoot } from "./exec";
import { ensureEtcdTls, etcdTlsFiles } from "./etcd-tls";
import { writeFileNoFollow } from "./safe-fs";
import type { Progress, UpResult } from "./runtime";
import { composeFileArgs, composeUpInOrder } from "./compose-up";
import { dockerSettingsEnv } from "./compose-settings";
import { dockerPgbackrestConf, dockerPgbackrestFile } from "./compose-pgbackrest";
import { validateComposeFile } from "./compose-schema";
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
export async function composeEnv(cfg: Config, dir = dockerRenderedDir(cfg)): Promise<Record<string, string>> {
  const jwt = jwtSecretFor(cfg, cfg.databases[0]!);
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
    // The services serve MAIN_DB only, so they get that environment's secret and no other.
    JWT_SECRET: jwt,
    SUPABASE_ANON_KEY: await signApiKey(jwt, "anon", undefined, apiKeyLifetimeS(cfg.apiKeyTtlDays)),
    SUPABASE_SERVICE_KEY: await signApiKey(jwt, "service_role", undefined, apiKeyLifetimeS(cfg.apiKeyTtlDays)),
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
  // compose reads ports, the database name and secrets from one env file (0600).
  const env = Object.entries(await composeEnv(cfg, dir))
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  writeIfChanged(join(dir, "compose.env"), env + "\n", { mode: 0o600 });
  const vars = await composeEnv(cfg, dir);
  // every file compose is given (compose/dev.yml, and compose/dev-members.yml when DOCKER_PUBLISH_MEMBERS)
  for (const file of composeFileArgs(cfg).filter((a) => a !== "-f")) {
    const problems = validateComposeFile(file, vars);
    if (problems.length)
      throw new ToolkitError(
        "BAD_COMPOSE",
        `${relative(cfg.rootDir, file)}: ${problems[0]}`,
        "fix the compose file (checked against the Compose spec schema)",
      );
  }
  return dir;
}

export const composeCmd = (cfg: Config, ...args: string[]) => [
  "docker",
  "compose",
  "-p",
  cfg.clusterName,
  ...composeFileArgs(cfg),
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
  const up = await composeUpInOrder(cfg, join(dockerRenderedDir(cfg), "compose.env"), progress, t0, prepare);
  // pgbouncer's auth_file needs the roles' verifiers, which exist only once the databases are prepared.
  up.changes.push(...(await dockerPoolUp(cfg, dockerRenderedDir(cfg))));
  return up;
}
