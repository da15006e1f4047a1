/**
 * Logical backups: pg_dump in directory format with parallel jobs, from a
 * healthy replica when there is one, plus the roles (pg_dumpall
 * --globals-only). Row counts are taken inside the very snapshot pg_dump
 * uses (pg_export_snapshot + --snapshot), so they match the dump exactly.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { registeredDatabases } from "../apps";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { connect, memberTarget } from "../pg";
import { formatBytes } from "../ui";
import { backupStamp, DUMP_PGOPTIONS, freeBytes, pgBin, spaceProblem, type BackupProgress } from "./common";
import {
  filesBelow,
  hashFiles,
  markFailed,
  writeManifest,
  type DatabaseEntry,
  type Manifest,
  type TableCount,
} from "./manifest";
import { checksumLargeObjects, checksumTables, pinOutput, type LargeObjectsChecksum } from "../checksum";
import { readDatabaseProps, type DatabaseProps } from "./dbprops";
import { isLockTimeout, lockedError, lockHolders } from "./lockwait";
import { pickSource, recoveryConflict, unloggedTables, type Source } from "./source";
import { checkDumpClient } from "./client-version";

// Where the dump reads from (source.ts); callers of logical.ts import these here.
export { chooseSource, pickSource, unloggedTables } from "./source";

const pgEnv = (cfg: Config) => ({
  PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD,
  PGCONNECT_TIMEOUT: "10",
  ...DUMP_PGOPTIONS,
});
const connArgs = (m: Member) => ["-h", m.address, "-p", String(m.pgPort), "-U", "postgres", "--no-password"];

/**
 * Every table's row count and content checksum (see ../checksum), in the
 * caller's snapshot. Unlogged tables are listed; a replica cannot read them,
 * so their database is dumped from the primary (dumpDatabase).
 */
export async function countRows(c: pg.Client): Promise<TableCount[]> {
  return checksumTables(c);
}

export interface LogicalOptions {
  databases?: string[];
  jobs?: number;
  id?: string;
}

/** Check the databases exist and the disk has room, before anything is written. */
export async function preflightLogical(
  cfg: Config,
  source: Source,
  wanted: string[],
): Promise<{ sizes: Map<string, number>; serverVersion: string }> {
  const c = await connect(cfg, { target: memberTarget(source.member) });
  try {
    const r = await c.query(
      "SELECT datname, pg_database_size(datname)::bigint AS size FROM pg_database WHERE datname = ANY($1)",
      [wanted],
    );
    const sizes = new Map(r.rows.map((x) => [x.datname as string, Number(x.size)]));
    const missing = wanted.filter((d) => !sizes.has(d));
    if (missing.length) {
      throw new ToolkitError(
        "UNKNOWN_DATABASE",
        `database ${missing.join(", ")} does not exist on ${source.member.name}`,
        `registered databases: ${registeredDatabases(cfg).join(", ")}; create it with \`make dev-up\` / new-app, or drop it from the list`,
      );
    }
    const serverVersion = (await c.query("SHOW server_version")).rows[0].server_version as string;
    // A compressed dump is smaller than the database; ask for the database's size plus headroom anyway.
    const need = [...sizes.values()].reduce((a, b) => a + b, 0) + 64 * 1024 * 1024;
    const problem = spaceProblem(
      "not enough disk space for the logical backup",
      cfg.backup.dir,
      need,
      freeBytes(cfg.backup.dir),
    );
    if (problem)
      throw new ToolkitError("NO_SPACE", problem, `free space, or point BACKUP_DIR in ${cfg.file} at a bigger disk`);
    return { sizes, serverVersion };
  } finally {
    await c.end().catch(() => {});
  }
}

function dirBytes(dir: string): number {
  try {
    return filesBelow(dir).reduce((a, p) => a + statSync(join(dir, p)).size, 0);
  } catch {
    return 0;
  }
}

