/**
 * Physical backups and WAL archiving with pgBackRest. One repository per
 * stack (<member root>/pgbackrest/repo); every member archives into it through
 * the archive_command in Patroni's DCS, and `make backup` takes full or
 * differential backups, copying from a streaming standby when there is one.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import type { Cmd, RunOptions, RunResult } from "../exec";
import { ensureCipherPass, offsiteEnabled, offsitePaused, offsiteRepoBlock, writeOffsiteConf } from "./offsite";
import { clusterView, isRunning } from "../patroni";
import { ensureDcsParameters } from "../dcs-params";
import { readTemplate, renderTemplate, writeIfChanged } from "../render";
import { ensurePgDir, freeBytes, pgOwner, runAsPg, spaceProblem } from "./common";
import { withClient } from "../pg";

export const pgbackrestConfigPath = (cfg: Config) => join(cfg.backup.pgbackrestHome, "pgbackrest.conf");

/**
 * The archive_command, identical on every member (it lives in the DCS).
 * Postgres runs it in the member's data dir (<member root>/<member>/data), so
 * "$PWD" names this member's data dir and ../../pgbackrest the shared config.
 * It must match patroni/patroni.yml.tmpl (a unit test holds them together).
 */
export const archiveCommand = (cfg: Config) =>
  `pgbackrest --config="$PWD/../../pgbackrest/pgbackrest.conf" --stanza=${cfg.backup.stanza} --pg1-path="$PWD" archive-push "%p"`;

/** Postgres parameters archiving needs; bootstrap.dcs sets them, ensureArchiving PATCHes older clusters. */
export const archiveParameters = (cfg: Config): Record<string, string | number> => ({
  archive_mode: "on",
  archive_command: archiveCommand(cfg),
  archive_timeout: cfg.backup.archiveTimeout,
});

/** `ignorePause`: with the off-site repository even while its archiving is paused (for the off-site-only config). */
export function renderPgbackrestConf(cfg: Config, ignorePause = false): string {
  const pgSections = cfg.members
    .map((m, i) =>
      [
        `pg${i + 1}-path=${m.dataDir}`,
        `pg${i + 1}-socket-path=${m.socketDir}`,
        `pg${i + 1}-port=${m.pgPort}`,
        `pg${i + 1}-user=postgres`,
      ].join("\n"),
    )
    .join("\n");
  return renderTemplate(
    readTemplate(cfg.rootDir, "patroni/pgbackrest.conf.tmpl"),
    {
      CLUSTER_NAME: cfg.clusterName,
      STACK: cfg.stack,
      STANZA: cfg.backup.stanza,
      REPO_PATH: cfg.backup.repoDir,
      HOME_PATH: cfg.backup.pgbackrestHome,
      RETENTION_FULL: Math.max(1, cfg.backup.retentionWeekly),
      RETENTION_DIFF: Math.max(1, cfg.backup.retentionDaily),
      FULL_EVERY_DAYS: cfg.backup.fullEveryDays,
      JOBS: cfg.backup.jobs,
      PG_SECTIONS: pgSections,
      OFFSITE_REPO: offsiteRepoBlock(cfg, ignorePause),
    },
    "patroni/pgbackrest.conf.tmpl",
  );
}

export const pgbackrestCmd = (cfg: Config, ...args: string[]): Cmd => [
  "pgbackrest",
  `--config=${pgbackrestConfigPath(cfg)}`,
  `--stanza=${cfg.backup.stanza}`,
  ...args,
];

/** pgBackRest runs as postgres (it reads data dirs and owns the repo) with the superuser password for libpq. */
export type PgbackrestRunner = (cfg: Config, args: string[], opts?: RunOptions) => Promise<RunResult>;
export const runPgbackrest: PgbackrestRunner = (cfg, args, opts = {}) =>
  runAsPg(cfg, pgbackrestCmd(cfg, ...args), { timeoutMs: 3_600_000, ...opts });

