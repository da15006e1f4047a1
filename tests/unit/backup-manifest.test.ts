/**
 * The backup folder's bookkeeping on real files in a temporary folder: manifests
 * written and read back, the listing, which backup a restore picks, the file
 * hashes verification compares, and retention deleting folders. Written so that
 * each guard in manifest.ts and retention.ts fails a test when removed (make mutation).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import { ToolkitError } from "../../scripts/lib/errors";
import {
  backupPath,
  compareCounts,
  compareLargeObjects,
  filesBelow,
  findBackup,
  hashFiles,
  isGood,
  listBackups,
  markFailed,
  readManifest,
  sha256File,
  writeManifest,
  type Manifest,
} from "../../scripts/lib/backup/manifest";
import { applyRetention, isoWeekKey, planRetention, retentionItems } from "../../scripts/lib/backup/retention";

const base = parseConfig(readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8"), {
  file: "envs/test.env",
  stack: "test",
  isRoot: false,
});
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

let root: string;
let cfg: Config;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "backup-manifest-"));
  cfg = { ...base, backup: { ...base.backup, dir: join(root, "backups"), retentionDaily: 1, retentionWeekly: 1 } };
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function caught(fn: () => unknown): ToolkitError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ToolkitError) return e;
    throw e;
  }
  throw new Error("expected a ToolkitError, nothing was thrown");
}

const manifest = (id: string, over: Partial<Manifest> = {}): Manifest => ({
  format: 1,
  id,
  stack: "test",
  cluster: "pgplatform-test",
  status: "verified",
  startedAt: "2026-11-21T02:00:00.000Z",
  jobs: 2,
  databases: [{ name: "app_db", dir: "db/app_db", sizeBytes: 10, tables: [], member: "pg2", walPosition: "0/3000000" }],
  files: [],
  verification: {
    ok: true,
    at: "2026-11-21T02:01:00.000Z",
    ms: 1000,
    checks: { files: true, restore: true, rowCounts: true },
    problems: [],
  },
  ...over,
});

/** A backup folder holding a manifest; `dbs` names its databases. */
function backup(id: string, good: boolean, dbs = ["app_db"]): Manifest {
  const dir = backupPath(cfg, id);
  mkdirSync(dir, { recursive: true });
  const m = manifest(id, {
    status: good ? "verified" : "failed",
    databases: dbs.map((name) => ({
      name,
      dir: `db/${name}`,
      sizeBytes: 10,
      tables: [],
      member: "pg2",
      walPosition: "0/3000000",
    })),
  });
  writeManifest(dir, m);
  return m;
}

describe("manifest files", () => {
  test("a backup lives in BACKUP_DIR/<id>", () => {
    expect(backupPath(cfg, "20261121T020000Z")).toBe(join(root, "backups", "20261121T020000Z"));
  });

  test("written as indented JSON with a final newline, mode 0600, through a temporary file that does not stay", () => {
    const m = manifest("20261121T020000Z");
    writeManifest(root, m);
    expect(readFileSync(join(root, "manifest.json"), "utf8")).toBe(JSON.stringify(m, null, 2) + "\n");
    expect(statSync(join(root, "manifest.json")).mode & 0o777).toBe(0o600);
    expect(readdirSync(root)).toEqual(["manifest.json"]);
    expect(readManifest(root)).toEqual(m);
  });

  test("a missing manifest: NO_MANIFEST naming the path", () => {
    const e = caught(() => readManifest(root));
    expect([e.code, e.message, e.fix]).toEqual([
      "NO_MANIFEST",
      `${join(root, "manifest.json")} does not exist`,
      "this folder is not a complete backup; run `make backup-list`",
    ]);
  });

  test("a damaged manifest: BAD_MANIFEST naming the path and the parser's complaint", () => {
    writeFileSync(join(root, "manifest.json"), "{ not json");
    const e = caught(() => readManifest(root));
    expect(e.code).toBe("BAD_MANIFEST");
    expect(e.message.startsWith(`${join(root, "manifest.json")}: `)).toBe(true);
    expect(e.message.length).toBeGreaterThan(`${join(root, "manifest.json")}: `.length + 5);
    expect(e.fix).toBe("the manifest is damaged: treat this backup as bad and use another (`make backup-list`)");
  });

  test("markFailed records the error in the manifest; without a manifest it creates none; a damaged one is left as it is", () => {
    markFailed(root, new Error("boom"));
    expect(readdirSync(root)).toEqual([]);
    writeManifest(root, manifest("20261121T020000Z"));
    markFailed(root, new Error("pg_dump exited 1"));
    expect(readManifest(root)).toEqual({
      ...manifest("20261121T020000Z"),
      status: "failed",
      error: "pg_dump exited 1",
    });
    writeFileSync(join(root, "manifest.json"), "{ not json");
    expect(() => markFailed(root, new Error("x"))).not.toThrow();
    expect(readFileSync(join(root, "manifest.json"), "utf8")).toBe("{ not json");
  });
});

