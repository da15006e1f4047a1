/**
 * `make restore DB=x [FROM=id] [TO=name]`: a logical backup back into the
 * live cluster. The dump is checked (sha256) first, restored into a temporary
 * database, checked against the manifest's row counts, and only then swapped
 * in by renaming: the database it replaces is kept (renamed, connections
 * disabled) rather than dropped, so a wrong restore is one rename away from
 * undone.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { connect, quoteIdent, rwTarget } from "../pg";
import { backupStamp, LOAD_PGOPTIONS, pgBin, serverErrorLines, type BackupProgress } from "./common";
import { loadArchive } from "./load";
import { countRows } from "./logical";
import type { TableCount } from "./manifest";
import {
  backupPath,
  compareCounts,
  compareFiles,
  compareLargeObjects,
  findBackup,
  hashFiles,
  type Manifest,
} from "./manifest";
import { checksumLargeObjects, pinOutput } from "../checksum";
import { compareDatabaseProps, readDatabaseProps } from "./dbprops";
import {
  checkDbName,
  clip,
  createFromProps,
  databaseExists,
  databaseSql,
  dropLeftoverTmp,
  markTmp,
  stepOrFail,
  tmpMarker,
} from "./restore-target";

// The database a restore builds (restore-target.ts); callers of restore.ts import these here.
export { retargetDatabaseSql, targetExists } from "./restore-target";

export interface RestoreOptions {
  db: string;
  from?: string;
  to?: string;
  /** replacing an existing database was confirmed (--yes or a prompt) */
  confirmed: boolean;
  jobs?: number;
}

export interface RestoreResult {
  backup: string;
  database: string;
  from: string;
  replaced: boolean;
  previousKeptAs?: string;
  /** who may connect to the restored database (checked against the backup's record): roles, or PUBLIC */
  canConnect: string[];
  tables: number;
  rows: number;
  ms: number;
}

/** The files of one database (and the roles) still match the manifest. */
export async function checkDumpFiles(m: Manifest, dir: string, db: string): Promise<void> {
  const entry = m.databases.find((d) => d.name === db)!;
  const wanted = m.files.filter((f) => f.path.startsWith(entry.dir + "/") || f.path === m.globals);
  const actual = await hashFiles(
    dir,
    wanted.map((f) => f.path).filter((p) => existsSync(join(dir, p))),
  );
  const problems = compareFiles(wanted, actual);
  if (problems.length)
    throw new ToolkitError(
      "BACKUP_CORRUPT",
      `backup ${m.id} of ${db} does not match its manifest: ${problems[0]}`,
      "restore from another backup (`make backup-list`, FROM=<id>)",
      problems.join("\n"),
    );
}

/**
 * What a restored database holds, in the terms of its manifest: every
 * table's row count and content checksum (count(*) and a hash of every row:
 * on a cluster with data checksums the first scan of freshly loaded pages
 * also writes hint bits, which costs WAL, but a count taken from statistics
 * cannot see content), its large objects and its own properties.
 */
export async function restoredState(c: pg.Client, db: string) {
  await pinOutput(c);
  return {
    tables: await countRows(c),
    largeObjects: await checksumLargeObjects(c),
    properties: await readDatabaseProps(c, db),
  };
}

/** Pure: every way a restored database differs from the manifest's record of it. */
export function restoreProblems(
  entry: Manifest["databases"][number],
  got: Awaited<ReturnType<typeof restoredState>>,
): string[] {
  return [
    ...compareCounts(entry.name, entry.tables, got.tables),
    ...compareLargeObjects(entry.name, entry.largeObjects, got.largeObjects),
    ...(entry.properties ? compareDatabaseProps(entry.name, entry.properties, got.properties) : []),
  ];
}

