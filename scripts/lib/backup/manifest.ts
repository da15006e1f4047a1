/**
 * A logical backup is a folder <BACKUP_DIR>/<UTC stamp>/ with a manifest.json
 * that says what is in it (databases, per-table row counts, every file's size
 * and sha256, source member, WAL position) and whether it was proven good by
 * a restore. The comparison functions are pure so they are unit-tested.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { BACKUP_ID_RE } from "./common";
import type { PhysicalResult } from "./pgbackrest";
import { compareTables, type LargeObjectsChecksum, type TableChecksum } from "../checksum";
import type { DatabaseProps } from "./dbprops";

/** A table's row count and (since checksums exist) its layout-independent content checksum. */
export type TableCount = TableChecksum;

export interface DatabaseEntry {
  name: string;
  /** folder of the pg_dump -Fd output, relative to the backup folder */
  dir: string;
  sizeBytes: number;
  tables: TableCount[];
  /** the member this database was dumped from (a replica unless none was healthy) */
  member: string;
  walPosition: string;
  note?: string;
  /** owner, ACL, settings, connection limit, comment: put back and checked by every restore */
  properties?: DatabaseProps;
  largeObjects?: LargeObjectsChecksum;
}

export interface FileEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface Verification {
  ok: boolean;
  at: string;
  ms: number;
  checks: {
    files: boolean;
    restore?: boolean;
    rowCounts?: boolean;
    checksums?: boolean;
    databaseProperties?: boolean;
    pgbackrest?: boolean;
  };
  problems: string[];
}

export type BackupStatus = "running" | "dumped" | "verified" | "failed";

export interface Manifest {
  format: 1;
  id: string;
  stack: string;
  cluster: string;
  status: BackupStatus;
  startedAt: string;
  finishedAt?: string;
  serverVersion?: string;
  source?: { member: string; role: string; address: string };
  walPosition?: string;
  jobs: number;
  globals?: string;
  databases: DatabaseEntry[];
  files: FileEntry[];
  physical?: PhysicalResult;
  verification?: Verification;
  error?: string;
}

export const MANIFEST = "manifest.json";

export function backupPath(cfg: Config, id: string): string {
  return join(cfg.backup.dir, id);
}

export function writeManifest(dir: string, m: Manifest): void {
  const tmp = join(dir, `.${MANIFEST}.tmp`);
  writeFileSync(tmp, JSON.stringify(m, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, join(dir, MANIFEST));
}

export function readManifest(dir: string): Manifest {
  const p = join(dir, MANIFEST);
  if (!existsSync(p))
    throw new ToolkitError(
      "NO_MANIFEST",
      `${p} does not exist`,
      "this folder is not a complete backup; run `make backup-list`",
    );
  try {
    return JSON.parse(readFileSync(p, "utf8")) as Manifest;
  } catch (e) {
    throw new ToolkitError(
      "BAD_MANIFEST",
      `${p}: ${(e as Error).message}`,
      "the manifest is damaged: treat this backup as bad and use another (`make backup-list`)",
    );
  }
}

/** Every backup folder with a readable manifest, oldest first. Unreadable ones are listed as failed. */
export function listBackups(cfg: Config): Manifest[] {
  if (!existsSync(cfg.backup.dir)) return [];
  const out: Manifest[] = [];
  for (const id of readdirSync(cfg.backup.dir).sort()) {
    if (!BACKUP_ID_RE.test(id)) continue;
    const dir = join(cfg.backup.dir, id);
    try {
      out.push(readManifest(dir));
    } catch {
      out.push({
        format: 1,
        id,
        stack: cfg.stack,
        cluster: cfg.clusterName,
        status: "failed",
        startedAt: "",
        jobs: 0,
        databases: [],
        files: [],
        error: "no readable manifest",
      });
    }
  }
  return out;
}

export const isGood = (m: Pick<Manifest, "status" | "verification">) =>
  m.status === "verified" && m.verification?.ok === true;

/** Resolve a user's FROM: an id, or the newest good backup (optionally one holding `db`). */
export function findBackup(cfg: Config, id: string | undefined, db?: string): Manifest {
  const all = listBackups(cfg);
  if (id) {
    if (!BACKUP_ID_RE.test(id))
      throw new ToolkitError(
        "BAD_BACKUP_ID",
        `${JSON.stringify(id)} is not a backup id (like 20261121T020000Z)`,
        "run `make backup-list` for the ids",
      );
    const m = all.find((x) => x.id === id);
    if (!m)
      throw new ToolkitError(
        "UNKNOWN_BACKUP",
        `no backup ${id} in ${cfg.backup.dir}`,
        "run `make backup-list` for the ids",
      );
    if (db && !m.databases.some((d) => d.name === db))
      throw new ToolkitError(
        "UNKNOWN_DATABASE",
        `backup ${id} has no database ${db} (it has ${m.databases.map((d) => d.name).join(", ")})`,
        "pick another backup with FROM=<id>",
      );
    return m;
  }
  const good = all.filter((m) => isGood(m) && (!db || m.databases.some((d) => d.name === db)));
  const newest = good.at(-1);
  if (!newest && db && all.length && !all.some((m) => m.databases.some((d) => d.name === db))) {
    const known = [...new Set(all.flatMap((m) => m.databases.map((d) => d.name)))];
    throw new ToolkitError(
      "UNKNOWN_DATABASE",
      `no backup contains a database ${db}`,
      `backed-up databases: ${known.join(", ")}`,
    );
  }
  if (!newest)
    throw new ToolkitError(
      "NO_GOOD_BACKUP",
      `no verified backup${db ? ` of ${db}` : ""} in ${cfg.backup.dir}`,
      "run `make backup` (or pass FROM=<id> to use an unverified one)",
    );
  return newest;
}

/** Files below `dir` (relative paths), excluding the manifest itself. */
export function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.filter((p) => p !== MANIFEST && !p.startsWith(`.${MANIFEST}`)).sort();
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await new Promise<void>((resolve, reject) => {
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on("data", (c) => h.update(c))
      .on("end", () => resolve())
      .on("error", reject);
  });
  return h.digest("hex");
}

