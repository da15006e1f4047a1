/**
 * One lock mechanism for every "one at a time per stack" rule (new-app,
 * backup/restore, failover drill): a file created with O_EXCL naming its
 * holder. A holder whose pid is gone (kill -9, power loss) is stale and the
 * lock is taken over.
 *
 * Each acquisition writes a random token. A lock naming our own pid is held
 * only if this process really holds that token: two runs inside one process
 * still exclude each other, and a stale file whose pid was recycled to us
 * after a crash is taken over.
 */
import { randomUUID } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ToolkitError } from "./errors";
import { alive } from "./procs";

export interface LockHolder {
  pid: number;
  what?: string;
  since?: string;
  token?: string;
}

const heldTokens = new Set<string>();

/** The holder recorded in a lock file: our JSON, or a bare pid. */
export function readHolder(path: string): LockHolder | undefined {
  try {
    const v = JSON.parse(readFileSync(path, "utf8"));
    if (typeof v === "number") return { pid: v };
    if (v && typeof v.pid === "number") return v as LockHolder;
  } catch {}
  return undefined;
}

function stillHeld(h: LockHolder): boolean {
  if (!Number.isInteger(h.pid) || h.pid <= 0 || !alive(h.pid)) return false;
  if (h.pid === process.pid && h.token !== undefined) return heldTokens.has(h.token);
  return true;
}

/** Take the lock now, or report who holds it. Never waits. */
export function tryPidLock(path: string, what: string): { release: () => void } | { holder: LockHolder } {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 10; attempt++) {
    const token = randomUUID();
    // Written whole to a private file first, then linked into place: link() fails with EEXIST
    // when the lock exists, and no reader can ever see a half-written (empty) lock and call it stale.
    const tmp = `${path}.${process.pid}.${token}`;
    writeFileSync(
      tmp,
      JSON.stringify({ pid: process.pid, what, since: new Date().toISOString(), token } satisfies LockHolder) + "\n",
      { mode: 0o600 },
    );
    try {
      linkSync(tmp, path);
      heldTokens.add(token);
      rmSync(tmp, { force: true });
      return {
        release: () => {
          if (readHolder(path)?.token === token) rmSync(path, { force: true });
          heldTokens.delete(token);
        },
      };
    } catch (e) {
      rmSync(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = readHolder(path);
      // Gone between link() and the read: its holder just released it. Try again; never remove
      // anything on an empty read (two empty reads compare equal, and the lock a third taker made
      // in between would be deleted: two holders at once).
      if (!holder) continue;
      if (stillHeld(holder)) return { holder };
      // Stale: its holder died without cleaning up. Remove it only if it is still that stale lock
      // (another taker may have replaced it a moment ago).
      const now = readHolder(path);
      if (now && now.pid === holder.pid && now.token === holder.token) rmSync(path, { force: true });
    }
  }
  throw new ToolkitError("LOCKED", `could not take ${path}`, `delete ${path} if nothing is running`);
}
