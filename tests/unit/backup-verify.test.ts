/**
 * verifyBackup on a real, tiny backup, without a cluster: a scratch Postgres
 * (the PostgreSQL 15 binaries of `make setup`, PG_BIN_DIR) serves as the
 * source, pg_dump and pg_dumpall write the backup, and verification restores
 * it into its own scratch instance as `make backup-verify` would. The manifest
 * is built with the functions the real backup uses (countRows with its content
 * checksums, checksumLargeObjects, readDatabaseProps, hashFiles), so a good
 * backup passes every check. Each broken backup must fail with its own check
 * and exact problem (make mutation). Superuser sessions in scratch instances
 * resolve names in pg_catalog only: the SQL here is schema-qualified.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import { ToolkitError } from "../../scripts/lib/errors";
import { run } from "../../scripts/lib/exec";
import { ensurePgDir, freeBytes, pgBin } from "../../scripts/lib/backup/common";
import { countRows } from "../../scripts/lib/backup/logical";
import { hashFiles, readManifest, writeManifest, type Manifest } from "../../scripts/lib/backup/manifest";
import { readDatabaseProps } from "../../scripts/lib/backup/dbprops";
import { checksumLargeObjects, pinOutput } from "../../scripts/lib/checksum";
import { verifyRepo } from "../../scripts/lib/backup/pgbackrest";
import {
  initScratch,
  removeScratch,
  scratchClient,
  scratchConnArgs,
  scratchEnv,
  scratchFor,
  scratchRoot,
  startScratch,
  writeScratchConf,
  type Scratch,
} from "../../scripts/lib/backup/scratch";
import { restoreGlobals, verifyBackup, verifySpaceNeed } from "../../scripts/lib/backup/verify";
import { sweep, sweepStale, VERIFY_PREFIX } from "../scratch-sweep";

const SLOW = 180_000;
// A run that was killed left its folder and maybe a running instance: clean those first.
sweepStale();
const root = mkdtempSync(join(tmpdir(), VERIFY_PREFIX));
writeFileSync(join(root, "owner.pid"), String(process.pid));
process.on("exit", () => {
  sweep(root); // also when --bail ends the run before afterAll
  rmSync(cfg.runtimeDir, { recursive: true, force: true });
});
chmodSync(root, 0o755); // the postgres OS user walks into its scratch folders below
const envText = readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8").replace(
  /^MEMBER_ROOT=.*$/m,
  `MEMBER_ROOT=${join(root, "members")}`,
);
// A stack name of its own per run: two runs at once (two checkouts on one machine) never share a socket folder.
const STACK = `unit-verify-${process.pid}`;
const cfg: Config = parseConfig(envText, { file: "envs/test.env", stack: STACK, rootDir: root });
cfg.secrets = { POSTGRES_PASSWORD: "unit-verify-superuser-pw-0123456789" } as Config["secrets"];

let source: Scratch;
/** The pristine backup every test copies and breaks in its own way. */
const pristine = join(root, "pristine");

beforeAll(async () => {
  ensurePgDir(cfg, cfg.memberRoot, 0o755);
  source = scratchFor(cfg, "source");
  await initScratch(cfg, source);
  writeScratchConf(cfg, source, {}, { fast: true });
  await startScratch(cfg, source, 120);
  const admin = await scratchClient(cfg, source);
  await admin.query("CREATE ROLE pgp_verify_owner LOGIN");
  await admin.query("CREATE ROLE pgp_verify_reader LOGIN");
  await admin.query("CREATE DATABASE app_db OWNER pgp_verify_owner");
  // The database's own properties, which live in the shared catalogs: the manifest records them.
  await admin.query("REVOKE ALL ON DATABASE app_db FROM PUBLIC");
  await admin.query("GRANT CONNECT ON DATABASE app_db TO pgp_verify_reader");
  await admin.query("COMMENT ON DATABASE app_db IS 'verify test'");
  await admin.query("ALTER DATABASE app_db SET work_mem = '8MB'");
  await admin.end();
  const c = await scratchClient(cfg, source, "app_db");
  await c.query(
    "CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t SELECT g, 'row ' || g FROM pg_catalog.generate_series(1, 3) g",
  );
  await c.query(
    "CREATE TABLE public.u (id int); INSERT INTO public.u VALUES (1), (2); ALTER TABLE public.t OWNER TO pgp_verify_owner",
  );
  await c.query("SELECT pg_catalog.lo_from_bytea(0, '\\x0102'::bytea)");
  await pinOutput(c);
  const tables = await countRows(c);
  const largeObjects = await checksumLargeObjects(c);
  const properties = await readDatabaseProps(c, "app_db");
  await c.end();
  mkdirSync(join(pristine, "db"), { recursive: true });
  const env = scratchEnv(cfg);
  await run(
    [pgBin(cfg, "pg_dumpall"), ...scratchConnArgs(source), "--globals-only", "-f", join(pristine, "globals.sql")],
    { env },
  );
  await run([pgBin(cfg, "pg_dump"), ...scratchConnArgs(source), "-Fd", "-f", join(pristine, "db/app_db"), "app_db"], {
    env,
  });
  await removeScratch(cfg, source);
  writeManifest(pristine, {
    format: 1,
    id: "20261121T020000Z",
    stack: STACK,
    cluster: cfg.clusterName,
    status: "dumped",
    startedAt: "2026-11-21T02:00:00.000Z",
    jobs: 1,
    globals: "globals.sql",
    databases: [
      {
        name: "app_db",
        dir: "db/app_db",
        sizeBytes: 8_000_000,
        tables,
        member: "pg2",
        walPosition: "0/3000000",
        properties,
        largeObjects,
      },
    ],
    files: await hashFiles(pristine),
  });
}, SLOW);

