/**
 * `make backup-drill`: the documented "restore tested quarterly", made
 * automatic (cron: `make backup-drill-cron`). An end-to-end restore from the
 * OFF-SITE repository alone into a scratch instance: the newest backup there
 * plus its archived WAL up to now, every registered database present after
 * recovery, and the restore of the newest off-site logical backup's files
 * checked against its manifest. Timing goes to a report line and the
 * monitoring textfile; a failure alerts like a failed backup.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { registeredDatabases } from "../apps";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { writeTextfile } from "../monitoring";
import type { BackupProgress } from "./common";
import { readManifest } from "./manifest";
import { fetchLogicalOffsite, listLogicalOffsite } from "./offsite-copy";
import { requireOffsite } from "./offsite-restore";
import { runOffsite } from "./offsite";
import { stanzaInfo } from "./pgbackrest";
import { restorePitr, type PitrResult } from "./pitr";

export interface DrillResult {
  at: string;
  pitr: PitrResult;
  logical?: { id: string; files: number; ms: number };
  ms: number;
}

export const drillReportPath = (cfg: Config) => join(cfg.reportsDir, "backup-drill.jsonl");

export const DRILL_METRICS = {
  lastSuccess: "pgplatform_backup_drill_last_success_timestamp_seconds",
  seconds: "pgplatform_backup_drill_duration_seconds",
} as const;

/** Pure: a PITR target a second ago, in the form restore-pitr takes. */
export const drillTarget = (now = new Date()) =>
  new Date(now.getTime() - 1000)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "+00");

export async function runDrill(cfg: Config, progress: BackupProgress): Promise<DrillResult> {
  requireOffsite(cfg);
  const t0 = Date.now();
  // AT must come after the newest off-site backup finished (pgBackRest's stop time, whole seconds): the
  // far copy's WAL has a gap wherever archiving to it was paused (offsite-gate.ts), and only a backup
  // made after the gap bridges it. Right after `make backup` that means waiting a second or two.
  const newest = (await stanzaInfo(cfg, runOffsite)).backups.at(-1);
  const wait = newest ? (newest.stop + 2) * 1000 - Date.now() : 0;
  if (wait > 0) await Bun.sleep(wait);
  const at = drillTarget();
  progress("drill", `restore from the off-site repository alone to ${at}`);
  const pitr = await restorePitr(cfg, { at, source: "offsite" }, progress);
  const want = registeredDatabases(cfg);
  const missing = want.filter((d) => !pitr.databases.some((x) => x.name === d));
  if (missing.length)
    throw new ToolkitError(
      "DRILL_FAILED",
      `the off-site restore lacks database(s) ${missing.join(", ")}`,
      "run `make backup` and check its off-site line; then `make backup-drill` again",
    );
  let logical: DrillResult["logical"];
  const ids = await listLogicalOffsite(cfg);
  if (ids.length) {
    const id = ids.at(-1)!;
    progress("drill", `downloading logical backup ${id} and checking it against its manifest`);
    const t1 = Date.now();
    mkdirSync(join(cfg.stateDir, "offsite-fetch"), { recursive: true, mode: 0o700 });
    const tmp = mkdtempSync(join(cfg.stateDir, "offsite-fetch", "drill-"));
    try {
      const dir = await fetchLogicalOffsite(cfg, id, tmp);
      logical = { id, files: readManifest(dir).files.length, ms: Date.now() - t1 };
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const r: DrillResult = { at, pitr, logical, ms: Date.now() - t0 };
  mkdirSync(cfg.reportsDir, { recursive: true });
  appendFileSync(
    drillReportPath(cfg),
    JSON.stringify({
      finishedAt: new Date().toISOString(),
      ok: true,
      seconds: r.ms / 1000,
      target: at,
      backupSet: pitr.backupSet,
      logical: logical?.id,
    }) + "\n",
    { mode: 0o600 },
  );
  writeTextfile(cfg, "pgplatform_backup_drill", [
    {
      name: DRILL_METRICS.lastSuccess,
      help: "Unix time of the last successful restore drill from the off-site copy.",
      value: Math.floor(Date.now() / 1000),
    },
    {
      name: DRILL_METRICS.seconds,
      help: "Seconds the last off-site restore drill took end to end.",
      value: r.ms / 1000,
    },
  ]);
  return r;
}
