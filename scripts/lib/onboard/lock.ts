/**
 * One app change at a time per stack: two runs at once could pick the same
 * port or interleave registry writes. A second run waits for the first.
 */
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { tryPidLock } from "../pidlock";

export const appsLockPath = (cfg: Pick<Config, "stateDir">) => join(cfg.stateDir, "locks", "apps.lock");

export async function withAppsLock<T>(
  cfg: Pick<Config, "stateDir">,
  fn: () => Promise<T>,
  waitMs = 10_000,
): Promise<T> {
  const path = appsLockPath(cfg);
  const deadline = Date.now() + waitMs;
  let lock = tryPidLock(path, "new-app");
  while (!("release" in lock)) {
    if (Date.now() > deadline) {
      const pid = lock.holder.pid;
      throw new ToolkitError(
        "LOCKED",
        `another new-app run (pid ${pid}) is changing apps on this stack`,
        `wait for it to finish; if pid ${pid} is not new-app, delete ${path}`,
      );
    }
    await Bun.sleep(100);
    lock = tryPidLock(path, "new-app");
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