/** Write the config and the repo's folders (owned by postgres). Returns what changed. */
export function writePgbackrestFiles(cfg: Config): string[] {
  const changes: string[] = [];
  const home = cfg.backup.pgbackrestHome;
  ensurePgDir(cfg, home, 0o750);
  for (const d of ["log", "lock", "spool"]) ensurePgDir(cfg, join(home, d), 0o750);
  if (ensurePgDir(cfg, cfg.backup.repoDir, 0o750)) changes.push(`pgBackRest repo ${cfg.backup.repoDir}`);
  const ids = pgOwner(cfg);
  // 0600: with an off-site repository it holds the store's key and the cipher passphrase (see offsite.ts).
  if (offsiteEnabled(cfg) && ensureCipherPass(cfg).created) changes.push("off-site cipher passphrase generated");
  const conf = renderPgbackrestConf(cfg);
  if (writeIfChanged(pgbackrestConfigPath(cfg), conf, { mode: 0o600, ...(ids ?? {}) })) changes.push("pgbackrest.conf");
  const offsiteConf = offsitePaused(cfg) ? renderPgbackrestConf(cfg, true) : conf;
  if (offsiteEnabled(cfg) && writeOffsiteConf(cfg, offsiteConf)) changes.push("pgbackrest-offsite.conf");
  return changes;
}

/**
 * Make the DCS archive WAL into our repo. bootstrap.dcs covers new clusters;
 * a cluster bootstrapped before archiving existed gets the settings PATCHed
 * in, and archive_mode needs a restart: replicas first, the leader last.
 */
export async function ensureArchiving(cfg: Config): Promise<string[]> {
  return ensureDcsParameters(cfg, archiveParameters(cfg), ["archive_mode"], "archive settings");
}

export interface PgbackrestBackupInfo {
  label: string;
  type: "full" | "diff" | "incr";
  start: number; // unix seconds
  stop: number;
  size: number; // database size
  repoSize: number;
  walStart: string;
  walStop: string;
  lsnStart?: string;
  lsnStop?: string;
}

export interface StanzaInfo {
  status: { code: number; message: string };
  backups: PgbackrestBackupInfo[];
  archiveMin?: string;
  archiveMax?: string;
}

/** The stanza in repo1 of the runner's config: the local repository, or the off-site one in its own config. */
export async function stanzaInfo(cfg: Config, runner: PgbackrestRunner = runPgbackrest): Promise<StanzaInfo> {
  const r = await runner(cfg, ["--output=json", "--repo=1", "info"], { timeoutMs: 60_000 });
  let arr: any[];
  try {
    arr = JSON.parse(r.stdout);
  } catch {
    throw new ToolkitError(
      "PGBACKREST_INFO",
      "`pgbackrest info` did not print JSON",
      `see ${cfg.backup.pgbackrestHome}/log`,
      (r.stdout + r.stderr).slice(0, 2000),
    );
  }
  const s = arr.find((x) => x.name === cfg.backup.stanza) ?? arr[0];
  const archive = (s?.archive ?? [])[0];
  return {
    // "other" means the repositories differ: their own messages say why.
    status: {
      code: s?.status?.code ?? 1,
      message:
        s?.status?.message === "other" && s?.repo?.length
          ? s.repo.map((x: any) => x.status?.message).join("; ")
          : (s?.status?.message ?? "missing"),
    },
    archiveMin: archive?.min,
    archiveMax: archive?.max,
    backups: (s?.backup ?? []).map((b: any) => ({
      label: b.label,
      type: b.type,
      start: b.timestamp.start,
      stop: b.timestamp.stop,
      size: b.info?.size ?? 0,
      repoSize: b.info?.repository?.delta ?? b.info?.repository?.size ?? 0,
      walStart: b.archive?.start,
      walStop: b.archive?.stop,
      lsnStart: b.lsn?.start,
      lsnStop: b.lsn?.stop,
    })),
  };
}

