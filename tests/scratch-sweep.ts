/**
 * Scratch Postgres folders of tests/unit/backup-verify.test.ts: a run that was
 * killed (make mutation's timeout, bun's --bail, Ctrl-C) leaves its folder and
 * maybe a running instance. Each folder names its owner's pid; any whose owner
 * is gone is stopped (SIGQUIT: immediate shutdown) and deleted. Synchronous.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const VERIFY_PREFIX = "pgp-verify-";

/** Stop every Postgres whose data dir is below `dir`, then delete `dir`. */
export function sweep(dir: string): void {
  const walk = (d: string): string[] => {
    try {
      return readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(d, e.name)) : e.name === "postmaster.pid" ? [join(d, e.name)] : [],
      );
    } catch {
      return [];
    }
  };
  for (const pidFile of walk(dir)) {
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    if (pid > 0) {
      try {
        process.kill(pid, "SIGQUIT");
      } catch {}
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Sweep the folders whose owning test process is no longer alive; returns how many. */
export function sweepStale(): number {
  let n = 0;
  for (const d of readdirSync(tmpdir())
    .filter((x) => x.startsWith(VERIFY_PREFIX))
    .map((x) => join(tmpdir(), x))) {
    const owner = Number(existsSync(join(d, "owner.pid")) ? readFileSync(join(d, "owner.pid"), "utf8") : "0");
    let alive = false;
    try {
      alive = owner > 0 && (process.kill(owner, 0), true);
    } catch {}
    if (!alive) {
      sweep(d);
      n++;
    }
  }
  return n;
}
