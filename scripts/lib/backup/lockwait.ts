/**
 * A backup that meets a table an app holds locked: pg_dump takes ACCESS SHARE
 * on every table it dumps and, unbounded, waits for as long as the app keeps
 * an ACCESS EXCLUSIVE lock (an ALTER TABLE or a LOCK TABLE left open in a
 * transaction), while nothing alerts. The dump is bounded
 * (`--lock-wait-timeout`, pg_dump's docs; `lock_timeout` for the row count
 * beside it) and its failure names who holds the lock, read on the primary
 * (an ACCESS EXCLUSIVE lock is WAL-logged, so a replica's dump waits for the
 * primary's holder too).
 */
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { connect } from "../pg";

/** Does this error (pg_dump's stderr tail or a server error) say a lock wait ran out? */
export const isLockTimeout = (e: unknown): boolean =>
  /could not obtain lock on relation|canceling statement due to lock timeout/i.test(
    `${(e as any)?.detail ?? ""} ${(e as Error)?.message ?? ""}`,
  );

export interface LockHolder {
  pid: number;
  user: string;
  application: string;
  relation: string;
  /** when the holder's transaction started (ISO) */
  since: string;
  query: string;
}

/** Sessions holding ACCESS EXCLUSIVE on a relation of `db`, on the primary. */
export async function lockHolders(cfg: Config, db: string): Promise<LockHolder[]> {
  const c = await connect(cfg, { database: db, timeoutMs: 10_000, catalogOnly: true });
  try {
    const r = await c.query(
      `SELECT a.pid, coalesce(a.usename, '') AS "user", coalesce(a.application_name, '') AS application,
              l.relation::regclass::text AS relation, coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '') AS since,
              left(coalesce(a.query, ''), 200) AS query
         FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.mode = 'AccessExclusiveLock' AND l.locktype = 'relation'
          AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
        ORDER BY a.xact_start, l.relation`,
    );
    return r.rows as LockHolder[];
  } finally {
    await c.end().catch(() => {});
  }
}

/** Pure: the BACKUP_LOCKED error naming the holders (or saying none is left by the time we looked). */
export function lockedError(db: string, waitedSeconds: number, holders: LockHolder[]): ToolkitError {
  const who = holders.length
    ? holders
        .map(
          (h) =>
            `pid ${h.pid} (user ${h.user || "?"}, application ${h.application || "?"}, transaction since ${h.since || "?"}) holds ${h.relation}: ${h.query}`,
        )
        .join("; ")
    : "the lock was released before its holder could be read";
  return new ToolkitError(
    "BACKUP_LOCKED",
    `backup of ${db} waited ${waitedSeconds} s for a table lock and gave up: ${who}`,
    "end that transaction (or SELECT pg_terminate_backend(<pid>)) and run the backup again; BACKUP_LOCK_WAIT_SECONDS sets how long to wait",
  );
}