/** Create the stanza when missing (idempotent), then prove that WAL reaches the repo. */
export async function ensureStanza(cfg: Config): Promise<string[]> {
  const info = await stanzaInfo(cfg);
  // 1 = "missing stanza path", 3 = "missing stanza data"; anything else means the stanza exists (maybe without backups).
  if (info.status.code !== 1 && info.status.code !== 3) return [];
  await runPgbackrest(cfg, ["stanza-create"], { timeoutMs: 120_000 });
  await runPgbackrest(cfg, ["--archive-timeout=60", "check"], { timeoutMs: 180_000 });
  return [`pgBackRest stanza ${cfg.backup.stanza} created; WAL archiving checked`];
}

/**
 * dev-up's hook (called once from nativeUp when the cluster is healthy):
 * config + repo, archive settings in the DCS, stanza. Safe to re-run.
 */
export async function ensureBackupRepo(cfg: Config): Promise<string[]> {
  const changes = writePgbackrestFiles(cfg);
  changes.push(...(await ensureArchiving(cfg)));
  changes.push(...(await ensureStanza(cfg)));
  return changes;
}

/** Pure: full when there is no full backup yet or the newest is `fullEveryDays` old; differential otherwise. */
export function chooseBackupType(
  backups: Pick<PgbackrestBackupInfo, "type" | "start">[],
  now: Date,
  fullEveryDays: number,
): "full" | "diff" {
  const fulls = backups.filter((b) => b.type === "full").map((b) => b.start);
  if (fulls.length === 0) return "full";
  const ageDays = (now.getTime() / 1000 - Math.max(...fulls)) / 86_400;
  return ageDays >= fullEveryDays ? "full" : "diff";
}

export interface PhysicalResult {
  label: string;
  type: "full" | "diff" | "incr";
  fromStandby: boolean;
  note?: string;
  ms: number;
  size: number;
  repoSize: number;
  walStart: string;
  walStop: string;
}

/**
 * `runner`: runOffsite backs up into the off-site repository instead (offsite.ts).
 * `inContainer`: the runtime's pgBackRest in the leader's container (docker): its config and
 * repository are the container's (no local file or disk to check), and its config knows only
 * the leader's own data dir, so the files are copied from the primary.
 */