export async function restoreDatabase(
  cfg: Config,
  opts: RestoreOptions,
  progress: BackupProgress,
): Promise<RestoreResult> {
  const t0 = Date.now();
  checkDbName(opts.db, "DB");
  const target = opts.to ?? opts.db;
  checkDbName(target, "TO");
  const m = findBackup(cfg, opts.from, opts.db);
  const dir = backupPath(cfg, m.id);
  const entry = m.databases.find((d) => d.name === opts.db);
  if (!entry)
    throw new ToolkitError(
      "UNKNOWN_DATABASE",
      `backup ${m.id} has no database ${opts.db}`,
      `it has: ${m.databases.map((d) => d.name).join(", ")}`,
    );
  progress("check", `sha256 of backup ${m.id} (${opts.db})`);
  await checkDumpFiles(m, dir, opts.db);

  const tmp = clip(target, "_restoring");
  const env = { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "10", ...LOAD_PGOPTIONS };
  const rw = rwTarget(cfg);
  const conn = ["-h", rw.host, "-p", String(rw.port), "-U", "postgres", "--no-password"];
  const c = await connect(cfg);
  try {
    const replaced = await databaseExists(c, target);
    if (replaced && !opts.confirmed) {
      throw new ToolkitError(
        "NEEDS_CONFIRMATION",
        `database ${target} exists: restoring replaces it (the current one is kept, renamed)`,
        "re-run with YES=1 (make) or --yes, or restore next to it with TO=<new name>",
      );
    }
    await dropLeftoverTmp(cfg, c, tmp, target);

    progress("restore", `creating ${tmp} with ${opts.db}'s settings`);
    if (entry.properties?.create) {
      // From the manifest's record, as structured values: nothing is cut out of SQL text.
      await stepOrFail(c, tmp, "creating", () => createFromProps(c, tmp, entry.properties!));
    } else {
      // Backups made before the manifest recorded the database's properties.
      const dbSql = await databaseSql(cfg, join(dir, entry.dir), opts.db, tmp);
      const made = await run([pgBin(cfg, "psql"), ...conn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"], {
        input: dbSql,
        env,
        nothrow: true,
        timeoutMs: 120_000,
      });
      if (made.code !== 0) {
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(tmp)} WITH (FORCE)`).catch(() => {});
        throw new ToolkitError(
          "RESTORE_FAILED",
          `creating ${tmp} with ${opts.db}'s settings failed`,
          "nothing was replaced; the server's error is above",
          serverErrorLines(made.stderr).join("\n"),
        );
      }
    }
    await markTmp(cfg, c, tmp);
    progress("restore", `pg_restore -j ${opts.jobs ?? cfg.backup.jobs} into ${tmp}`);
    // Each table's rows load as its owner, never as the superuser (load.ts).
    const loadTarget = {
      host: rw.host,
      port: rw.port,
      superPassword: cfg.secrets.POSTGRES_PASSWORD,
      superClient: (database: string) => connect(cfg, { database, catalogOnly: true }),
    };
    try {
      await loadArchive(cfg, loadTarget, join(dir, entry.dir), tmp, { jobs: opts.jobs ?? cfg.backup.jobs });
    } catch (e) {
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(tmp)} WITH (FORCE)`).catch(() => {});
      if (e instanceof ToolkitError && ["LOAD_FAILED", "LOAD_OWNER_UNKNOWN"].includes(e.code)) {
        throw new ToolkitError(
          "RESTORE_FAILED",
          `pg_restore of ${opts.db} from ${m.id} failed: ${e.message}`,
          e.fix,
          e.detail,
        );
      }
      throw e;
    }

    progress("check", "row counts, checksums and database properties against the manifest");
    const dropTmp = () => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(tmp)} WITH (FORCE)`).catch(() => {});
    const t = await connect(cfg, { database: tmp, catalogOnly: true }).catch(async (e) => {
      await dropTmp();
      throw e;
    });
    let counts: TableCount[];
    let problems: string[];
    let canConnect: string[] = [];
    try {
      const got = await restoredState(t, tmp);
      counts = got.tables;
      canConnect = (got.properties?.acl ?? []).filter((a) => a.privilege === "CONNECT").map((a) => a.grantee);
      problems = restoreProblems(entry, got);
    } catch (e) {
      // Nothing half-made is left behind when the check itself fails.
      await t.end().catch(() => {});
      await dropTmp();
      throw e;
    } finally {
      await t.end().catch(() => {});
    }
    if (problems.length) {
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(tmp)} WITH (FORCE)`).catch(() => {});
      throw new ToolkitError(
        "RESTORE_MISMATCH",
        `restored ${opts.db} does not match backup ${m.id}: ${problems[0]}`,
        "nothing was replaced; try another backup (FROM=<id>)",
        problems.join("\n"),
      );
    }

    let previousKeptAs: string | undefined;
    if (replaced) {
      previousKeptAs = clip(target, `_pre_restore_${backupStamp().toLowerCase()}`);
      progress("swap", `${target} -> ${previousKeptAs}, ${tmp} -> ${target}`);
      // No new sessions, end the current ones, then rename: apps reconnect to the restored data.
      await c.query(`ALTER DATABASE ${quoteIdent(target)} ALLOW_CONNECTIONS false`);
      for (let i = 0; ; i++) {
        await c.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [target],
        );
        try {
          await c.query(`ALTER DATABASE ${quoteIdent(target)} RENAME TO ${quoteIdent(previousKeptAs)}`);
          break;
        } catch (e) {
          if (i >= 20) throw e;
          await Bun.sleep(250);
        }
      }
    }
    await c.query(`ALTER DATABASE ${quoteIdent(tmp)} RENAME TO ${quoteIdent(target)}`);
    return {
      backup: m.id,
      database: target,
      from: opts.db,
      replaced,
      previousKeptAs,
      canConnect,
      tables: counts.length,
      rows: counts.filter((x) => x.kind !== "partition").reduce((a, x) => a + x.rows, 0),
      ms: Date.now() - t0,
    };
  } finally {
    // The temporary database is gone (renamed into place or dropped after a failure): so is its record.
    if (!(await databaseExists(c, tmp).catch(() => true))) rmSync(tmpMarker(cfg, tmp), { force: true });
    await c.end().catch(() => {});
  }
}
