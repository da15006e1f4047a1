/**
 * Off-site backups to a backup host over SSH (issue 17, BACKUP_OFFSITE=ssh):
 * pgBackRest's repository-host mode against two sshd started here on the
 * stack's own block: the "backup host" (127.0.<N>.31, its own host key and
 * sshd_config, login: an OS user of this test, pgp-sshrepo-bk, who owns the
 * repository) and the members' side (127.0.<N>.11-13, login postgres, only the
 * key the backup host generated), which the backup host's pgBackRest uses
 * for `backup`. Both are ended by pid; the user is removed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcp } from "node:net";
import { join, resolve } from "node:path";
import { prepareBackupHost, writeSshClientFiles } from "../../scripts/lib/backup/offsite-host";
import { readOffsiteSecrets } from "../../scripts/lib/backup/offsite";
import { offsiteGate } from "../../scripts/lib/backup/offsite-gate";
import { readManifest } from "../../scripts/lib/backup/manifest";
import { writePgbackrestFiles } from "../../scripts/lib/backup/pgbackrest";
import { loadConfig } from "../../scripts/lib/config";
import { monitoringHome, textfileDir } from "../../scripts/lib/monitoring";
import { quoteIdent } from "../../scripts/lib/pg";
import { keygen } from "./sshd";
import { grepBytes, jsonOf, pitrFromFarCopyAlone, sqlIn } from "./offsite-fixture";
import { runScript, TEST_STACK, testConfig, waitClusterHealthy } from "./stack";

const ROOT = resolve(import.meta.dir, "../..");
let cfg = testConfig();
const BLOCK = cfg.members[0]!.address.split(".").slice(0, 3).join(".");
const BACKUP_ADDR = `${BLOCK}.31`;
const BACKUP_PORT = 2231;
const MEMBERS_PORT = 2232;
const USER = "pgp-sshrepo-bk";
const DB = "orchestrator_ai_staging";
const TABLE = `it_offsite_ssh_${process.pid}`;
const MARKER = `SSH-OFFSITE-MARKER-${process.pid}-plaintext-row`;
const envFile = join(ROOT, "envs", `${TEST_STACK}.env`);
const envBefore = readFileSync(envFile, "utf8");
const secretsBefore = readFileSync(cfg.secretsFile, "utf8");
const work = mkdtempSync("/tmp/pgp-sshrepo-it-");
const home = join(work, "bkhome");
const repo = join(home, "repo");
const made: string[] = [];
const sshds: ChildProcess[] = [];
let madeTextfileDir = false;
let hostKey = "";

const sql = <T = any>(query: string, params: unknown[] = [], database = DB) => sqlIn<T>(cfg, database, query, params);

/** An sshd of this test: its own host key and config, the given addresses, one user, one authorized key. */
async function startSshd(name: string, addrs: string[], port: number, user: string, authorized: string, pam = false) {
  const d = join(work, name);
  mkdirSync(d, { recursive: true, mode: 0o755 });
  const hostKeyFile = keygen(join(d, "host_ed25519"), `${name}-host`);
  writeFileSync(join(d, "authorized_keys"), `${authorized}\n`, { mode: 0o644 }); // read as the login user
  const conf = join(d, "sshd_config");
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      ...addrs.map((a) => `ListenAddress ${a}`),
      `HostKey ${hostKeyFile}`,
      `AuthorizedKeysFile ${join(d, "authorized_keys")}`,
      `AllowUsers ${user}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      // postgres' password is locked ("!"): without PAM, sshd refuses locked accounts even for keys (Debian's sshd runs PAM)
      `UsePAM ${pam ? "yes" : "no"}`,
      "StrictModes no",
      `PidFile ${join(d, "sshd.pid")}`,
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const proc = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", conf], { stdio: ["ignore", "ignore", "inherit"] });
  sshds.push(proc);
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((ok) => {
      const s = tcp({ host: addrs[0]!, port }, () => (s.end(), ok(true)));
      s.on("error", () => ok(false));
    });
    if (up) break;
    if (i > 100 || proc.exitCode !== null) throw new Error(`sshd ${name} did not start`);
    await Bun.sleep(100);
  }
  return readFileSync(`${hostKeyFile}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
}