export async function physicalBackup(
  cfg: Config,
  opts: { type?: "full" | "diff"; now?: Date; runner?: PgbackrestRunner; inContainer?: PgbackrestRunner } = {},
): Promise<PhysicalResult> {
  const runner = opts.inContainer ?? opts.runner ?? runPgbackrest;
  const t0 = Date.now();
  if (!opts.inContainer && !existsSync(pgbackrestConfigPath(cfg))) {
    throw new ToolkitError(
      "NO_PGBACKREST",
      `${pgbackrestConfigPath(cfg)} does not exist`,
      "run `make dev-up` (it configures pgBackRest and WAL archiving)",
    );
  }
  const before = await stanzaInfo(cfg, runner);
  if (before.status.code === 1 || before.status.code === 3)
    throw new ToolkitError(
      "NO_STANZA",
      `pgBackRest stanza ${cfg.backup.stanza} does not exist`,
      "run `make dev-up` (it creates the stanza)",
    );
  const type = opts.type ?? chooseBackupType(before.backups, opts.now ?? new Date(), cfg.backup.fullEveryDays);
  // Checked before starting: a full copy compresses to well under the cluster's size; a differential is the changes.
  const clusterBytes = await withClient(cfg, {}, async (c) =>
    Number((await c.query("SELECT sum(pg_database_size(datname))::bigint AS b FROM pg_database")).rows[0].b),
  );
  const need = (type === "full" ? clusterBytes * 0.6 : clusterBytes * 0.1) + 64 * 1024 * 1024;
  const space = spaceProblem(
    `not enough disk space for a ${type} pgBackRest backup`,
    cfg.backup.repoDir,
    need,
    freeBytes(cfg.backup.repoDir),
  );
  if (space && !opts.inContainer)
    throw new ToolkitError(
      "NO_SPACE",
      space,
      `free space, lower BACKUP_RETENTION_WEEKLY, or point BACKUP_REPO_DIR in ${cfg.file} at a bigger disk`,
    );
  // pgBackRest copies from a standby only when one is streaming; otherwise say so and use the primary.
  const view = opts.inContainer ? undefined : await clusterView(cfg);
  const standby = view?.members.find((m) => m.role !== "leader" && isRunning(m));
  // The local repository by name: with BACKUP_OFFSITE=ssh, repo2 is a repository host where
  // pgBackRest 2.45 runs backup and expire only on that host (the off-site half runs them there).
  const args = [
    ...(runner === runPgbackrest ? ["--repo=1"] : []),
    `--type=${type}`,
    `--backup-standby=${standby ? "y" : "n"}`,
    `--process-max=${cfg.backup.jobs}`,
    "backup",
  ];
  await runner(cfg, args, { timeoutMs: 6 * 3_600_000 });
  const after = await stanzaInfo(cfg, runner);
  const known = new Set(before.backups.map((b) => b.label));
  const b = after.backups.filter((x) => !known.has(x.label)).at(-1) ?? after.backups.at(-1);
  if (!b)
    throw new ToolkitError(
      "PHYSICAL_BACKUP_MISSING",
      "pgBackRest reported success but lists no backup",
      `see ${cfg.backup.pgbackrestHome}/log`,
    );
  return {
    label: b.label,
    type: b.type,
    fromStandby: Boolean(standby),
    note: standby
      ? `files copied from standby ${standby.name}`
      : opts.inContainer
        ? "in the leader's container: backed up from the primary"
        : "no streaming standby: backed up from the primary",
    ms: Date.now() - t0,
    size: b.size,
    repoSize: b.repoSize,
    walStart: b.walStart,
    walStop: b.walStop,
  };
}

export interface RepoVerifyResult {
  ok: boolean;
  ms: number;
  output: string;
}

/** `pgbackrest verify`: checksums of every backup file and WAL segment in the repo. */
export async function verifyRepo(cfg: Config, runner: PgbackrestRunner = runPgbackrest): Promise<RepoVerifyResult> {
  const t0 = Date.now();
  const r = await runner(cfg, ["--output=text", "--log-level-console=warn", "--repo=1", "verify"], {
    nothrow: true,
    timeoutMs: 6 * 3_600_000,
  });
  const output = (r.stdout + r.stderr).trim();
  const ok = r.code === 0 && !/status: error|ERROR:|invalid|missing/i.test(output.replace(/missing: 0/g, ""));
  return { ok, ms: Date.now() - t0, output };
}

export interface PitrWindow {
  /** the earliest AT restore-pitr can reach: the end of the oldest kept backup */
  from?: string;
  /** the latest: the last WAL segment the archive received (the leader's pg_stat_archiver), else the newest backup's end */
  to?: string;
  toSource?: "last archived WAL" | "newest backup";
}

/** Pure: the times `make restore-pitr AT=` can reach, from what the repository holds. */
export function pitrWindow(info: Pick<StanzaInfo, "backups">, lastArchivedAt?: Date): PitrWindow {
  if (!info.backups.length) return {};
  const iso = (s: number) => new Date(s * 1000).toISOString();
  const oldest = Math.min(...info.backups.map((b) => b.stop));
  const newest = Math.max(...info.backups.map((b) => b.stop));
  if (lastArchivedAt && lastArchivedAt.getTime() >= newest * 1000)
    return { from: iso(oldest), to: lastArchivedAt.toISOString(), toSource: "last archived WAL" };
  return { from: iso(oldest), to: iso(newest), toSource: "newest backup" };
}