/** Dump one database inside an exported snapshot; counts rows in the same snapshot meanwhile. */
interface Dumped {
  tables: TableCount[];
  wal: string;
  properties?: DatabaseProps;
  largeObjects: LargeObjectsChecksum;
}

async function dumpDatabase(
  cfg: Config,
  source: Source,
  db: string,
  outDir: string,
  jobs: number,
  expectBytes: number,
  progress: BackupProgress,
): Promise<Dumped> {
  const c = await connect(cfg, {
    target: memberTarget(source.member),
    database: db,
    timeoutMs: 10_000,
    catalogOnly: true,
  });
  try {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    // A table an app holds ACCESS EXCLUSIVE stops the count as it stops pg_dump: both bounded (lockwait.ts).
    await c.query(`SET LOCAL lock_timeout = ${cfg.backup.lockWaitSeconds * 1000}`);
    // Counting runs beside pg_dump: one process per scan leaves the CPUs to the dump's workers.
    await c.query("SET LOCAL max_parallel_workers_per_gather = 0");
    await pinOutput(c, true);
    const snap = (await c.query("SELECT pg_export_snapshot() AS s")).rows[0].s as string;
    const wal = (
      await c.query(
        source.inRecovery ? "SELECT pg_last_wal_replay_lsn()::text AS l" : "SELECT pg_current_wal_lsn()::text AS l",
      )
    ).rows[0].l as string;
    const cmd = [
      pgBin(cfg, "pg_dump"),
      ...connArgs(source.member),
      "-d",
      db,
      "-Fd",
      "-j",
      String(jobs),
      `--snapshot=${snap}`,
      `--lock-wait-timeout=${cfg.backup.lockWaitSeconds * 1000}`,
      "-f",
      outDir,
    ];
    // A compressed dump is roughly 0.4x the database: good enough for a progress bar.
    const ticker = setInterval(() => {
      const n = dirBytes(outDir);
      progress("dump", `${db}: ${formatBytes(n)} written`, Math.min(0.99, n / Math.max(1, expectBytes * 0.4)));
    }, 2000);
    try {
      const [, tables] = await Promise.all([
        run(cmd, { env: pgEnv(cfg), timeoutMs: 12 * 3_600_000 }),
        countRows(c),
      ]).catch(async (e) => {
        if (!isLockTimeout(e)) throw e;
        throw lockedError(db, cfg.backup.lockWaitSeconds, await lockHolders(cfg, db).catch(() => []));
      });
      const largeObjects = await checksumLargeObjects(c);
      const properties = await readDatabaseProps(c, db);
      return { tables, wal, properties, largeObjects };
    } finally {
      clearInterval(ticker);
    }
  } finally {
    await c.query("COMMIT").catch(() => {});
    await c.end().catch(() => {});
  }
}

