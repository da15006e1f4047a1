/**
 * One lock per stack for everything that writes or reads backups (backup,
 * verify, restore, restore-pitr, retention): overlapping runs would fight
 * over the disk, and retention must never delete while a backup or restore
 * runs. A second run is refused at once (cron must not pile up).
 */
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { tryPidLock } from "../pidlock";

export const lockPath = (cfg: Config) => join(cfg.stateDir, "backup.lock");

export interface Lock {
  path: string;
  release(): void;
}

export function acquireLock(cfg: Config, what: string): Lock {
  const path = lockPath(cfg);
  const lock = tryPidLock(path, what);
  if ("holder" in lock) {
    const held = lock.holder;
    throw new ToolkitError(
      "LOCKED",
      `another ${held.what ?? "backup command"} is running on stack ${cfg.stack} (pid ${held.pid}, since ${held.since ?? "unknown"}); not starting a second one`,
      `wait for it to finish (see ${join(cfg.logsDir, "backup.log")}); if pid ${held.pid} is not ours any more, delete ${path}`,
    );
  }
  // Ctrl-C and errors exit through process.exit: the lock goes with us.
  process.once("exit", lock.release);
  return { path, release: lock.release };
}
