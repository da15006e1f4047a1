/**
 * The OS users the stack's processes run as when the toolkit runs as root:
 * Postgres's side (Patroni, pgbouncer, pgBackRest) as `postgres`, etcd as
 * Debian's `etcd`. Unprivileged, everything runs as the caller and these
 * answer undefined.
 */
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { osUserIds } from "./exec";

/** As root, etcd runs as Debian's `etcd` user (its package creates it), never as root. */
export const etcdOsUser = (cfg: Config) => (cfg.pgOsUser ? "etcd" : undefined);

export function etcdOwner(cfg: Config): { uid: number; gid: number } | undefined {
  const user = etcdOsUser(cfg);
  if (!user) return undefined;
  const ids = osUserIds(user);
  if (!ids)
    throw new ToolkitError(
      "NO_ETCD_USER",
      `OS user ${user} does not exist`,
      "install etcd-server (its package creates the user) with `make setup`",
    );
  return ids;
}

/** The postgres OS user's ids when we run the Postgres side as it (as root), else undefined. */
export function pgOwner(cfg: Config): { uid: number; gid: number } | undefined {
  if (!cfg.pgOsUser) return undefined;
  const ids = osUserIds(cfg.pgOsUser);
  if (!ids)
    throw new ToolkitError(
      "NO_POSTGRES_USER",
      `OS user ${cfg.pgOsUser} does not exist`,
      "install postgresql-15 (it creates the user) with `make setup`",
    );
  return ids;
}