describe("listing", () => {
  test("no backup folder: an empty list", () => {
    expect(listBackups(cfg)).toEqual([]);
  });

  test("oldest first; folders that are not backup ids are skipped; an unreadable manifest is listed as failed", () => {
    const b = backup("20261121T020000Z", true);
    const a = backup("20261120T020000Z", false);
    mkdirSync(join(cfg.backup.dir, "20261122T020000Z"));
    mkdirSync(join(cfg.backup.dir, "lost+found"));
    mkdirSync(join(cfg.backup.dir, "x20261119T020000Z"));
    expect(listBackups(cfg)).toEqual([
      a,
      b,
      {
        format: 1,
        id: "20261122T020000Z",
        stack: "test",
        cluster: "pgplatform-test",
        status: "failed",
        startedAt: "",
        jobs: 0,
        databases: [],
        files: [],
        error: "no readable manifest",
      },
    ]);
  });

  test("good means verified with a passing verification, nothing less", () => {
    const ok = manifest("x").verification!;
    expect(isGood({ status: "verified", verification: ok })).toBe(true);
    expect(isGood({ status: "verified", verification: { ...ok, ok: false } })).toBe(false);
    expect(isGood({ status: "verified" })).toBe(false);
    expect(isGood({ status: "failed", verification: ok })).toBe(false);
    expect(isGood({ status: "dumped", verification: ok })).toBe(false);
  });
});

