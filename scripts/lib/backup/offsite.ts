/**
 * The off-site pgBackRest repository (issue 17), repo2 of the stack's
 * pgbackrest.conf. Why its secrets sit in that config file (0600, owned by
 * postgres) rather than in PGBACKREST_REPO2_* variables passed by our runner:
 * WAL reaches the repository through archive_command, which Postgres runs
 * under Patroni with Patroni's environment, not ours; only the config file
 * reaches both that and every command we run. pgBackRest masks these options
 * in its own logs; our logs redact them (registered secrets).
 *
 * A second file, pgbackrest-offsite.conf, describes the SAME repository as
 * its only repo (repo1): restores and drills from the far copy use it, so
 * nothing of the local repository can be read, even by archive-get.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import type { RunOptions } from "../exec";
import { registerSecret } from "../redact";
import { writeIfChanged } from "../render";
import { generateSecret, writeSecretFile } from "../secrets";
import { pgOwner, runAsPg } from "./common";
import { REPO_HOST_COMMANDS, remotePgbackrest, sshRepoArgs, sshRepoLines } from "./offsite-ssh";

export const OFFSITE_SECRET_KEYS = {
  key: "BACKUP_OFFSITE_S3_KEY",
  secret: "BACKUP_OFFSITE_S3_KEY_SECRET",
  cipherPass: "BACKUP_OFFSITE_CIPHER_PASS",
} as const;

export interface OffsiteSecrets {
  key: string;
  secret: string;
  cipherPass: string;
}

export const offsiteEnabled = (cfg: Config) => cfg.backup.offsite.kind !== "none";
export const offsiteConfigPath = (cfg: Config) => join(cfg.backup.pgbackrestHome, "pgbackrest-offsite.conf");

/** The off-site secrets from the stack's secrets file (registered for redaction). */
export function readOffsiteSecrets(cfg: Config): OffsiteSecrets {
  const raw = existsSync(cfg.secretsFile) ? parseDotenv(readFileSync(cfg.secretsFile)) : {};
  const s = {
    key: raw[OFFSITE_SECRET_KEYS.key] ?? "",
    secret: raw[OFFSITE_SECRET_KEYS.secret] ?? "",
    cipherPass: raw[OFFSITE_SECRET_KEYS.cipherPass] ?? "",
  };
  for (const v of Object.values(s)) if (v) registerSecret(v);
  return s;
}

/**
 * The repository passphrase is generated once (48 random bytes) and appended
 * to the secrets file; an existing one is never replaced (the repository
 * cannot be read without the passphrase it was created with).
 */
export function ensureCipherPass(cfg: Config): { created: boolean } {
  if (cfg.backup.offsite.cipher === "none" || readOffsiteSecrets(cfg).cipherPass) return { created: false };
  const before = existsSync(cfg.secretsFile) ? readFileSync(cfg.secretsFile, "utf8") : "";
  const pass = generateSecret(48);
  writeSecretFile(
    cfg.secretsFile,
    `${before}${before && !before.endsWith("\n") ? "\n" : ""}${OFFSITE_SECRET_KEYS.cipherPass}=${pass}\n`,
  );
  registerSecret(pass);
  return { created: true };
}

/** Pure: the pgbackrest.conf lines of the off-site repository as repo<n>. */
export function offsiteRepoLines(cfg: Config, n: number, s: OffsiteSecrets): string[] {
  const o = cfg.backup.offsite;
  if (o.kind === "ssh") return sshRepoLines(cfg);
  if (o.kind !== "s3") return [];
  const r = `repo${n}`;
  return [
    `# Off-site: S3-compatible store (BACKUP_OFFSITE=s3); ${o.cipher === "none" ? "NOT encrypted (BACKUP_OFFSITE_CIPHER=none)" : "encrypted, passphrase from the secrets file"}.`,
    `${r}-type=s3`,
    `${r}-path=${o.path}`,
    `${r}-s3-bucket=${o.s3.bucket}`,
    `${r}-s3-endpoint=${o.s3.endpoint}`,
    `${r}-s3-region=${o.s3.region}`,
    `${r}-s3-uri-style=${o.s3.uriStyle}`,
    `${r}-storage-port=${o.s3.port}`,
    ...(o.s3.caFile ? [`${r}-storage-ca-file=${o.s3.caFile}`] : []),
    `${r}-s3-key=${s.key}`,
    `${r}-s3-key-secret=${s.secret}`,
    ...(o.cipher === "none" ? [] : [`${r}-cipher-type=${o.cipher}`, `${r}-cipher-pass=${s.cipherPass}`]),
    // Many small files become few objects: fewer round trips to the store.
    `${r}-bundle=y`,
    `${r}-retention-full-type=count`,
    `${r}-retention-full=${o.retentionFull}`,
    `${r}-retention-diff=${o.retentionDiff}`,
  ];
}

