/**
 * `make restore-pitr AT='2026-11-21 14:05:00+00'`: pgBackRest restores the
 * newest physical backup before AT into a NEW scratch instance (own data
 * dir, own address on our loopback block, archive_mode off so it can never
 * push into the live cluster's archive), replays WAL up to AT and promotes.
 * It reports what it recovered and is removed afterwards unless kept.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { tail } from "../exec";
import { withClient } from "../pg";
import { portFree } from "../ports";
import { backupStamp, ensurePgDir, pgBin, runAsPg, type BackupProgress } from "./common";
import { unloggedTables } from "./logical";
import { runPgbackrest, stanzaInfo } from "./pgbackrest";
import { runOffsite } from "./offsite";
import {
  listScratch,
  prepareScratchDirs,
  removeScratch,
  scratchClient,
  scratchFor,
  scratchRunning,
  startScratch,
  writeScratchConf,
  type Scratch,
} from "./scratch";

/** Pure: a timestamp with an explicit offset (a bare time would be read in the server's zone). */
export function parsePitrTarget(at: string, now = new Date()): Date {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)\s*(Z|[+-]\d{2}(?::?\d{2})?)$/i.exec(
    at.trim(),
  );
  if (!m)
    throw new ToolkitError(
      "BAD_TIME",
      `AT=${JSON.stringify(at)} is not a timestamp with a UTC offset`,
      "use e.g. AT='2026-11-21 14:05:00+00' (the offset is required)",
    );
  let off = m[3]!.toUpperCase();
  if (off !== "Z")
    off = off.length === 3 ? `${off}:00` : off.includes(":") ? off : `${off.slice(0, 3)}:${off.slice(3)}`;
  const d = new Date(`${m[1]}T${m[2]}${off}`);
  if (Number.isNaN(d.getTime()))
    throw new ToolkitError(
      "BAD_TIME",
      `AT=${JSON.stringify(at)} is not a valid time`,
      "use e.g. AT='2026-11-21 14:05:00+00'",
    );
  if (d.getTime() > now.getTime())
    throw new ToolkitError("BAD_TIME", `AT=${at} is in the future`, "pick a time in the past");
  return d;
}

export interface PitrOptions {
  at: string;
  keep?: boolean;
  /** offsite: from the off-site repository alone (its own config: the local repository is not even configured) */
  source?: "local" | "offsite";
}

export interface PitrResult {
  target: string;
  backupSet?: string;
  stoppedAt?: string;
  lastTransaction?: string;
  timeline?: number;
  databases: { name: string; bytes: number }[];
  /** unlogged tables come back EMPTY from a physical restore (their data is never in WAL): named here */
  unloggedEmpty: string[];
  scratch: { name: string; dir: string; address: string; port: number; kept: boolean };
  ms: number;
}

/** Settings recovery insists be at least the primary's, read from the restored pg_control. */
async function controlSettings(cfg: Config, s: Scratch): Promise<Record<string, number>> {
  const out = (
    await runAsPg(cfg, [pgBin(cfg, "pg_controldata"), s.dataDir], { timeoutMs: 30_000, env: { LC_ALL: "C" } })
  ).stdout;
  const pick = (label: string) => Number(new RegExp(`^${label} setting:\\s+(\\d+)`, "m").exec(out)?.[1] ?? NaN);
  const out2: Record<string, number> = {};
  for (const [k, label] of [
    ["max_connections", "max_connections"],
    ["max_worker_processes", "max_worker_processes"],
    ["max_wal_senders", "max_wal_senders"],
    ["max_prepared_transactions", "max_prepared_xacts"],
    ["max_locks_per_transaction", "max_locks_per_xact"],
  ] as const) {
    const v = pick(label);
    if (Number.isFinite(v)) out2[k] = v;
  }
  return out2;
}