describe("which backup a restore uses", () => {
  test("by id: that backup, even unverified; a bad or unknown id and a missing database are refused with their codes", () => {
    backup("20261120T020000Z", true, ["app_db"]);
    const failed = backup("20261121T020000Z", false, ["app_db", "other_db"]);
    expect(findBackup(cfg, "20261121T020000Z")).toEqual(failed);
    expect(findBackup(cfg, "20261121T020000Z", "other_db")).toEqual(failed);
    const bad = caught(() => findBackup(cfg, "yesterday"));
    expect([bad.code, bad.message, bad.fix]).toEqual([
      "BAD_BACKUP_ID",
      `"yesterday" is not a backup id (like 20261121T020000Z)`,
      "run `make backup-list` for the ids",
    ]);
    const unknown = caught(() => findBackup(cfg, "20261119T020000Z"));
    expect([unknown.code, unknown.message, unknown.fix]).toEqual([
      "UNKNOWN_BACKUP",
      `no backup 20261119T020000Z in ${cfg.backup.dir}`,
      "run `make backup-list` for the ids",
    ]);
    const nodb = caught(() => findBackup(cfg, "20261121T020000Z", "third_db"));
    expect([nodb.code, nodb.message, nodb.fix]).toEqual([
      "UNKNOWN_DATABASE",
      "backup 20261121T020000Z has no database third_db (it has app_db, other_db)",
      "pick another backup with FROM=<id>",
    ]);
  });

  test("without an id: the newest good backup, or the newest good one holding the database", () => {
    backup("20261119T020000Z", true, ["app_db", "other_db"]);
    const newestGood = backup("20261120T020000Z", true, ["app_db"]);
    backup("20261121T020000Z", false, ["app_db", "other_db"]);
    expect(findBackup(cfg, undefined).id).toBe(newestGood.id);
    expect(findBackup(cfg, undefined, "app_db").id).toBe("20261120T020000Z");
    expect(findBackup(cfg, undefined, "other_db").id).toBe("20261119T020000Z");
  });

  test("a database no backup holds: UNKNOWN_DATABASE listing the backed-up ones once each", () => {
    backup("20261119T020000Z", true, ["app_db", "other_db"]);
    backup("20261120T020000Z", false, ["app_db"]);
    const e = caught(() => findBackup(cfg, undefined, "third_db"));
    expect([e.code, e.message, e.fix]).toEqual([
      "UNKNOWN_DATABASE",
      "no backup contains a database third_db",
      "backed-up databases: app_db, other_db",
    ]);
  });

  test("no good backup: NO_GOOD_BACKUP, naming the database when one was asked for", () => {
    const none = caught(() => findBackup(cfg, undefined));
    expect([none.code, none.message, none.fix]).toEqual([
      "NO_GOOD_BACKUP",
      `no verified backup in ${cfg.backup.dir}`,
      "run `make backup` (or pass FROM=<id> to use an unverified one)",
    ]);
    expect(caught(() => findBackup(cfg, undefined, "app_db")).message).toBe(
      `no verified backup of app_db in ${cfg.backup.dir}`,
    );
    backup("20261120T020000Z", false, ["other_db", "app_db"]);
    backup("20261121T020000Z", true, ["other_db"]);
    const onlyFailed = caught(() => findBackup(cfg, undefined, "app_db"));
    expect([onlyFailed.code, onlyFailed.message]).toEqual([
      "NO_GOOD_BACKUP",
      `no verified backup of app_db in ${cfg.backup.dir}`,
    ]);
  });

  test("only failed backups and no database asked for: NO_GOOD_BACKUP, not a database question", () => {
    backup("20261120T020000Z", false, ["app_db"]);
    const e = caught(() => findBackup(cfg, undefined));
    expect([e.code, e.message]).toEqual(["NO_GOOD_BACKUP", `no verified backup in ${cfg.backup.dir}`]);
  });
});

