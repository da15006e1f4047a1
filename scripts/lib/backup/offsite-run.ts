/**
 * `make backup`'s off-site half (issue 17): after the local backup is made
 * and verified, a pgBackRest backup into the off-site repository and a copy
 * of the logical dumps, each proven by reading it back. A failure here keeps
 * the local backup (it is good) but fails the command loudly: the error says
 * the local backup is fine and the off-site copy is not, the alert fires
 * (withBackupCommand), the exit code is 1 and the textfile metric records it.
 */
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { writeTextfile } from "../monitoring";
import type { BackupProgress } from "./common";
import { readManifest } from "./manifest";
import { copyLogicalOffsite, pgbackrestError, type LogicalCopy } from "./offsite-copy";
import { offsiteEnabled, OFFSITE_SECRET_KEYS, runOffsite } from "./offsite";
import { sshProblem } from "./offsite-host";
import { physicalBackup, stanzaInfo, writePgbackrestFiles, type PhysicalResult } from "./pgbackrest";

export interface OffsiteReport {
  target: string;
  encrypted: boolean;
  physical?: PhysicalResult;
  logical: LogicalCopy;
  /** printed at every backup while the repository is encrypted */
  warning?: string;
  ms: number;
}

/** Pure: where the off-site repository is, for messages (no secrets). */
export const offsiteTarget = (cfg: Config) => {
  const o = cfg.backup.offsite;
  if (o.kind === "ssh") return `ssh://${o.ssh.user}@${o.ssh.host}:${o.ssh.port}${o.path}`;
  return o.kind === "s3" ? `s3://${o.s3.bucket}${o.path} at ${o.s3.endpoint}:${o.s3.port}` : o.kind;
};

/** Pure: the passphrase warning (an encrypted backup without its passphrase is no backup). */
export function passphraseWarning(cfg: Config): string | undefined {
  if (cfg.backup.offsite.cipher === "none") return undefined;
  return [
    `WARNING: the off-site backups are encrypted with ${OFFSITE_SECRET_KEYS.cipherPass} from ${cfg.secretsFile}.`,
    "If that passphrase exists only on this machine, losing this machine loses every off-site backup with it.",
    `Keep a copy elsewhere NOW (password manager, a sealed envelope in the safe): \`grep ${OFFSITE_SECRET_KEYS.cipherPass} ${cfg.secretsFile}\`.`,
  ].join("\n");
}

export const OFFSITE_METRICS = {
  lastSuccess: "pgplatform_backup_offsite_last_success_timestamp_seconds",
  lastRun: "pgplatform_backup_offsite_last_run_timestamp_seconds",
  lastRunOk: "pgplatform_backup_offsite_last_run_success",
} as const;

/** node_exporter's textfile (MONITORING=true): each off-site run, and the time of the last good one. */
export function recordOffsite(
  cfg: Config,
  ok: boolean,
  lastSuccess: number | undefined,
  at = Math.floor(Date.now() / 1000),
): string | undefined {
  return writeTextfile(cfg, "pgplatform_backup_offsite", [
    { name: OFFSITE_METRICS.lastRun, help: "Unix time of the last off-site copy attempt (make backup).", value: at },
    {
      name: OFFSITE_METRICS.lastRunOk,
      help: "1 if the last off-site copy succeeded, 0 if it failed while the local backup succeeded.",
      value: ok ? 1 : 0,
    },
    ...(lastSuccess
      ? [
          {
            name: OFFSITE_METRICS.lastSuccess,
            help: "Unix time of the last successful off-site copy.",
            value: lastSuccess,
          },
        ]
      : []),
  ]);
}

/**
 * Pure: pgBackRest could not read its own info files: in an encrypted repository, a wrong passphrase.
 * Which error a wrong passphrase raises depends on the bytes it decrypts to: a padding check that fails
 * is a CryptoError, garbage that passes it a FormatError (pgBackRest 2.45, both seen here).
 */
export const unreadableInfo = (text: string) =>
  /unable to load info file/.test(text) && /FormatError|CryptoError|cipher|decrypt/i.test(text);

/**
 * The off-site stanza; a passphrase that does not open it is named as such (a deleted line was regenerated?).
 * `extra`: options for pgBackRest (the gate's short --io-timeout).
 */
export async function offsiteInfo(cfg: Config, extra: string[] = []) {
  const wrong = () =>
    new ToolkitError(
      "OFFSITE_WRONG_PASSPHRASE",
      `the off-site repository (${offsiteTarget(cfg)}) exists but its files do not decrypt with ${OFFSITE_SECRET_KEYS.cipherPass} from ${cfg.secretsFile}`,
      `put back the passphrase the repository was created with (from the copy you keep elsewhere); a deleted ${OFFSITE_SECRET_KEYS.cipherPass} line is regenerated, and the new one cannot open the old backups`,
    );
  try {
    const info = await stanzaInfo(cfg, (c, args, opts) => runOffsite(c, [...extra, ...args], opts));
    if (unreadableInfo(info.status.message)) throw wrong();
    return info;
  } catch (e) {
    if (e instanceof ToolkitError && e.code === "PGBACKREST_INFO" && unreadableInfo(e.detail ?? "")) throw wrong();
    throw e;
  }
}

