/**
 * Backups against the real cluster with the real programs (pg_dump,
 * pg_restore, pgbackrest). Leaves the cluster healthy and removes the tables,
 * databases and logical backup folders it creates.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { applyRetention } from "../../scripts/lib/backup/retention";
import { lockPath } from "../../scripts/lib/backup/lock";
import { connect, quoteIdent } from "../../scripts/lib/pg";
import { BUN, runScript, TEST_STACK, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const ROOT = resolve(import.meta.dir, "../..");
const DB = "orchestrator_ai_staging";
const TABLE = `it_backup_${process.pid}`;
const created: string[] = []; // logical backup ids this file made

const jsonOf = (out: string) => JSON.parse(out.slice(out.indexOf("{")));

async function sql<T = any>(query: string, params: unknown[] = [], database = DB): Promise<T[]> {
  const c = await connect(cfg, { database });
  try {
    return (await c.query(query, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

const checksum = async () =>
  (
    await sql(`SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY id)) AS h FROM ${quoteIdent(TABLE)} t`)
  )[0];

function backup(args: string[] = [], env: Record<string, string> = {}) {
  const r = runScript("backup.ts", ["--json", ...args], env);
  if (r.code === 0) created.push(jsonOf(r.stdout).id);
  return r;
}

afterAll(async () => {
  await sql(`DROP TABLE IF EXISTS ${quoteIdent(TABLE)}`).catch(() => {});
  await sql(`DROP TABLE IF EXISTS ${quoteIdent(TABLE + "_pitr")}`).catch(() => {});
  const leftovers = await sql(
    "SELECT datname FROM pg_database WHERE datname LIKE $1",
    [`${DB}\\_pre\\_restore\\_%`],
    "postgres",
  );
  for (const d of leftovers) await sql(`DROP DATABASE ${quoteIdent(d.datname)} WITH (FORCE)`, [], "postgres");
  for (const id of created) rmSync(join(cfg.backup.dir, id), { recursive: true, force: true });
  runScript("restore-pitr.ts", ["--remove"]);
  await waitClusterHealthy(cfg);
});

describe("backup and restore on a real cluster", () => {
  let id = "";

  test("backup -> drop a table -> restore -> the rows are identical", async () => {
    await waitClusterHealthy(cfg); // an earlier file may have just failed over
    await sql(`CREATE TABLE ${quoteIdent(TABLE)} (id int PRIMARY KEY, v text, at timestamptz DEFAULT now())`);
    await sql(`INSERT INTO ${quoteIdent(TABLE)} (id, v) SELECT g, md5(g::text) FROM generate_series(1, 3000) g`);
    const before = await checksum();
    expect(before.n).toBe(3000);
    const access = async () =>
      (
        await sql(
          "SELECT (SELECT array_agg(a ORDER BY a) FROM unnest(datacl::text[]) a) AS acl, datconnlimit FROM pg_database WHERE datname = $1",
          [DB],
          "postgres",
        )
      )[0];
    const accessBefore = await access();
    expect(accessBefore.acl.some((a: string) => /^=[^/]*c/.test(a))).toBe(false); // PUBLIC has no CONNECT

    const r = backup();
    expect(r.code).toBe(0);
    const report = jsonOf(r.stdout);
    id = report.id;
    expect(report.manifest.status).toBe("verified");
    expect(report.verification.ok).toBe(true);
    expect(report.verification.checks).toEqual({
      files: true,
      restore: true,
      rowCounts: true,
      checksums: true,
      databaseProperties: true,
      pgbackrest: true,
    });
    const entry = report.manifest.databases.find((d: any) => d.name === DB);
    // The checksum is the sum of each row's hash over its columns' text in column-name order: computed here independently.
    const [want] = await sql(
      `SELECT coalesce(sum(hashtextextended(ROW((t."at" AT TIME ZONE 'UTC')::text || '+00', t."id", t."v")::text, 0)), 0)::text AS h FROM ${quoteIdent(TABLE)} t`,
    );
    expect(entry.tables.find((t: any) => t.table === TABLE)).toEqual({
      schema: "public",
      table: TABLE,
      rows: 3000,
      kind: "table",
      checksum: want.h,
    });
    expect(report.manifest.source.role).not.toBe("leader"); // a healthy replica exists
    expect(report.manifest.files.every((f: any) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    expect(readFileSync(join(cfg.backup.dir, id, "globals.sql"), "utf8")).toContain("CREATE ROLE authenticator");
    expect((Bun.file(join(cfg.backup.dir, id, "globals.sql")) as any).size).toBeGreaterThan(100);
    const { statSync } = await import("node:fs");
    expect(statSync(join(cfg.backup.dir, id, "globals.sql")).mode & 0o777).toBe(0o600);
    expect(report.physical.label).toMatch(/^\d{8}-\d{6}F/); // a full backup, or a differential on top of one

    await sql(`DROP TABLE ${quoteIdent(TABLE)}`);
    const res = runScript("restore.ts", ["--db", DB, "--from", id, "--yes", "--json"]);
    expect(res.code).toBe(0);
    const out = jsonOf(res.stdout);
    expect(out.previousKeptAs).toMatch(new RegExp(`^${DB}_pre_restore_`));
    expect(await checksum()).toEqual(before);
    expect(await access()).toEqual(accessBefore); // the access rules came back with the data
    // Database-level settings (Supabase's JWT settings) come back too.
    expect((await sql("SELECT current_setting('app.settings.jwt_exp', true) AS v"))[0].v).toBe("3600");
  }, 120_000);

  test("restore refuses an unknown backup id and an unknown database, changing nothing", async () => {
    const databases = async () =>
      (await sql("SELECT oid::int, datname FROM pg_database ORDER BY 2", [], "postgres")).map(
        (r) => `${r.oid} ${r.datname}`,
      );
    const before = { dbs: await databases(), rows: await checksum() };
    const a = runScript("restore.ts", ["--db", DB, "--from", "20000101T000000Z", "--yes"]);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain("UNKNOWN_BACKUP");
    const b = runScript("restore.ts", ["--db", "no_such_db", "--from", id, "--yes"]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain("UNKNOWN_DATABASE");
    const c = runScript("restore.ts", ["--db", DB, "--from", id]); // no --yes, no TTY
    expect(c.code).toBe(1);
    expect(c.stderr).toContain("NEEDS_CONFIRMATION");
    // Nothing changed: the same databases (same OIDs: none replaced) and the same rows.
    expect({ dbs: await databases(), rows: await checksum() }).toEqual(before);
  }, 60_000);

  test("a flipped byte in a backup file fails verification and names the file", () => {
    const dir = join(cfg.backup.dir, id);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    const victim = manifest.files.find(
      (f: any) => f.path.startsWith(`db/${DB}/`) && f.path.endsWith(".dat.gz") && f.size > 100,
    ).path as string;
    const path = join(dir, victim);
    const original = readFileSync(path);
    const flipped = Buffer.from(original);
    const at = Math.floor(flipped.length / 2);
    flipped[at] = flipped[at]! ^ 0xff;
    writeFileSync(path, flipped);
    try {
      const r = runScript("backup-verify.ts", [id, "--no-physical"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("VERIFY_FAILED");
      expect(r.stderr).toContain(`${victim}: sha256 mismatch`);
      expect(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")).status).toBe("failed");
    } finally {
      writeFileSync(path, original);
    }
    const ok = runScript("backup-verify.ts", [id, "--no-physical", "--json"]);
    expect(ok.code).toBe(0);
    expect(jsonOf(ok.stdout).ok).toBe(true);
  }, 120_000);

  test("a second concurrent backup is refused by the lock", async () => {
    const first = Bun.spawn([BUN, "scripts/backup.ts", "--json"], {
      cwd: ROOT,
      env: { ...process.env, STACK: TEST_STACK },
      stdout: "pipe",
      stderr: "pipe",
    });
    for (let i = 0; i < 100 && !existsSync(lockPath(cfg)); i++) await Bun.sleep(50);
    expect(existsSync(lockPath(cfg))).toBe(true);
    const second = runScript("backup.ts", ["--logical-only"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain("LOCKED");
    expect(second.stderr).toMatch(/another backup is running .*pid \d+/);
    expect(await first.exited).toBe(0);
    created.push(jsonOf(await new Response(first.stdout).text()).id);
    expect(existsSync(lockPath(cfg))).toBe(false);
  }, 120_000);

  test("make backup works under cron's bare environment (env -i PATH=/usr/bin:/bin), from any directory", () => {
    const { spawnSync } = require("node:child_process") as typeof import("node:child_process");
    const r = spawnSync(
      "/usr/bin/env",
      ["-i", "PATH=/usr/bin:/bin", `STACK=${TEST_STACK}`, BUN, join(ROOT, "scripts/backup.ts")],
      { cwd: "/", encoding: "utf8", timeout: 300_000 },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // No TTY: plain, timestamped lines.
    expect(r.stdout).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /m);
    const id2 = /backup (\d{8}T\d{6}Z(?:-\d+)?) done/.exec(r.stdout)?.[1];
    expect(id2).toBeDefined();
    created.push(id2!);
    const log = readFileSync(join(cfg.logsDir, "backup.log"), "utf8");
    expect(log).toContain(`[backup ${r.pid}] done`);
    for (const s of Object.values(cfg.secrets)) expect(log).not.toContain(s);
  }, 180_000);

  test("PITR: rows written before the noted time come back, rows after do not", async () => {
    const t = `${TABLE}_pitr`;
    await sql(`CREATE TABLE ${quoteIdent(t)} (id int)`);
    await sql(`INSERT INTO ${quoteIdent(t)} SELECT generate_series(1, 10)`);
    await Bun.sleep(1100);
    const at = (await sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS at"))[0]
      .at as string;
    await Bun.sleep(1100);
    await sql(`INSERT INTO ${quoteIdent(t)} SELECT generate_series(11, 15)`);

    const r = runScript("restore-pitr.ts", ["--at", at, "--keep", "--json"]);
    expect(r.code).toBe(0);
    const res = jsonOf(r.stdout);
    expect(res.scratch.kept).toBe(true);
    expect(res.scratch.address).toBe(cfg.backup.scratchAddress);
    expect(res.databases.map((d: any) => d.name)).toContain(DB);
    const c = await connect(cfg, { target: { host: res.scratch.address, port: res.scratch.port }, database: DB });
    try {
      expect((await c.query(`SELECT count(*)::int AS n, max(id) AS m FROM ${quoteIdent(t)}`)).rows[0]).toEqual({
        n: 10,
        m: 10,
      });
      expect((await c.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(false);
    } finally {
      await c.end();
    }
    const rm = runScript("restore-pitr.ts", ["--remove"]);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toContain(`removed ${res.scratch.name}`);
    expect(existsSync(res.scratch.dir)).toBe(false);
    // The live cluster still has all 15 rows.
    expect((await sql(`SELECT count(*)::int AS n FROM ${quoteIdent(t)}`))[0].n).toBe(15);
  }, 180_000);

  test("a failing backup calls the failure hook (command and webhook) and exits non-zero", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "it-backup-alert-"));
    const file = join(tmp, "alert.txt");
    const a = runScript("backup.ts", ["--db", "no_such_db", "--alert-command", `/usr/bin/tee ${file}`]);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain("UNKNOWN_DATABASE");
    expect(readFileSync(file, "utf8")).toMatch(
      /backup FAILED .*\[UNKNOWN_DATABASE\] no_such_db is not a registered database/,
    );

    const got: any[] = [];
    const server = Bun.serve({
      hostname: cfg.haproxy.address,
      port: 0,
      fetch: async (req) => (got.push(await req.json()), new Response("ok")),
    });
    try {
      const p = Bun.spawn(
        [
          BUN,
          "scripts/backup.ts",
          "--db",
          "no_such_db",
          "--alert-url",
          `http://${cfg.haproxy.address}:${server.port}/hook`,
        ],
        { cwd: ROOT, env: { ...process.env, STACK: TEST_STACK }, stdout: "pipe", stderr: "pipe" },
      );
      expect(await p.exited).toBe(1);
      expect(got.length).toBe(1);
      expect(got[0]).toMatchObject({
        event: "backup_failed",
        stack: TEST_STACK,
        code: "UNKNOWN_DATABASE",
        command: "backup",
      });
    } finally {
      server.stop(true);
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  test("retention deletes the right folders and keeps the newest good one", () => {
    const dir = mkdtempSync(join(tmpdir(), "it-retention-"));
    const mk = (stamp: string, status: string) => {
      mkdirSync(join(dir, stamp));
      const m = {
        format: 1,
        id: stamp,
        stack: cfg.stack,
        cluster: cfg.clusterName,
        status,
        startedAt: "",
        jobs: 1,
        databases: [],
        files: [],
        verification: { ok: status === "verified", at: "", ms: 0, checks: { files: true }, problems: [] },
      };
      writeFileSync(join(dir, stamp, "manifest.json"), JSON.stringify(m));
    };
    mk("20261020T020000Z", "verified"); // older week: goes
    mk("20261101T020000Z", "failed"); // failed, older than the newest good: goes
    mk("20261102T020000Z", "verified"); // not the newest day: goes (daily=1)
    mk("20261103T020000Z", "verified"); // newest good: stays
    mk("20261104T020000Z", "failed"); // failed but newer than the newest good: kept as evidence
    try {
      const plan = applyRetention({ ...cfg, backup: { ...cfg.backup, dir, retentionDaily: 1, retentionWeekly: 1 } });
      expect(readdirSync(dir).sort()).toEqual(["20261103T020000Z", "20261104T020000Z"]);
      expect(plan.delete.sort()).toEqual(["20261020T020000Z", "20261101T020000Z", "20261102T020000Z"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("backup-list --json lists this file's backups as good, and pgBackRest's", () => {
    const r = runScript("backup-list.ts", ["--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    const mine = j.logical.filter((b: any) => created.includes(b.id));
    expect(mine.length).toBeGreaterThanOrEqual(1);
    expect(mine.every((b: any) => b.good)).toBe(true);
    expect(j.physical.backups.length).toBeGreaterThanOrEqual(1);
    // The window restore-pitr AT= can reach, as times (not WAL segment names).
    const stops = j.physical.backups.map((b: any) => b.stop * 1000);
    expect(j.physical.pitr.from).toBe(new Date(Math.min(...stops)).toISOString());
    expect(j.physical.pitr.toSource).toBe("last archived WAL");
    expect(Date.parse(j.physical.pitr.to)).toBeGreaterThanOrEqual(Math.max(...stops));
    const text = runScript("backup-list.ts");
    expect(text.stdout).toMatch(
      /restore-pitr AT= reaches \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00 \.\. \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00 \(last archived WAL\)/,
    );
    expect(text.stdout).not.toMatch(/[0-9A-F]{24}\.\.[0-9A-F]{24}/);
  });
});