afterAll(async () => {
  if (source) await removeScratch(cfg, source).catch(() => {});
  sweep(root);
  rmSync(cfg.runtimeDir, { recursive: true, force: true });
});

let n = 0;
/** A copy of the pristine backup, changed by `edit` (which may rewrite the manifest). */
function backupCopy(edit: (dir: string, m: Manifest) => void | Promise<void> = () => {}): Promise<string> {
  const dir = join(root, `b${n++}`);
  cpSync(pristine, dir, { recursive: true });
  return Promise.resolve(edit(dir, readManifest(dir))).then(() => dir);
}
const rehash = async (dir: string, m: Manifest) => writeManifest(dir, { ...m, files: await hashFiles(dir) });
/** The manifest with app_db's entry changed by `f`. */
const editDb = (d: string, m: Manifest, f: (db: Manifest["databases"][number]) => Manifest["databases"][number]) =>
  writeManifest(d, { ...m, databases: m.databases.map(f) });
const FAILED_RESTORE = { files: true, restore: false, rowCounts: false, checksums: false, databaseProperties: false };
const dataFile = (dir: string) =>
  join("db/app_db", readdirSync(join(dir, "db/app_db")).find((f) => /^\d+\.dat/.test(f))!);

async function verify(dir: string, physical = false) {
  const steps: string[] = [];
  const v = await verifyBackup(cfg, dir, { physical, jobs: 1 }, (step, message) => steps.push(`${step}: ${message}`));
  return { v, steps, saved: readManifest(dir) };
}