export async function hashFiles(dir: string, paths = filesBelow(dir)): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  // Two at a time: hashing is CPU-bound and the dump's files are many and small plus a few large.
  const queue = [...paths];
  const worker = async () => {
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
      const full = join(dir, p);
      out.push({ path: p, size: statSync(full).size, sha256: await sha256File(full) });
    }
  };
  await Promise.all([worker(), worker()]);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** Pure: every difference between the manifest's files and what is on disk, naming the file. */
export function compareFiles(expected: FileEntry[], actual: FileEntry[]): string[] {
  const problems: string[] = [];
  const have = new Map(actual.map((f) => [f.path, f]));
  for (const e of expected) {
    const a = have.get(e.path);
    if (!a) problems.push(`${e.path}: missing`);
    else if (a.size !== e.size) problems.push(`${e.path}: size ${a.size} bytes, manifest says ${e.size}`);
    else if (a.sha256 !== e.sha256) problems.push(`${e.path}: sha256 mismatch (file changed or corrupted)`);
    have.delete(e.path);
  }
  for (const p of have.keys()) problems.push(`${p}: not in the manifest`);
  return problems;
}

/**
 * Pure: per-table row counts and content checksums of a restore against the
 * manifest (partitions through their root). Tables the manifest does not list
 * count as problems once the manifest lists every table (it has checksums).
 */
export function compareCounts(db: string, expected: TableCount[], actual: TableCount[]): string[] {
  return compareTables(db, expected, actual, {
    extra: expected.length > 0 && expected.every((t) => t.checksum !== undefined),
  });
}

/** Pure: the large objects of a restore against the manifest. */
export function compareLargeObjects(
  db: string,
  expected: LargeObjectsChecksum | undefined,
  actual: LargeObjectsChecksum,
): string[] {
  if (!expected) return [];
  if (actual.count !== expected.count)
    return [`${db}: ${actual.count} large objects after restore, manifest says ${expected.count}`];
  if (actual.checksum !== expected.checksum)
    return [`${db}: large objects: same count (${expected.count}) but the content differs (checksum)`];
  return [];
}

/** Record a failure in the backup's manifest (best effort: the error itself is what matters). */
export function markFailed(dir: string, e: unknown): void {
  if (!existsSync(join(dir, MANIFEST))) return;
  try {
    const m = readManifest(dir);
    m.status = "failed";
    m.error = (e as Error).message;
    writeManifest(dir, m);
  } catch {}
}