/**
 * Written by `make backup` when the off-site repository did not answer (offsite-gate.ts): archive_command then pushes to
 * the local repository alone, because a failing repo2 fails archive-push and Postgres retries that segment forever.
 */
export const offsitePausedPath = (cfg: Config) => join(cfg.backup.pgbackrestHome, "offsite-paused");
export const offsitePaused = (cfg: Config) => existsSync(offsitePausedPath(cfg));

/** The block renderPgbackrestConf puts after the local repository (empty without an off-site target). */
export function offsiteRepoBlock(cfg: Config, ignorePause = false): string {
  if (!offsiteEnabled(cfg)) return "";
  if (!ignorePause && offsitePaused(cfg))
    return `# Off-site repository PAUSED (${readFileSync(offsitePausedPath(cfg), "utf8").trim().split("\n")[0]}): \`make backup\` resumes it once the off-site repository answers.`;
  const s = readOffsiteSecrets(cfg);
  return offsiteRepoLines(cfg, 2, s).join("\n");
}

/**
 * Pure: the main config with the off-site repository as its only one (repo2-* become repo1-*;
 * with ssh they stay repo2-*: the backup host's config names it so, see offsite-ssh.ts).
 */
export function offsiteOnlyConf(mainConf: string, keepIndex = false): string {
  return mainConf
    .split("\n")
    .filter((l) => !/^repo1-/.test(l))
    .map((l) => (keepIndex ? l : l.replace(/^repo2-/, "repo1-")))
    .join("\n")
    .replace(
      /^# pgBackRest for /m,
      "# The OFF-SITE repository alone (restores and drills from the far copy). pgBackRest for ",
    );
}

/** Problems with the secrets the off-site repository needs, naming each key (empty: fine). */
export function offsiteSecretProblems(cfg: Config, s: OffsiteSecrets): string[] {
  const out: string[] = [];
  if (cfg.backup.offsite.kind === "s3") {
    if (!s.key) out.push(`${OFFSITE_SECRET_KEYS.key} (the store's access key id)`);
    if (!s.secret) out.push(`${OFFSITE_SECRET_KEYS.secret} (the store's secret key)`);
  }
  if (cfg.backup.offsite.cipher !== "none" && !s.cipherPass)
    out.push(`${OFFSITE_SECRET_KEYS.cipherPass} (generated by make backup)`);
  return out;
}

/** Write the off-site-only config (0600: it holds the key and the passphrase). Returns whether it changed. */
export function writeOffsiteConf(cfg: Config, mainConf: string): boolean {
  const s = readOffsiteSecrets(cfg);
  const missing = offsiteSecretProblems(cfg, s);
  if (missing.length) {
    throw new ToolkitError(
      "OFFSITE_NO_SECRET",
      `BACKUP_OFFSITE=${cfg.backup.offsite.kind} but ${cfg.secretsFile} has no ${missing.join(", ")}`,
      `add the line(s) to ${cfg.secretsFile} (mode 0600), e.g. ${OFFSITE_SECRET_KEYS.key}=..., then run \`make backup\` again`,
    );
  }
  return writeIfChanged(offsiteConfigPath(cfg), offsiteOnlyConf(mainConf, cfg.backup.offsite.kind === "ssh"), {
    mode: 0o600,
    ...(pgOwner(cfg) ?? {}),
  });
}

/** pgBackRest against the off-site repository alone, as postgres. */
export const runOffsite = (cfg: Config, args: string[], opts: RunOptions = {}) =>
  runOffsiteRepo(cfg, [`--stanza=${cfg.backup.stanza}`, ...args], opts);

/**
 * Without a stanza: repo-put / repo-get / repo-ls of files outside pgBackRest's own folders (the logical dumps).
 * With ssh, `backup` and `expire` run ON the backup host (pgBackRest 2.45 refuses them anywhere else).
 */
export function runOffsiteRepo(cfg: Config, args: string[], opts: RunOptions = {}) {
  const o = { timeoutMs: 3_600_000, ...opts };
  if (cfg.backup.offsite.kind !== "ssh")
    return runAsPg(cfg, ["pgbackrest", `--config=${offsiteConfigPath(cfg)}`, ...args], o);
  const a = sshRepoArgs(args);
  if (a.some((x) => REPO_HOST_COMMANDS.has(x))) return runAsPg(cfg, remotePgbackrest(cfg, a), o);
  return runAsPg(cfg, ["pgbackrest", `--config=${offsiteConfigPath(cfg)}`, ...a], o);
}