const withEnv = (extra: string) => {
  writeFileSync(envFile, envBefore + extra);
  cfg = loadConfig(TEST_STACK);
};
const sshEnv = (key: string) =>
  [
    "",
    "BACKUP_OFFSITE=ssh",
    `BACKUP_OFFSITE_SSH_HOST=${BACKUP_ADDR}`,
    `BACKUP_OFFSITE_SSH_PORT=${BACKUP_PORT}`,
    `BACKUP_OFFSITE_SSH_USER=${USER}`,
    `BACKUP_OFFSITE_SSH_HOST_KEY=${key}`,
    `BACKUP_OFFSITE_PATH=${repo}`,
    `BACKUP_OFFSITE_SSH_CONFIG=${home}/conf/pgbackrest.conf`,
    `BACKUP_OFFSITE_SSH_PG_PORT=${MEMBERS_PORT}`,
    `BACKUP_OFFSITE_SSH_PG_KNOWN_HOSTS=${join(work, "members_known_hosts")}`,
    "BACKUP_OFFSITE_RETENTION_FULL=3",
    "",
  ].join("\n");

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  spawnSync("chmod", ["755", work]);
  spawnSync("userdel", ["-r", USER]);
  const u = spawnSync("useradd", ["-m", "-d", home, "-s", "/bin/sh", USER], { encoding: "utf8" });
  if (u.status !== 0) throw new Error(`useradd: ${u.stderr}`);
  spawnSync("usermod", ["-p", "*", USER]); // no password, but not locked: sshd (UsePAM no) refuses locked accounts
  // The backup host's key is not known before its sshd starts: a placeholder pins nothing real yet.
  withEnv(
    sshEnv(
      readFileSync(`${keygen(join(work, "placeholder"))}.pub`, "utf8")
        .split(" ")
        .slice(0, 2)
        .join(" "),
    ),
  );
  const { publicKey } = await writeSshClientFiles(cfg);
  hostKey = await startSshd("backup-host", [BACKUP_ADDR], BACKUP_PORT, USER, publicKey);
  withEnv(sshEnv(hostKey));
  writePgbackrestFiles(cfg); // the cipher passphrase
  // The backup host's own key (generated there) is what the members' sshd lets in as postgres.
  writeFileSync(join(work, "members_known_hosts"), ""); // filled once the members' sshd has its key
  const setup = await prepareBackupHost(cfg, readOffsiteSecrets(cfg).cipherPass);
  const memberKey = await startSshd(
    "members",
    cfg.members.map((m) => m.address),
    MEMBERS_PORT,
    "postgres",
    setup.backupHostKey,
    true,
  );
  writeFileSync(
    join(work, "members_known_hosts"),
    cfg.members.map((m) => `[${m.address}]:${MEMBERS_PORT} ${memberKey}\n`).join(""),
  );
  madeTextfileDir = !existsSync(textfileDir(cfg));
  mkdirSync(textfileDir(cfg), { recursive: true });
  await sql(`CREATE TABLE ${quoteIdent(TABLE)} (id int PRIMARY KEY, v text)`);
  await sql(`INSERT INTO ${quoteIdent(TABLE)} VALUES (1, $1)`, [MARKER]);
}, 180_000);

afterAll(async () => {
  writeFileSync(envFile, envBefore);
  writeFileSync(cfg.secretsFile, secretsBefore, { mode: 0o600 });
  cfg = loadConfig(TEST_STACK);
  writePgbackrestFiles(cfg);
  rmSync(join(cfg.backup.pgbackrestHome, "pgbackrest-offsite.conf"), { force: true });
  rmSync(join(cfg.backup.pgbackrestHome, "offsite-ssh"), { recursive: true, force: true });
  if (madeTextfileDir) rmSync(monitoringHome(cfg), { recursive: true, force: true });
  runScript("restore-pitr.ts", ["--remove"]);
  await sql(`DROP TABLE IF EXISTS ${quoteIdent(TABLE)}`).catch(() => {});
  await sql(`DROP DATABASE IF EXISTS ${quoteIdent(`${DB}_offsite`)} WITH (FORCE)`, [], "postgres").catch(() => {});
  for (const id of made) rmSync(join(cfg.backup.dir, id), { recursive: true, force: true });
  for (const p of sshds) if (p.pid && p.exitCode === null) process.kill(p.pid, "SIGTERM");
  spawnSync("userdel", ["-r", USER]);
  rmSync(work, { recursive: true, force: true });
  await waitClusterHealthy(cfg);
}, 180_000);