export async function restorePitr(cfg: Config, opts: PitrOptions, progress: BackupProgress): Promise<PitrResult> {
  const t0 = Date.now();
  const target = parsePitrTarget(opts.at);
  const runner = opts.source === "offsite" ? runOffsite : runPgbackrest;
  const info = await stanzaInfo(cfg, runner);
  const before = info.backups.filter((b) => b.stop * 1000 <= target.getTime());
  if (before.length === 0) {
    const first = info.backups[0];
    throw new ToolkitError(
      "NO_BACKUP_BEFORE",
      `no physical backup finished before ${opts.at}${first ? ` (the oldest finished ${new Date(first.stop * 1000).toISOString()})` : ""}`,
      "pick a later time, or take one now with `make backup` (PITR reaches back to the oldest kept backup)",
    );
  }
  // Recovery to a time stops at the first commit after it; on a quiet cluster there may be none yet,
  // and recovery then ends "before the configured recovery target was reached". One empty
  // transaction with an xid writes a commit record stamped now, after AT.
  await withClient(cfg, {}, (c) => c.query("SELECT pg_current_xact_id()"));
  // Everything written up to now must be in the archive, or recovery stops short of AT.
  progress("archive", "switching WAL and waiting for it to be archived");
  await runner(cfg, ["--archive-timeout=120", "check"], { timeoutMs: 180_000 });

  const s = scratchFor(cfg, `pitr-${backupStamp()}`, cfg.backup.scratchAddress);
  if (!(await portFree(s.address, s.port))) {
    throw new ToolkitError(
      "PORT_IN_USE",
      `${s.address}:${s.port} is in use (a kept scratch instance?)`,
      "remove kept instances with `bun scripts/restore-pitr.ts --remove`, or set BACKUP_SCRATCH_ADDRESS",
    );
  }
  let kept = false;
  try {
    prepareScratchDirs(cfg, s);
    ensurePgDir(cfg, s.dataDir, 0o700);
    progress("restore", `pgBackRest restore into ${s.dataDir} (target ${opts.at})`);
    const r = await runner(
      cfg,
      [
        `--pg1-path=${s.dataDir}`,
        "--type=time",
        `--target=${opts.at}`,
        "--target-action=promote",
        "--archive-mode=off",
        `--process-max=${cfg.backup.jobs}`,
        "--log-level-console=info",
        "restore",
      ],
      { timeoutMs: 12 * 3_600_000 },
    );
    const backupSet = /restore backup set ([^\s,]+)/.exec(r.stdout + r.stderr)?.[1];
    rmSync(join(s.dataDir, "standby.signal"), { force: true });
    writeScratchConf(cfg, s, await controlSettings(cfg, s));
    progress("recover", `replaying WAL to ${opts.at} on ${s.address}:${s.port}`);
    await startScratch(cfg, s, 1800);
    // Promotion happens once the target is reached; wait for it (or for the server to give up).
    let promoted = false;
    for (let i = 0; i < 1200 && !promoted; i++) {
      if (!scratchRunning(s)) break;
      try {
        const c = await scratchClient(cfg, s);
        try {
          promoted = !(await c.query("SELECT pg_is_in_recovery() AS r")).rows[0].r;
        } finally {
          await c.end().catch(() => {});
        }
      } catch {}
      if (!promoted) await Bun.sleep(500);
    }
    const log = existsSync(s.logFile) ? readFileSync(s.logFile, "utf8") : "";
    if (!promoted) {
      throw new ToolkitError(
        "PITR_FAILED",
        `recovery to ${opts.at} did not complete`,
        `see ${s.logFile}`,
        tail(log, 12),
      );
    }
    const c = await scratchClient(cfg, s);
    let databases: { name: string; bytes: number }[] = [];
    let timeline: number | undefined;
    try {
      databases = (
        await c.query(
          "SELECT datname AS name, pg_database_size(datname)::bigint AS bytes FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
        )
      ).rows.map((x) => ({ name: x.name, bytes: Number(x.bytes) }));
      timeline = Number((await c.query("SELECT timeline_id FROM pg_control_checkpoint()")).rows[0].timeline_id);
    } finally {
      await c.end().catch(() => {});
    }
    const unloggedEmpty: string[] = [];
    for (const d of databases) {
      const dc = await scratchClient(cfg, s, d.name).catch(() => undefined);
      if (!dc) {
        unloggedEmpty.push(`${d.name}: not checked (the database refuses connections)`);
        continue;
      }
      try {
        for (const t of await unloggedTables(dc)) unloggedEmpty.push(`${d.name}: ${t}`);
      } finally {
        await dc.end().catch(() => {});
      }
    }
    kept = Boolean(opts.keep);
    return {
      target: opts.at,
      backupSet,
      stoppedAt: /recovery stopping (?:before|after) [^\n]*?time ([^\n]+)/.exec(log)?.[1]?.trim(),
      lastTransaction: /last completed transaction was at log time ([^\n]+)/.exec(log)?.[1]?.trim(),
      timeline,
      databases,
      unloggedEmpty,
      scratch: { name: s.name, dir: s.dir, address: s.address, port: s.port, kept },
      ms: Date.now() - t0,
    };
  } finally {
    if (!kept) await removeScratch(cfg, s).catch(() => {});
  }
}

/** Stop and delete scratch instances kept by `restore-pitr --keep`. */
export async function removeKeptPitr(cfg: Config): Promise<string[]> {
  const gone: string[] = [];
  for (const s of listScratch(cfg).filter((x) => x.name.startsWith("pitr-"))) {
    await removeScratch(cfg, s);
    gone.push(s.name);
  }
  return gone;
}
