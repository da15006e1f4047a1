/**
 * Retention of logical backups: keep every good backup for at least 24 hours
 * (a safety backup taken before a change survives the next run, even a run
 * the same day); beyond that, the newest good backup of each of the last N
 * days that have one and of each of the last M ISO weeks; never delete
 * the newest verified-good backup. Backups that failed or were never verified
 * are kept while they are newer than the newest good one (evidence for the
 * operator) and deleted once a good backup supersedes them. Physical backups
 * follow pgBackRest's own retention (repo1-retention-full/diff), applied by
 * pgBackRest after each backup.
 *
 * The policy applies per database: `backup --db a` keeps today's backup of b,
 * and a backup is deleted only when no database it holds still needs it.
 */
import { rmSync } from "node:fs";
import type { Config } from "../config";
import { stampToDate } from "./common";
import { backupPath, isGood, listBackups } from "./manifest";

export interface RetentionItem {
  id: string;
  time: Date;
  good: boolean;
  /** the databases it holds; absent or empty: it counts for every database */
  databases?: string[];
}

export interface RetentionPolicy {
  daily: number;
  weekly: number;
}

export interface RetentionPlan {
  keep: { id: string; reasons: string[] }[];
  delete: string[];
}

const dayKey = (d: Date) => d.toISOString().slice(0, 10);

/** ISO 8601 week, e.g. 2026-W47 (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = new Date(Date.UTC(t.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((t.getTime() - yearStart.getTime()) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

/** A good backup younger than this is never deleted, whatever newer backups exist. */
export const KEEP_EVERY_GOOD_MS = 24 * 3_600_000;

/** Pure: which backups to keep (and why) and which to delete, database by database. */
export function planRetention(items: RetentionItem[], policy: RetentionPolicy, now = new Date()): RetentionPlan {
  const dbsOf = (i: RetentionItem) => (i.databases?.length ? i.databases : []);
  const names = [...new Set(items.flatMap(dbsOf))];
  if (names.length <= 1) return planGroup(items, policy, now);
  const newestFirst = [...items].sort((a, b) => b.time.getTime() - a.time.getTime());
  const reasons = new Map<string, string[]>();
  for (const db of names.sort()) {
    const group = items.filter((i) => dbsOf(i).length === 0 || dbsOf(i).includes(db));
    for (const k of planGroup(group, policy, now).keep)
      reasons.set(k.id, [...(reasons.get(k.id) ?? []), ...k.reasons.map((r) => `${db}: ${r}`)]);
  }
  return {
    keep: newestFirst.filter((i) => reasons.has(i.id)).map((i) => ({ id: i.id, reasons: reasons.get(i.id)! })),
    delete: newestFirst.filter((i) => !reasons.has(i.id)).map((i) => i.id),
  };
}

/** Pure: the policy over backups that all count for the same database(s). */
function planGroup(items: RetentionItem[], policy: RetentionPolicy, now: Date): RetentionPlan {
  const newestFirst = [...items].sort((a, b) => b.time.getTime() - a.time.getTime());
  const good = newestFirst.filter((i) => i.good);
  const reasons = new Map<string, string[]>();
  const why = (id: string, r: string) => reasons.set(id, [...(reasons.get(id) ?? []), r]);
  const newestGood = good[0];
  if (newestGood) why(newestGood.id, "newest good backup");
  const pick = (n: number, key: (d: Date) => string, label: string) => {
    const seen = new Set<string>();
    for (const i of good) {
      const k = key(i.time);
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      why(i.id, `${label} ${k}`);
    }
  };
  for (const i of good) if (now.getTime() - i.time.getTime() < KEEP_EVERY_GOOD_MS) why(i.id, "younger than 24 h");
  pick(policy.daily, dayKey, "daily");
  pick(policy.weekly, isoWeekKey, "weekly");
  for (const i of newestFirst) {
    if (i.good) continue;
    if (!newestGood || i.time > newestGood.time) why(i.id, "not verified, newer than the newest good backup");
  }
  return {
    keep: newestFirst.filter((i) => reasons.has(i.id)).map((i) => ({ id: i.id, reasons: reasons.get(i.id)! })),
    delete: newestFirst.filter((i) => !reasons.has(i.id)).map((i) => i.id),
  };
}

export function retentionItems(cfg: Config): RetentionItem[] {
  return listBackups(cfg).map((m) => ({
    id: m.id,
    time: stampToDate(m.id) ?? new Date(0),
    good: isGood(m),
    databases: (m.databases ?? []).map((d) => d.name),
  }));
}

/** Delete what the plan says; the caller holds the backup lock. */
export function applyRetention(cfg: Config, now = new Date()): RetentionPlan {
  const plan = planRetention(
    retentionItems(cfg),
    { daily: cfg.backup.retentionDaily, weekly: cfg.backup.retentionWeekly },
    now,
  );
  for (const id of plan.delete) rmSync(backupPath(cfg, id), { recursive: true, force: true });
  return plan;
}