describe("verification without a restore (the files are already wrong)", () => {
  test("a flipped byte: files fail, naming the file; nothing is restored; the manifest says failed", async () => {
    let file = "";
    const dir = await backupCopy((d) => {
      file = dataFile(d);
      const p = join(d, file);
      const b = readFileSync(p);
      b[b.length - 1] = b[b.length - 1]! ^ 0xff;
      writeFileSync(p, b);
    });
    const { v, steps, saved } = await verify(dir);
    expect([v.ok, v.checks, v.problems]).toEqual([
      false,
      { files: false },
      [`${file}: sha256 mismatch (file changed or corrupted)`],
    ]);
    expect(steps).toEqual([`verify: sha256 of ${readManifest(pristine).files.length} files`]);
    expect(saved.status).toBe("failed");
    expect(saved.verification).toEqual(v);
  });

  test("a manifest that lists no files fails, and names every file it does not list", async () => {
    const dir = await backupCopy((d, m) => writeManifest(d, { ...m, files: [] }));
    const { v } = await verify(dir);
    expect(v.ok).toBe(false);
    expect(v.checks).toEqual({ files: false });
    expect(v.problems).toEqual([
      "manifest lists no files",
      ...readManifest(pristine).files.map((f) => `${f.path}: not in the manifest`),
    ]);
  });

  test("a backup folder holding nothing but a manifest that lists nothing fails the file check; nothing is restored", async () => {
    const dir = join(root, `b${n++}`);
    mkdirSync(dir);
    writeManifest(dir, { ...readManifest(pristine), globals: undefined, databases: [], files: [] });
    const { v, steps } = await verify(dir);
    expect([v.ok, v.checks, v.problems]).toEqual([false, { files: false }, ["manifest lists no files"]]);
    expect(steps).toEqual(["verify: sha256 of 0 files"]);
  });

  test("the room a verification needs: 1.2 x the databases' recorded sizes plus 64 MiB for the instance", () => {
    expect(verifySpaceNeed([])).toBe(67_108_864);
    expect(verifySpaceNeed([{ sizeBytes: 1000 }, { sizeBytes: 4000 }])).toBe(6000 + 67_108_864);
  });

  test("room is judged as 1.2 x the databases' size: 10 % short of it is NO_SPACE", async () => {
    const free = freeBytes(cfg.memberRoot);
    const size = Math.ceil((free * 1.1 - 64 * 1024 * 1024) / 1.2);
    const dir = await backupCopy((d, m) =>
      writeManifest(d, { ...m, databases: m.databases.map((db) => ({ ...db, sizeBytes: size })) }),
    );
    await expect(verifyBackup(cfg, dir, { physical: false, jobs: 1 }, () => {})).rejects.toMatchObject({
      code: "NO_SPACE",
    });
  });

  test("roles that cannot be restored because the instance is not there: RESTORE_GLOBALS_FAILED with psql's own words", async () => {
    const gone = scratchFor(cfg, "never-started");
    const e = await restoreGlobals(cfg, gone, join(pristine, "globals.sql")).then(
      () => undefined,
      (x) => x,
    );
    expect(e).toBeInstanceOf(ToolkitError);
    expect([(e as ToolkitError).code, (e as ToolkitError).message]).toEqual([
      "RESTORE_GLOBALS_FAILED",
      `restoring roles from ${join(pristine, "globals.sql")} failed`,
    ]);
    expect((e as ToolkitError).detail).toMatch(/psql: error: connection to server on socket/);
  });

  test("not enough room to restore: NO_SPACE before any scratch instance exists", async () => {
    const dir = await backupCopy((d, m) =>
      writeManifest(d, { ...m, databases: m.databases.map((db) => ({ ...db, sizeBytes: 1e18 })) }),
    );
    const e = await verifyBackup(cfg, dir, { physical: false, jobs: 1 }, () => {}).then(
      () => undefined,
      (x) => x,
    );
    expect(e).toBeInstanceOf(ToolkitError);
    expect([(e as ToolkitError).code, (e as ToolkitError).fix]).toEqual([
      "NO_SPACE",
      "free space, or verify on a machine with more room",
    ]);
    expect((e as ToolkitError).message).toStartWith(
      `not enough disk space to restore the backup for verification: ${cfg.memberRoot} has `,
    );
    expect(existsSync(scratchRoot(cfg)) ? readdirSync(scratchRoot(cfg)) : []).toEqual([]);
  });
});