describe("file hashes", () => {
  test("every regular file below the folder, sorted, relative; not the manifest, its temporary file or a symlink", () => {
    mkdirSync(join(root, "db/app_db"), { recursive: true });
    writeFileSync(join(root, "db/app_db/toc.dat"), "toc");
    writeFileSync(join(root, "db/app_db/3344.dat.gz"), "abc");
    writeFileSync(join(root, "globals.sql"), "roles");
    writeFileSync(join(root, "notes.manifest.json"), "kept: not the manifest");
    writeFileSync(join(root, "manifest.json"), "{}");
    writeFileSync(join(root, ".manifest.json.tmp"), "{}");
    symlinkSync("/etc/hostname", join(root, "link"));
    expect(filesBelow(root)).toEqual([
      "db/app_db/3344.dat.gz",
      "db/app_db/toc.dat",
      "globals.sql",
      "notes.manifest.json",
    ]);
  });

  test("sha256 and size of each file, sorted by path; only the paths asked for", async () => {
    mkdirSync(join(root, "db"));
    writeFileSync(join(root, "db/b.dat"), "abc");
    writeFileSync(join(root, "a.sql"), "");
    writeFileSync(join(root, "c.sql"), "x".repeat(3 << 20));
    expect(await sha256File(join(root, "db/b.dat"))).toBe(ABC_SHA256);
    const big = new Bun.CryptoHasher("sha256").update("x".repeat(3 << 20)).digest("hex");
    expect(await hashFiles(root)).toEqual([
      { path: "a.sql", size: 0, sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
      { path: "c.sql", size: 3 << 20, sha256: big },
      { path: "db/b.dat", size: 3, sha256: ABC_SHA256 },
    ]);
    expect(await hashFiles(root, ["db/b.dat"])).toEqual([{ path: "db/b.dat", size: 3, sha256: ABC_SHA256 }]);
    expect((await hashFiles(root, ["db/b.dat", "a.sql"])).map((f) => f.path)).toEqual(["a.sql", "db/b.dat"]);
    // listed in reverse: the two workers finish roughly in that order, the answer is still sorted by path
    for (const n of ["e", "d", "f"]) writeFileSync(join(root, `${n}.sql`), n);
    expect(
      (await hashFiles(root, ["f.sql", "e.sql", "d.sql", "db/b.dat", "c.sql", "a.sql"])).map((f) => f.path),
    ).toEqual(["a.sql", "c.sql", "d.sql", "db/b.dat", "e.sql", "f.sql"]);
    await expect(sha256File(join(root, "missing"))).rejects.toThrow(/ENOENT/);
  });
});

describe("retention on disk", () => {
  test("applyRetention deletes exactly the folders the plan names and keeps the newest good one", () => {
    backup("20261118T020000Z", true);
    backup("20261119T020000Z", false);
    backup("20261120T020000Z", true);
    backup("20261121T020000Z", false);
    expect(retentionItems(cfg)).toEqual([
      { id: "20261118T020000Z", time: new Date("2026-11-18T02:00:00Z"), good: true, databases: ["app_db"] },
      { id: "20261119T020000Z", time: new Date("2026-11-19T02:00:00Z"), good: false, databases: ["app_db"] },
      { id: "20261120T020000Z", time: new Date("2026-11-20T02:00:00Z"), good: true, databases: ["app_db"] },
      { id: "20261121T020000Z", time: new Date("2026-11-21T02:00:00Z"), good: false, databases: ["app_db"] },
    ]);
    const plan = applyRetention(cfg);
    expect(plan.delete).toEqual(["20261119T020000Z", "20261118T020000Z"]);
    expect(readdirSync(cfg.backup.dir).sort()).toEqual(["20261120T020000Z", "20261121T020000Z"]);
    expect(existsSync(join(backupPath(cfg, "20261120T020000Z"), "manifest.json"))).toBe(true);
  });
});

describe("retention plan", () => {
  test("ISO week numbers below 10 have two digits", () => {
    expect(isoWeekKey(new Date("2026-01-05T12:00:00Z"))).toBe("2026-W02");
  });

  const item = (id: string, iso: string, good = true) => ({ id, time: new Date(iso), good });

  test("exact reasons; input order does not matter and is left alone; a failed backup as old as the newest good one goes", () => {
    const items = [
      item("g1", "2026-11-20T02:00:00Z"),
      item("g2", "2026-11-21T02:00:00Z"),
      item("f1", "2026-11-21T02:00:00Z", false),
      item("g3", "2026-11-20T14:00:00Z"),
      item("g0", "2026-11-19T02:00:00Z"),
      item("f2", "2026-11-22T02:00:00Z", false),
    ];
    const before = items.map((i) => i.id);
    const plan = planRetention(items, { daily: 3, weekly: 1 });
    expect(plan.keep).toEqual([
      { id: "f2", reasons: ["not verified, newer than the newest good backup"] },
      { id: "g2", reasons: ["newest good backup", "daily 2026-11-21", "weekly 2026-W47"] },
      { id: "g3", reasons: ["daily 2026-11-20"] },
      { id: "g0", reasons: ["daily 2026-11-19"] },
    ]);
    expect(plan.delete).toEqual(["f1", "g1"]);
    expect(items.map((i) => i.id)).toEqual(before);
  });

  test("one database: the reasons carry no database prefix", () => {
    const plan = planRetention([{ ...item("a", "2026-11-21T02:00:00Z"), databases: ["app_db"] }], {
      daily: 1,
      weekly: 0,
    });
    expect(plan).toEqual({ keep: [{ id: "a", reasons: ["newest good backup", "daily 2026-11-21"] }], delete: [] });
  });

  test("several databases: a backup without a database list counts for each; kept newest first, reasons in database order", () => {
    const items = [
      item("legacy", "2026-11-19T02:00:00Z"),
      { ...item("b", "2026-11-20T02:00:00Z"), databases: ["b_db"] },
      { ...item("ab", "2026-11-21T02:00:00Z"), databases: ["b_db", "a_db"] },
      { ...item("a", "2026-11-18T02:00:00Z"), databases: ["a_db"] },
    ];
    expect(planRetention(items, { daily: 2, weekly: 0 }, new Date("2026-11-25T00:00:00Z"))).toEqual({
      keep: [
        {
          id: "ab",
          reasons: [
            "a_db: newest good backup",
            "a_db: daily 2026-11-21",
            "b_db: newest good backup",
            "b_db: daily 2026-11-21",
          ],
        },
        { id: "b", reasons: ["b_db: daily 2026-11-20"] },
        { id: "legacy", reasons: ["a_db: daily 2026-11-19"] },
      ],
      delete: ["a"],
    });
  });

  test("a good backup exactly 24 h old is no longer kept for its age", () => {
    const items = [item("new", "2026-11-21T01:00:00Z"), item("old", "2026-11-20T02:00:00Z")];
    const plan = planRetention(items, { daily: 1, weekly: 0 }, new Date("2026-11-21T02:00:00Z"));
    expect(plan).toEqual({
      keep: [{ id: "new", reasons: ["newest good backup", "younger than 24 h", "daily 2026-11-21"] }],
      delete: ["old"],
    });
  });

  test("a manifest written before databases were recorded lists none", () => {
    const m = backup("20261120T020000Z", true);
    const { databases: _dropped, ...old } = m;
    writeFileSync(join(backupPath(cfg, m.id), "manifest.json"), JSON.stringify(old));
    // strict: toEqual would take [undefined] for []
    expect(retentionItems(cfg)).toStrictEqual([
      { id: "20261120T020000Z", time: new Date("2026-11-20T02:00:00Z"), good: true, databases: [] },
    ]);
  });
});

describe("restore checks against the manifest", () => {
  const tbl = (table: string, rows: number, checksum?: string) => ({ schema: "public", table, rows, checksum });
  const extra = tbl("new", 1, "9");

  test("a table the manifest does not list counts only when the manifest lists tables, all with checksums", () => {
    expect(
      compareCounts("db", [tbl("a", 5, "1"), tbl("b", 3, "2")], [tbl("a", 5, "1"), tbl("b", 3, "2"), extra]),
    ).toEqual(["db: table public.new after restore is not in the manifest"]);
    // an older manifest: one table without a checksum, or no table at all
    expect(compareCounts("db", [tbl("a", 5, "1"), tbl("b", 3)], [tbl("a", 5, "1"), tbl("b", 3), extra])).toEqual([]);
    expect(compareCounts("db", [], [extra])).toEqual([]);
  });

  test("large objects: none recorded is no check; a different count, then a different content, each named", () => {
    expect(compareLargeObjects("db", undefined, { count: 2, checksum: "5" })).toEqual([]);
    expect(compareLargeObjects("db", { count: 2, checksum: "5" }, { count: 2, checksum: "5" })).toEqual([]);
    expect(compareLargeObjects("db", { count: 2, checksum: "5" }, { count: 1, checksum: "5" })).toEqual([
      "db: 1 large objects after restore, manifest says 2",
    ]);
    expect(compareLargeObjects("db", { count: 2, checksum: "5" }, { count: 2, checksum: "6" })).toEqual([
      "db: large objects: same count (2) but the content differs (checksum)",
    ]);
  });
});
