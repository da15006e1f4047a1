/**
 * A backup is good only once it has been restored. Verification: the sha256
 * and size of every file against the manifest (naming any file that differs),
 * a restore of the roles and every database into a scratch instance with
 * per-table row counts and content checksums, large objects and the
 * database's own properties (owner, ACL, settings) compared to the
 * manifest, and `pgbackrest verify` of
 * the physical repository.
 */
import { recordVerification } from "../monitoring";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { formatBytes } from "../ui";
import { backupStamp, freeBytes, pgBin, serverErrorLines, spaceProblem, type BackupProgress } from "./common";
import { countRows } from "./logical";
import {
  compareCounts,
  compareFiles,
  compareLargeObjects,
  hashFiles,
  readManifest,
  writeManifest,
  type Manifest,
  type Verification,
} from "./manifest";
import { checksumLargeObjects, pinOutput } from "../checksum";
import { compareDatabaseProps, readDatabaseProps } from "./dbprops";
import { verifyRepo, type PgbackrestRunner } from "./pgbackrest";
import { LoadFailed, loadArchive } from "./load";
import {
  initScratch,
  removeScratch,
  scratchClient,
  scratchConnArgs,
  scratchEnv,
  scratchFor,
  scratchLoadTarget,
  startScratch,
  writeScratchConf,
  type Scratch,
} from "./scratch";

/** Roles from globals.sql into a fresh instance; the bootstrap superuser already exists there. */
export async function restoreGlobals(cfg: Config, s: Scratch, file: string): Promise<void> {
  const r = await run([pgBin(cfg, "psql"), ...scratchConnArgs(s), "-X", "-q", "-d", "postgres", "-f", file], {
    nothrow: true,
    timeoutMs: 300_000,
    env: scratchEnv(cfg),
  });
  const errors = r.stderr.split("\n").filter((l) => /ERROR:/.test(l) && !/role "postgres" already exists/.test(l));
  if (r.code !== 0 || errors.length)
    throw new ToolkitError(
      "RESTORE_GLOBALS_FAILED",
      `restoring roles from ${file} failed`,
      undefined,
      errors.join("\n") || r.stderr,
    );
}

export interface VerifyOptions {
  /** skip `pgbackrest verify` (e.g. when the backup had no physical part) */
  physical?: boolean;
  jobs?: number;
  /** the runtime's pgBackRest when it is not this host's (docker: in the leader's container) */
  pgbackrest?: PgbackrestRunner;
}

export async function verifyBackup(
  cfg: Config,
  dir: string,
  opts: VerifyOptions,
  progress: BackupProgress,
): Promise<Verification> {
  const t0 = Date.now();
  const m = readManifest(dir);
  const problems: string[] = [];
  const checks: Verification["checks"] = { files: false };

  progress("verify", `sha256 of ${m.files.length} files`);
  const actual = await hashFiles(dir);
  const fileProblems = compareFiles(m.files, actual);
  checks.files = fileProblems.length === 0 && m.files.length > 0;
  if (m.files.length === 0) problems.push("manifest lists no files");
  problems.push(...fileProblems);

  // A corrupted dump is not restored: the file check already names what is wrong.
  if (checks.files) {
    const restore = await restoreIntoScratch(cfg, m, dir, opts.jobs ?? cfg.backup.jobs, progress);
    checks.restore = restore.restored;
    checks.rowCounts = restore.restored && restore.countProblems.length === 0;
    checks.checksums =
      restore.restored &&
      restore.checksumProblems.length === 0 &&
      m.databases.every((d) => d.tables.every((t) => t.kind === "partition" || t.checksum !== undefined));
    checks.databaseProperties =
      restore.restored && restore.propertyProblems.length === 0 && m.databases.every((d) => d.properties !== undefined);
    problems.push(
      ...restore.problems,
      ...restore.countProblems,
      ...restore.checksumProblems,
      ...restore.propertyProblems,
    );
  }

  if (opts.physical !== false) {
    progress("verify", "pgbackrest verify");
    const repo = await verifyRepo(cfg, opts.pgbackrest);
    checks.pgbackrest = repo.ok;
    if (!repo.ok) problems.push(`pgbackrest verify: ${repo.output.split("\n").slice(-5).join(" | ") || "failed"}`);
  }

  const v: Verification = {
    ok: problems.length === 0,
    at: new Date().toISOString(),
    ms: Date.now() - t0,
    checks,
    problems,
  };
  const fresh = readManifest(dir);
  fresh.verification = v;
  fresh.status = v.ok ? "verified" : "failed";
  writeManifest(dir, fresh);
  // node_exporter's textfile (MONITORING=true): BackupVerificationFailed / BackupStale read it.
  recordVerification(cfg, v.ok);
  return v;
}