export async function logicalBackup(
  cfg: Config,
  opts: LogicalOptions,
  progress: BackupProgress,
): Promise<{ dir: string; manifest: Manifest }> {
  const all = registeredDatabases(cfg);
  const wanted = opts.databases?.length ? opts.databases : all;
  const unknown = wanted.filter((d) => !all.includes(d));
  if (unknown.length) {
    throw new ToolkitError(
      "UNKNOWN_DATABASE",
      `${unknown.join(", ")} is not a registered database`,
      `registered: ${all.join(", ")} (environment databases in ${cfg.file}, apps in envs/apps*.yaml)`,
    );
  }
  const jobs = opts.jobs ?? cfg.backup.jobs;
  let source = await pickSource(cfg);
  const { sizes, serverVersion } = await preflightLogical(cfg, source, wanted);
  await checkDumpClient(cfg, serverVersion);

  mkdirSync(cfg.backup.dir, { recursive: true, mode: 0o700 });
  chmodSync(cfg.backup.dir, 0o700);
  let id = opts.id ?? backupStamp();
  for (let i = 1; existsSync(join(cfg.backup.dir, id)); i++) id = `${backupStamp()}-${i}`;
  const dir = join(cfg.backup.dir, id);
  mkdirSync(join(dir, "db"), { recursive: true, mode: 0o700 });
  const manifest: Manifest = {
    format: 1,
    id,
    stack: cfg.stack,
    cluster: cfg.clusterName,
    status: "running",
    startedAt: new Date().toISOString(),
    serverVersion,
    source: { member: source.member.name, role: source.role, address: source.member.address },
    jobs,
    databases: [],
    files: [],
  };
  writeManifest(dir, manifest);
  try {
    return await dumpAll();
  } catch (e) {
    markFailed(dir, e);
    throw e;
  }

  async function withUnlogged(db: string): Promise<string[]> {
    const c = await connect(cfg, {
      target: memberTarget(source.member),
      database: db,
      timeoutMs: 10_000,
      catalogOnly: true,
    });
    try {
      return await unloggedTables(c);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async function dumpAll(): Promise<{ dir: string; manifest: Manifest }> {
    progress("source", `dumping from ${source.member.name} (${source.role}) ${source.member.address}`);

    // Roles and their password hashes: restores need them, and they are secrets (0600).
    const globals = join(dir, "globals.sql");
    await run([pgBin(cfg, "pg_dumpall"), ...connArgs(source.member), "--globals-only", "-f", globals], {
      env: pgEnv(cfg),
      timeoutMs: 300_000,
    });
    chmodSync(globals, 0o600);
    manifest.globals = "globals.sql";

    for (const [i, db] of wanted.entries()) {
      const rel = join("db", db);
      const out = join(dir, rel);
      let note: string | undefined;
      let res: Dumped;
      // A replica's dump has no rows for unlogged tables (pg_dump skips them in recovery):
      // such a database is dumped from the primary, and the manifest says so.
      if (source.inRecovery) {
        const unlogged = await withUnlogged(db);
        if (unlogged.length) {
          note = `unlogged table(s)/sequence(s) ${unlogged.join(", ")}: a replica cannot dump them, dumped from the primary`;
          progress("dump", `${db}: ${note}`);
        }
      }
      let from = note ? await pickSource(cfg, true) : source;
      try {
        res = await dumpDatabase(cfg, from, db, out, jobs, sizes.get(db) ?? 1, (s, m, f) =>
          progress(s, m, (i + (f ?? 0)) / wanted.length),
        );
      } catch (e) {
        if (!from.inRecovery || !recoveryConflict(e)) throw e;
        // Retry this database from the primary rather than fail the night's backup.
        rmSync(out, { recursive: true, force: true });
        from = source = await pickSource(cfg, true);
        note = "replica cancelled the dump (recovery conflict): dumped from the primary";
        progress("dump", `${db}: ${note}`);
        res = await dumpDatabase(cfg, from, db, out, jobs, sizes.get(db) ?? 1, progress);
      }
      manifest.walPosition ??= res.wal;
      const entry: DatabaseEntry = {
        name: db,
        dir: rel,
        sizeBytes: sizes.get(db) ?? 0,
        tables: res.tables,
        member: from.member.name,
        walPosition: res.wal,
        ...(note ? { note } : {}),
        ...(res.properties ? { properties: res.properties } : {}),
        largeObjects: res.largeObjects,
      };
      manifest.databases.push(entry);
      progress(
        "dump",
        `${db}: ${res.tables.length} tables, ${res.tables.filter((t) => t.kind !== "partition").reduce((a, t) => a + t.rows, 0)} rows`,
        (i + 1) / wanted.length,
      );
    }

    progress("manifest", "sha256 of every file");
    for (const p of filesBelow(dir)) chmodSync(join(dir, p), 0o600);
    manifest.files = await hashFiles(dir);
    manifest.finishedAt = new Date().toISOString();
    manifest.status = "dumped";
    writeManifest(dir, manifest);
    return { dir, manifest };
  }
}
