/**
 * Off-site backups (issue 17) against a real S3-compatible server: started
 * here (tests/integration/s3-server.ts: @20minutes/s3rver over TLS from a
 * throwaway CA, AWS Signature V4 checked) on the stack's own address block.
 * The stack's env file gets the BACKUP_OFFSITE_* keys and its secrets file
 * the store's key for the duration of this file; both are put back after.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { loadConfig } from "../../scripts/lib/config";
import { pgbackrestConfigPath, writePgbackrestFiles } from "../../scripts/lib/backup/pgbackrest";
import { offsiteGate } from "../../scripts/lib/backup/offsite-gate";
import { offsitePausedPath } from "../../scripts/lib/backup/offsite";
import { readManifest } from "../../scripts/lib/backup/manifest";
import { monitoringHome, textfileDir } from "../../scripts/lib/monitoring";
import { quoteIdent } from "../../scripts/lib/pg";
import { archiver, grepBytes, jsonOf, pitrFromFarCopyAlone, sqlIn, switchArchived } from "./offsite-fixture";
import { runScript, TEST_STACK, testConfig, waitClusterHealthy } from "./stack";
import { S3_KEY, startS3Server, stopChild } from "./s3-server";

const ROOT = resolve(import.meta.dir, "../..");
let cfg = testConfig();
const BLOCK = cfg.members[0]!.address.split(".").slice(0, 3).join(".");
const S3_ADDRESS = `${BLOCK}.30`;
const S3_PORT = 19443;
const BUCKET = "pgp-offsite-test";
const SECRET = "offsite-test-secret-0123456789abcdef";
const DB = "orchestrator_ai_staging";
const TABLE = `it_offsite_${process.pid}`;
// A marker no compressor hides: lz4 (the local repository) stores it verbatim, so the grep is proven to see it.
const MARKER = `OFFSITE-MARKER-${process.pid}-plaintext-row`;
const envFile = join(ROOT, "envs", `${TEST_STACK}.env`);
const envBefore = readFileSync(envFile, "utf8");
const secretsBefore = readFileSync(cfg.secretsFile, "utf8");
const work = mkdtempSync("/tmp/pgp-offsite-it-");
const made: string[] = [];
let server: ChildProcess | undefined;
let madeTextfileDir = false;

const sql = <T = any>(query: string, params: unknown[] = [], database = DB) => sqlIn<T>(cfg, database, query, params);

/** The store's key and secret in the secrets file; every other line (the generated cipher passphrase) is kept. */
function setSecret(secret: string) {
  const lines = readFileSync(cfg.secretsFile, "utf8")
    .split("\n")
    .filter((l) => l && !l.startsWith("BACKUP_OFFSITE_S3_KEY"));
  writeFileSync(
    cfg.secretsFile,
    [...lines, `BACKUP_OFFSITE_S3_KEY=${S3_KEY}`, `BACKUP_OFFSITE_S3_KEY_SECRET=${secret}`, ""].join("\n"),
    { mode: 0o600 },
  );
}

const s3dir = join(work, "s3");
/** The off-site backup set made by the `make backup` that resumed archiving to the store. */
let resumedSet = "";

const startServer = async () => {
  server = await startS3Server(s3dir, S3_ADDRESS, S3_PORT, BUCKET, SECRET);
};
const stopServer = async () => {
  await stopChild(server);
  server = undefined;
};

