/**
 * Which member a logical backup reads from: a running replica with the least
 * lag (an async one before the sync standby), else the leader; what a replica
 * cannot dump (unlogged tables and sequences, so their database is dumped from
 * the primary); and the recovery conflict after which a replica's dump is
 * retried on the primary. logical.ts drives the dump itself.
 */
import type pg from "pg";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { clusterView, isRunning, type ClusterMember } from "../patroni";
import { listTables } from "../checksum";

export interface Source {
  member: Member;
  role: string;
  inRecovery: boolean;
}

/** Pure: a running replica with the least lag (an async one before the sync standby), else the leader. */
export function chooseSource(members: ClusterMember[]): ClusterMember | undefined {
  const lag = (m: ClusterMember) => (typeof m.lag === "number" ? m.lag : Number.MAX_SAFE_INTEGER);
  const replicas = members
    .filter((m) => m.role !== "leader" && isRunning(m) && lag(m) < 16 * 1024 * 1024)
    .sort((a, b) => lag(a) - lag(b) || Number(a.role === "sync_standby") - Number(b.role === "sync_standby"));
  return replicas[0] ?? members.find((m) => m.role === "leader" && isRunning(m));
}

export async function pickSource(cfg: Config, preferPrimary = false): Promise<Source> {
  const view = await clusterView(cfg);
  if (!view)
    throw new ToolkitError(
      "NO_CLUSTER",
      "no Patroni member answers",
      "start the stack with `make dev-up`; see `make status`",
    );
  const chosen = preferPrimary
    ? view.members.find((m) => m.role === "leader" && isRunning(m))
    : chooseSource(view.members);
  if (!chosen) throw new ToolkitError("NO_SOURCE", "no running member to back up from", "see `make status`");
  const member = cfg.members.find((m) => m.name === chosen.name)!;
  return { member, role: chosen.role, inRecovery: chosen.role !== "leader" };
}

/**
 * Unlogged relations of the connected database a replica's dump cannot hold:
 * tables (no rows on a replica) and sequences (a replica reads an unlogged
 * sequence as freshly created, so its dump would restore it at 1 and the
 * next insert would reuse ids).
 */
export async function unloggedTables(c: pg.Client): Promise<string[]> {
  const tables = (await listTables(c)).filter((t) => t.unlogged).map((t) => `${t.schema}.${t.table}`);
  const seqs = (
    await c.query(`SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relkind = 'S' AND c.relpersistence = 'u'
                     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
                   ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`)
  ).rows.map((r) => `${r.name} (sequence)`);
  return [...tables, ...seqs];
}

/** A replica may cancel a long query when replay conflicts with it; the primary never does. */
export const recoveryConflict = (e: unknown) =>
  /conflict with recovery|canceling statement due to conflict/i.test(
    String((e as any)?.detail ?? "") + String((e as Error)?.message ?? ""),
  );
