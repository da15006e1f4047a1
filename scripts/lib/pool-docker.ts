/**
 * pgbouncer in the docker runtime (compose/dev.yml service `pgbouncer`, image built from Debian's
 * 1.18 package by compose/pgbouncer/Dockerfile). Same template as natively; in the container it
 * listens on 0.0.0.0:6432 (published on 127.0.0.1:POOL_PORT only) and forwards to `haproxy:5000`.
 * Before the cluster exists its auth_file holds only the admin console's verifier; once the cluster
 * is up the server's own SCRAM verifiers are copied in and pgbouncer is RELOADed.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { loadApps } from "./apps";
import type { Config } from "./config";
import { isRoot } from "./exec";
import { withClient } from "./pg";
import {
  keptAdminSalt,
  POOL_ADMIN_USER,
  pooledRoles,
  reloadPool,
  renderPoolIni,
  renderUserlist,
  userlistEntries,
  type PoolWhere,
} from "./pool";
import { scramVerifier } from "./scram";
import { writeIfChanged } from "./render";
import { ensureDirNoFollow } from "./safe-fs";

/** The image's pgbouncer user (compose/pgbouncer/Dockerfile). */
export const IMAGE_POOL_IDS = { uid: 990, gid: 990 };
export const CONTAINER_POOL_PORT = 6432;

export const dockerPoolWhere: PoolWhere = {
  upstreamHost: "haproxy",
  upstreamPort: 5000,
  listenAddr: "0.0.0.0",
  listenPort: CONTAINER_POOL_PORT,
  userlist: "/etc/pgbouncer/userlist.txt",
};

/** Write <rendered-docker>/pgbouncer/{pgbouncer.ini,userlist.txt}; without a cluster connection, the admin entry only. True when either changed. */
export async function writeDockerPoolFiles(cfg: Config, dir: string, admin?: pg.Client): Promise<boolean> {
  const apps = loadApps(cfg);
  const owner = isRoot() ? IMAGE_POOL_IDS : undefined;
  const poolDir = join(dir, "pgbouncer");
  ensureDirNoFollow(poolDir, 0o755);
  const userlist = join(poolDir, "userlist.txt");
  const salt = keptAdminSalt(cfg, userlist);
  // Without the cluster an existing auth_file (with the roles' verifiers) is kept as it is.
  const entries = admin
    ? await userlistEntries(cfg, admin, pooledRoles(apps, cfg.databases), salt)
    : existsSync(userlist)
      ? undefined
      : [{ role: POOL_ADMIN_USER, verifier: scramVerifier(cfg.secrets.POOL_ADMIN_PASSWORD) }];
  const a = entries ? writeIfChanged(userlist, renderUserlist(entries), { mode: 0o600, ...(owner ?? {}) }) : false;
  const b = writeIfChanged(join(poolDir, "pgbouncer.ini"), renderPoolIni(cfg, apps, undefined, dockerPoolWhere), {
    mode: 0o644,
    ...(owner ?? {}),
  });
  return a || b;
}

/** After compose up: copy the cluster's verifiers into the auth_file and RELOAD the container's pgbouncer. */
export async function dockerPoolUp(cfg: Config, dir: string): Promise<string[]> {
  const changed = await withClient(cfg, {}, (c) => writeDockerPoolFiles(cfg, dir, c));
  if (!changed) return [];
  await reloadPool(cfg);
  return ["pgbouncer: auth_file copied from the cluster, RELOAD"];
}
