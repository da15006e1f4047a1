/**
 * One lock per stack for everything that writes or reads backups (backup,
 * verify, restore, restore-pitr, retention): overlapping runs would fight
 * over the disk, and retention must never delete while a backup or restore
 * runs. The lock is a file created with O_EXCL holding our pid; a lock whose
 * pid is gone is stale and taken over.
 */
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { alive } from "../procs";

export const lockPath = (cfg: Config) => join(cfg.stateDir, "backup.lock");

export interface LockInfo {
  pid: number;
  what: string;
  since: string;
}

export function readLock(path: string): LockInfo | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as LockInfo;
  } catch {
    return undefined;
  }
}

export interface Lock {
  path: string;
  release(): void;
}

export function acquireLock(cfg: Config, what: string): Lock {
  const path = lockPath(cfg);
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, what, since: new Date().toISOString() } satisfies LockInfo) + "\n");
      closeSync(fd);
      const release = () => {
        const cur = readLock(path);
        if (cur?.pid === process.pid) rmSync(path, { force: true });
      };
      // Ctrl-C and errors exit through process.exit: the lock goes with us.
      process.once("exit", release);
      return { path, release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const held = readLock(path);
      if (held && held.pid !== process.pid && alive(held.pid)) {
        throw new ToolkitError(
          "LOCKED",
          `another ${held.what} is running on stack ${cfg.stack} (pid ${held.pid}, since ${held.since}); not starting a second one`,
          `wait for it to finish (see ${join(cfg.logsDir, "backup.log")}); if pid ${held.pid} is not ours any more, delete ${path}`,
        );
      }
      // Stale: the holder died without cleaning up (kill -9, power loss).
      if (existsSync(path)) rmSync(path, { force: true });
    }
  }
  throw new ToolkitError("LOCKED", `could not take ${path}`, `delete ${path} if no backup is running`);
}