/** The tests that pause WAL archiving to the store resume it: the gate, with the right key, as `make backup` runs it. */
async function resumeOffsite() {
  cfg = loadConfig(TEST_STACK);
  expect(await offsiteGate(cfg, () => {})).toBeUndefined();
  expect(readFileSync(pgbackrestConfigPath(cfg), "utf8")).toContain(`repo2-s3-bucket=${BUCKET}\n`);
}

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  mkdirSync(s3dir, { recursive: true });
  await startServer();
  // pgBackRest runs as postgres: it must read the CA.
  for (const p of [work, s3dir, join(s3dir, "tls")]) Bun.spawnSync(["chmod", "755", p]);
  Bun.spawnSync(["chmod", "644", join(s3dir, "tls", "ca.crt")]);
  writeFileSync(
    envFile,
    envBefore +
      [
        "",
        "BACKUP_OFFSITE=s3",
        `BACKUP_OFFSITE_S3_BUCKET=${BUCKET}`,
        "BACKUP_OFFSITE_S3_REGION=us-east-1",
        `BACKUP_OFFSITE_S3_ENDPOINT=${S3_ADDRESS}:${S3_PORT}`,
        "BACKUP_OFFSITE_S3_URI_STYLE=path",
        `BACKUP_OFFSITE_S3_CA_FILE=${join(s3dir, "tls", "ca.crt")}`,
        "BACKUP_OFFSITE_RETENTION_FULL=3",
        "",
      ].join("\n"),
  );
  setSecret(SECRET);
  cfg = loadConfig(TEST_STACK);
  madeTextfileDir = !existsSync(textfileDir(cfg));
  mkdirSync(textfileDir(cfg), { recursive: true }); // the metric is written where node_exporter would read it
  await sql(`CREATE TABLE ${quoteIdent(TABLE)} (id int PRIMARY KEY, v text)`);
  await sql(`INSERT INTO ${quoteIdent(TABLE)} VALUES (1, $1)`, [MARKER]);
}, 120_000);

afterAll(async () => {
  writeFileSync(envFile, envBefore);
  writeFileSync(cfg.secretsFile, secretsBefore, { mode: 0o600 });
  cfg = loadConfig(TEST_STACK);
  rmSync(offsitePausedPath(cfg), { force: true });
  writePgbackrestFiles(cfg); // archiving back to the local repository alone
  rmSync(join(cfg.backup.pgbackrestHome, "pgbackrest-offsite.conf"), { force: true });
  if (madeTextfileDir) rmSync(monitoringHome(cfg), { recursive: true, force: true });
  runScript("restore-pitr.ts", ["--remove"]);
  await sql(`DROP TABLE IF EXISTS ${quoteIdent(TABLE)}`).catch(() => {});
  await sql(`DROP DATABASE IF EXISTS ${quoteIdent(`${DB}_offsite`)} WITH (FORCE)`, [], "postgres").catch(() => {});
  for (const id of made) rmSync(join(cfg.backup.dir, id), { recursive: true, force: true });
  await stopServer();
  rmSync(work, { recursive: true, force: true });
  await waitClusterHealthy(cfg);
}, 120_000);