interface ScratchCheck {
  restored: boolean;
  /** restore failures, naming the database and the server's error */
  problems: string[];
  countProblems: string[];
  checksumProblems: string[];
  propertyProblems: string[];
}

async function restoreIntoScratch(
  cfg: Config,
  m: Manifest,
  dir: string,
  jobs: number,
  progress: BackupProgress,
): Promise<ScratchCheck> {
  const problems: string[] = [];
  const countProblems: string[] = [];
  const checksumProblems: string[] = [];
  const propertyProblems: string[] = [];
  const need = verifySpaceNeed(m.databases);
  const space = spaceProblem(
    "not enough disk space to restore the backup for verification",
    cfg.memberRoot,
    need,
    freeBytes(cfg.memberRoot),
  );
  if (space) throw new ToolkitError("NO_SPACE", space, "free space, or verify on a machine with more room");
  const s = scratchFor(cfg, `verify-${m.id}-${backupStamp()}`);
  try {
    progress("verify", `scratch instance ${s.name}`);
    await initScratch(cfg, s);
    writeScratchConf(cfg, s, {}, { fast: true });
    await startScratch(cfg, s, 120);
    if (m.globals) await restoreGlobals(cfg, s, join(dir, m.globals));
    for (const db of m.databases) {
      progress("verify", `restoring ${db.name} (${formatBytes(db.sizeBytes)})`);
      // --create restores the database with its own settings; each table's rows load as its owner (load.ts).
      try {
        await loadArchive(cfg, scratchLoadTarget(cfg, s), join(dir, db.dir), db.name, { create: true, jobs });
      } catch (e) {
        if (e instanceof LoadFailed)
          problems.push(
            `${db.name}: pg_restore failed: ${(e.detail ?? "").split("\n").join(" | ")} (loading ${e.step})`,
          );
        else if (e instanceof ToolkitError && e.code === "LOAD_OWNER_UNKNOWN")
          problems.push(`${db.name}: ${e.message}`);
        else throw e;
        continue;
      }
      const c = await scratchClient(cfg, s, db.name);
      try {
        await pinOutput(c);
        for (const p of compareCounts(db.name, db.tables, await countRows(c)))
          (/content differs/.test(p) ? checksumProblems : countProblems).push(p);
        checksumProblems.push(...compareLargeObjects(db.name, db.largeObjects, await checksumLargeObjects(c)));
        if (db.properties)
          propertyProblems.push(...compareDatabaseProps(db.name, db.properties, await readDatabaseProps(c, db.name)));
      } finally {
        await c.end().catch(() => {});
      }
    }
    return { restored: problems.length === 0, problems, countProblems, checksumProblems, propertyProblems };
  } catch (e) {
    if (e instanceof ToolkitError && e.code === "NO_SPACE") throw e;
    problems.push(
      `restore into scratch instance failed: ${(e as Error).message}${e instanceof ToolkitError && e.detail ? `: ${serverErrorLines(e.detail).join(" | ")}` : ""}`,
    );
    return { restored: false, problems, countProblems, checksumProblems, propertyProblems };
  } finally {
    await removeScratch(cfg, s).catch(() => {});
  }
}

/**
 * What the scratch restore needs, in bytes: 1.2 x the databases' recorded sizes (indexes are rebuilt and
 * WAL is written while loading) plus 64 MiB for the instance itself (initdb's files, its first WAL segments).
 */
export const verifySpaceNeed = (databases: { sizeBytes: number }[]): number =>
  databases.reduce((a, d) => a + d.sizeBytes, 0) * 1.2 + 64 * 1024 * 1024;
