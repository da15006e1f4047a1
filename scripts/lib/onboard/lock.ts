/**
 * One app change at a time per stack: two runs at once could pick the same
 * port or interleave registry writes. The lock is a file created with O_EXCL
 * holding our pid; a lock whose pid is gone (kill -9) is taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { alive } from "../procs";

export const appsLockPath = (cfg: Pick<Config, "stateDir">) => join(cfg.stateDir, "locks", "apps.lock");

function tryCreate(path: string): boolean {
  try {
    const fd = openSync(path, "wx", 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

export async function withAppsLock<T>(cfg: Pick<Config, "stateDir">, fn: () => Promise<T>, waitMs = 10_000): Promise<T> {
  const path = appsLockPath(cfg);
  mkdirSync(dirname(path), { recursive: true });
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (tryCreate(path)) break;
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, "utf8").trim());
    } catch {}
    if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
      rmSync(path, { force: true }); // stale: its owner died
      continue;
    }
    if (Date.now() > deadline) {
      throw new ToolkitError("LOCKED", `another new-app run (pid ${holder}) is changing apps on this stack`, `wait for it to finish; if pid ${holder} is not new-app, delete ${path}`);
    }
    await Bun.sleep(100);
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}
