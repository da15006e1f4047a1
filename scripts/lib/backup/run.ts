/**
 * `make backup`: logical dump (+ manifest), physical pgBackRest backup (full
 * or differential per BACKUP_FULL_EVERY_DAYS), verification by restore, then
 * retention. Any failure marks the backup folder failed and is rethrown: the
 * entry script exits non-zero and fires the alert.
 */
import { recordBackup } from "../monitoring";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import type { BackupProgress } from "./common";
import { logicalBackup } from "./logical";
import { markFailed, readManifest, writeManifest, type Manifest, type Verification } from "./manifest";
import { physicalBackup, type PgbackrestRunner, type PhysicalResult } from "./pgbackrest";
import { applyRetention, type RetentionPlan } from "./retention";
import { verifyBackup } from "./verify";
import { withOffsite, type OffsiteReport } from "./offsite-run";
import { offsiteGate } from "./offsite-gate";

export interface BackupOptions {
  databases?: string[];
  verify?: boolean;
  physical?: boolean;
  physicalType?: "full" | "diff";
  retention?: boolean;
  /** the runtime's pgBackRest when it is not this host's (docker: in the leader's container) */
  pgbackrest?: PgbackrestRunner;
}

export interface BackupReport {
  id: string;
  dir: string;
  manifest: Manifest;
  physical?: PhysicalResult;
  verification?: Verification;
  retention?: RetentionPlan;
  ms: { dump: number; physical: number; verify: number; total: number };
}

export async function runBackup(
  cfg: Config,
  opts: BackupOptions,
  progress: BackupProgress,
): Promise<BackupReport & { offsite?: OffsiteReport }> {
  const unreachable = await offsiteGate(cfg, progress);
  return withOffsite(cfg, await runLocalBackup(cfg, opts, progress), { ...opts, unreachable }, progress);
}

async function runLocalBackup(cfg: Config, opts: BackupOptions, progress: BackupProgress): Promise<BackupReport> {
  const t0 = Date.now();
  const { dir, manifest } = await logicalBackup(cfg, { databases: opts.databases }, progress);
  const ms = { dump: Date.now() - t0, physical: 0, verify: 0, total: 0 };
  try {
    let physical: PhysicalResult | undefined;
    if (opts.physical !== false) {
      progress("physical", "pgBackRest backup");
      const t1 = Date.now();
      physical = await physicalBackup(cfg, { type: opts.physicalType, inContainer: opts.pgbackrest });
      ms.physical = Date.now() - t1;
      const m = readManifest(dir);
      m.physical = physical;
      writeManifest(dir, m);
      progress("physical", `${physical.type} backup ${physical.label} (${physical.note})`);
    }
    let verification: Verification | undefined;
    if (opts.verify !== false) {
      const t2 = Date.now();
      verification = await verifyBackup(
        cfg,
        dir,
        { physical: opts.physical !== false, pgbackrest: opts.pgbackrest },
        progress,
      );
      ms.verify = Date.now() - t2;
      if (!verification.ok) {
        throw new ToolkitError(
          "VERIFY_FAILED",
          `backup ${manifest.id} failed verification: ${verification.problems.length} problem(s)`,
          "the backup is marked failed and kept for inspection; fix the cause and run `make backup` again",
          verification.problems.join("\n"),
        );
      }
    }
    let retention: RetentionPlan | undefined;
    if (opts.retention !== false && verification?.ok) {
      retention = applyRetention(cfg);
      if (retention.delete.length) progress("retention", `deleted ${retention.delete.join(", ")}`);
    }
    ms.total = Date.now() - t0;
    const done = readManifest(dir);
    // node_exporter's textfile (MONITORING=true): last success and size (the dump files).
    recordBackup(
      cfg,
      done.files.reduce((n, f) => n + f.size, 0),
    );
    return { id: manifest.id, dir, manifest: readManifest(dir), physical, verification, retention, ms };
  } catch (e) {
    markFailed(dir, e);
    throw e;
  }
}