/** The off-site repository does not answer or refuses us: `why` is pgBackRest's (or the store's) own line. */
const offsiteUnusable = (cfg: Config, why: string, detail: string) =>
  new ToolkitError(
    "OFFSITE_UNREACHABLE",
    `pgBackRest cannot use the off-site repository ${offsiteTarget(cfg)}: ${why}`,
    `check that it is up and reachable from here, the BACKUP_OFFSITE_* settings and the key/secret in ${cfg.secretsFile}, then run \`make backup\` again`,
    detail,
  );

/**
 * Create the stanza in the off-site repository when it has none (idempotent). A repository that does not
 * answer is an error here: `pgbackrest info` exits 0 then, reporting code 99 and the store's or ssh's error.
 */
export async function ensureOffsiteStanza(cfg: Config, infoArgs: string[] = []): Promise<string[]> {
  const info = await offsiteInfo(cfg, infoArgs);
  if (info.status.code === 99) throw offsiteUnusable(cfg, info.status.message.split("\n")[0]!, info.status.message);
  if (info.status.code !== 1 && info.status.code !== 3) return [];
  await runOffsite(cfg, ["stanza-create"], { timeoutMs: 300_000 });
  return [`pgBackRest stanza ${cfg.backup.stanza} created off-site (${offsiteTarget(cfg)})`];
}

export interface OffsiteOptions {
  physical?: boolean;
  physicalType?: "full" | "diff";
  /** the off-site repository did not answer before the local backup (offsite-gate.ts): fail with this */
  unreachable?: ToolkitError;
}

/** The off-site copy of a backup that is already made and verified locally. */
export async function backupOffsite(
  cfg: Config,
  id: string,
  dir: string,
  opts: OffsiteOptions,
  progress: BackupProgress,
): Promise<OffsiteReport> {
  const t0 = Date.now();
  const warning = passphraseWarning(cfg);
  if (warning) progress("offsite", warning);
  const target = offsiteTarget(cfg);
  try {
    if (opts.unreachable) throw opts.unreachable;
    writePgbackrestFiles(cfg);
    for (const c of await ensureOffsiteStanza(cfg)) progress("offsite", c);
    let physical: PhysicalResult | undefined;
    if (opts.physical !== false) {
      progress("offsite", `pgBackRest backup to ${target}`);
      physical = await physicalBackup(cfg, { type: opts.physicalType, runner: runOffsite });
    }
    progress("offsite", `copying logical backup ${id} and reading it back`);
    const logical = await copyLogicalOffsite(cfg, dir, readManifest(dir));
    recordOffsite(cfg, true, Math.floor(Date.now() / 1000));
    return { target, encrypted: cfg.backup.offsite.cipher !== "none", physical, logical, warning, ms: Date.now() - t0 };
  } catch (e) {
    recordOffsite(cfg, false, undefined);
    const ssh =
      cfg.backup.offsite.kind === "ssh" && e instanceof ToolkitError ? sshProblem(cfg, e.detail ?? "") : undefined;
    const te = ssh ?? (e instanceof ToolkitError ? e : undefined);
    const why = te?.detail ? pgbackrestError(te.detail) : (te ?? (e as Error)).message;
    throw new ToolkitError(
      "OFFSITE_FAILED",
      `the local backup ${id} is made and verified, but the OFF-SITE copy to ${target} FAILED: ${why.split("\n").join("; ")}`,
      te?.code === "OFFSITE_WRONG_PASSPHRASE" || te?.code.startsWith("OFFSITE_SSH")
        ? te.fix!
        : `fix the off-site target (settings BACKUP_OFFSITE_*, key/secret in ${cfg.secretsFile}), then run \`make backup\` again; until then this machine holds the only copy`,
      [
        ...(te?.detail ? [`${te.message}\n${why}`] : []),
        ...(opts.unreachable ? ["WAL archiving to it is paused (pgbackrest.conf without repo2) until it answers"] : []),
      ].join("\n") || undefined,
    );
  }
}

/** Pure: backup's summary line for the off-site copy. */
export const offsiteLine = (o: OffsiteReport) =>
  `off-site     ${o.target}${o.encrypted ? " (aes-256-cbc)" : " (NOT encrypted)"}: ${o.physical ? `${o.physical.type} ${o.physical.label}, ` : ""}${o.logical.files} logical files read back and matched, ${(o.ms / 1000).toFixed(1)} s`;

/** runBackup's hook: nothing without an off-site target. */
export async function withOffsite<R extends { id: string; dir: string }>(
  cfg: Config,
  report: R,
  opts: OffsiteOptions,
  progress: BackupProgress,
): Promise<R & { offsite?: OffsiteReport }> {
  if (!offsiteEnabled(cfg)) return report;
  return { ...report, offsite: await backupOffsite(cfg, report.id, report.dir, opts, progress) };
}