describe("verification by restore", () => {
  test("the manifest is what the backup records: both tables with checksums, the large object, the database's properties", () => {
    const db = readManifest(pristine).databases[0]!;
    expect(db.tables.map((t) => [t.schema, t.table, t.rows, typeof t.checksum])).toEqual([
      ["public", "t", 3, "string"],
      ["public", "u", 2, "string"],
    ]);
    expect(db.largeObjects?.count).toBe(1);
    const p = db.properties!;
    expect([p.owner, p.comment, p.connLimit, p.allowConnections, p.settings, p.roleSettings]).toEqual([
      "pgp_verify_owner",
      "verify test",
      -1,
      true,
      ["work_mem=8MB"],
      [],
    ]);
    expect(p.acl.map((a) => `${a.grantee}:${a.privilege}`)).toEqual([
      "pgp_verify_owner:CONNECT",
      "pgp_verify_owner:CREATE",
      "pgp_verify_owner:TEMPORARY",
      "pgp_verify_reader:CONNECT",
    ]);
  });

  test(
    "a good backup: roles and data restored, every table's count and content and the database's properties match; the scratch instance is gone afterwards",
    async () => {
      const dir = await backupCopy();
      const { v, steps, saved } = await verify(dir);
      expect([v.ok, v.checks, v.problems]).toEqual([
        true,
        { files: true, restore: true, rowCounts: true, checksums: true, databaseProperties: true },
        [],
      ]);
      expect(saved.status).toBe("verified");
      expect(saved.verification).toEqual(v);
      expect(steps[0]).toBe(`verify: sha256 of ${readManifest(pristine).files.length} files`);
      expect(steps[1]).toMatch(/^verify: scratch instance verify-20261121T020000Z-\d{8}T\d{6}Z$/);
      expect(steps.slice(2)).toEqual(["verify: restoring app_db (7.6 MB)"]);
      expect(readdirSync(scratchRoot(cfg))).toEqual([]);
      expect(v.ms).toBeGreaterThan(0);
      expect(v.ms).toBeLessThan(SLOW);
      expect(Math.abs(Date.parse(v.at) - Date.now())).toBeLessThan(60_000);
    },
    SLOW,
  );

  test(
    "a row count edited in the manifest: the restore's own count disagrees, naming database, table and both numbers",
    async () => {
      const dir = await backupCopy((d, m) =>
        editDb(d, m, (db) => ({ ...db, tables: db.tables.map((t) => (t.table === "t" ? { ...t, rows: 4 } : t)) })),
      );
      const { v, saved } = await verify(dir);
      expect([v.ok, v.checks, v.problems]).toEqual([
        false,
        { files: true, restore: true, rowCounts: false, checksums: true, databaseProperties: true },
        ["app_db: table public.t has 3 rows after restore, manifest says 4"],
      ]);
      expect(saved.status).toBe("failed");
    },
    SLOW,
  );

  test(
    "a content checksum edited in the manifest: same count, the content differs, naming the table and both checksums",
    async () => {
      const t = readManifest(pristine).databases[0]!.tables.find((x) => x.table === "t")!;
      const dir = await backupCopy((d, m) =>
        editDb(d, m, (db) => ({
          ...db,
          tables: db.tables.map((x) => (x.table === "t" ? { ...x, checksum: "12345" } : x)),
        })),
      );
      const { v } = await verify(dir);
      expect([v.ok, v.checks, v.problems]).toEqual([
        false,
        { files: true, restore: true, rowCounts: true, checksums: false, databaseProperties: true },
        [
          `app_db: table public.t: same row count (3) but the content differs (checksum ${t.checksum}, manifest says 12345)`,
        ],
      ]);
    },
    SLOW,
  );

  test(
    "a table the manifest does not list (it lists every table with checksums): named as not in the manifest",
    async () => {
      const dir = await backupCopy((d, m) =>
        editDb(d, m, (db) => ({ ...db, tables: db.tables.filter((x) => x.table !== "u") })),
      );
      const { v } = await verify(dir);
      expect([v.ok, v.checks, v.problems]).toEqual([
        false,
        { files: true, restore: true, rowCounts: false, checksums: true, databaseProperties: true },
        ["app_db: table public.u after restore is not in the manifest"],
      ]);
    },
    SLOW,
  );

  test(
    "large objects edited in the manifest: the count, then the checksum, each its own problem",
    async () => {
      const lo = readManifest(pristine).databases[0]!.largeObjects!;
      const count = await backupCopy((d, m) => editDb(d, m, (db) => ({ ...db, largeObjects: { ...lo, count: 2 } })));
      const sum = await backupCopy((d, m) => editDb(d, m, (db) => ({ ...db, largeObjects: { ...lo, checksum: "0" } })));
      const a = (await verify(count)).v;
      expect([a.ok, a.checks.checksums, a.problems]).toEqual([
        false,
        false,
        ["app_db: 1 large objects after restore, manifest says 2"],
      ]);
      const b = (await verify(sum)).v;
      expect([b.ok, b.checks.checksums, b.problems]).toEqual([
        false,
        false,
        ["app_db: large objects: same count (1) but the content differs (checksum)"],
      ]);
    },
    SLOW,
  );

  test(
    "the database's recorded properties edited: owner, access rules, limit, comment and settings each named, values of settings never",
    async () => {
      const dir = await backupCopy((d, m) =>
        editDb(d, m, (db) => ({
          ...db,
          properties: {
            ...db.properties!,
            owner: "postgres",
            acl: db.properties!.acl.filter((a) => a.grantee !== "pgp_verify_reader"),
            connLimit: 5,
            comment: "other",
            settings: ["work_mem=16MB"],
          },
        })),
      );
      const { v } = await verify(dir);
      expect([v.ok, v.checks, v.problems]).toEqual([
        false,
        { files: true, restore: true, rowCounts: true, checksums: true, databaseProperties: false },
        [
          "app_db: owner is pgp_verify_owner, the backup says postgres",
          "app_db: access rules differ from the backup's; extra: pgp_verify_reader:CONNECT by pgp_verify_owner",
          "app_db: connection limit -1, the backup says 5",
          'app_db: comment "verify test", the backup says "other"',
          "app_db: database settings differ from the backup's (restored: work_mem; backup: work_mem)",
        ],
      ]);
    },
    SLOW,
  );

  test(
    "an older manifest without checksums, large objects or properties: restored and counted, but checksums and properties are not proven",
    async () => {
      const dir = await backupCopy((d, m) =>
        editDb(d, m, (db) => ({
          ...db,
          tables: db.tables.map(({ checksum, ...t }) => t),
          properties: undefined,
          largeObjects: undefined,
        })),
      );
      const { v } = await verify(dir);
      expect([v.ok, v.checks, v.problems]).toEqual([
        true,
        { files: true, restore: true, rowCounts: true, checksums: false, databaseProperties: false },
        [],
      ]);
    },
    SLOW,
  );

  test(
    "a dump pg_restore cannot read (files consistent with the manifest): that database fails, with pg_restore's words",
    async () => {
      const dir = await backupCopy(async (d, m) => {
        writeFileSync(join(d, "db/app_db/toc.dat"), "not a table of contents");
        await rehash(d, m);
      });
      const { v } = await verify(dir);
      expect(v.ok).toBe(false);
      expect(v.checks).toEqual(FAILED_RESTORE);
      expect(v.problems).toHaveLength(1);
      expect(v.problems[0]).toMatch(/^app_db: pg_restore failed: .*pg_restore: error: /);
    },
    SLOW,
  );

  test(
    "roles that fail to restore: the restore fails as a whole, naming globals.sql",
    async () => {
      const dir = await backupCopy(async (d, m) => {
        writeFileSync(
          join(d, "globals.sql"),
          readFileSync(join(d, "globals.sql"), "utf8") + "\nALTER ROLE pgp_no_such_role LOGIN;\n",
        );
        await rehash(d, m);
      });
      const { v } = await verify(dir);
      expect(v.ok).toBe(false);
      expect(v.checks).toEqual(FAILED_RESTORE);
      const g = join(dir, "globals.sql");
      const line = readFileSync(g, "utf8").split("\n").indexOf("ALTER ROLE pgp_no_such_role LOGIN;") + 1;
      // psql's own error line, after the message naming the file
      expect(v.problems).toEqual([
        `restore into scratch instance failed: restoring roles from ${g} failed: psql:${g}:${line}: ERROR:  role "pgp_no_such_role" does not exist`,
      ]);
      expect(readdirSync(scratchRoot(cfg))).toEqual([]);
    },
    SLOW,
  );

  test(
    "with the physical check: pgbackrest verify of a repository that does not exist fails and says so",
    async () => {
      const dir = await backupCopy((d, m) => writeManifest(d, { ...m, files: m.files.slice(0, 0) }));
      const { v, steps } = await verify(dir, true);
      expect(v.ok).toBe(false);
      expect(v.checks.pgbackrest).toBe(false);
      // The last five lines of pgBackRest's own output, joined; the same command run here says the same.
      const out = (await verifyRepo(cfg)).output;
      expect(out.length).toBeGreaterThan(0);
      expect(v.problems.at(-1)).toBe(`pgbackrest verify: ${out.split("\n").slice(-5).join(" | ")}`);
      expect(steps.at(-1)).toBe("verify: pgbackrest verify");
    },
    SLOW,
  );

  test(
    "a backup whose manifest names no roles file: the roles are not restored, so the dump's owner is missing",
    async () => {
      const dir = await backupCopy(async (d, m) => {
        rmSync(join(d, "globals.sql"));
        await rehash(d, { ...m, globals: undefined });
      });
      const { v } = await verify(dir);
      expect(v.checks).toEqual(FAILED_RESTORE);
      expect(v.problems).toHaveLength(1);
      // the server's lines, joined on one line, and the step that failed
      expect(v.problems[0]).toBe(
        'app_db: pg_restore failed: pg_restore: error: could not execute query: ERROR:  role "pgp_verify_owner" does not exist | Command was: ALTER DATABASE app_db OWNER TO pgp_verify_owner; (loading schema)',
      );
    },
    SLOW,
  );
});