describe("off-site backups to S3-compatible object storage", () => {
  test("make backup writes both repositories; the stored objects hold no plaintext of a marker row", () => {
    const r = runScript("backup.ts", ["--json"]);
    expect(r.code).toBe(0);
    const rep = jsonOf(r.stdout);
    made.push(rep.id);
    expect(rep.manifest.status).toBe("verified");
    expect(rep.offsite.target).toBe(`s3://${BUCKET}/pgplatform/${cfg.clusterName} at ${S3_ADDRESS}:${S3_PORT}`);
    expect(rep.offsite.encrypted).toBe(true);
    expect(rep.offsite.physical.label).toMatch(/^\d{8}-\d{6}F/);
    expect(rep.offsite.logical).toMatchObject({ files: rep.manifest.files.length + 1, checked: true });
    // The loud warning, at every run.
    expect(r.stderr).toContain("WARNING: the off-site backups are encrypted with BACKUP_OFFSITE_CIPHER_PASS");
    const prom = readFileSync(join(textfileDir(cfg), "pgplatform_backup_offsite.prom"), "utf8");
    expect(prom).toContain("pgplatform_backup_offsite_last_run_success 1\n");

    // The marker is in the local (lz4, unencrypted) repository's WAL, so the grep can see it...
    expect(grepBytes(cfg.backup.repoDir, MARKER).length).toBeGreaterThan(0);
    // ...and in none of the objects on the S3 server (backups, WAL, logical dumps and manifests).
    const stored = join(work, "s3", "data", BUCKET);
    expect(readdirSync(join(stored, "pgplatform", cfg.clusterName)).sort()).toEqual(["archive", "backup", "logical"]);
    expect(grepBytes(stored, MARKER)).toEqual([]);
    expect(grepBytes(stored, cfg.secrets.POSTGRES_PASSWORD)).toEqual([]);
  }, 300_000);

  test("PITR from object storage alone (local repository moved aside): rows before AT come back, rows after do not", async () => {
    await pitrFromFarCopyAlone(cfg, DB, TABLE, MARKER);
  }, 300_000);

  test("make restore SOURCE=offsite: the logical backup from the far copy, checked against its manifest", async () => {
    const r = runScript("restore.ts", ["--db", DB, "--to", `${DB}_offsite`, "--yes", "--json"], { SOURCE: "offsite" });
    expect(r.code).toBe(0);
    const res = jsonOf(r.stdout);
    expect(res).toMatchObject({ source: "offsite", backup: made[0], database: `${DB}_offsite`, replaced: false });
    expect(await sql(`SELECT id, v FROM ${quoteIdent(TABLE)} ORDER BY id`, [], `${DB}_offsite`)).toEqual([
      { id: 1, v: MARKER },
    ]);
  }, 180_000);

  test("a wrong secret key: archiving to the store paused, local backup still made and verified, OFFSITE_FAILED naming the store's answer, alert fired, exit 1, metric 0", async () => {
    setSecret("not-the-secret-key-0123456789abcdef");
    const alert = join(work, "alert.txt");
    try {
      const r = runScript("backup.ts", ["--alert-command", `/usr/bin/tee ${alert}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("error [OFFSITE_FAILED]: the local backup ");
      expect(r.stderr).toContain("SignatureDoesNotMatch");
      expect(r.stderr).not.toContain("not-the-secret-key");
      // Checked before the local backup: the wrong key never reached archive_command.
      expect(r.stdout + r.stderr).toContain(
        "the object store cannot be used (OFFSITE_UNREACHABLE): WAL archiving to it is PAUSED",
      );
      expect(readFileSync(pgbackrestConfigPath(cfg), "utf8")).not.toMatch(/^repo2-/m);
      // Neither secret, nor the passphrase, in our logs or pgBackRest's own.
      const pass = /^BACKUP_OFFSITE_CIPHER_PASS=(.+)$/m.exec(readFileSync(cfg.secretsFile, "utf8"))![1]!;
      for (const s of ["not-the-secret-key-0123456789abcdef", SECRET, pass])
        expect([...grepBytes(cfg.logsDir, s), ...grepBytes(join(cfg.backup.pgbackrestHome, "log"), s)]).toEqual([]);
      const id = /the local backup (\S+) is made and verified/.exec(r.stderr)![1]!;
      made.push(id);
      expect(readManifest(join(cfg.backup.dir, id)).status).toBe("verified");
      expect(readFileSync(alert, "utf8")).toMatch(
        /backup FAILED .*\[OFFSITE_FAILED\] the local backup \S+ is made and verified, but the OFF-SITE copy .* FAILED/,
      );
      expect(readFileSync(join(textfileDir(cfg), "pgplatform_backup_offsite.prom"), "utf8")).toContain(
        "pgplatform_backup_offsite_last_run_success 0\n",
      );
    } finally {
      setSecret(SECRET);
    }
    await resumeOffsite();
  }, 300_000);

  test("a deleted passphrase line (regenerated) is named as the wrong passphrase, not as a broken store; the local backup is kept", async () => {
    const withPass = readFileSync(cfg.secretsFile, "utf8");
    writeFileSync(
      cfg.secretsFile,
      withPass
        .split("\n")
        .filter((l) => !l.startsWith("BACKUP_OFFSITE_CIPHER_PASS="))
        .join("\n"),
      { mode: 0o600 },
    );
    try {
      const r = runScript("backup.ts", ["--logical-only"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("[OFFSITE_FAILED]");
      expect(r.stderr).toMatch(/exists but its files do not decrypt with BACKUP_OFFSITE_CIPHER_PASS/);
      made.push(/the local backup (\S+) is made and verified/.exec(r.stderr)![1]!);
    } finally {
      writeFileSync(cfg.secretsFile, withPass, { mode: 0o600 });
    }
    await resumeOffsite();
  }, 300_000);

  // Before the drill: the resuming `make backup` makes the off-site backup the drill restores, after every pause.
  test("the S3 server stopped: archiving to it paused, WAL still reaches the local repository, local backup made and verified, OFFSITE_FAILED naming the store's error, alert, exit 1; the next make backup resumes", async () => {
    await stopServer();
    const alert = join(work, "alert-stopped.txt");
    try {
      const r = runScript("backup.ts", ["--alert-command", `/usr/bin/tee ${alert}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("error [OFFSITE_FAILED]: the local backup ");
      expect(r.stderr).toContain(`unable to connect to '${S3_ADDRESS}:${S3_PORT}': [111] Connection refused`);
      expect(r.stdout + r.stderr).toContain(
        "the object store cannot be used (OFFSITE_UNREACHABLE): WAL archiving to it is PAUSED",
      );
      const id = /the local backup (\S+) is made and verified/.exec(r.stderr)![1]!;
      made.push(id);
      expect(readManifest(join(cfg.backup.dir, id)).status).toBe("verified");
      expect(readFileSync(alert, "utf8")).toMatch(
        /backup FAILED .*\[OFFSITE_FAILED\] the local backup \S+ is made and verified, but the OFF-SITE copy .* FAILED: .*Connection refused/,
      );
      expect(readFileSync(join(textfileDir(cfg), "pgplatform_backup_offsite.prom"), "utf8")).toContain(
        "pgplatform_backup_offsite_last_run_success 0\n",
      );
      // Paused: no repo2 in the config archive_command reads, and the marker names the store's error.
      const conf = readFileSync(pgbackrestConfigPath(cfg), "utf8");
      expect(conf).not.toMatch(/^repo2-/m);
      expect(conf).toContain("# Off-site repository PAUSED (");
      expect(readFileSync(offsitePausedPath(cfg), "utf8")).toContain("[HostConnectError] unable to connect to");
      // WAL still reaches the local repository: a switch is archived within the archive timeout, and again
      // (archiving is not stuck on one segment), with no new failures in between.
      const timeout = cfg.backup.archiveTimeout * 1000;
      const first = await switchArchived(cfg, timeout);
      expect((await archiver(cfg)).wal! >= first).toBe(true);
      const failed = (await archiver(cfg)).failed;
      const second = await switchArchived(cfg, timeout);
      expect(second > first).toBe(true);
      expect((await archiver(cfg)).wal! >= second).toBe(true);
      expect((await archiver(cfg)).failed).toBe(failed);
      const inRepo1 = (readdirSync(join(cfg.backup.repoDir, "archive"), { recursive: true }) as string[]).filter((f) =>
        basename(f).startsWith(`${second}-`),
      );
      expect(inRepo1.length).toBe(1);
    } finally {
      await startServer();
    }
    // The store is back: the next `make backup` resumes archiving to it and makes the off-site backup.
    const r = runScript("backup.ts", ["--json"]);
    expect(r.code === 0 ? "" : r.stderr).toBe("");
    const rep = jsonOf(r.stdout);
    made.push(rep.id);
    expect(rep.offsite.physical.label).toMatch(/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/);
    resumedSet = rep.offsite.physical.label;
    expect(existsSync(offsitePausedPath(cfg))).toBe(false);
    expect(readFileSync(pgbackrestConfigPath(cfg), "utf8")).toContain(`repo2-s3-bucket=${BUCKET}\n`);
    expect(readFileSync(join(textfileDir(cfg), "pgplatform_backup_offsite.prom"), "utf8")).toContain(
      "pgplatform_backup_offsite_last_run_success 1\n",
    );
  }, 600_000);

  test("make backup-drill restores from the off-site copy into a scratch instance and records its time", () => {
    const r = runScript("backup-drill.ts", ["--json"]);
    expect(r.code === 0 ? "" : r.stderr).toBe("");
    const res = jsonOf(r.stdout);
    expect(res.pitr.databases.map((d: any) => d.name)).toEqual(expect.arrayContaining(cfg.databases));
    expect(res.logical.id).toBe(made.at(-1)); // the resuming backup of the test before
    // The far copy's WAL has a gap (the paused interval): only the backup made after it reaches AT.
    expect(res.pitr.backupSet).toBe(resumedSet);
    const last = readFileSync(join(cfg.reportsDir, "backup-drill.jsonl"), "utf8").trim().split("\n").at(-1)!;
    expect(JSON.parse(last)).toMatchObject({ ok: true, target: res.at });
    expect(readFileSync(join(textfileDir(cfg), "pgplatform_backup_drill.prom"), "utf8")).toMatch(
      /pgplatform_backup_drill_duration_seconds \d/,
    );
  }, 300_000);
});