describe("off-site backups to a backup host over SSH (pgBackRest repository host)", () => {
  test("make backup writes both repositories; the files on the backup host hold no plaintext of a marker row", () => {
    const r = runScript("backup.ts", ["--json"]);
    expect(r.code === 0 ? "" : r.stderr).toBe("");
    const rep = jsonOf(r.stdout);
    made.push(rep.id);
    expect(rep.offsite.target).toBe(`ssh://${USER}@${BACKUP_ADDR}:${BACKUP_PORT}${repo}`);
    expect(rep.offsite.encrypted).toBe(true);
    expect(rep.offsite.physical.label).toMatch(/^\d{8}-\d{6}F$/);
    expect(rep.offsite.logical).toMatchObject({ files: rep.manifest.files.length + 1, checked: true });
    expect(r.stderr).toContain("WARNING: the off-site backups are encrypted with BACKUP_OFFSITE_CIPHER_PASS");
    expect(readFileSync(join(textfileDir(cfg), "pgplatform_backup_offsite.prom"), "utf8")).toContain(
      "pgplatform_backup_offsite_last_run_success 1\n",
    );
    expect(grepBytes(cfg.backup.repoDir, MARKER).length).toBeGreaterThan(0);
    expect(readdirSync(repo).sort()).toEqual(["archive", "backup", "logical"]);
    expect(grepBytes(repo, MARKER)).toEqual([]);
    expect(grepBytes(repo, cfg.secrets.POSTGRES_PASSWORD)).toEqual([]);
    // Our ssh never read ~/.ssh: the pinned key is the only known host.
    expect(readFileSync(join(cfg.backup.pgbackrestHome, "offsite-ssh", "known_hosts"), "utf8")).toBe(
      `pgplatform-offsite-${cfg.clusterName} ${hostKey}\n`,
    );
  }, 600_000);

  test("PITR from the backup host alone (local repository moved aside): rows before AT come back, rows after do not", async () => {
    await pitrFromFarCopyAlone(cfg, DB, TABLE, MARKER);
  }, 600_000);

  test("make restore SOURCE=offsite: the logical backup from the backup host, checked against its manifest", async () => {
    const r = runScript("restore.ts", ["--db", DB, "--to", `${DB}_offsite`, "--yes", "--json"], { SOURCE: "offsite" });
    expect(r.code === 0 ? "" : r.stderr).toBe("");
    expect(jsonOf(r.stdout)).toMatchObject({ source: "offsite", backup: made[0], database: `${DB}_offsite` });
    expect(await sql(`SELECT id, v FROM ${quoteIdent(TABLE)} ORDER BY id`, [], `${DB}_offsite`)).toEqual([
      { id: 1, v: MARKER },
    ]);
  }, 300_000);

  test("make backup-drill restores from the backup host into a scratch instance", () => {
    const r = runScript("backup-drill.ts", ["--json"]);
    expect(r.code === 0 ? "" : r.stderr).toBe("");
    const res = jsonOf(r.stdout);
    expect(res.pitr.databases.map((d: any) => d.name)).toEqual(expect.arrayContaining(cfg.databases));
    expect(res.logical.id).toBe(made[0]);
  }, 600_000);

  // Last: it pauses WAL archiving to the backup host (offsite-gate.ts), which its finally resumes.
  test("a wrong pinned host key: archiving to it paused, local backup made and verified, OFFSITE_FAILED naming the pinned key, alert, exit 1, metric 0", async () => {
    const wrong = readFileSync(`${keygen(join(work, "wrong"))}.pub`, "utf8")
      .split(" ")
      .slice(0, 2)
      .join(" ");
    withEnv(sshEnv(wrong));
    const alert = join(work, "alert.txt");
    try {
      const r = runScript("backup.ts", ["--alert-command", `/usr/bin/tee ${alert}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `did not present the pinned host key (BACKUP_OFFSITE_SSH_HOST_KEY=${wrong.slice(0, 60)}… in ${cfg.file}); nothing was sent to it`,
      );
      const conf = readFileSync(join(cfg.backup.pgbackrestHome, "pgbackrest.conf"), "utf8");
      expect(conf).toContain("# Off-site repository PAUSED (");
      expect(conf).not.toContain("repo2-host=");
      expect(r.stdout + r.stderr).toContain("WAL archiving to it is PAUSED");
      const id = /the local backup (\S+) is made and verified/.exec(r.stderr)![1]!;
      made.push(id);
      expect(readManifest(join(cfg.backup.dir, id)).status).toBe("verified");
      expect(readFileSync(alert, "utf8")).toMatch(
        /backup FAILED .*\[OFFSITE_FAILED\] the local backup \S+ is made and verified/,
      );
      expect(readFileSync(join(textfileDir(cfg), "pgplatform_backup_offsite.prom"), "utf8")).toContain(
        "pgplatform_backup_offsite_last_run_success 0\n",
      );
    } finally {
      withEnv(sshEnv(hostKey));
      writePgbackrestFiles(cfg);
    }
    // The right key again: the gate resumes archiving to the backup host.
    expect(await offsiteGate(cfg, () => {})).toBeUndefined();
    expect(readFileSync(join(cfg.backup.pgbackrestHome, "pgbackrest.conf"), "utf8")).toContain(
      `repo2-host=${BACKUP_ADDR}\n`,
    );
  }, 600_000);
});
